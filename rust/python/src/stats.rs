//! Bindings for the stats domain: raw counts per tokenizer; Python derives the report.

use crate::error::{detach, CorpusError as PyCorpusError, IntoPyErr};
use crate::reader::PyTables;
use crate::reader::{input_files, parse_on_bad_line};
use numpy::IntoPyArray;
use pyo3::exceptions::PyKeyboardInterrupt;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::path::PathBuf;
use zhllama_core::corpus::{DocEncoder, Documents, TableReader};
use zhllama_core::stats::{collect_stats, StatsError};
use zhllama_core::AnyTokenizer;

impl IntoPyErr for StatsError {
    fn into_pyerr(self) -> PyErr {
        match self {
            StatsError::Corpus(e) => e.into_pyerr(),
            StatsError::Interrupted => PyKeyboardInterrupt::new_err("interrupted"),
            e => PyCorpusError::new_err(e.to_string()),
        }
    }
}

/// Count every tokenizer over the first `sample` documents of `inputs`: a dict of corpus
/// totals, with `"tokenizers"` a list of per-tokenizer dicts (numpy `lengths`,
/// `piece_counts`, and `fallback_chars` as `(char, count)` pairs, most frequent first).
#[pyfunction]
#[pyo3(signature = (tokenizer_paths, inputs, *, text_field, on_bad_line="fail", sample=None, threads=1, table_reader=None))]
#[allow(clippy::too_many_arguments)]
fn stats_collect<'py>(
    py: Python<'py>,
    tokenizer_paths: Vec<PathBuf>,
    inputs: Vec<PathBuf>,
    text_field: String,
    on_bad_line: &str,
    sample: Option<u64>,
    threads: i64,
    table_reader: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    let threads = crate::batch::check_threads("--threads", threads, "")?;
    let on_bad_line = parse_on_bad_line(on_bad_line)?;
    let tokenizers = detach(py, || {
        tokenizer_paths
            .iter()
            .map(|p| AnyTokenizer::from_path(p))
            .collect::<Result<Vec<_>, _>>()
    })?;
    let inputs = input_files(py, inputs)?;
    let tables = table_reader.map(|t| Box::new(PyTables(t)) as Box<dyn TableReader>);
    let mut docs = Documents::new(inputs, &text_field, on_bad_line, tables);
    let stats = detach(py, || {
        let encoders: Vec<&dyn DocEncoder> =
            tokenizers.iter().map(|t| t as &dyn DocEncoder).collect();
        // Ctrl-C: Python's handler only runs when we ask, so ask between batches.
        let mut keep_going = || Python::attach(|py| py.check_signals().is_ok());
        collect_stats(&mut docs, sample, &encoders, threads, &mut keep_going)
    })?;
    let out = PyDict::new(py);
    out.set_item("docs", stats.docs)?;
    out.set_item("chars", stats.chars)?;
    out.set_item("bytes", stats.bytes)?;
    out.set_item("bad_lines", stats.bad_lines)?;
    out.set_item("empty_docs", stats.empty_docs)?;
    let mut per = Vec::new();
    for t in stats.per_tokenizer {
        let d = PyDict::new(py);
        d.set_item("tokens", t.tokens)?;
        d.set_item("byte_tokens", t.byte_tokens)?;
        d.set_item("unk_tokens", t.unk_tokens)?;
        d.set_item("han_chars", t.han_chars)?;
        d.set_item("split_han_chars", t.split_han_chars)?;
        d.set_item("lengths", t.lengths.into_pyarray(py))?;
        d.set_item("piece_counts", t.piece_counts.into_pyarray(py))?;
        let mut chars: Vec<(String, u64)> = t
            .fallback_chars
            .into_iter()
            .map(|(c, n)| (c.to_string(), n))
            .collect();
        chars.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        d.set_item("fallback_chars", chars)?;
        per.push(d);
    }
    out.set_item("tokenizers", per)?;
    Ok(out)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(stats_collect, m)?)
}

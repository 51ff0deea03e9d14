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

/// A dict of a struct's counts keyed by their field names, `?` on each insertion:
/// `counts_dict!(py, stats, [docs, chars])` (also the pre-token counter's statistics).
macro_rules! counts_dict {
    ($py:expr, $s:expr, [$($field:ident),* $(,)?]) => {{
        let d = pyo3::types::PyDict::new($py);
        $(d.set_item(stringify!($field), $s.$field)?;)*
        d
    }};
}
pub(crate) use counts_dict;

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
    let out = counts_dict!(py, stats, [docs, chars, bytes, bad_lines, empty_docs]);
    let mut per = Vec::new();
    for t in stats.per_tokenizer {
        let d = counts_dict!(
            py,
            t,
            [tokens, byte_tokens, unk_tokens, han_chars, split_han_chars]
        );
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

//! `PretokenCounter`: `extend-vocab`'s count of a corpus's Chinese pre-tokens, in the core
//! (`zhllama_core::pretoken_counts`). Python feeds it batches of documents (counted with the GIL
//! released, in parallel) and reads back the table once, most frequent first.

use crate::error::detach;
use crate::stats::counts_dict;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use zhllama_core::bytelevel::ByteLevelError;
use zhllama_core::pretoken_counts::PretokenCounts;
use zhllama_core::ByteLevelTokenizer;

#[pyclass(name = "PretokenCounter", module = "zhllama._native")]
pub struct PyPretokenCounter {
    tokenizer: ByteLevelTokenizer,
    counts: PretokenCounts,
}

#[pymethods]
impl PyPretokenCounter {
    /// `tokenizer_json`: the base's tokenizer.json document (its normalizer and pre-tokenizer are
    /// used); `max_entries`: the most distinct pre-tokens held (the rarest are pruned past it).
    #[new]
    fn new(py: Python<'_>, tokenizer_json: Vec<u8>, max_entries: usize) -> PyResult<Self> {
        let tokenizer = detach(py, || {
            ByteLevelTokenizer::from_json_bytes(&tokenizer_json, None, "the --base tokenizer.json")
        })?;
        Ok(PyPretokenCounter {
            tokenizer,
            counts: PretokenCounts::new(max_entries),
        })
    }

    /// Count the Chinese pre-tokens of `documents`.
    fn add(&mut self, py: Python<'_>, documents: Vec<String>) -> PyResult<()> {
        let (tokenizer, counts) = (&self.tokenizer, &mut self.counts);
        detach(py, || {
            counts.add_documents(tokenizer, &documents);
            Ok::<(), ByteLevelError>(())
        })
    }

    /// `[(pre-token as UTF-8 bytes, count)]` of those seen at least `min_count` times, most
    /// frequent first, ties by bytes.
    #[pyo3(signature = (min_count = 1))]
    fn items<'py>(&self, py: Python<'py>, min_count: u64) -> Vec<(Bound<'py, PyBytes>, u64)> {
        let sorted = py.detach(|| self.counts.sorted(min_count));
        sorted
            .into_iter()
            .map(|(k, c)| (PyBytes::new(py, k), c))
            .collect()
    }

    /// `documents`, `characters`, `occurrences`, `dropped_occurrences`, `dropped_entries`,
    /// `floor` (entries seen at most this often were pruned; 0: none were).
    #[getter]
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.counts.stats();
        Ok(counts_dict!(
            py,
            s,
            [
                documents,
                characters,
                occurrences,
                dropped_occurrences,
                dropped_entries,
                floor
            ]
        ))
    }

    fn __len__(&self) -> usize {
        self.counts.len()
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyPretokenCounter>()
}

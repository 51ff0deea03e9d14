//! The byte-level tables of `zhllama_core::bytelevel::tables`, for Python and the tests (one
//! home: nothing on the Python side keeps its own copy).

use pyo3::prelude::*;
use pyo3::types::PyDict;
use zhllama_core::bytelevel::tables;

/// `{"patterns": {name: regex}, "llama3_specials": [256 names in id order],
/// "llama3_base_tokens": 128000, "byte_alphabet": str}`: the pre-tokenizer patterns with a
/// hand-written splitter, LLaMA-3's special tokens (ids from ``llama3_base_tokens`` on), and
/// GPT-2's byte alphabet (character ``i`` stands for byte ``i``).
#[pyfunction]
fn bytelevel_tables(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let d = PyDict::new(py);
    let patterns = PyDict::new(py);
    for (name, p) in tables::PATTERNS {
        patterns.set_item(name, p)?;
    }
    d.set_item("patterns", patterns)?;
    d.set_item("llama3_specials", tables::llama3_special_tokens())?;
    d.set_item("llama3_base_tokens", tables::LLAMA3_BASE_TOKENS)?;
    d.set_item(
        "byte_alphabet",
        tables::byte_to_char().iter().collect::<String>(),
    )?;
    Ok(d)
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(bytelevel_tables, m)?)
}

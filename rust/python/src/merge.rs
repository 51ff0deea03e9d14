//! Vocabulary merge binding.

use crate::error::{detach, IntoPyErr, MergeError};
use crate::model::PyModel;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use zhllama_core::merge::{merge, MergeMode};

impl IntoPyErr for zhllama_core::merge::MergeError {
    fn into_pyerr(self) -> PyErr {
        MergeError::new_err(self.to_string())
    }
}

/// Merge `add` into the BPE model `base`; returns `(merged_model, report_json)`.
#[pyfunction]
#[pyo3(signature = (base, add, mode = "default"))]
fn merge_vocab(
    py: Python<'_>,
    base: &PyModel,
    add: &PyModel,
    mode: &str,
) -> PyResult<(PyModel, String)> {
    let mode = match mode {
        "default" => MergeMode::Default,
        "reference" => MergeMode::Reference,
        other => {
            return Err(PyValueError::new_err(format!(
                "unknown merge mode {other:?}; use 'default' or 'reference'"
            )))
        }
    };
    let (b, a) = (&base.inner, &add.inner);
    let (out, report) = detach(py, move || merge(b, a, mode))?;
    let json = zhllama_core::merge::report_json(&report);
    Ok((PyModel { inner: out }, json))
}

/// Indices of NORMAL pieces no chain of BPE merges can reach.
#[pyfunction]
fn unreachable_pieces(py: Python<'_>, model: &PyModel) -> PyResult<Vec<usize>> {
    let m = &model.inner;
    detach(py, move || {
        Ok::<_, PyErr>(zhllama_core::merge::unreachable_pieces(m))
    })
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(merge_vocab, m)?)?;
    m.add_function(wrap_pyfunction!(unreachable_pieces, m)?)?;
    Ok(())
}

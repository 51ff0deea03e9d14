//! `OutputLock`: the core's one-writer-per-directory lock (`corpus::lock`), for the Python
//! verbs that write a directory themselves (`pretrain`, `sft`). `tokenize-corpus` takes the
//! same lock inside its job, so a training run and a corpus run exclude each other too.

use crate::error::detach;
use pyo3::prelude::*;
use std::path::PathBuf;
use zhllama_core::corpus::lock::OutputLock;
use zhllama_core::corpus::CorpusError;

#[pyclass(name = "OutputLock", module = "zhllama._native")]
pub struct PyOutputLock {
    held: Option<OutputLock>,
}

#[pymethods]
impl PyOutputLock {
    /// Create `directory` if missing and lock it, or raise `CorpusError` naming the holder.
    #[new]
    #[pyo3(signature = (directory, flag = "--output-dir".to_string()))]
    fn new(py: Python<'_>, directory: PathBuf, flag: String) -> PyResult<Self> {
        let held = detach(py, || {
            std::fs::create_dir_all(&directory).map_err(|e| CorpusError::io(&directory, e))?;
            OutputLock::acquire_for(&directory, &flag)
        })?;
        Ok(PyOutputLock { held: Some(held) })
    }

    /// Remove the lock file and release the lock (idempotent).
    fn release(&mut self) {
        self.held = None;
    }

    /// Whether this object still holds the lock.
    #[getter]
    fn held(&self) -> bool {
        self.held.is_some()
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    /// Release; returns `False`, so an exception raised in the block propagates.
    #[pyo3(signature = (*_exc))]
    fn __exit__(&mut self, _exc: &Bound<'_, pyo3::types::PyTuple>) -> bool {
        self.release();
        false
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyOutputLock>()?;
    m.add("LOCK_FILE", zhllama_core::corpus::lock::LOCK)?;
    Ok(())
}

//! Exception classes and the one helper that releases the GIL, catches panics and converts
//! errors, so no binding function repeats that dance.

use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyFileNotFoundError};
use pyo3::prelude::*;
use std::panic::{catch_unwind, AssertUnwindSafe};

create_exception!(
    _native,
    ZhllamaError,
    PyException,
    "Base class of zhllama's native errors."
);
create_exception!(
    _native,
    ModelError,
    ZhllamaError,
    "A SentencePiece model file is unreadable or invalid."
);
create_exception!(
    _native,
    MergeError,
    ZhllamaError,
    "Vocabulary merge refused its inputs."
);
create_exception!(
    _native,
    CorpusError,
    ZhllamaError,
    "Corpus input or output failed (names the file and line)."
);
create_exception!(
    _native,
    InternalError,
    ZhllamaError,
    "A bug in zhllama's native code (a caught Rust panic). Please report it."
);

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("ZhllamaError", py.get_type::<ZhllamaError>())?;
    m.add("ModelError", py.get_type::<ModelError>())?;
    m.add("MergeError", py.get_type::<MergeError>())?;
    m.add("CorpusError", py.get_type::<CorpusError>())?;
    m.add("InternalError", py.get_type::<InternalError>())?;
    Ok(())
}

/// Conversion of core errors to Python exceptions.
pub trait IntoPyErr {
    fn into_pyerr(self) -> PyErr;
}

impl IntoPyErr for zhllama_core::model::ModelError {
    fn into_pyerr(self) -> PyErr {
        match &self {
            zhllama_core::model::ModelError::Io { source, .. }
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                PyFileNotFoundError::new_err(self.to_string())
            }
            _ => ModelError::new_err(self.to_string()),
        }
    }
}

impl IntoPyErr for PyErr {
    fn into_pyerr(self) -> PyErr {
        self
    }
}

/// Run `f` without the GIL; a panic becomes `InternalError` instead of unwinding into Python.
pub fn detach<T, E, F>(py: Python<'_>, f: F) -> PyResult<T>
where
    F: FnOnce() -> Result<T, E> + Send,
    T: Send,
    E: IntoPyErr + Send,
{
    let r = py.detach(|| catch_unwind(AssertUnwindSafe(f)));
    match r {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.into_pyerr()),
        Err(panic) => Err(InternalError::new_err(panic_message(panic))),
    }
}

/// Same as [`detach`] for infallible work.
#[allow(dead_code)]
pub fn detach_ok<T: Send, F: FnOnce() -> T + Send>(py: Python<'_>, f: F) -> PyResult<T> {
    detach(py, || Ok::<T, PyErr>(f()))
}

pub fn panic_message(panic: Box<dyn std::any::Any + Send>) -> String {
    let msg = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    format!("internal error in zhllama's native code: {msg} (please report this with the input that caused it)")
}

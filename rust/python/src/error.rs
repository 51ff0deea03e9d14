//! Exception classes and the one helper that releases the GIL, catches panics and converts
//! errors, so no binding function repeats that dance.
//!
//! Every class derives from `ZhllamaError` *and* the builtin a caller would catch without
//! knowing zhllama: `ModelError`, `MergeError` and `CorpusError` are `ValueError`s (bad input),
//! `InternalError` is a `RuntimeError` (a caught panic). `create_exception!` takes one base, so
//! these classes are made at first use by `type(name, (ZhllamaError, builtin), ns)`, and
//! `PyTypeInfo` is implemented by hand to hand that class to PyO3 (`PyErr::new`, `isinstance`).

use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple, PyType};
use pyo3::{PyErrArguments, PyTypeInfo};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Mutex, Once};

create_exception!(
    zhllama._native,
    ZhllamaError,
    PyException,
    "Base class of zhllama's native errors."
);

/// `type(name, (ZhllamaError, builtin), {...})`, placed in `zhllama._native`.
fn make_class<'py>(
    py: Python<'py>,
    name: &str,
    builtin: Bound<'py, PyType>,
    doc: &str,
) -> PyResult<Py<PyType>> {
    let bases = PyTuple::new(py, [py.get_type::<ZhllamaError>(), builtin])?;
    let ns = PyDict::new(py);
    ns.set_item("__doc__", doc)?;
    ns.set_item("__module__", "zhllama._native")?;
    let class = py.get_type::<PyType>().call1((name, bases, ns))?;
    Ok(class.cast_into::<PyType>()?.unbind())
}

/// A zhllama exception class with a second, builtin base; `Name::new_err(msg)` as with
/// `create_exception!`.
macro_rules! native_exception {
    ($name:ident, $builtin:ty, $doc:literal) => {
        #[doc = $doc]
        pub struct $name;

        impl $name {
            pub fn new_err<A: PyErrArguments + Send + Sync + 'static>(args: A) -> PyErr {
                PyErr::new::<$name, A>(args)
            }
        }

        // SAFETY: the pointer is a type object created once and owned by a static cell for
        // the life of the process, so it is valid whenever PyO3 reads it.
        unsafe impl PyTypeInfo for $name {
            fn type_object_raw(py: Python<'_>) -> *mut pyo3::ffi::PyTypeObject {
                static CLASS: PyOnceLock<Py<PyType>> = PyOnceLock::new();
                CLASS
                    .get_or_init(py, || {
                        make_class(py, stringify!($name), py.get_type::<$builtin>(), $doc)
                            .expect("cannot create zhllama's exception classes")
                    })
                    .as_ptr()
                    .cast()
            }
        }
    };
}

native_exception!(
    ModelError,
    PyValueError,
    "A SentencePiece model file is unreadable or invalid (also a ValueError)."
);
native_exception!(
    MergeError,
    PyValueError,
    "Vocabulary merge refused its inputs (also a ValueError)."
);
native_exception!(
    CorpusError,
    PyValueError,
    "Corpus input or output failed; names the file and line (also a ValueError)."
);
native_exception!(
    InternalError,
    PyRuntimeError,
    "A bug in zhllama's native code (a caught Rust panic; also a RuntimeError). Please report it."
);

/// Where the last panic happened (`file:line`), for the `InternalError` message. Panics are
/// all caught and raised as `InternalError`, so the hook prints nothing itself (the error is
/// the report), unless RUST_BACKTRACE asks for Rust's own report.
static LAST_PANIC_AT: Mutex<Option<String>> = Mutex::new(None);

fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let rust_report = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if let Some(at) = info.location() {
                *LAST_PANIC_AT.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some(format!("{}:{}", at.file(), at.line()));
            }
            if std::env::var_os("RUST_BACKTRACE").is_some() {
                rust_report(info);
            }
        }));
    });
}

/// `_native._panic(message)`: panic on purpose, so that tests can check that a panic reaches
/// Python as `InternalError` (no known input makes the encoder panic).
#[pyfunction]
fn _panic(py: Python<'_>, message: String) -> PyResult<()> {
    detach(py, move || -> PyResult<()> { panic!("{message}") })
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    install_panic_hook();
    m.add_function(wrap_pyfunction!(_panic, m)?)?;
    m.add("ZhllamaError", py.get_type::<ZhllamaError>())?;
    m.add("ModelError", ModelError::type_object(py))?;
    m.add("MergeError", MergeError::type_object(py))?;
    m.add("CorpusError", CorpusError::type_object(py))?;
    m.add("InternalError", InternalError::type_object(py))?;
    Ok(())
}

/// Conversion of core errors to Python exceptions.
pub trait IntoPyErr {
    fn into_pyerr(self) -> PyErr;
}

impl IntoPyErr for zhllama_core::model::ModelError {
    fn into_pyerr(self) -> PyErr {
        use pyo3::exceptions::PyFileNotFoundError;
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
        Err(panic) => Err(internal_error(panic)),
    }
}

/// The `InternalError` of a caught panic.
pub fn internal_error(panic: Box<dyn std::any::Any + Send>) -> PyErr {
    InternalError::new_err(panic_message(panic))
}

pub fn panic_message(panic: Box<dyn std::any::Any + Send>) -> String {
    let msg = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    let at = LAST_PANIC_AT
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
        .map(|at| format!(" at {at}"))
        .unwrap_or_default();
    format!("internal error in zhllama's native code: {msg}{at} (please report this with the input that caused it)")
}

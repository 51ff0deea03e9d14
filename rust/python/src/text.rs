//! Borrowing a Python str's UTF-8 without copying it, as sentencepiece's own wrapper does
//! (`PyInputString` in sentencepiece.i calls `PyUnicode_AsUTF8AndSize`).
//!
//! PyO3's abi3-py39 build would copy every str into a new bytes object (the limited API gained
//! `PyUnicode_AsUTF8AndSize` only in 3.10). The function itself has been exported by every
//! CPython 3 since 3.3, so it is declared here: it returns the str's UTF-8, computed once and
//! cached inside the str object, valid for as long as the str lives.

use pyo3::exceptions::PyTypeError;
use pyo3::ffi;
use pyo3::prelude::*;
use std::os::raw::c_char;

extern "C" {
    fn PyUnicode_AsUTF8AndSize(
        unicode: *mut ffi::PyObject,
        size: *mut ffi::Py_ssize_t,
    ) -> *const c_char;
}

/// The UTF-8 of `obj` (a str), borrowed for as long as `obj` is.
pub fn borrow_str<'a>(obj: &'a Bound<'_, PyAny>) -> PyResult<&'a str> {
    // SAFETY: PyUnicode_Check guards the call; a non-null result points to `size` bytes of
    // UTF-8 owned by the str object, which is immutable and kept alive by `obj` for 'a.
    unsafe {
        if ffi::PyUnicode_Check(obj.as_ptr()) == 0 {
            return Err(PyTypeError::new_err(format!(
                "expected str, got {}",
                obj.get_type().name()?
            )));
        }
        let mut size: ffi::Py_ssize_t = 0;
        let p = PyUnicode_AsUTF8AndSize(obj.as_ptr(), &mut size);
        if p.is_null() {
            // e.g. a lone surrogate: UnicodeEncodeError, as sentencepiece raises.
            return Err(PyErr::fetch(obj.py()));
        }
        let bytes = std::slice::from_raw_parts(p as *const u8, size as usize);
        Ok(std::str::from_utf8_unchecked(bytes))
    }
}

/// The items of a sequence of str, kept alive by the caller while their UTF-8 is borrowed.
pub fn str_items<'py>(texts: &Bound<'py, PyAny>) -> PyResult<Vec<Bound<'py, PyAny>>> {
    // SAFETY: a plain type check on a live object.
    if unsafe { ffi::PyUnicode_Check(texts.as_ptr()) } != 0 {
        return Err(PyTypeError::new_err(
            "expected a sequence of str, got one str (use encode for a single text)",
        ));
    }
    texts.try_iter()?.collect()
}

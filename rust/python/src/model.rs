//! SentencePiece model I/O: parse, validate, inspect, re-serialize.

use crate::error::detach;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{IntoPyDict, PyBytes, PyTuple};
use zhllama_core::model::{ModelProto, PieceType};

/// `_native.PieceType`, an `enum.IntEnum` made from the core's `PieceType`, and its members
/// in `PieceType::ALL` order (so that answering one costs an incref, not an enum lookup).
struct PieceTypes {
    class: Py<PyAny>,
    members: Vec<Py<PyAny>>,
}

static PIECE_TYPES: PyOnceLock<PieceTypes> = PyOnceLock::new();

fn piece_types(py: Python<'_>) -> PyResult<&PieceTypes> {
    PIECE_TYPES.get_or_try_init(py, || {
        let names = PieceType::ALL.map(|k| (k.name(), k as i32));
        let kwargs = [("module", "zhllama._native")].into_py_dict(py)?;
        let class = py
            .import("enum")?
            .getattr("IntEnum")?
            .call(("PieceType", names.to_vec()), Some(&kwargs))?;
        class.setattr(
            "__doc__",
            "sentencepiece's ModelProto.SentencePiece.Type (an int: 1 is NORMAL).",
        )?;
        let members = PieceType::ALL
            .iter()
            .map(|&k| Ok(class.call1((k as i32,))?.unbind()))
            .collect::<PyResult<Vec<_>>>()?;
        Ok(PieceTypes {
            class: class.unbind(),
            members,
        })
    })
}

/// The `PieceType` member of `kind`.
pub fn piece_type(py: Python<'_>, kind: PieceType) -> PyResult<Bound<'_, PyAny>> {
    let i = PieceType::ALL.iter().position(|&k| k == kind).unwrap_or(0);
    Ok(piece_types(py)?.members[i].bind(py).clone())
}

/// A parsed SentencePiece `ModelProto`.
#[pyclass(name = "SentencePieceModel", module = "zhllama._native", frozen)]
pub struct PyModel {
    pub inner: ModelProto,
}

#[pymethods]
impl PyModel {
    /// Parse and validate a model from its serialized bytes.
    #[staticmethod]
    fn from_bytes(py: Python<'_>, data: Vec<u8>) -> PyResult<Self> {
        let inner = detach(py, move || ModelProto::from_bytes(&data))?;
        Ok(PyModel { inner })
    }

    /// Read, parse and validate a `.model` file.
    #[staticmethod]
    fn from_file(py: Python<'_>, path: std::path::PathBuf) -> PyResult<Self> {
        let inner = detach(py, move || ModelProto::from_file(&path))?;
        Ok(PyModel { inner })
    }

    /// Serialize; an unmodified model gives back the bytes it was read from.
    fn to_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.inner.to_bytes())
    }

    fn __len__(&self) -> usize {
        self.inner.pieces.len()
    }

    /// `(piece, score, type)` of every piece; type is a `PieceType`.
    fn pieces<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyTuple>>> {
        self.inner
            .pieces
            .iter()
            .map(|p| {
                let kind = piece_type(py, p.kind())?;
                (p.piece.as_str(), p.score(), kind).into_pyobject(py)
            })
            .collect()
    }

    #[getter]
    fn model_type(&self) -> &'static str {
        match self.inner.trainer_spec().model_type {
            zhllama_core::model::ModelType::Bpe => "bpe",
            zhllama_core::model::ModelType::Unigram => "unigram",
            zhllama_core::model::ModelType::Word => "word",
            zhllama_core::model::ModelType::Char => "char",
        }
    }

    #[getter]
    fn byte_fallback(&self) -> bool {
        self.inner.trainer_spec().byte_fallback
    }

    #[getter]
    fn normalizer_name(&self) -> String {
        self.inner.normalizer_spec().name
    }

    fn __repr__(&self) -> String {
        format!(
            "SentencePieceModel(type={}, pieces={}, normalizer={:?})",
            self.model_type(),
            self.inner.pieces.len(),
            self.normalizer_name()
        )
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("PieceType", piece_types(m.py())?.class.bind(m.py()))?;
    m.add_class::<PyModel>()
}

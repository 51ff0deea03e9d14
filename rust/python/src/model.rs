//! SentencePiece model I/O: parse, validate, inspect, re-serialize.

use crate::error::detach;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use zhllama_core::model::ModelProto;

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

    /// `(piece, score, type)` of every piece; type is sentencepiece's enum value (1 = NORMAL).
    fn pieces(&self) -> Vec<(String, f32, i32)> {
        self.inner
            .pieces
            .iter()
            .map(|p| (p.piece.clone(), p.score(), p.kind() as i32))
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
    m.add_class::<PyModel>()
}

//! Bindings for the tokenizer domain: `zhllama._native.Tokenizer`. Batches run on the
//! fork-aware pools of `batch.rs`.

use crate::batch::{encode_blocks, resolve_threads, Block};
use crate::error::{detach, internal_error, IntoPyErr, ModelError};
use crate::gc_pacer::GcPacer;
use crate::model::piece_type;
use crate::text::{borrow_str, str_items};
use numpy::{IntoPyArray, PyArray1};
use pyo3::exceptions::{PyIndexError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};
use std::panic::{catch_unwind, AssertUnwindSafe};
use zhllama_core::encoder::EncoderError;
use zhllama_core::Tokenizer;

impl IntoPyErr for EncoderError {
    fn into_pyerr(self) -> PyErr {
        match self {
            EncoderError::Model(e) => e.into_pyerr(),
            EncoderError::IdOutOfRange { .. } => PyIndexError::new_err(self.to_string()),
            other => ModelError::new_err(other.to_string()),
        }
    }
}

/// Texts shorter than this encode without releasing the GIL: the release costs more than
/// the work.
const DETACH_MIN_BYTES: usize = 4096;

thread_local! {
    /// The id buffer `encode` reuses for short texts.
    static ENCODE_IDS: std::cell::RefCell<Vec<u32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// `(ids, offsets)` of `encode_batch_flat`.
type FlatIds<'py> = (Bound<'py, PyArray1<u32>>, Bound<'py, PyArray1<i64>>);

/// sentencepiece's "piece id is out of range", for every method that takes an id.
fn id_out_of_range(id: i64, vocab_size: usize) -> PyErr {
    PyIndexError::new_err(format!(
        "piece id {id} is out of range: the model has {vocab_size} pieces (ids 0..{vocab_size})"
    ))
}

/// A SentencePiece model that encodes exactly as sentencepiece does. `zhllama.Tokenizer`
/// subclasses it, so its `encode` is this method with no Python frame in between.
#[pyclass(name = "Tokenizer", module = "zhllama._native", frozen, subclass)]
pub struct PyTokenizer {
    inner: Tokenizer,
    /// One Python int per piece id, made once: building a result list then costs an incref
    /// per token instead of an int allocation (the largest per-token cost left in `encode`).
    ints: Vec<Py<PyAny>>,
}

impl PyTokenizer {
    fn build(py: Python<'_>, inner: Tokenizer) -> PyResult<Self> {
        let ints = (0..inner.vocab_size() as u32)
            .map(|i| Ok(i.into_pyobject(py)?.into_any().unbind()))
            .collect::<PyResult<Vec<_>>>()?;
        Ok(PyTokenizer { inner, ints })
    }

    fn list<'py>(&self, py: Python<'py>, ids: &[u32]) -> PyResult<Bound<'py, PyList>> {
        // SAFETY: PyList_New returns a new list of `len` NULL slots (or NULL with an error
        // set, turned into Err by from_owned_ptr_or_err); each slot is filled exactly once
        // with a new reference (PyList_SetItem steals it) to a cached int. Ids come from the
        // encoder and are < vocab_size == ints.len(); indexing checks it anyway.
        unsafe {
            let list = pyo3::ffi::PyList_New(ids.len() as pyo3::ffi::Py_ssize_t);
            let list = Bound::from_owned_ptr_or_err(py, list)?;
            for (i, &id) in ids.iter().enumerate() {
                let obj = self.ints[id as usize].clone_ref(py).into_ptr();
                pyo3::ffi::PyList_SetItem(list.as_ptr(), i as pyo3::ffi::Py_ssize_t, obj);
            }
            Ok(list.cast_into_unchecked())
        }
    }

    fn check_specials(&self, add_bos: bool, add_eos: bool) -> PyResult<()> {
        // sentencepiece 0.2.x refuses add_bos/add_eos on a model without that control piece.
        if add_bos && self.inner.bos_id().is_none() {
            return Err(PyValueError::new_err(
                "add_bos=True but BOS token is not defined as a control symbol in this model.",
            ));
        }
        if add_eos && self.inner.eos_id().is_none() {
            return Err(PyValueError::new_err(
                "add_eos=True but EOS token is not defined as a control symbol in this model.",
            ));
        }
        Ok(())
    }

    /// The batch methods' common part: check the arguments, borrow every text's UTF-8 and hand
    /// `take` each encoded block in input order.
    fn encode_batch_blocks(
        &self,
        py: Python<'_>,
        texts: &Bound<'_, PyAny>,
        add_bos: bool,
        add_eos: bool,
        num_threads: Option<i64>,
        take: &mut dyn FnMut(Block) -> PyResult<()>,
    ) -> PyResult<()> {
        let threads = resolve_threads(num_threads)?;
        self.check_specials(add_bos, add_eos)?;
        let items = str_items(texts)?;
        let texts = items
            .iter()
            .map(borrow_str)
            .collect::<PyResult<Vec<&str>>>()?;
        encode_blocks(py, &self.inner, &texts, add_bos, add_eos, threads, take)
    }
}

#[pymethods]
impl PyTokenizer {
    /// `Tokenizer(model_bytes, source=None)`: errors name `source` (the file the bytes came
    /// from); other arguments are left to subclasses' `__init__`.
    #[new]
    #[pyo3(signature = (model_bytes, *_args, source = None, **_kwargs))]
    fn new(
        py: Python<'_>,
        model_bytes: Vec<u8>,
        _args: &Bound<'_, PyTuple>,
        source: Option<std::path::PathBuf>,
        _kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        let inner = detach(py, move || {
            Tokenizer::from_bytes(&model_bytes).map_err(|e| match &source {
                Some(p) => e.in_file(p),
                None => e,
            })
        })?;
        Self::build(py, inner)
    }

    #[staticmethod]
    fn from_bytes(py: Python<'_>, data: Vec<u8>) -> PyResult<Self> {
        let inner = detach(py, move || Tokenizer::from_bytes(&data))?;
        Self::build(py, inner)
    }

    #[staticmethod]
    fn from_file(py: Python<'_>, path: std::path::PathBuf) -> PyResult<Self> {
        let inner = detach(py, move || Tokenizer::from_file(&path))?;
        Self::build(py, inner)
    }

    #[pyo3(signature = (text, add_bos = false, add_eos = false))]
    fn encode<'py>(
        &self,
        py: Python<'py>,
        text: &Bound<'py, PyAny>,
        add_bos: bool,
        add_eos: bool,
    ) -> PyResult<Bound<'py, PyList>> {
        self.check_specials(add_bos, add_eos)?;
        let text = borrow_str(text)?;
        let tok = &self.inner;
        if text.len() >= DETACH_MIN_BYTES {
            let ids = detach(py, || Ok::<_, PyErr>(tok.encode(text, add_bos, add_eos)))?;
            return self.list(py, &ids);
        }
        // Short texts (most calls) reuse this thread's id buffer: no allocation per call.
        // Taken out of the cell while in use, so a nested call (from a GC callback run by
        // the list allocation) simply finds an empty buffer.
        let mut ids = ENCODE_IDS.with(|b| std::mem::take(&mut *b.borrow_mut()));
        ids.clear();
        catch_unwind(AssertUnwindSafe(|| {
            tok.encode_str_into(text, add_bos, add_eos, &mut ids)
        }))
        .map_err(internal_error)?;
        let list = self.list(py, &ids);
        if ids.capacity() <= 1 << 16 {
            ENCODE_IDS.with(|b| *b.borrow_mut() = ids);
        }
        list
    }

    /// Raw bytes, possibly invalid UTF-8 (each malformed byte normalizes to U+FFFD).
    #[pyo3(signature = (data, add_bos = false, add_eos = false))]
    fn encode_bytes<'py>(
        &self,
        py: Python<'py>,
        data: Vec<u8>,
        add_bos: bool,
        add_eos: bool,
    ) -> PyResult<Bound<'py, PyList>> {
        self.check_specials(add_bos, add_eos)?;
        let tok = &self.inner;
        let ids = detach(py, || {
            let mut out = Vec::new();
            tok.encode_bytes_into(&data, add_bos, add_eos, &mut out);
            Ok::<_, PyErr>(out)
        })?;
        self.list(py, &ids)
    }

    #[pyo3(signature = (texts, add_bos = false, add_eos = false, num_threads = None))]
    fn encode_batch<'py>(
        &self,
        py: Python<'py>,
        texts: &Bound<'py, PyAny>,
        add_bos: bool,
        add_eos: bool,
        num_threads: Option<i64>,
    ) -> PyResult<Bound<'py, PyList>> {
        let mut gc = GcPacer::start(py)?;
        let mut lists = Vec::new();
        self.encode_batch_blocks(py, texts, add_bos, add_eos, num_threads, &mut |(
            ids,
            lens,
        )| {
            let mut at = 0usize;
            for l in lens {
                gc.tick()?;
                lists.push(self.list(py, &ids[at..at + l as usize])?);
                at += l as usize;
            }
            Ok(())
        })?;
        drop(gc);
        PyList::new(py, lists)
    }

    /// `(ids, offsets)`: uint32 ids of all texts back to back and int64 offsets
    /// (`len(texts) + 1`), text `i` being `ids[offsets[i]:offsets[i + 1]]`.
    #[pyo3(signature = (texts, add_bos = false, add_eos = false, num_threads = None))]
    fn encode_batch_flat<'py>(
        &self,
        py: Python<'py>,
        texts: &Bound<'py, PyAny>,
        add_bos: bool,
        add_eos: bool,
        num_threads: Option<i64>,
    ) -> PyResult<FlatIds<'py>> {
        let mut ids = Vec::new();
        let mut offsets = vec![0i64];
        self.encode_batch_blocks(py, texts, add_bos, add_eos, num_threads, &mut |(
            block,
            lens,
        )| {
            ids.extend_from_slice(&block);
            for l in lens {
                offsets.push(offsets.last().copied().unwrap_or(0) + i64::from(l));
            }
            Ok(())
        })?;
        Ok((ids.into_pyarray(py), offsets.into_pyarray(py)))
    }

    /// Decode; ids outside the vocabulary raise IndexError as in sentencepiece.
    fn decode(&self, py: Python<'_>, ids: Vec<i64>) -> PyResult<String> {
        let n = self.inner.vocab_size();
        if let Some(&bad) = ids.iter().find(|&&i| i < 0 || i as usize >= n) {
            return Err(id_out_of_range(bad, n));
        }
        let ids: Vec<u32> = ids.into_iter().map(|i| i as u32).collect();
        let tok = &self.inner;
        detach(py, || tok.try_decode(&ids))
    }

    #[getter]
    fn vocab_size(&self) -> usize {
        self.inner.vocab_size()
    }

    fn id_to_piece(&self, id: i64) -> PyResult<String> {
        u32::try_from(id)
            .ok()
            .and_then(|i| self.inner.id_to_piece(i))
            .map(str::to_owned)
            .ok_or_else(|| id_out_of_range(id, self.inner.vocab_size()))
    }

    /// The id of exactly this piece, or None (sentencepiece would answer unk_id).
    fn piece_to_id(&self, piece: &str) -> Option<u32> {
        self.inner.piece_to_id(piece)
    }

    #[getter]
    fn bos_id(&self) -> Option<u32> {
        self.inner.bos_id()
    }
    #[getter]
    fn eos_id(&self) -> Option<u32> {
        self.inner.eos_id()
    }
    #[getter]
    fn pad_id(&self) -> Option<u32> {
        self.inner.pad_id()
    }
    /// `SentencePieceProcessor.unk_id()`, None where it reports -1.
    #[getter]
    fn unk_id(&self) -> Option<u32> {
        self.inner.unk_id()
    }
    /// The model's UNKNOWN piece id (what unknown text encodes to without byte fallback); None
    /// for a byte-fallback model that has no UNKNOWN piece.
    #[getter]
    fn model_unk_id(&self) -> Option<u32> {
        self.inner.model_unk_id()
    }

    /// sentencepiece's piece type of `id`, a `PieceType`; IndexError when out of range.
    fn piece_type<'py>(&self, py: Python<'py>, id: i64) -> PyResult<Bound<'py, PyAny>> {
        let kind = u32::try_from(id)
            .ok()
            .and_then(|i| self.inner.piece_kind(i))
            .ok_or_else(|| id_out_of_range(id, self.inner.vocab_size()))?;
        piece_type(py, kind)
    }

    fn __len__(&self) -> usize {
        self.inner.vocab_size()
    }

    fn __repr__(&self) -> String {
        format!("Tokenizer(vocab_size={})", self.inner.vocab_size())
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyTokenizer>()
}

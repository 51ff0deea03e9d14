//! Bindings for the tokenizer domain: `zhllama._native.Tokenizer`. Batches run on the
//! fork-aware pools of `batch.rs`.

use crate::batch::{encode_blocks, resolve_threads, Block, MAX_BLOCK};
use crate::error::{detach, internal_error, IntoPyErr, ModelError};
use crate::gc_pacer::GcPacer;
use crate::model::piece_type;
use crate::text::{borrow_str, str_items};
use numpy::{IntoPyArray, PyArray1};
use pyo3::exceptions::{PyIndexError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};
use std::panic::{catch_unwind, AssertUnwindSafe};
use zhllama_core::any::LoadError;
use zhllama_core::bytelevel::{byte_to_char, ByteLevelError, Format};
use zhllama_core::encoder::EncoderError;
use zhllama_core::model::PieceType;
use zhllama_core::AnyTokenizer;

impl IntoPyErr for EncoderError {
    fn into_pyerr(self) -> PyErr {
        match self {
            EncoderError::Model(e) => e.into_pyerr(),
            EncoderError::IdOutOfRange { .. } => PyIndexError::new_err(self.to_string()),
            other => ModelError::new_err(other.to_string()),
        }
    }
}

impl IntoPyErr for ByteLevelError {
    fn into_pyerr(self) -> PyErr {
        match &self {
            ByteLevelError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                pyo3::exceptions::PyFileNotFoundError::new_err(self.to_string())
            }
            ByteLevelError::IdOutOfRange { .. } => PyIndexError::new_err(self.to_string()),
            _ => ModelError::new_err(self.to_string()),
        }
    }
}

impl IntoPyErr for LoadError {
    fn into_pyerr(self) -> PyErr {
        match self {
            LoadError::SentencePiece(e) => e.into_pyerr(),
            LoadError::ByteLevel(e) => e.into_pyerr(),
            e @ LoadError::EmptyDir(_) => {
                pyo3::exceptions::PyFileNotFoundError::new_err(e.to_string())
            }
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

/// A SentencePiece model or a byte-level BPE tokenizer, encoding exactly as sentencepiece /
/// HF tokenizers / tiktoken do. `zhllama.Tokenizer` subclasses it, so its `encode` is this
/// method with no Python frame in between.
#[pyclass(name = "Tokenizer", module = "zhllama._native", frozen, subclass)]
pub struct PyTokenizer {
    inner: AnyTokenizer,
    /// One Python int per piece id, made once: building a result list then costs an incref
    /// per token instead of an int allocation (the largest per-token cost left in `encode`).
    ints: Vec<Py<PyAny>>,
}

impl PyTokenizer {
    fn build(py: Python<'_>, inner: AnyTokenizer) -> PyResult<Self> {
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
        // A byte-level tokenizer adds what its post-processor adds: no BOS is no error there
        // (Qwen2 and SmolLM2 put none).
        if self.inner.byte_level().is_some() {
            return Ok(());
        }
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
    #[allow(clippy::too_many_arguments)]
    fn encode_batch_blocks(
        &self,
        py: Python<'_>,
        texts: &Bound<'_, PyAny>,
        add_bos: bool,
        add_eos: bool,
        parse_special: bool,
        num_threads: Option<i64>,
        take: &mut dyn FnMut(Block) -> PyResult<()>,
    ) -> PyResult<()> {
        let threads = resolve_threads(num_threads)?;
        self.with_texts(texts, add_bos, add_eos, |texts| {
            encode_blocks(
                py,
                &self.inner,
                texts,
                (add_bos, add_eos, parse_special),
                threads,
                take,
            )
        })
    }

    /// Check the batch arguments and hand `f` every text's UTF-8, borrowed.
    fn with_texts<R>(
        &self,
        texts: &Bound<'_, PyAny>,
        add_bos: bool,
        add_eos: bool,
        f: impl FnOnce(&[&str]) -> PyResult<R>,
    ) -> PyResult<R> {
        self.check_specials(add_bos, add_eos)?;
        let items = str_items(texts)?;
        let texts = items
            .iter()
            .map(borrow_str)
            .collect::<PyResult<Vec<&str>>>()?;
        f(&texts)
    }
}

#[pymethods]
impl PyTokenizer {
    /// `Tokenizer(model_bytes, source=None, path=None)`: the bytes of a SentencePiece model, a
    /// tiktoken rank file or a `tokenizer.json` (told apart by content); with `path`, that
    /// file or directory is read instead (a `tokenizer.json` then also reads the
    /// `tokenizer_config.json` beside it). Errors name `source`/`path`; other arguments are
    /// left to subclasses' `__init__`.
    #[new]
    #[pyo3(signature = (model_bytes, *_args, source = None, path = None, **_kwargs))]
    fn new(
        py: Python<'_>,
        model_bytes: Vec<u8>,
        _args: &Bound<'_, PyTuple>,
        source: Option<std::path::PathBuf>,
        path: Option<std::path::PathBuf>,
        _kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        let inner = detach(py, move || {
            if let Some(p) = &path {
                return AnyTokenizer::from_path(p);
            }
            let name = source
                .as_ref()
                .map_or_else(|| "<bytes>".to_string(), |p| p.display().to_string());
            AnyTokenizer::from_bytes(&model_bytes, &name).map_err(|e| match (e, &source) {
                (LoadError::SentencePiece(e), Some(p)) => LoadError::SentencePiece(e.in_file(p)),
                (e, _) => e,
            })
        })?;
        Self::build(py, inner)
    }

    #[staticmethod]
    fn from_bytes(py: Python<'_>, data: Vec<u8>) -> PyResult<Self> {
        let inner = detach(py, move || AnyTokenizer::from_bytes(&data, "<bytes>"))?;
        Self::build(py, inner)
    }

    #[staticmethod]
    fn from_file(py: Python<'_>, path: std::path::PathBuf) -> PyResult<Self> {
        let inner = detach(py, move || AnyTokenizer::from_path(&path))?;
        Self::build(py, inner)
    }

    #[pyo3(signature = (text, add_bos = false, add_eos = false, parse_special = false))]
    fn encode<'py>(
        &self,
        py: Python<'py>,
        text: &Bound<'py, PyAny>,
        add_bos: bool,
        add_eos: bool,
        parse_special: bool,
    ) -> PyResult<Bound<'py, PyList>> {
        self.check_specials(add_bos, add_eos)?;
        let text = borrow_str(text)?;
        let tok = &self.inner;
        if text.len() >= DETACH_MIN_BYTES {
            let ids = detach(py, || {
                Ok::<_, PyErr>(tok.encode(text, add_bos, add_eos, parse_special))
            })?;
            return self.list(py, &ids);
        }
        // Short texts (most calls) reuse this thread's id buffer: no allocation per call.
        // Taken out of the cell while in use, so a nested call (from a GC callback run by
        // the list allocation) simply finds an empty buffer.
        let mut ids = ENCODE_IDS.with(|b| std::mem::take(&mut *b.borrow_mut()));
        ids.clear();
        catch_unwind(AssertUnwindSafe(|| {
            tok.encode_str_into(text, add_bos, add_eos, parse_special, &mut ids)
        }))
        .map_err(internal_error)?;
        let list = self.list(py, &ids);
        if ids.capacity() <= 1 << 16 {
            ENCODE_IDS.with(|b| *b.borrow_mut() = ids);
        }
        list
    }

    /// Raw bytes, possibly invalid UTF-8 (SentencePiece: each malformed byte normalizes to
    /// U+FFFD; byte-level: each maximal invalid sequence becomes one U+FFFD, as Python's
    /// `bytes.decode("utf-8", "replace")`).
    #[pyo3(signature = (data, add_bos = false, add_eos = false, parse_special = false))]
    fn encode_bytes<'py>(
        &self,
        py: Python<'py>,
        data: Vec<u8>,
        add_bos: bool,
        add_eos: bool,
        parse_special: bool,
    ) -> PyResult<Bound<'py, PyList>> {
        self.check_specials(add_bos, add_eos)?;
        let tok = &self.inner;
        let ids = detach(py, || {
            let mut out = Vec::new();
            tok.encode_bytes_into(&data, add_bos, add_eos, parse_special, &mut out);
            Ok::<_, PyErr>(out)
        })?;
        self.list(py, &ids)
    }

    #[pyo3(signature = (texts, add_bos = false, add_eos = false, num_threads = None, parse_special = false))]
    fn encode_batch<'py>(
        &self,
        py: Python<'py>,
        texts: &Bound<'py, PyAny>,
        add_bos: bool,
        add_eos: bool,
        num_threads: Option<i64>,
        parse_special: bool,
    ) -> PyResult<Bound<'py, PyList>> {
        let mut gc = GcPacer::start(py)?;
        let mut lists = Vec::new();
        self.encode_batch_blocks(
            py,
            texts,
            add_bos,
            add_eos,
            parse_special,
            num_threads,
            &mut |(ids, lens)| {
                let mut at = 0usize;
                for l in lens {
                    gc.tick()?;
                    lists.push(self.list(py, &ids[at..at + l as usize])?);
                    at += l as usize;
                }
                Ok(())
            },
        )?;
        drop(gc);
        PyList::new(py, lists)
    }

    /// `(ids, offsets)`: uint32 ids of all texts back to back and int64 offsets
    /// (`len(texts) + 1`), text `i` being `ids[offsets[i]:offsets[i + 1]]`.
    #[pyo3(signature = (texts, add_bos = false, add_eos = false, num_threads = None, parse_special = false))]
    fn encode_batch_flat<'py>(
        &self,
        py: Python<'py>,
        texts: &Bound<'py, PyAny>,
        add_bos: bool,
        add_eos: bool,
        num_threads: Option<i64>,
        parse_special: bool,
    ) -> PyResult<FlatIds<'py>> {
        if resolve_threads(num_threads)? == 1 {
            // One thread: every text straight into the one id array, on this thread (no
            // block arrays to copy, no pool thread to wake).
            let tok = &self.inner;
            return self.with_texts(texts, add_bos, add_eos, |texts| {
                let mut ids = Vec::new();
                let mut offsets = Vec::with_capacity(texts.len() + 1);
                offsets.push(0i64);
                for chunk in texts.chunks(MAX_BLOCK) {
                    py.check_signals()?;
                    detach(py, || {
                        for t in chunk {
                            tok.encode_str_into(t, add_bos, add_eos, parse_special, &mut ids);
                            offsets.push(ids.len() as i64);
                        }
                        Ok::<_, PyErr>(())
                    })?;
                }
                Ok((ids.into_pyarray(py), offsets.into_pyarray(py)))
            });
        }
        let mut ids = Vec::new();
        let mut offsets = vec![0i64];
        self.encode_batch_blocks(
            py,
            texts,
            add_bos,
            add_eos,
            parse_special,
            num_threads,
            &mut |(block, lens)| {
                ids.extend_from_slice(&block);
                for l in lens {
                    offsets.push(offsets.last().copied().unwrap_or(0) + i64::from(l));
                }
                Ok(())
            },
        )?;
        Ok((ids.into_pyarray(py), offsets.into_pyarray(py)))
    }

    /// Decode; ids outside the vocabulary raise IndexError as in sentencepiece.
    fn decode(&self, py: Python<'_>, ids: Vec<i64>) -> PyResult<String> {
        let ids = self.checked_ids(ids)?;
        match &self.inner {
            AnyTokenizer::SentencePiece(tok) => detach(py, || tok.try_decode(&ids)),
            AnyTokenizer::ByteLevel(tok) => detach(py, || tok.decode(&ids)),
        }
    }

    /// The exact bytes a byte-level tokenizer's ids spell (`decode` replaces invalid UTF-8).
    fn decode_bytes<'py>(
        &self,
        py: Python<'py>,
        ids: Vec<i64>,
    ) -> PyResult<Bound<'py, pyo3::types::PyBytes>> {
        let ids = self.checked_ids(ids)?;
        let b = match &self.inner {
            AnyTokenizer::SentencePiece(tok) => {
                detach(py, || tok.try_decode(&ids).map(String::into_bytes))?
            }
            AnyTokenizer::ByteLevel(tok) => detach(py, || tok.decode_bytes(&ids))?,
        };
        Ok(pyo3::types::PyBytes::new(py, &b))
    }

    #[getter]
    fn vocab_size(&self) -> usize {
        self.inner.vocab_size()
    }

    /// `"sentencepiece"`, `"tokenizer.json"` or `"tiktoken"`.
    #[getter]
    fn format(&self) -> &'static str {
        match &self.inner {
            AnyTokenizer::SentencePiece(_) => "sentencepiece",
            AnyTokenizer::ByteLevel(t) => match t.format() {
                Format::TokenizerJson => "tokenizer.json",
                Format::Tiktoken => "tiktoken",
            },
        }
    }

    #[getter]
    fn is_byte_level(&self) -> bool {
        self.inner.byte_level().is_some()
    }

    /// Byte-level: `(content, id, special)` of every added token (tiktoken: the specials).
    #[getter]
    fn special_tokens(&self) -> Vec<(String, u32, bool)> {
        self.inner.byte_level().map_or_else(Vec::new, |t| {
            t.added_tokens()
                .iter()
                .map(|a| (a.content.clone(), a.id, a.special))
                .collect()
        })
    }

    /// The piece (SentencePiece) or token (byte-level: HF's string over the GPT-2 byte
    /// alphabet, an added token's text) of `id`.
    fn id_to_piece(&self, id: i64) -> PyResult<String> {
        let n = self.inner.vocab_size();
        let i = u32::try_from(id)
            .ok()
            .filter(|&i| (i as usize) < n)
            .ok_or_else(|| id_out_of_range(id, n))?;
        Ok(match &self.inner {
            AnyTokenizer::SentencePiece(t) => t.id_to_piece(i).unwrap_or_default().to_owned(),
            AnyTokenizer::ByteLevel(t) => {
                let bytes = t.token_bytes(i).unwrap_or_default();
                if t.added_tokens().iter().any(|a| a.id == i) {
                    String::from_utf8_lossy(bytes).into_owned()
                } else {
                    let map = byte_to_char();
                    bytes.iter().map(|&b| map[b as usize]).collect()
                }
            }
        })
    }

    /// The id of exactly this piece / token string (byte-level: HF's string), or None.
    fn piece_to_id(&self, piece: &str) -> Option<u32> {
        match &self.inner {
            AnyTokenizer::SentencePiece(t) => t.piece_to_id(piece),
            AnyTokenizer::ByteLevel(t) => {
                if let Some(a) = t.added_tokens().iter().find(|a| a.content == piece) {
                    return Some(a.id);
                }
                let map = byte_to_char();
                let bytes: Option<Vec<u8>> = piece
                    .chars()
                    .map(|c| map.iter().position(|&m| m == c).map(|b| b as u8))
                    .collect();
                t.token_to_id(&bytes?)
            }
        }
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
    /// `SentencePieceProcessor.unk_id()`, None where it reports -1 (and for byte-level BPE,
    /// which has no unknown token).
    #[getter]
    fn unk_id(&self) -> Option<u32> {
        self.inner.sentencepiece().and_then(|t| t.unk_id())
    }
    /// The model's UNKNOWN piece id (what unknown text encodes to without byte fallback); None
    /// for a byte-fallback model that has no UNKNOWN piece, and for byte-level BPE.
    #[getter]
    fn model_unk_id(&self) -> Option<u32> {
        self.inner.sentencepiece().and_then(|t| t.model_unk_id())
    }

    /// sentencepiece's piece type of `id`, a `PieceType` (byte-level: CONTROL for a special
    /// token, USER_DEFINED for another added token, NORMAL otherwise); IndexError when out
    /// of range.
    fn piece_type<'py>(&self, py: Python<'py>, id: i64) -> PyResult<Bound<'py, PyAny>> {
        let n = self.inner.vocab_size();
        let i = u32::try_from(id)
            .ok()
            .filter(|&i| (i as usize) < n)
            .ok_or_else(|| id_out_of_range(id, n))?;
        let kind = match &self.inner {
            AnyTokenizer::SentencePiece(t) => t.piece_kind(i).unwrap_or(PieceType::Normal),
            AnyTokenizer::ByteLevel(t) => match t.added_tokens().iter().find(|a| a.id == i) {
                Some(a) if a.special => PieceType::Control,
                Some(_) => PieceType::UserDefined,
                None => PieceType::Normal,
            },
        };
        piece_type(py, kind)
    }

    fn __len__(&self) -> usize {
        self.inner.vocab_size()
    }

    fn __repr__(&self) -> String {
        format!("Tokenizer(vocab_size={})", self.inner.vocab_size())
    }
}

impl PyTokenizer {
    fn checked_ids(&self, ids: Vec<i64>) -> PyResult<Vec<u32>> {
        let n = self.inner.vocab_size();
        if let Some(&bad) = ids.iter().find(|&&i| i < 0 || i as usize >= n) {
            return Err(id_out_of_range(bad, n));
        }
        Ok(ids.into_iter().map(|i| i as u32).collect())
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyTokenizer>()
}

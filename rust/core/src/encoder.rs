//! The public encoder: normalizer + BPE/Unigram model + the post-processing of
//! `SentencePieceProcessor::Encode` (src/sentencepiece_processor.cc). Decoding lives in
//! [`crate::decoder`].

use crate::bpe::{BpeError, BpeModel};
use crate::model::{ModelError, ModelProto, ModelType, PieceType};
use crate::normalizer::{Normalizer, NormalizerError};
use crate::unigram::{UnigramError, UnigramModel};
use rayon::prelude::*;
use rustc_hash::FxHashMap;
use std::cell::RefCell;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum EncoderError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("cannot build the model's normalizer: {0}")]
    Normalizer(#[from] NormalizerError),
    #[error("cannot build the BPE model: {0}")]
    Bpe(#[from] BpeError),
    #[error("cannot build the Unigram model: {0}")]
    Unigram(#[from] UnigramError),
    #[error(
        "piece id {id} is out of range: the model has {vocab_size} pieces (ids 0..{vocab_size})"
    )]
    IdOutOfRange { id: u32, vocab_size: usize },
    /// Any other error of a model read from a file (or bytes of a named source).
    #[error("{path}: {source}")]
    InFile {
        path: String,
        source: Box<EncoderError>,
    },
}

impl EncoderError {
    /// This error, naming the file the model came from (once).
    pub fn in_file(self, path: &Path) -> EncoderError {
        match self {
            // I/O errors and errors already in a file name their path themselves.
            e @ (EncoderError::InFile { .. } | EncoderError::Model(ModelError::Io { .. })) => e,
            e => EncoderError::InFile {
                path: path.display().to_string(),
                source: Box::new(e),
            },
        }
    }
}

pub(crate) enum Segmenter {
    Bpe(Box<BpeModel>),
    Unigram(UnigramModel),
}

pub(crate) struct Inner {
    pub(crate) pieces: Vec<String>,
    pub(crate) kinds: Vec<PieceType>,
    piece_to_id: FxHashMap<String, u32>,
    segmenter: Segmenter,
    normalizer: Normalizer,
    /// `Some(add_dummy_prefix)` when normalization is only "prefix U+2581, spaces become
    /// U+2581" (identity charsmap, no user-defined symbols, escape_whitespaces on,
    /// remove_extra_whitespaces and treat_whitespace_as_suffix off: LLaMA's spec).
    plain_spaces: Option<bool>,
    /// The UNKNOWN piece; `None` only in a byte-fallback model (see `unk_segment_id`).
    unk_piece: Option<u32>,
    unk_reported: Option<u32>,
    bos_id: Option<u32>,
    eos_id: Option<u32>,
    pad_id: Option<u32>,
    byte_fallback: bool,
    byte_ids: [u32; 256],
    pub(crate) unk_surface: String,
    pub(crate) add_dummy_prefix: bool,
    pub(crate) remove_extra_whitespaces: bool,
    pub(crate) denormalizer: Option<Normalizer>,
}

/// A SentencePiece model that encodes and decodes exactly as `sentencepiece` does.
/// Cheap to clone (shared, immutable); `Send + Sync`.
#[derive(Clone)]
pub struct Tokenizer {
    pub(crate) inner: Arc<Inner>,
}

thread_local! {
    static NORMALIZED: RefCell<String> = const { RefCell::new(String::new()) };
    static SPANS: RefCell<Vec<(u32, Range<usize>)>> = const { RefCell::new(Vec::new()) };
}

impl Tokenizer {
    pub fn from_model(m: &ModelProto) -> Result<Self, EncoderError> {
        m.validate()?;
        let ts = m.trainer_spec();
        let ns = m.normalizer_spec();
        let pieces: Vec<String> = m.pieces.iter().map(|p| p.piece.clone()).collect();
        let kinds: Vec<PieceType> = m.pieces.iter().map(|p| p.kind()).collect();
        // A Unigram model may hold a reserved piece (CONTROL/UNKNOWN/BYTE) and an ordinary
        // one with the same text (validate); `PieceToId` answers the reserved one.
        let mut piece_to_id = FxHashMap::default();
        for (i, p) in pieces.iter().enumerate() {
            if kinds[i].is_reserved() {
                piece_to_id.insert(p.clone(), i as u32);
            } else {
                piece_to_id.entry(p.clone()).or_insert(i as u32);
            }
        }
        // Validated: exactly one UNKNOWN piece, or none with byte fallback.
        let unk_piece = kinds
            .iter()
            .position(|&k| k == PieceType::Unknown)
            .map(|i| i as u32);
        // `SentencePieceProcessor::{bos,eos,pad}_id`: PieceToId of the spec's piece name (an
        // empty name means the default), reported only when that piece is CONTROL; unk_id
        // when it is UNKNOWN (a missing name falls back to the model's unk, which is).
        let named = |name: &str, default: &str, want: PieceType| {
            let name = if name.is_empty() { default } else { name };
            match piece_to_id.get(name) {
                Some(&id) => (kinds[id as usize] == want).then_some(id),
                None => unk_piece.filter(|_| want == PieceType::Unknown),
            }
        };
        let bos_id = named(&ts.bos_piece, "<s>", PieceType::Control);
        let eos_id = named(&ts.eos_piece, "</s>", PieceType::Control);
        let pad_id = named(&ts.pad_piece, "<pad>", PieceType::Control);
        let unk_reported = named(&ts.unk_piece, "<unk>", PieceType::Unknown);
        // Read only with byte fallback, where validate requires all 256 BYTE pieces.
        let mut byte_ids = [0; 256];
        for (i, p) in pieces.iter().enumerate() {
            if kinds[i] == PieceType::Byte {
                if let Some(b) = crate::model::parse_byte_piece(p) {
                    byte_ids[b as usize] = i as u32;
                }
            }
        }
        let user_defined: Vec<String> = m
            .pieces
            .iter()
            .filter(|p| p.kind() == PieceType::UserDefined)
            .map(|p| p.piece.clone())
            .collect();
        let normalizer = Normalizer::new(&ns, ts.treat_whitespace_as_suffix, &user_defined)?;
        let denormalizer = match m.denormalizer_spec() {
            Some(d) if !d.precompiled_charsmap.is_empty() => Some(Normalizer::new(&d, false, &[])?),
            _ => None,
        };
        let plain_spaces = (normalizer.is_identity()
            && ns.escape_whitespaces
            && !ns.remove_extra_whitespaces
            && !ts.treat_whitespace_as_suffix)
            .then_some(ns.add_dummy_prefix);
        let segmenter = match ts.model_type {
            ModelType::Bpe => Segmenter::Bpe(Box::new(BpeModel::new(&m.pieces)?)),
            _ => Segmenter::Unigram(UnigramModel::new(&m.pieces, unk_piece, ts.byte_fallback)?),
        };
        let inner = Inner {
            pieces,
            kinds,
            piece_to_id,
            segmenter,
            normalizer,
            plain_spaces,
            unk_piece,
            unk_reported,
            bos_id,
            eos_id,
            pad_id,
            byte_fallback: ts.byte_fallback,
            byte_ids,
            unk_surface: ts.unk_surface.clone(),
            add_dummy_prefix: ns.add_dummy_prefix,
            remove_extra_whitespaces: ns.remove_extra_whitespaces,
            denormalizer,
        };
        Ok(Tokenizer {
            inner: Arc::new(inner),
        })
    }

    pub fn from_bytes(b: &[u8]) -> Result<Self, EncoderError> {
        Self::from_model(&ModelProto::from_bytes(b)?)
    }

    /// Errors name the file.
    pub fn from_file(p: impl AsRef<Path>) -> Result<Self, EncoderError> {
        let p = p.as_ref();
        let buf = std::fs::read(p).map_err(|e| ModelError::Io {
            path: p.display().to_string(),
            source: e,
        })?;
        Self::from_bytes(&buf).map_err(|e| e.in_file(p))
    }

    /// `sentencepiece.SentencePieceProcessor.encode(text, add_bos=.., add_eos=..)`.
    pub fn encode(&self, text: &str, add_bos: bool, add_eos: bool) -> Vec<u32> {
        let mut out = Vec::with_capacity(text.len() / 2 + 2);
        self.encode_str_into(text, add_bos, add_eos, &mut out);
        out
    }

    /// [`Tokenizer::encode`], appending to `out`.
    pub fn encode_str_into(&self, text: &str, add_bos: bool, add_eos: bool, out: &mut Vec<u32>) {
        self.encode_into(text.as_bytes(), Some(text), add_bos, add_eos, out)
    }

    /// Encode raw bytes (possibly invalid UTF-8: sentencepiece's normalizer turns each
    /// malformed byte into U+FFFD) and append the ids to `out`. A requested BOS/EOS the model
    /// lacks is left out (sentencepiece's Python wrapper would insert -1).
    pub fn encode_bytes_into(&self, text: &[u8], add_bos: bool, add_eos: bool, out: &mut Vec<u32>) {
        self.encode_into(text, std::str::from_utf8(text).ok(), add_bos, add_eos, out)
    }

    /// `valid`: `text` as `&str` when it is valid UTF-8 (already known for `&str` input).
    fn encode_into(
        &self,
        text: &[u8],
        valid: Option<&str>,
        add_bos: bool,
        add_eos: bool,
        out: &mut Vec<u32>,
    ) {
        let inner = &*self.inner;
        if add_bos {
            out.extend(inner.bos_id);
        }
        NORMALIZED.with(|buf| {
            let mut buf = buf.borrow_mut();
            buf.clear();
            inner.normalize(text, valid, &mut buf);
            inner.encode_normalized(&buf, out);
        });
        if add_eos {
            out.extend(inner.eos_id);
        }
    }

    /// Encode many texts in parallel on the current rayon pool; results in input order and
    /// identical to [`Tokenizer::encode`] whatever the number of threads.
    pub fn encode_batch<S: AsRef<str> + Sync>(
        &self,
        texts: &[S],
        add_bos: bool,
        add_eos: bool,
    ) -> Vec<Vec<u32>> {
        texts
            .par_iter()
            .map(|t| self.encode(t.as_ref(), add_bos, add_eos))
            .collect()
    }

    /// The ids of `texts` back to back, and each text's id count: the unit of work of the
    /// batch encoders (one allocation per block, not per text).
    pub fn encode_block<S: AsRef<str>>(
        &self,
        texts: &[S],
        add_bos: bool,
        add_eos: bool,
    ) -> (Vec<u32>, Vec<u32>) {
        let mut ids = Vec::new();
        let mut lens = Vec::with_capacity(texts.len());
        for t in texts {
            let before = ids.len();
            self.encode_str_into(t.as_ref(), add_bos, add_eos, &mut ids);
            lens.push((ids.len() - before) as u32);
        }
        (ids, lens)
    }

    /// [`Tokenizer::encode_batch`] into one flat id array plus `texts.len() + 1` offsets
    /// (text `i` is `ids[offsets[i]..offsets[i + 1]]`): no per-text allocation survives.
    pub fn encode_batch_flat<S: AsRef<str> + Sync>(
        &self,
        texts: &[S],
        add_bos: bool,
        add_eos: bool,
    ) -> (Vec<u32>, Vec<i64>) {
        const BLOCK: usize = 64;
        let blocks: Vec<(Vec<u32>, Vec<u32>)> = texts
            .par_chunks(BLOCK)
            .map(|chunk| self.encode_block(chunk, add_bos, add_eos))
            .collect();
        let total: usize = blocks.iter().map(|b| b.0.len()).sum();
        let mut ids = Vec::with_capacity(total);
        let mut offsets = Vec::with_capacity(texts.len() + 1);
        offsets.push(0i64);
        for (b, lens) in blocks {
            ids.extend_from_slice(&b);
            for l in lens {
                offsets.push(offsets.last().unwrap() + l as i64);
            }
        }
        (ids, offsets)
    }

    pub fn vocab_size(&self) -> usize {
        self.inner.pieces.len()
    }
    pub fn id_to_piece(&self, id: u32) -> Option<&str> {
        self.inner.pieces.get(id as usize).map(|s| s.as_str())
    }
    /// The id of exactly this piece string (sentencepiece would answer unk_id when absent).
    pub fn piece_to_id(&self, piece: &str) -> Option<u32> {
        self.inner.piece_to_id.get(piece).copied()
    }
    pub fn bos_id(&self) -> Option<u32> {
        self.inner.bos_id
    }
    pub fn eos_id(&self) -> Option<u32> {
        self.inner.eos_id
    }
    pub fn pad_id(&self) -> Option<u32> {
        self.inner.pad_id
    }
    /// `SentencePieceProcessor::unk_id()`: `None` where sentencepiece reports -1 (the spec's
    /// `unk_piece` names a piece that is not UNKNOWN). Python's `Tokenizer.unk_id`.
    pub fn unk_id(&self) -> Option<u32> {
        self.inner.unk_reported
    }
    /// The model's UNKNOWN piece, what unknown text encodes to without byte fallback: exactly
    /// one, or none in a byte-fallback model (sentencepiece loads those, and its `PieceToId`
    /// then answers -1 for a string that is no piece). Python's `Tokenizer.model_unk_id`.
    pub fn model_unk_id(&self) -> Option<u32> {
        self.inner.unk_piece
    }
    pub fn piece_kind(&self, id: u32) -> Option<PieceType> {
        self.inner.kinds.get(id as usize).copied()
    }
    pub fn is_byte(&self, id: u32) -> bool {
        self.piece_kind(id) == Some(PieceType::Byte)
    }
    pub fn is_unknown(&self, id: u32) -> bool {
        self.piece_kind(id) == Some(PieceType::Unknown)
    }
    pub fn is_control(&self, id: u32) -> bool {
        self.piece_kind(id) == Some(PieceType::Control)
    }
    pub fn byte_fallback(&self) -> bool {
        self.inner.byte_fallback
    }
}

impl Inner {
    /// The id unknown text is segmented under: the UNKNOWN piece, or the piece count (an id
    /// that names no piece) for a byte-fallback model without one; such text always becomes
    /// bytes, so that id never reaches an output.
    fn unk_segment_id(&self) -> u32 {
        self.unk_piece.unwrap_or(self.pieces.len() as u32)
    }

    fn normalize(&self, text: &[u8], valid: Option<&str>, out: &mut String) {
        if let (Some(dummy), Some(valid)) = (self.plain_spaces, valid) {
            // sentencepiece's Normalize for this spec: an empty input stays empty; otherwise
            // the dummy prefix, then each character as is, ' ' escaped to U+2581.
            if valid.is_empty() {
                return;
            }
            out.reserve(valid.len() + valid.len() / 4 + 3);
            if dummy {
                out.push('\u{2581}');
            }
            let mut rest = valid;
            while let Some(i) = rest.find(' ') {
                out.push_str(&rest[..i]);
                out.push('\u{2581}');
                rest = &rest[i + 1..];
            }
            out.push_str(rest);
            return;
        }
        self.normalizer.normalize_into(text, out);
    }

    /// An unknown piece: its bytes when byte_fallback is on, else one UNKNOWN id for a run.
    #[cold]
    #[inline(never)]
    fn emit_unknown(&self, bytes: &[u8], prev_unk: bool, out: &mut Vec<u32>) {
        if self.byte_fallback {
            out.extend(bytes.iter().map(|&b| self.byte_ids[b as usize]));
        } else if !prev_unk {
            out.push(self.unk_segment_id());
        }
    }

    /// `PopulateSentencePieceText` over the model's pieces: an UNKNOWN piece becomes one
    /// `<0xXX>` per UTF-8 byte when byte_fallback is on; otherwise consecutive unknown pieces
    /// fuse into one (sentencepiece merges the run "so that decoder can copy ... easily").
    fn encode_normalized(&self, norm: &str, out: &mut Vec<u32>) {
        let bytes = norm.as_bytes();
        let unk = self.unk_segment_id();
        let mut prev_unk = false;
        // Small enough to be inlined into the segmenter's loops; unknown text is the rare,
        // out-of-line case.
        let mut emit = |id: u32, s: usize, e: usize| {
            if id != unk {
                out.push(id);
                prev_unk = false;
            } else {
                self.emit_unknown(&bytes[s..e], prev_unk, out);
                prev_unk = true;
            }
        };
        match &self.segmenter {
            Segmenter::Bpe(m) => m.encode(norm, unk, &mut emit),
            Segmenter::Unigram(m) => SPANS.with(|spans| {
                let mut spans = spans.borrow_mut();
                spans.clear();
                m.encode(norm, &mut spans);
                for (id, r) in spans.iter() {
                    emit(*id, r.start, r.end);
                }
            }),
        }
    }
}

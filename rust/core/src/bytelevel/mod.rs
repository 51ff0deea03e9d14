//! Byte-level BPE (GPT-2 byte alphabet): LLaMA-3, Qwen2, SmolLM2, GPT-2. Ids equal HF
//! tokenizers' `Tokenizer.encode` for a `tokenizer.json` and tiktoken's `encode_ordinary`
//! for a tiktoken file.
//!
//! - [`load_json`]: HF `tokenizer.json` (refuses, in one line, any component it does not
//!   implement); [`load_tiktoken`]: a tiktoken rank file (LLaMA-3's `tokenizer.model`).
//! - [`pretok`]: the pre-tokenizers ([`tables`]: their patterns, LLaMA-3's specials, GPT-2's
//!   byte alphabet); [`merge`]: BPE on one pre-token; [`added`]: added and
//!   special tokens found in text (only when asked: see [`ByteLevelTokenizer::encode_into`]).

pub(crate) mod added;
mod backtrack;
mod blocks;
mod cache;
mod cuts;
mod deepseek;
pub mod load_json;
pub mod load_tiktoken;
pub(crate) mod merge;
mod o200k;
pub mod pretok;
pub mod tables;
mod trie;
pub(crate) mod unicode;
mod whole;

pub use added::AddedToken;
use added::{AddedTokens, Segment};
use merge::PairTable;
use pretok::PreTokenizer;
use rustc_hash::FxHashMap;
use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ByteLevelError {
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("token id {id} is out of range: the tokenizer has {vocab_size} tokens (ids 0..{vocab_size})")]
    IdOutOfRange { id: u32, vocab_size: usize },
}

pub use tables::byte_to_char;

/// Which file format a tokenizer came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    TokenizerJson,
    Tiktoken,
}

/// What a loader hands to [`ByteLevelTokenizer::build`].
pub(crate) struct Spec {
    /// The model's tokens by id (`None`: an id the model does not use).
    pub(crate) tokens: Vec<Option<Vec<u8>>>,
    pub(crate) pairs: PairTable,
    pub(crate) ignore_merges: bool,
    pub(crate) stages: Vec<pretok::Stage>,
    pub(crate) nfc: bool,
    pub(crate) added: Vec<AddedToken>,
    pub(crate) bos_id: Option<u32>,
    pub(crate) eos_id: Option<u32>,
    pub(crate) pad_id: Option<u32>,
    pub(crate) format: Format,
}

struct Inner {
    /// Bytes of every id (an added token: its content); empty for an unused id.
    tokens: Vec<Vec<u8>>,
    special: Vec<bool>,
    vocab: FxHashMap<Vec<u8>, u32>,
    /// The tokens a pre-token that spells one is, whatever the merges (with `ignore_merges`:
    /// every token; without: the reachable ones), for the lookup of every new pre-token.
    whole: whole::WholeTokens,
    byte_ids: [u32; 256],
    /// Every byte has a token (true of tiktoken files; SmolLM2 lacks a few control bytes).
    all_bytes: bool,
    pairs: PairTable,
    /// BPE by backtracking ([`backtrack`]); the merge loop for pieces with a byte that has
    /// no token, or when switched off.
    backtrack: backtrack::Backtrack,
    backtrack_on: AtomicBool,
    /// Cuts between three-byte characters that no token spans ([`cuts`]).
    cuts: Option<cuts::CharCuts>,
    cuts_on: AtomicBool,
    pretok: PreTokenizer,
    nfc: bool,
    added: AddedTokens,
    bos_id: Option<u32>,
    eos_id: Option<u32>,
    pad_id: Option<u32>,
    format: Format,
    hand_written: bool,
    /// This tokenizer's key in the per-thread pre-token cache ([`cache`]).
    serial: u32,
    cache_on: AtomicBool,
}

/// A byte-level BPE tokenizer. Cheap to clone (shared, immutable); `Send + Sync`.
#[derive(Clone)]
pub struct ByteLevelTokenizer {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ByteLevelTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ByteLevelTokenizer({} tokens, {:?})",
            self.vocab_size(),
            self.format()
        )
    }
}

const NO_ID: u32 = u32::MAX;

impl ByteLevelTokenizer {
    pub(crate) fn build(spec: Spec) -> Self {
        unicode::init();
        let mut n = spec.tokens.len();
        for t in &spec.added {
            n = n.max(t.id as usize + 1);
        }
        let mut tokens: Vec<Vec<u8>> = vec![Vec::new(); n];
        let mut vocab = FxHashMap::default();
        let mut byte_ids = [NO_ID; 256];
        for (i, t) in spec.tokens.iter().enumerate() {
            if let Some(t) = t {
                if t.len() == 1 {
                    byte_ids[t[0] as usize] = i as u32;
                }
            }
        }
        let mut pairs = spec.pairs;
        pairs.finish(&byte_ids);
        let backtrack = backtrack::Backtrack::build(&spec.tokens, &pairs, &byte_ids);
        let cuts = cuts::CharCuts::build(&spec.tokens, &byte_ids, |id| backtrack.reachable(id));
        for (i, t) in spec.tokens.into_iter().enumerate() {
            if let Some(t) = t {
                vocab.entry(t.clone()).or_insert(i as u32);
                tokens[i] = t;
            }
        }
        // With `ignore_merges` every token is looked up whole; without, the reachable ones
        // (M makes them of their own bytes, so a pre-token that spells one is that token).
        let whole = if spec.ignore_merges {
            whole::WholeTokens::build(&vocab)
        } else {
            let mut reachable = vocab.clone();
            reachable.retain(|t, &mut id| t.len() > 1 && backtrack.reachable(id));
            whole::WholeTokens::build(&reachable)
        };
        let mut special = vec![false; n];
        for t in &spec.added {
            tokens[t.id as usize] = t.content.as_bytes().to_vec();
            special[t.id as usize] = t.special;
        }
        let hand_written = spec.stages.iter().all(|s| match s {
            pretok::Stage::Split(sp) => sp.is_hand_written(),
            pretok::Stage::Digits { .. } => true,
        });
        ByteLevelTokenizer {
            inner: Arc::new(Inner {
                tokens,
                special,
                vocab,
                whole,
                byte_ids,
                all_bytes: !byte_ids.contains(&NO_ID),
                pairs,
                backtrack,
                backtrack_on: AtomicBool::new(true),
                cuts,
                cuts_on: AtomicBool::new(true),
                pretok: PreTokenizer {
                    stages: spec.stages,
                },
                nfc: spec.nfc,
                added: AddedTokens::new(spec.added),
                bos_id: spec.bos_id,
                eos_id: spec.eos_id,
                pad_id: spec.pad_id,
                format: spec.format,
                hand_written,
                serial: cache::next_serial(),
                cache_on: AtomicBool::new(true),
            }),
        }
    }

    /// Encode `text`, appending to `out`. `parse_special`: special tokens written in the text
    /// become their ids (HF `encode(text)`'s default; tiktoken's `allowed_special="all"`);
    /// otherwise their text is encoded as text (HF with `encode_special_tokens=True`;
    /// tiktoken's `encode_ordinary`). Non-special added tokens are always matched, as HF does.
    /// `add_bos`/`add_eos` add [`Self::bos_id`]/[`Self::eos_id`] where the tokenizer has one.
    pub fn encode_into(
        &self,
        text: &str,
        add_bos: bool,
        add_eos: bool,
        parse_special: bool,
        out: &mut Vec<u32>,
    ) {
        let inner = &*self.inner;
        if add_bos {
            out.extend(inner.bos_id);
        }
        if inner.added.any(parse_special) {
            inner
                .added
                .split(text, parse_special, &mut |seg| match seg {
                    Segment::Text(t) => inner.encode_text(t, out),
                    Segment::Token(id) => out.push(id),
                });
        } else {
            inner.encode_text(text, out);
        }
        if add_eos {
            out.extend(inner.eos_id);
        }
    }

    pub fn encode(
        &self,
        text: &str,
        add_bos: bool,
        add_eos: bool,
        parse_special: bool,
    ) -> Vec<u32> {
        let mut out = Vec::with_capacity(text.len() / 3 + 2);
        self.encode_into(text, add_bos, add_eos, parse_special, &mut out);
        out
    }

    /// Raw bytes, possibly invalid UTF-8: each maximal invalid sequence becomes one U+FFFD,
    /// as Python's `bytes.decode("utf-8", "replace")` (what a reader of the file would pass
    /// to the oracle).
    pub fn encode_bytes_into(
        &self,
        text: &[u8],
        add_bos: bool,
        add_eos: bool,
        parse_special: bool,
        out: &mut Vec<u32>,
    ) {
        let text = String::from_utf8_lossy(text);
        self.encode_into(&text, add_bos, add_eos, parse_special, out)
    }

    /// The bytes `ids` spell (added tokens: their text). Errors on an id out of range.
    pub fn decode_bytes(&self, ids: &[u32]) -> Result<Vec<u8>, ByteLevelError> {
        let inner = &*self.inner;
        let mut out = Vec::with_capacity(ids.len() * 4);
        for &id in ids {
            let t = inner
                .tokens
                .get(id as usize)
                .ok_or(ByteLevelError::IdOutOfRange {
                    id,
                    vocab_size: inner.tokens.len(),
                })?;
            out.extend_from_slice(t);
        }
        Ok(out)
    }

    /// [`Self::decode_bytes`] as text: each maximal invalid UTF-8 sequence becomes one U+FFFD
    /// (HF's ByteLevel decoder, and tiktoken's `decode`, `errors="replace"`).
    pub fn decode(&self, ids: &[u32]) -> Result<String, ByteLevelError> {
        let b = self.decode_bytes(ids)?;
        Ok(match String::from_utf8(b) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        })
    }

    /// Ids 0..vocab_size: the model's tokens and the added ones (HF `get_vocab_size(True)`).
    pub fn vocab_size(&self) -> usize {
        self.inner.tokens.len()
    }
    /// The token the post-processor puts before the text (LLaMA-3's `<|begin_of_text|>`);
    /// `None` when it adds none (SmolLM2, Qwen2).
    pub fn bos_id(&self) -> Option<u32> {
        self.inner.bos_id
    }
    /// The end-of-text token: the post-processor's (when it appends one), else
    /// `tokenizer_config.json`'s `eos_token` (LLaMA-3's tiktoken file: `<|end_of_text|>`).
    pub fn eos_id(&self) -> Option<u32> {
        self.inner.eos_id
    }
    pub fn pad_id(&self) -> Option<u32> {
        self.inner.pad_id
    }
    pub fn is_special(&self, id: u32) -> bool {
        self.inner
            .special
            .get(id as usize)
            .copied()
            .unwrap_or(false)
    }
    /// The token's bytes (an added token: its text).
    pub fn token_bytes(&self, id: u32) -> Option<&[u8]> {
        self.inner.tokens.get(id as usize).map(|t| t.as_slice())
    }
    /// The id of exactly these bytes among the model's tokens, else an added token's.
    pub fn token_to_id(&self, bytes: &[u8]) -> Option<u32> {
        let inner = &*self.inner;
        inner.vocab.get(bytes).copied().or_else(|| {
            inner
                .added
                .tokens
                .iter()
                .find(|t| t.content.as_bytes() == bytes)
                .map(|t| t.id)
        })
    }
    pub fn added_tokens(&self) -> &[AddedToken] {
        &self.inner.added.tokens
    }
    pub fn format(&self) -> Format {
        self.inner.format
    }
    /// Whether every pre-tokenizer stage is a hand-written splitter (no regex engine).
    pub fn hand_written_pretokenizer(&self) -> bool {
        self.inner.hand_written
    }
    pub fn merge_count(&self) -> usize {
        self.inner.pairs.len()
    }

    /// Use the per-thread cache of short pre-tokens (on by default; the ids are the same
    /// either way). Applies to every clone of this tokenizer.
    pub fn set_pretoken_cache(&self, on: bool) {
        self.inner.cache_on.store(on, Ordering::Relaxed);
    }

    /// Encode by backtracking ([`backtrack`]; on by default) or by the merge loop alone: the
    /// ids are the same either way. Applies to every clone of this tokenizer.
    pub fn set_backtracking(&self, on: bool) {
        self.inner.backtrack_on.store(on, Ordering::Relaxed);
    }

    /// Cut pre-tokens between three-byte characters that no token spans ([`cuts`]; on by
    /// default): the ids are the same either way. Applies to every clone of this tokenizer.
    pub fn set_char_cuts(&self, on: bool) {
        self.inner.cuts_on.store(on, Ordering::Relaxed);
    }

    /// The backtracking encoder's tables: (bytes, tokens built by merges of decreasing rank,
    /// whose pairs are checked by the merge loop).
    pub fn backtracking_tables(&self) -> (usize, usize) {
        let b = &self.inner.backtrack;
        (b.bytes(), b.decreasing())
    }

    /// The pre-tokens BPE sees in `text` (NFC first where the tokenizer normalizes), in order:
    /// HF's `normalize_str` then `pre_tokenize_str`, as raw UTF-8 (not the byte alphabet).
    /// Added tokens are not split out. Used by `crate::pretoken_counts`.
    pub fn for_each_pretoken(&self, text: &str, f: &mut impl FnMut(&str)) {
        let inner = &*self.inner;
        let text: Cow<str> = if inner.nfc {
            nfc(text)
        } else {
            Cow::Borrowed(text)
        };
        inner.pretok.split(&text, f);
    }
}

impl Inner {
    fn encode_text(&self, text: &str, out: &mut Vec<u32>) {
        let text: Cow<str> = if self.nfc {
            nfc(text)
        } else {
            Cow::Borrowed(text)
        };
        if self.cache_on.load(Ordering::Relaxed) {
            cache::with(|c| self.encode_pieces(&text, Some(c), out))
        } else {
            self.encode_pieces(&text, None, out)
        }
    }

    fn encode_pieces(&self, text: &str, mut cache: Option<&mut cache::Cache>, out: &mut Vec<u32>) {
        let mut start: Vec<u32> = Vec::new();
        self.pretok.split(text, &mut |piece: &str| {
            let b = piece.as_bytes();
            if b.len() == 1 {
                let id = self.byte_ids[b[0] as usize];
                if id != NO_ID {
                    out.push(id);
                }
                return;
            }
            // A whole token is looked up before the cache: the cache holds only pieces that
            // needed BPE, so a new whole-token piece costs no cache line (English docstrings,
            // Qwen3, fresh tokenizer, one pass: 54 -> 58-62 MB/s; see benches/RESULTS.md).
            if let Some(id) = self.whole_token(b) {
                out.push(id);
                return;
            }
            match cache.as_deref_mut() {
                Some(c) if b.len() <= cache::MAX_KEY && !cache::han_run(b) => {
                    if let Some(ids) = c.get(b, self.serial) {
                        out.extend_from_slice(ids);
                        return;
                    }
                    let at = out.len();
                    self.bpe(b, &mut start, out);
                    c.put(b, self.serial, &out[at..]);
                }
                _ => self.bpe(b, &mut start, out),
            }
        });
    }

    /// The id of the token `b` spells, where BPE gives it whole: with `ignore_merges` (HF: a
    /// pre-token that is a token is that token, whatever the merges) any token; without, a
    /// reachable one (M of its bytes is itself: `backtrack.rs`, point 1).
    #[inline(always)]
    fn whole_token(&self, b: &[u8]) -> Option<u32> {
        self.whole.get(b)
    }

    /// BPE of one pre-token (more than one byte, not a whole token where that counts): each
    /// segment between the cuts of [`cuts`] alone.
    #[inline(always)]
    fn bpe(&self, b: &[u8], start: &mut Vec<u32>, out: &mut Vec<u32>) {
        if b.len() >= 6 && self.cuts_on.load(Ordering::Relaxed) {
            if let Some(c) = &self.cuts {
                c.split(b, |seg, token| {
                    if token != NO_ID {
                        out.push(token);
                    } else {
                        self.bpe_segment(seg, start, out)
                    }
                });
                return;
            }
        }
        self.bpe_segment(b, start, out)
    }

    /// BPE of bytes no merge crosses the edges of.
    #[inline(always)]
    fn bpe_segment(&self, b: &[u8], start: &mut Vec<u32>, out: &mut Vec<u32>) {
        if self.backtrack_on.load(Ordering::Relaxed)
            && (self.all_bytes || b.iter().all(|&x| self.byte_ids[x as usize] != NO_ID))
            && self.backtrack.encode(&self.pairs, b, out)
        {
            return;
        }
        start.clear();
        // A byte without a token is dropped, as HF's BPE does without an unk token.
        start.extend(
            b.iter()
                .map(|&x| self.byte_ids[x as usize])
                .filter(|&i| i != NO_ID),
        );
        let raw = if start.len() == b.len() { b } else { &[] };
        merge::merge(&self.pairs, raw, start, out);
    }
}

fn nfc(text: &str) -> Cow<'_, str> {
    use unicode_normalization::{is_nfc_quick, IsNormalized, UnicodeNormalization};
    match is_nfc_quick(text.chars()) {
        IsNormalized::Yes => Cow::Borrowed(text),
        _ => Cow::Owned(text.nfc().collect()),
    }
}

//! sentencepiece's text normalizer (normalizer.cc, `Normalizer::Normalize`), byte for byte,
//! as in sentencepiece 0.2.3 (the pip package the parity tests run against).
//!
//! At encode time sentencepiece only looks at `precompiled_charsmap`: the trainer compiles
//! `name` (nmt_nfkc, nfkc_cf, ...) and `normalization_rule_tsv` into it, and an empty charsmap
//! means identity whatever the name says. So does this module.
//!
//! Per step, the first of these that applies at the current input position (`NormalizePrefix`):
//! 1. the longest USER_DEFINED piece (`PrefixMatcher`, which reads at most 64 matches): copied
//!    as is, never normalized;
//! 2. the longest charsmap rule (among the first 32 matches): its replacement string;
//! 3. one UTF-8 character copied as is, or one invalid byte turned into U+FFFD.
//!
//! Whitespace is then handled on the replacement strings, exactly in `Normalize`'s order:
//! leading spaces dropped, dummy prefix, runs of spaces collapsed, `' '` escaped to U+2581,
//! trailing spaces dropped, dummy suffix.

mod charsmap;
pub mod trie;

use crate::model::NormalizerSpec;
use charsmap::{CharsMap, FirstByte};
use std::sync::Arc;
use thiserror::Error;
use trie::ByteTrie;

#[derive(Debug, Error)]
pub enum NormalizerError {
    #[error(
        "the model's normalizer_spec.precompiled_charsmap is corrupt ({0}); sentencepiece \
         refuses to load this model too: re-train it or copy the charsmap from a good model"
    )]
    CorruptCharsMap(String),
}

/// U+2581 LOWER ONE EIGHTH BLOCK, sentencepiece's escaped space (`kSpaceSymbol`).
const SPACE_SYMBOL: &[u8] = "\u{2581}".as_bytes();
/// `PrefixMatcher::PrefixMatch` reads at most this many user-defined matches (`kResultSize`).
const PREFIX_MATCHER_RESULTS: usize = 64;
/// What an invalid UTF-8 byte becomes (`NormalizePrefix` consumes one byte for it).
const REPLACEMENT: &[u8] = "\u{FFFD}".as_bytes();

#[derive(Debug)]
struct Inner {
    charsmap: Option<CharsMap>,
    user_defined: Option<ByteTrie>,
    add_dummy_prefix: bool,
    remove_extra_whitespaces: bool,
    escape_whitespaces: bool,
    treat_whitespace_as_suffix: bool,
}

/// Cheap to clone (shared, immutable state).
#[derive(Debug, Clone)]
pub struct Normalizer {
    inner: Arc<Inner>,
}

/// Length of the UTF-8 character at the start of `s`, or `None` when it is malformed, with the
/// exact rules of sentencepiece's `string_util::DecodeUTF8` (no overlongs, no surrogates,
/// nothing above U+10FFFF, truncated sequences invalid). These are also the rules of Rust's
/// `str`, so every `Some` run is a valid `&str`.
#[inline]
pub(crate) fn utf8_char_len(s: &[u8]) -> Option<usize> {
    let b0 = *s.first()?;
    let trail = |i: usize| s.get(i).is_some_and(|&b| b & 0xC0 == 0x80);
    let cont = |i: usize| (s[i] & 0x3F) as u32;
    if b0 < 0x80 {
        Some(1)
    } else if b0 & 0xE0 == 0xC0 {
        (trail(1) && (((b0 & 0x1F) as u32) << 6 | cont(1)) >= 0x80).then_some(2)
    } else if b0 & 0xF0 == 0xE0 {
        if !(trail(1) && trail(2)) {
            return None;
        }
        let cp = ((b0 & 0x0F) as u32) << 12 | cont(1) << 6 | cont(2);
        (cp >= 0x800 && !(0xD800..0xE000).contains(&cp)).then_some(3)
    } else if b0 & 0xF8 == 0xF0 {
        if !(trail(1) && trail(2) && trail(3)) {
            return None;
        }
        let cp = ((b0 & 0x07) as u32) << 18 | cont(1) << 12 | cont(2) << 6 | cont(3);
        (0x10000..=0x10FFFF).contains(&cp).then_some(4)
    } else {
        None
    }
}

impl Normalizer {
    /// `user_defined`: the pieces of type USER_DEFINED. sentencepiece never normalizes inside
    /// them (`SetPrefixMatcher` in `SentencePieceProcessor::Load`); the longest one matching
    /// at a position is taken whole.
    pub fn new(
        spec: &NormalizerSpec,
        treat_whitespace_as_suffix: bool,
        user_defined: &[String],
    ) -> Result<Self, NormalizerError> {
        let charsmap = if spec.precompiled_charsmap.is_empty() {
            None
        } else {
            Some(CharsMap::parse(&spec.precompiled_charsmap)?)
        };
        let user_defined = (!user_defined.is_empty())
            .then(|| ByteTrie::new(user_defined.iter().map(|s| (s.as_bytes(), 0))))
            .filter(|t| !t.is_empty());
        Ok(Normalizer {
            inner: Arc::new(Inner {
                charsmap,
                user_defined,
                add_dummy_prefix: spec.add_dummy_prefix,
                remove_extra_whitespaces: spec.remove_extra_whitespaces,
                escape_whitespaces: spec.escape_whitespaces,
                treat_whitespace_as_suffix,
            }),
        })
    }

    /// True when the text itself passes through unchanged (no charsmap, no user-defined
    /// symbols); only the whitespace rules apply.
    pub fn is_identity(&self) -> bool {
        self.inner.charsmap.is_none() && self.inner.user_defined.is_none()
    }

    pub fn normalize(&self, input: &[u8]) -> String {
        let mut out = String::with_capacity(input.len() + input.len() / 2 + 4);
        self.normalize_into(input, &mut out);
        out
    }

    /// Normalize `input` and append the result to `out` (earlier contents are left alone).
    pub fn normalize_into(&self, input: &[u8], out: &mut String) {
        // SAFETY: every byte run appended below is valid UTF-8 on its own: input characters
        // checked by `utf8_char_len`, user-defined matches (equal to a `String` key), charsmap
        // replacements (checked by `CharsMap::replacement`), U+FFFD, U+2581 and ASCII spaces.
        // Bytes removed are whole ASCII spaces or whole U+2581s. So `out` stays valid UTF-8.
        let buf = unsafe { out.as_mut_vec() };
        self.normalize_bytes(input, buf);
        debug_assert!(std::str::from_utf8(buf).is_ok());
    }

    fn normalize_bytes(&self, mut input: &[u8], out: &mut Vec<u8>) {
        let s = &*self.inner;
        let start = out.len();
        if input.is_empty() {
            return;
        }
        // Leading spaces: skipped while a whole step normalizes to exactly " ".
        if s.remove_extra_whitespaces {
            while !input.is_empty() {
                let (sp, n) = self.prefix(input);
                if sp != b" " {
                    break;
                }
                input = &input[n..];
            }
            // An all-space input gives "", without the dummy prefix.
            if input.is_empty() {
                return;
            }
        }
        out.reserve(input.len() * 3 / 2 + 8);
        let ws: &[u8] = if s.escape_whitespaces {
            SPACE_SYMBOL
        } else {
            b" "
        };
        if !s.treat_whitespace_as_suffix && s.add_dummy_prefix {
            out.extend_from_slice(ws);
        }
        if self.is_identity() {
            Self::identity_body(input, s.remove_extra_whitespaces, ws, out);
        } else {
            self.general_body(input, out);
        }
        // Trailing spaces: sentencepiece strips the escaped symbol from the whole output, so a
        // U+2581 from the input or the dummy prefix goes too.
        if s.remove_extra_whitespaces {
            while out.len() - start >= ws.len() && out.ends_with(ws) {
                out.truncate(out.len() - ws.len());
            }
        }
        if s.treat_whitespace_as_suffix && s.add_dummy_prefix {
            out.extend_from_slice(ws);
        }
    }

    /// The main loop of `Normalize`, one `NormalizePrefix` step at a time.
    fn general_body(&self, mut input: &[u8], out: &mut Vec<u8>) {
        let s = &*self.inner;
        let mut prev_space = s.remove_extra_whitespaces;
        while !input.is_empty() {
            let (mut sp, n) = self.prefix(input);
            input = &input[n..];
            // A step's leading spaces go when the previous output ended in one; `prev_space`
            // only changes on non-empty output (a rule mapping to "" leaves it as it was).
            if prev_space {
                while let [b' ', rest @ ..] = sp {
                    sp = rest;
                }
            }
            if let Some(&last) = sp.last() {
                if s.escape_whitespaces {
                    push_escaped(out, sp);
                } else {
                    out.extend_from_slice(sp);
                }
                prev_space = last == b' ';
            }
            if !s.remove_extra_whitespaces {
                prev_space = false;
            }
        }
    }

    /// The main loop for the identity normalizer, in bulk. Without a charsmap or user-defined
    /// symbols every step is one input character copied as is, or U+FFFD for one malformed
    /// byte, so `general_body` reduces to: copy valid UTF-8 runs, write U+FFFD per byte of a
    /// malformed run (Rust's `Utf8Chunks` and sentencepiece's `DecodeUTF8` accept the same
    /// characters, and every byte of a malformed run is itself a malformed start), and treat
    /// only ASCII spaces specially. A space is written as `ws` unless `remove_extra` is set and
    /// the last written character was a space (true at the start, where leading spaces are
    /// already gone).
    fn identity_body(input: &[u8], remove_extra: bool, ws: &[u8], out: &mut Vec<u8>) {
        let mut prev_space = remove_extra;
        for chunk in input.utf8_chunks() {
            let mut rest = chunk.valid().as_bytes();
            while let Some(i) = rest.iter().position(|&b| b == b' ') {
                if i > 0 {
                    out.extend_from_slice(&rest[..i]);
                    prev_space = false;
                }
                if !(remove_extra && prev_space) {
                    out.extend_from_slice(ws);
                }
                prev_space = true;
                rest = &rest[i + 1..];
            }
            if !rest.is_empty() {
                out.extend_from_slice(rest);
                prev_space = false;
            }
            for _ in chunk.invalid() {
                out.extend_from_slice(REPLACEMENT);
                prev_space = false;
            }
        }
    }

    /// `NormalizePrefix`: the normalized form of the longest unit at the start of `input`, and
    /// how many input bytes it consumes.
    #[inline]
    fn prefix<'a>(&'a self, input: &'a [u8]) -> (&'a [u8], usize) {
        let s = &*self.inner;
        let b0 = input[0];
        if let Some(ud) = &s.user_defined {
            if ud.starts_with_byte(b0) {
                if let Some((_, n)) = ud.longest_prefix(input, PREFIX_MATCHER_RESULTS) {
                    return (&input[..n], n);
                }
            }
        }
        if let Some(cm) = &s.charsmap {
            match cm.first_byte(b0) {
                FirstByte::NoKey => {}
                FirstByte::Single(v) => {
                    if let Some(r) = cm.replacement(v) {
                        return (r, 1);
                    }
                }
                FirstByte::Walk => {
                    if let Some((r, n)) = cm.lookup(input) {
                        return (r, n);
                    }
                }
            }
        }
        match utf8_char_len(input) {
            Some(n) => (&input[..n], n),
            None => (REPLACEMENT, 1),
        }
    }
}

/// Append `sp` with every ASCII space written as U+2581.
#[inline]
fn push_escaped(out: &mut Vec<u8>, sp: &[u8]) {
    let mut rest = sp;
    while let Some(i) = rest.iter().position(|&b| b == b' ') {
        out.extend_from_slice(&rest[..i]);
        out.extend_from_slice(SPACE_SYMBOL);
        rest = &rest[i + 1..];
    }
    out.extend_from_slice(rest);
}

#[cfg(test)]
mod tests;

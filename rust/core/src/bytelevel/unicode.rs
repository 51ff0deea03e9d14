//! The character classes of the pre-tokenizer patterns (`\p{L}`, `\p{N}`, `\s`, ...), from the
//! Unicode tables of `regex-syntax`: the tables behind the `regex`/`fancy-regex` crates that
//! tiktoken matches with, so the hand-written splitters agree with tiktoken's regex on every
//! assigned character of that Unicode version (HF tokenizers' Oniguruma: see the parity tests).

use std::sync::OnceLock;

pub(crate) const OTHER: u8 = 0;
pub(crate) const LETTER: u8 = 1;
pub(crate) const NUMBER: u8 = 2;
pub(crate) const SPACE: u8 = 4;
/// `[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]`: o200k's and Tekken's "upper" run (with [`LETTER`] or alone:
/// a mark is no letter).
pub(crate) const UPPER: u8 = 8;
/// `[\p{Ll}\p{Lm}\p{Lo}\p{M}]`: their "lower" run.
pub(crate) const LOWER: u8 = 16;
/// `[\p{P}\p{S}]`: punctuation and symbols (DeepSeek-V3's pattern).
pub(crate) const PUNCT: u8 = 32;
/// The bits of [`class`]: one of the three disjoint classes, or none ([`OTHER`]).
const BASIC: u8 = LETTER | NUMBER | SPACE;

struct Classes {
    /// Class of every code point below U+10000.
    bmp: Vec<u8>,
    /// Sorted, disjoint ranges above U+FFFF with their class.
    astral: Vec<(u32, u32, u8)>,
}

fn ranges(pattern: &str) -> Vec<(u32, u32)> {
    use regex_syntax::hir::{Class, HirKind};
    let hir = regex_syntax::ParserBuilder::new()
        .build()
        .parse(pattern)
        .expect("a fixed Unicode class parses");
    match hir.kind() {
        HirKind::Class(Class::Unicode(c)) => c
            .ranges()
            .iter()
            .map(|r| (r.start() as u32, r.end() as u32))
            .collect(),
        _ => unreachable!("{pattern} is a Unicode class"),
    }
}

fn classes() -> &'static Classes {
    static CLASSES: OnceLock<Classes> = OnceLock::new();
    CLASSES.get_or_init(|| {
        let mut bmp = vec![OTHER; 0x10000];
        let mut astral = Vec::new();
        for (pattern, class) in [
            (r"\p{L}", LETTER),
            (r"\p{N}", NUMBER),
            (r"\s", SPACE),
            (r"[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]", UPPER),
            (r"[\p{Ll}\p{Lm}\p{Lo}\p{M}]", LOWER),
            (r"[\p{P}\p{S}]", PUNCT),
        ] {
            for (lo, hi) in ranges(pattern) {
                for cp in lo..=hi.min(0xFFFF) {
                    bmp[cp as usize] |= class;
                }
                if hi > 0xFFFF {
                    astral.push((lo.max(0x10000), hi, class));
                }
            }
        }
        // Split the astral ranges where they overlap, so that one binary search finds all bits.
        let mut cuts: Vec<u32> = astral
            .iter()
            .flat_map(|&(lo, hi, _)| [lo, hi + 1])
            .collect();
        cuts.sort_unstable();
        cuts.dedup();
        let mut merged: Vec<(u32, u32, u8)> = Vec::new();
        for w in cuts.windows(2) {
            let (lo, hi) = (w[0], w[1] - 1);
            let bits = astral
                .iter()
                .filter(|&&(a, b, _)| a <= lo && hi <= b)
                .fold(0, |acc, &(_, _, k)| acc | k);
            if bits != 0 {
                merged.push((lo, hi, bits));
            }
        }
        Classes {
            bmp,
            astral: merged,
        }
    })
}

/// The class of `c`: [`LETTER`], [`NUMBER`], [`SPACE`] or [`OTHER`] (the three are disjoint).
#[inline]
pub(crate) fn class(c: char) -> u8 {
    class_bits(c) & BASIC
}

/// [`class`] with the [`UPPER`], [`LOWER`] and [`PUNCT`] bits.
#[inline]
pub(crate) fn class_bits(c: char) -> u8 {
    let cp = c as u32;
    let t = classes();
    if cp < 0x10000 {
        return t.bmp[cp as usize];
    }
    let i = t.astral.partition_point(|&(lo, _, _)| lo <= cp);
    match i.checked_sub(1).map(|i| t.astral[i]) {
        Some((_, hi, class)) if cp <= hi => class,
        _ => OTHER,
    }
}

/// Build the tables now (about 1 ms) rather than inside the first encode.
pub(crate) fn init() {
    classes();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_are_disjoint_and_known() {
        assert_eq!(class('a'), LETTER);
        assert_eq!(class('中'), LETTER);
        assert_eq!(class('7'), NUMBER);
        assert_eq!(class('²'), NUMBER);
        assert_eq!(class('\u{3000}'), SPACE);
        assert_eq!(class('\u{85}'), SPACE);
        assert_eq!(class('\u{200B}'), OTHER);
        assert_eq!(class('😀'), OTHER);
        assert_eq!(class('𠀀'), LETTER);
        assert_eq!(class('\u{0301}'), OTHER);
        for c in (0..0x11_0000).filter_map(char::from_u32) {
            let k = class(c);
            assert!(k == OTHER || k.count_ones() == 1, "{c:?} {k}");
        }
        // Lu: upper only; Ll: lower only; Lo (Han) and marks: both; a mark is no letter.
        assert_eq!(class_bits('A'), LETTER | UPPER);
        assert_eq!(class_bits('a'), LETTER | LOWER);
        assert_eq!(class_bits('中'), LETTER | UPPER | LOWER);
        assert_eq!(class_bits('\u{0301}'), UPPER | LOWER);
        assert_eq!(class_bits('ǅ'), LETTER | UPPER); // Lt
        assert_eq!(class_bits('𝐀'), LETTER | UPPER);
        assert_eq!(class_bits('𝐚'), LETTER | LOWER);
        assert_eq!(class_bits('𠀀'), LETTER | UPPER | LOWER);
        assert_eq!(class_bits('\u{E0100}'), UPPER | LOWER); // a variation selector: Mn

        // P and S: ASCII punctuation and symbols, CJK punctuation, emoji (So); not Cf.
        for c in ['$', '\'', '`', '~', '，', '。', '“', '😀', '゛', '・'] {
            assert_eq!(class_bits(c), PUNCT, "{c:?}");
        }
        assert_eq!(class_bits('\u{200D}'), OTHER);
    }
}

//! Which characters are Chinese: the one home of the ranges every part of zhllama counts by
//! (the SentencePiece merge, the byte-level extension's checks, the statistics, the tests).
//! The Python package reads them as `zhllama._native.CHINESE_RANGES` and `HAN_RANGES`.

/// The blocks Chinese text is written in: CJK ideographs, CJK punctuation and symbols, fullwidth
/// forms and the rest. ASCII, Latin, general punctuation (curly quotes, dashes, ellipsis) and
/// emoji are deliberately outside: English text uses them too. Inclusive `(first, last)` pairs.
pub const CHINESE_RANGES: &[(u32, u32)] = &[
    (0x2E80, 0x2FDF),   // CJK radicals supplement, Kangxi radicals
    (0x2FF0, 0x303F), // ideographic description, CJK symbols and punctuation (、。〈〉「」 U+3000)
    (0x3100, 0x312F), // Bopomofo
    (0x31A0, 0x31EF), // Bopomofo extended, CJK strokes
    (0x3200, 0x33FF), // enclosed CJK letters and months, CJK compatibility
    (0x3400, 0x4DBF), // CJK extension A
    (0x4E00, 0x9FFF), // CJK unified ideographs
    (0xF900, 0xFAFF), // CJK compatibility ideographs
    (0xFE10, 0xFE1F), // vertical forms
    (0xFE30, 0xFE4F), // CJK compatibility forms
    (0xFF00, 0xFFEF), // halfwidth and fullwidth forms (，：（）１２３ＡＢＣ)
    (0x20000, 0x3FFFF), // planes 2 and 3, allotted to CJK ideographs (extensions B..I and beyond)
];

/// Han ideographs alone (what "a Chinese character" means in the statistics): extension A, the
/// unified block, the compatibility ideographs and planes 2 and 3.
pub const HAN_RANGES: &[(u32, u32)] = &[
    (0x3400, 0x4DBF),
    (0x4E00, 0x9FFF),
    (0xF900, 0xFAFF),
    (0x20000, 0x3FFFF),
];

fn in_ranges(ranges: &[(u32, u32)], c: char) -> bool {
    let c = c as u32;
    ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi)
}

/// Whether `c` is in [`CHINESE_RANGES`].
pub fn is_chinese_char(c: char) -> bool {
    in_ranges(CHINESE_RANGES, c)
}

/// Whether `c` is in [`HAN_RANGES`].
pub fn is_han(c: char) -> bool {
    in_ranges(HAN_RANGES, c)
}

pub fn has_chinese(text: &str) -> bool {
    text.chars().any(is_chinese_char)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn han_is_inside_chinese_and_ranges_are_sorted_and_disjoint() {
        for ranges in [CHINESE_RANGES, HAN_RANGES] {
            for w in ranges.windows(2) {
                assert!(w[0].0 <= w[0].1 && w[0].1 < w[1].0, "{w:?}");
            }
        }
        for &(lo, hi) in HAN_RANGES {
            assert!(CHINESE_RANGES.iter().any(|&(a, b)| a <= lo && hi <= b));
        }
        for (c, chinese, han) in [
            ('中', true, true),
            ('。', true, false),
            ('１', true, false),
            ('a', false, false),
            ('—', false, false),
            ('\u{31350}', true, true),
            ('😀', false, false),
        ] {
            assert_eq!((is_chinese_char(c), is_han(c)), (chinese, han), "{c:?}");
        }
    }
}

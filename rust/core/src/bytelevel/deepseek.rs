//! The hand-written splitters of DeepSeek-V3's pre-tokenizer: a `Sequence` of three
//! `Split(Regex, Isolated)` stages, each applied to every piece of the one before (patterns in
//! [`super::tables`]), then `ByteLevel` without its regex:
//!
//! ```text
//! 1. \p{N}{1,3}
//! 2. [一-龥぀-ゟ゠-ヿ]+                                   (U+4E00..U+9FA5, U+3040..U+30FF)
//! 3. A[A-Za-z]+ | [^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+ | ?[\p{P}\p{S}]+[\r\n]*
//!    | \s*[\r\n]+ | \s+(?!\S) | \s+                       (A: the 32 ASCII punctuation chars)
//! ```
//!
//! With `Isolated`, each match is a piece and so is each gap between matches (text no
//! alternative matches at: a digit, a control char, an unassigned code point, with no letter
//! after it). Stage 3 decides at every position which alternative the leftmost-first regex
//! takes; none looks further than the run it matches, so each stage is linear in its piece.
//! [`split_deepseek3`] runs the three stages without dynamic dispatch between them; the first
//! two skip ASCII text 16 bytes a step ([`skip_ascii`]) and the third splits it 64 bytes at a
//! time ([`super::blocks`]): English docstrings, one thread, 310 -> 590 MB/s for the splitter
//! alone (benches/RESULTS.md, twelfth session).

use super::blocks::{skip_ascii, split_windows, Rules};
use super::o200k::{at, bits_run_end};
use super::pretok::{run_end, whitespace_end};
use super::unicode::{LETTER, LOWER, NUMBER, PUNCT, SPACE, UPPER};

/// `[\p{L}\p{M}]`: every char with one of these bits (U and W of o200k hold marks, `Lm`, `Lo`).
const LM: u8 = LETTER | UPPER | LOWER;

/// Stage 1, `\p{N}{1,K}`: each run of digits cut into groups of K from its start.
pub(crate) fn split_digit_groups<'a>(s: &'a str, max: usize, f: &mut impl FnMut(&'a str)) {
    digit_groups(s, max, &mut |piece, _| f(piece));
}

/// [`split_digit_groups`], telling `f` whether the piece is a group of digits.
#[inline(always)]
fn digit_groups<'a>(s: &'a str, max: usize, f: &mut impl FnMut(&'a str, bool)) {
    let b = s.as_bytes();
    let (mut gap, mut p) = (0, 0);
    while p < b.len() {
        if b[p] < 0x80 && !b[p].is_ascii_digit() {
            p = skip_ascii(b, p + 1, true);
            continue;
        }
        let (_, k, n) = at(s, p);
        if k & NUMBER == 0 {
            p += n;
            continue;
        }
        if gap < p {
            f(&s[gap..p], false);
        }
        let e = run_end(s, p, NUMBER, max);
        f(&s[p..e], true);
        (gap, p) = (e, e);
    }
    if gap < b.len() {
        f(&s[gap..], false);
    }
}

#[inline(always)]
fn is_cjk(c: char) -> bool {
    matches!(c, '\u{4E00}'..='\u{9FA5}' | '\u{3040}'..='\u{30FF}')
}

/// Stage 2: runs of [`is_cjk`] chars, and the text between them.
pub(crate) fn split_cjk<'a>(s: &'a str, f: &mut impl FnMut(&'a str)) {
    cjk_runs(s, &mut |piece, _| f(piece));
}

/// [`split_cjk`], telling `f` whether the piece is a run of ideographs U+4E00..U+9FA5 only
/// (every one a letter, `Lo`, so stage 3 leaves such a run whole).
#[inline(always)]
fn cjk_runs<'a>(s: &'a str, f: &mut impl FnMut(&'a str, bool)) {
    let b = s.as_bytes();
    let (mut gap, mut p) = (0, 0);
    while p < b.len() {
        if b[p] < 0x80 {
            p = skip_ascii(b, p + 1, false);
            continue;
        }
        let c = s[p..].chars().next().unwrap_or('\0');
        if !is_cjk(c) {
            p += c.len_utf8();
            continue;
        }
        if gap < p {
            f(&s[gap..p], false);
        }
        let mut han = c >= '\u{4E00}';
        let mut e = p + c.len_utf8();
        while e < b.len() && b[e] >= 0x80 {
            let c = s[e..].chars().next().unwrap_or('\0');
            if !is_cjk(c) {
                break;
            }
            han &= c >= '\u{4E00}';
            e += c.len_utf8();
        }
        f(&s[p..e], han);
        (gap, p) = (e, e);
    }
    if gap < b.len() {
        f(&s[gap..], false);
    }
}

/// Where stage 3 matches at `p` (char `c` of bits `k`, `n` bytes), or `None`.
#[inline(always)]
fn match_at(s: &str, p: usize, c: char, k: u8, n: usize) -> Option<usize> {
    let b = s.as_bytes();
    let next = p + n;
    // [!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+ : ASCII letters only.
    if c.is_ascii_punctuation() && next < b.len() && b[next].is_ascii_alphabetic() {
        let mut e = next + 1;
        while e < b.len() && b[e].is_ascii_alphabetic() {
            e += 1;
        }
        return Some(e);
    }
    // [^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+ : from a letter or mark, its run (a mark may also be
    // the prefix: the run from it ends at the same place); else one prefix char before a run.
    if k & LM != 0 {
        return Some(bits_run_end(s, p, LM));
    }
    if k & PUNCT == 0 && c != '\r' && c != '\n' && next < b.len() && at(s, next).1 & LM != 0 {
        return Some(bits_run_end(s, next, LM));
    }
    // ` ?[\p{P}\p{S}]+[\r\n]*` : the space only where punctuation follows it.
    let q = if c == ' ' { next } else { p };
    if q < b.len() && (if q == p { k } else { at(s, q).1 }) & PUNCT != 0 {
        let mut e = bits_run_end(s, q, PUNCT);
        while e < b.len() && (b[e] == b'\r' || b[e] == b'\n') {
            e += 1;
        }
        return Some(e);
    }
    // \s*[\r\n]+|\s+(?!\S)|\s+
    (k & SPACE != 0).then(|| whitespace_end(s, p, true))
}

/// Stage 3: its matches and the gaps between them, 64 bytes at a time where the text is ASCII
/// without digits or control characters ([`super::blocks`]), else piece by piece.
pub(crate) fn split_deepseek3_main<'a>(s: &'a str, f: &mut impl FnMut(&'a str)) {
    split_windows(s, Rules::DeepSeek3, deepseek3_main_end, f);
}

/// Where stage 3's piece that starts at `p` ends: its match there, or the gap up to where
/// the next match starts. (What comes after a piece depends only on the text from its end:
/// the next search starts there.)
#[inline(always)]
pub(super) fn deepseek3_main_end(s: &str, p: usize) -> usize {
    let (c, k, n) = at(s, p);
    if let Some(e) = match_at(s, p, c, k, n) {
        return e;
    }
    let mut q = p + n;
    while q < s.len() {
        let (c, k, n) = at(s, q);
        if match_at(s, q, c, k, n).is_some() {
            break;
        }
        q += n;
    }
    q
}

/// The three stages in turn (stage 1 with groups of `max` digits). A group of digits passes
/// stages 2 and 3 whole (no CJK char in it, no alternative of stage 3 matches a digit alone),
/// and so does a run of ideographs through stage 3 (`[\p{L}\p{M}]+` takes it all).
pub(crate) fn split_deepseek3<'a>(s: &'a str, max: usize, f: &mut impl FnMut(&'a str)) {
    digit_groups(s, max, &mut |a, digits| {
        if digits {
            return f(a);
        }
        cjk_runs(a, &mut |b, han| {
            if han {
                f(b)
            } else {
                split_deepseek3_main(b, f)
            }
        });
    });
}

#[cfg(test)]
mod tests {
    use super::super::pretok::{PreTokenizer, Splitter, Stage};
    use super::super::tables::{
        DEEPSEEK3_CJK_PATTERN, DEEPSEEK3_DIGITS_PATTERN, DEEPSEEK3_PATTERN,
    };
    use super::super::ByteLevelTokenizer;

    fn pieces(pre: &PreTokenizer, s: &str) -> Vec<String> {
        let mut v = Vec::new();
        pre.split(s, &mut |p| v.push(p.to_string()));
        v
    }

    fn stages(hand: bool, which: &[&str]) -> PreTokenizer {
        let stages = which
            .iter()
            .map(|p| {
                Stage::Split(if hand {
                    let sp = Splitter::for_pattern(p).unwrap();
                    assert!(sp.is_hand_written(), "{p}");
                    sp
                } else {
                    Splitter::Regex(Box::new(fancy_regex::Regex::new(p).unwrap()))
                })
            })
            .collect();
        PreTokenizer { stages }
    }

    /// Characters where the alternatives part: every class the pattern names, the CJK ranges'
    /// edges and the non-letters inside them (゛ Sk, ゠ ・ P, U+3040/U+3097 unassigned), marks,
    /// controls, digits of other scripts, CR/LF and other whitespace.
    const ALPHABET: &[&str] = &[
        "a",
        "Z",
        "é",
        "ǅ",
        "ʰ",
        "\u{0301}",
        "中",
        "\u{4E00}",
        "\u{9FA5}",
        "\u{9FA6}",
        "\u{4DFF}",
        "あ",
        "ア",
        "ー",
        "゛",
        "゠",
        "・",
        "\u{3040}",
        "\u{3097}",
        "\u{309F}",
        "\u{30FF}",
        "\u{3100}",
        "𠀀",
        "1",
        "٣",
        "²",
        "①",
        "Ⅻ",
        "〇",
        " ",
        "  ",
        "\t",
        "\r",
        "\n",
        "\r\n",
        "\u{3000}",
        "\u{A0}",
        "\u{85}",
        "\u{2028}",
        "'",
        "'s",
        "\"",
        "$",
        "-",
        "_",
        "\\",
        "`",
        "~",
        "/",
        "，",
        "。",
        "“",
        "😀",
        "\u{200D}",
        "\u{200B}",
        "\u{0}",
        "\u{1F}",
        "\u{7F}",
        "\u{E000}",
        "\u{10FFFD}",
        "\u{E0100}",
        "x'll",
        "(a)",
        ".abc",
        "...",
        "!!",
        " !",
        "12345",
        "١٢٣٤",
    ];

    /// Each stage alone, and the three in order (the fused path), against fancy-regex, on
    /// fixed cases and on 20,000 strings of 1-12 atoms drawn from [`ALPHABET`].
    #[test]
    fn hand_written_equals_regex() {
        let mut texts: Vec<String> = [
            "Hello world 2024年12月，DeepSeek-V3发布了。",
            "中文ABC中文 abc中 ひらがなカタカナ・ー漢字 ア゛",
            "don't I'LL x.y/z (a) [b] {c} $d @e #f",
            "  \r\n\r\n  x\r\n  \n ",
            "1234567 12 1 ١٢٣٤٥ ²³⁴",
            " \u{3000}a\u{3000}\u{3000}中 \ta\t1a",
            "x\u{0301}y \u{0301}\u{0301}a \u{0301}",
            "😀😀 a😀 \u{200D}a \u{0}a \u{1F}1",
            "...abc ...中 ,,, !!\n\n",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let n = 1 + (x % 12) as usize;
            let mut t = String::new();
            let mut y = x;
            for _ in 0..n {
                y = y
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                t.push_str(ALPHABET[(y >> 33) as usize % ALPHABET.len()]);
            }
            texts.push(t);
        }
        let all = [
            DEEPSEEK3_DIGITS_PATTERN,
            DEEPSEEK3_CJK_PATTERN,
            DEEPSEEK3_PATTERN,
        ];
        let cases: Vec<Vec<&str>> = vec![
            vec![DEEPSEEK3_DIGITS_PATTERN],
            vec![DEEPSEEK3_CJK_PATTERN],
            vec![DEEPSEEK3_PATTERN],
            all.to_vec(),
        ];
        for which in cases {
            let (fast, slow) = (stages(true, &which), stages(false, &which));
            for t in &texts {
                assert_eq!(pieces(&fast, t), pieces(&slow, t), "{which:?} {t:?}");
            }
        }
    }

    /// DeepSeek-V3's `pre_tokenizer` as its `tokenizer.json` spells it (JSON escapes and all;
    /// `deepseek-ai/DeepSeek-V3`, the same in DeepSeek-R1's and V3.2's) loads onto the
    /// hand-written splitters, and splits as the three stages do.
    #[test]
    fn loads_deepseek_v3s_pre_tokenizer() {
        let pre = r##"{"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": "\\p{N}{1,3}"}, "behavior": "Isolated", "invert": false},
            {"type": "Split", "pattern": {"Regex": "[一-龥぀-ゟ゠-ヿ]+"}, "behavior": "Isolated", "invert": false},
            {"type": "Split", "pattern": {"Regex": "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+"}, "behavior": "Isolated", "invert": false},
            {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}]}"##;
        let json = format!(
            r#"{{"model": {{"type": "BPE", "vocab": {{"a": 0, "b": 1}}, "merges": []}}, "pre_tokenizer": {pre}, "decoder": {{"type": "ByteLevel"}}}}"#
        );
        let tok = ByteLevelTokenizer::from_json_bytes(json.as_bytes(), None, "t.json").unwrap();
        assert!(tok.hand_written_pretokenizer());
        let mut v = Vec::new();
        tok.for_each_pretoken("DeepSeek-V3于2024年12月发布。 It's\r\n", &mut |p| {
            v.push(p.to_string())
        });
        let want = [
            "DeepSeek",
            "-V",
            "3",
            "于",
            "202",
            "4",
            "年",
            "12",
            "月发布",
            "。",
            " It",
            "'s",
            "\r\n",
        ];
        assert_eq!(v, want);
    }
}

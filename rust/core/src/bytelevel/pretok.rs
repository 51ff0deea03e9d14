//! Pre-tokenizers: text → the pieces BPE sees.
//!
//! The patterns of the known bases are hand-written splitters (a regex engine per piece costs
//! more than the BPE of Chinese pieces):
//! - `Splitter::Gpt2`: `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`,
//!   HF's ByteLevel pre-tokenizer with `use_regex` (GPT-2, SmolLM2);
//! - `Splitter::Cl100k`: `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,K}|
//!   ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+` with K = 3 (cl100k, LLaMA-3) or 1 (Qwen2);
//! - `Splitter::O200k`: o200k's (LLaMA-4) and Tekken's case-class patterns (`super::o200k`);
//! - `Splitter::DigitGroups`, `Splitter::Cjk`, `Splitter::DeepSeek3`: the three `Split` stages of
//!   DeepSeek-V3's pre-tokenizer (`super::deepseek`), run as one when they come in that order.
//!
//! Each splitter decides at every position which alternative the leftmost-first regex would
//! take (comments at each step give the reasoning); any other pattern runs on `fancy-regex`.
//! Every splitter is linear in the text: no alternative looks further than the run it matches.
//! The cl100k and o200k splitters take ASCII text 64 bytes at a time (`super::blocks`), and the
//! rest piece by piece with the same rules (`cl100k_end`, `super::o200k::o200k_end`).

use super::blocks::{split_windows, Rules};
use super::deepseek::{split_cjk, split_deepseek3, split_deepseek3_main, split_digit_groups};
use super::o200k::split_o200k;
use super::tables::{
    DEEPSEEK3_CJK_PATTERN, DEEPSEEK3_DIGITS_PATTERN, DEEPSEEK3_PATTERN, GPT2_PATTERN,
    LLAMA3_PATTERN, O200K_PATTERN, QWEN2_PATTERN, TEKKEN_PATTERN,
};
use super::unicode::{class, LETTER, NUMBER, OTHER, SPACE};

pub enum Splitter {
    Gpt2,
    Cl100k {
        max_digits: usize,
    },
    /// o200k (LLaMA-4): contractions, up to 3 digits; Tekken: neither (see [`super::o200k`]).
    O200k {
        contractions: bool,
        max_digits: usize,
    },
    /// `\p{N}{1,K}` (DeepSeek-V3's first stage, K = 3).
    DigitGroups {
        max_digits: usize,
    },
    /// DeepSeek-V3's second stage: runs of CJK ideographs and kana.
    Cjk,
    /// DeepSeek-V3's third stage.
    DeepSeek3,
    Regex(Box<fancy_regex::Regex>),
}

/// One stage of a pre-tokenizer `Sequence`.
pub enum Stage {
    /// HF `Digits`: every `\p{N}` its own piece (`individual`), or each run of them.
    Digits { individual: bool },
    /// HF `Split(pattern, Isolated)` / ByteLevel's regex / a tiktoken pattern: matches and the
    /// gaps between them are the pieces.
    Split(Splitter),
}

impl Splitter {
    /// The hand-written splitter for a known pattern, else the pattern compiled.
    pub fn for_pattern(pattern: &str) -> Result<Self, String> {
        Ok(match pattern {
            GPT2_PATTERN => Splitter::Gpt2,
            LLAMA3_PATTERN => Splitter::Cl100k { max_digits: 3 },
            QWEN2_PATTERN => Splitter::Cl100k { max_digits: 1 },
            O200K_PATTERN => Splitter::O200k {
                contractions: true,
                max_digits: 3,
            },
            TEKKEN_PATTERN => Splitter::O200k {
                contractions: false,
                max_digits: 1,
            },
            DEEPSEEK3_DIGITS_PATTERN => Splitter::DigitGroups { max_digits: 3 },
            DEEPSEEK3_CJK_PATTERN => Splitter::Cjk,
            DEEPSEEK3_PATTERN => Splitter::DeepSeek3,
            p => Splitter::Regex(Box::new(
                fancy_regex::Regex::new(p).map_err(|e| format!("{e}"))?,
            )),
        })
    }

    pub fn is_hand_written(&self) -> bool {
        !matches!(self, Splitter::Regex(_))
    }

    #[inline]
    pub fn split<'a>(&self, text: &'a str, f: &mut impl FnMut(&'a str)) {
        match self {
            Splitter::Gpt2 => split_gpt2(text, f),
            Splitter::Cl100k { max_digits } => split_cl100k(text, *max_digits, f),
            Splitter::O200k {
                contractions,
                max_digits,
            } => split_o200k(text, *contractions, *max_digits, f),
            Splitter::DigitGroups { max_digits } => split_digit_groups(text, *max_digits, f),
            Splitter::Cjk => split_cjk(text, f),
            Splitter::DeepSeek3 => split_deepseek3_main(text, f),
            Splitter::Regex(re) => split_regex(re, text, f),
        }
    }
}

/// The char starting at byte `i` of `s` (`i` on a boundary, `i < s.len()`) and its class.
#[inline(always)]
fn at(s: &str, i: usize) -> (char, u8) {
    let b = s.as_bytes()[i];
    if b < 0x80 {
        return (b as char, ascii_class(b));
    }
    // SAFETY-free: `i` is a char boundary, so the slice starts with a whole char.
    let c = s[i..].chars().next().unwrap_or('\0');
    (c, class(c))
}

#[inline(always)]
fn ascii_class(b: u8) -> u8 {
    match b {
        b'a'..=b'z' | b'A'..=b'Z' => LETTER,
        b'0'..=b'9' => NUMBER,
        b'\t' | b'\n' | 0x0B | 0x0C | b'\r' | b' ' => SPACE,
        _ => OTHER,
    }
}

/// How many of the first eight bytes of `b` are ASCII letters (`upper`: either case; else
/// lowercase only) before the first that is not: a whole word of them at once, without a
/// branch per byte.
#[inline(always)]
pub(super) fn ascii_letters(b: &[u8], upper: bool) -> usize {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x80 * LO;
    let x = u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
    // Each byte with its high bit dropped (and, for either case, lower-cased) lies in
    // 0..=0x7F: adding 0x1F sets its high bit iff it is >= b'a', adding 0x05 iff it is > b'z'
    // (no carry leaves a byte). A byte with its high bit set is no ASCII letter.
    let t = (x & !HIGH) | if upper { 0x20 * LO } else { 0 };
    let letter = (t + 0x1F * LO) & !(t + 0x05 * LO) & !x & HIGH;
    ((!letter & HIGH).trailing_zeros() / 8) as usize
}

/// `i` moved past the ASCII letters (`upper`: either case) at `b[i..]`, eight at a time while
/// eight bytes are left and `*max` allows; the caller's loop finishes the run.
#[inline(always)]
pub(super) fn skip_ascii_letters(b: &[u8], mut i: usize, upper: bool, max: &mut usize) -> usize {
    while *max >= 8 && i + 8 <= b.len() {
        let n = ascii_letters(&b[i..i + 8], upper);
        i += n;
        *max -= n;
        if n < 8 {
            break;
        }
    }
    i
}

/// End of the run of chars of class `k` starting at `i` (at most `max` chars).
#[inline(always)]
pub(super) fn run_end(s: &str, mut i: usize, k: u8, mut max: usize) -> usize {
    let b = s.as_bytes();
    if k == LETTER {
        i = skip_ascii_letters(b, i, true, &mut max);
    }
    while i < b.len() && max > 0 {
        if b[i] < 0x80 {
            if ascii_class(b[i]) != k {
                break;
            }
            i += 1;
        } else {
            let (c, ck) = at(s, i);
            if ck != k {
                break;
            }
            i += c.len_utf8();
        }
        max -= 1;
    }
    i
}

/// Length of the contraction after an apostrophe at `i - 1` (`'s|'t|'re|'ve|'m|'ll|'d`), or 0.
/// `fold`: case-insensitive as `(?i:...)` (simple case folding: `ſ` U+017F folds to `s`).
#[inline]
pub(super) fn contraction(s: &str, i: usize, fold: bool) -> usize {
    contraction_at(&s.as_bytes()[i..], fold)
}

/// [`contraction`] at the start of `b`.
#[inline]
pub(super) fn contraction_at(b: &[u8], fold: bool) -> usize {
    let lower = |x: u8| if fold { x.to_ascii_lowercase() } else { x };
    match b.first().map(|&x| lower(x)) {
        Some(b's' | b't' | b'm' | b'd') => 1,
        Some(b'r' | b'v') if b.get(1).map(|&x| lower(x)) == Some(b'e') => 2,
        Some(b'l') if b.get(1).map(|&x| lower(x)) == Some(b'l') => 2,
        _ if fold && b.starts_with("ſ".as_bytes()) => 2,
        _ => 0,
    }
}

/// Where the whitespace alternatives end for a whitespace run starting at `p`:
/// `newline_alt`: `\s*[\r\n]+` first (through the run's last `\r`/`\n`); then `\s+(?!\S)`
/// (the run up to its last char when a non-space follows; the whole run at the end of the
/// text); then `\s+` (a single whitespace char followed by a non-space).
#[inline]
pub(super) fn whitespace_end(s: &str, p: usize, newline_alt: bool) -> usize {
    let b = s.as_bytes();
    let mut i = p;
    let mut last_nl = None;
    let mut last_start = p;
    while i < b.len() {
        let (c, k) = at(s, i);
        if k != SPACE {
            break;
        }
        if c == '\r' || c == '\n' {
            last_nl = Some(i + 1);
        }
        last_start = i;
        i += c.len_utf8();
    }
    if newline_alt {
        if let Some(e) = last_nl {
            return e;
        }
    }
    if i == b.len() || last_start == p {
        i
    } else {
        last_start
    }
}

fn split_gpt2<'a>(s: &'a str, f: &mut impl FnMut(&'a str)) {
    let mut p = 0;
    while p < s.len() {
        let (c, k) = at(s, p);
        // 's|'t|... (case-sensitive), before everything else.
        if c == '\'' {
            let n = contraction(s, p + 1, false);
            if n > 0 {
                f(&s[p..p + 1 + n]);
                p += 1 + n;
                continue;
            }
        }
        // ` ?X+` for X = \p{L}, \p{N}, [^\s\p{L}\p{N}]: an optional literal space, then a run.
        let q = if c == ' ' { p + 1 } else { p };
        if q < s.len() {
            let k2 = if q == p { k } else { at(s, q).1 };
            if k2 != SPACE {
                let e = run_end(s, q, k2, usize::MAX);
                f(&s[p..e]);
                p = e;
                continue;
            }
        }
        let e = whitespace_end(s, p, false);
        f(&s[p..e]);
        p = e;
    }
}

fn split_cl100k<'a>(s: &'a str, max_digits: usize, f: &mut impl FnMut(&'a str)) {
    let rules = Rules::Cl100k { max_digits };
    split_windows(s, rules, |s, p| cl100k_end(s, p, max_digits), f);
}

/// Where the cl100k piece that starts at `p` ends.
#[inline(always)]
pub(super) fn cl100k_end(s: &str, p: usize, max_digits: usize) -> usize {
    let (c, k) = at(s, p);
    let cl = c.len_utf8();
    // (?i:'s|'t|'re|'ve|'m|'ll|'d)
    if c == '\'' {
        let n = contraction(s, p + 1, true);
        if n > 0 {
            return p + 1 + n;
        }
    }
    // [^\r\n\p{L}\p{N}]?\p{L}+ : a letter run, with one leading non-letter, non-digit,
    // non-newline char (a space, a tab, punctuation, an apostrophe) when a letter follows.
    if k == LETTER {
        return run_end(s, p, LETTER, usize::MAX);
    }
    if k != NUMBER && c != '\r' && c != '\n' && p + cl < s.len() && at(s, p + cl).1 == LETTER {
        return run_end(s, p + cl, LETTER, usize::MAX);
    }
    // \p{N}{1,K}
    if k == NUMBER {
        return run_end(s, p, NUMBER, max_digits);
    }
    punct_or_space_end(s, p, c, k, false)
}

/// The last two steps of the cl100k and o200k splitters at `p` (char `c`, [`class`] `k`):
/// ` ?[^\s\p{L}\p{N}]+[\r\n]*` (`slash`: `[\r\n/]*`, o200k's), else, when only whitespace is
/// left, `\s*[\r\n]+|\s+(?!\S)|\s+`. Where the piece ends.
#[inline]
pub(super) fn punct_or_space_end(s: &str, p: usize, c: char, k: u8, slash: bool) -> usize {
    let q = if c == ' ' { p + 1 } else { p };
    if q < s.len() && (if q == p { k } else { at(s, q).1 }) == OTHER {
        let mut e = run_end(s, q, OTHER, usize::MAX);
        let b = s.as_bytes();
        while e < b.len() && (b[e] == b'\r' || b[e] == b'\n' || (slash && b[e] == b'/')) {
            e += 1;
        }
        return e;
    }
    whitespace_end(s, p, true)
}

fn split_regex<'a>(re: &fancy_regex::Regex, s: &'a str, f: &mut impl FnMut(&'a str)) {
    // HF Split(Isolated): each match is a piece and so is each gap between matches.
    let mut last = 0;
    for m in re.find_iter(s) {
        let Ok(m) = m else {
            // A backtracking limit: the rest as one piece (fancy-regex's default limit is
            // far above any text it can reach on these patterns).
            break;
        };
        if m.start() > last {
            f(&s[last..m.start()]);
        }
        if m.end() > m.start() {
            f(m.as_str());
        }
        last = m.end();
    }
    if last < s.len() {
        f(&s[last..]);
    }
}

/// HF `Digits`: every digit (`\p{N}`, Rust's `char::is_numeric`) its own piece, or each run.
fn split_digits<'a>(s: &'a str, individual: bool, f: &mut dyn FnMut(&'a str)) {
    let mut start = 0;
    let mut in_digits = false;
    for (i, c) in s.char_indices() {
        let d = c.is_numeric();
        if d && individual {
            if i > start {
                f(&s[start..i]);
            }
            f(&s[i..i + c.len_utf8()]);
            start = i + c.len_utf8();
        } else if d != in_digits && i > start {
            f(&s[start..i]);
            start = i;
        }
        in_digits = d;
    }
    if start < s.len() {
        f(&s[start..]);
    }
}

/// The stages of a pre-tokenizer, applied in order (each to the pieces of the previous).
pub struct PreTokenizer {
    pub(crate) stages: Vec<Stage>,
}

impl PreTokenizer {
    pub fn split<'a>(&self, text: &'a str, f: &mut impl FnMut(&'a str)) {
        match self.stages.as_slice() {
            [] => f(text),
            [Stage::Split(sp)] => sp.split(text, f),
            [Stage::Split(Splitter::DigitGroups { max_digits }), Stage::Split(Splitter::Cjk), Stage::Split(Splitter::DeepSeek3)] => {
                split_deepseek3(text, *max_digits, f)
            }
            stages => run_stages(stages, text, f),
        }
    }
}

fn run_stages<'a>(stages: &[Stage], text: &'a str, f: &mut dyn FnMut(&'a str)) {
    let Some((first, rest)) = stages.split_first() else {
        f(text);
        return;
    };
    let mut next = |piece: &'a str| run_stages(rest, piece, f);
    match first {
        Stage::Digits { individual } => split_digits(text, *individual, &mut next),
        Stage::Split(sp) => sp.split(text, &mut next),
    }
}

/// A xorshift generator for the tests: `next(m)` is in `0..m`.
#[cfg(test)]
pub(super) fn test_rng(mut seed: u64) -> impl FnMut(usize) -> usize {
    move |m| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed as usize % m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(sp: &Splitter, s: &str) -> Vec<String> {
        let mut v = Vec::new();
        sp.split(s, &mut |p| v.push(p.to_string()));
        v
    }

    /// The hand-written splitters against the same pattern on fancy-regex.
    #[test]
    fn hand_written_equals_regex() {
        let texts = [
            "Hello world",
            "  two  spaces  ",
            "a\r\n\r\n b",
            "don't I'LL 'S 'ſ x'",
            "12345 6789x",
            "(hello) ,,, !!\n\n",
            "中华人民共和国，成立了。",
            "\t\tx\u{3000}y  \n",
            "'llama 'Re",
            " ",
            "\n",
            "a ",
            "a  ",
            " \n ",
            "x\u{0301}y ²³⁴⁵ 😀😀 a😀",
            "\r\n",
            "  \r\n  x",
            "HelloWorld ABCdef 中文ABC 中A abcDEF'S x'll ǅx Ǆǅǆ",
            "\u{0301}\u{0301}a \u{0301} 'a \u{0301}'s x\u{0301}Y\u{0301}",
            " ٌabc 1234567 a/b//\n/ ..//\r\n x 𝐀𝐚 𝐚𝐀 中's ABC'LL",
            "Ǆ'  ǅ' ʰʰ ʰA Aʰ aʰ ʰa 𠀀A A𠀀 🙂ab",
        ];
        for (name, pat) in [
            ("gpt2", GPT2_PATTERN),
            ("llama3", LLAMA3_PATTERN),
            ("qwen2", QWEN2_PATTERN),
            ("o200k", O200K_PATTERN),
            ("tekken", TEKKEN_PATTERN),
        ] {
            let fast = Splitter::for_pattern(pat).unwrap();
            assert!(fast.is_hand_written());
            let slow = Splitter::Regex(Box::new(fancy_regex::Regex::new(pat).unwrap()));
            for t in texts {
                assert_eq!(pieces(&fast, t), pieces(&slow, t), "{name} {t:?}");
            }
        }
    }

    /// Letter runs that cross the eight-byte steps of [`ascii_letters`], beside the bytes
    /// that border the ASCII letter ranges (`@`, `[`, a backtick, `{`, DEL) and non-ASCII chars whose bytes
    /// look like letters once their high bit is dropped (`Á` is C3 81, `ţ` C5 A3).
    #[test]
    fn long_runs_equal_regex() {
        for b in 0..=255u8 {
            for at in 0..8 {
                let mut w = *b"abcdefgh";
                w[at] = b;
                for upper in [false, true] {
                    let is = |x: u8| x.is_ascii_lowercase() || upper && x.is_ascii_uppercase();
                    let want = w.iter().position(|&x| !is(x)).unwrap_or(8);
                    assert_eq!(ascii_letters(&w, upper), want, "{w:?} {upper}");
                }
            }
        }
        let atoms = [
            "a", "z", "A", "Z", "q", "Q", "@", "[", "`", "{", "\u{7f}", "Á", "ţ", "é", "É", "ʰ",
            "\u{301}", "'", "s", "ll", " ", "1", "中", ".", "\n", "/",
        ];
        let mut next = test_rng(99);
        let texts: Vec<String> = (0..4000)
            .map(|_| {
                (0..next(48))
                    .map(|_| {
                        // Mostly plain letters, so runs reach past eight bytes.
                        if next(3) > 0 {
                            atoms[next(6)]
                        } else {
                            atoms[next(atoms.len())]
                        }
                    })
                    .collect()
            })
            .collect();
        for pat in [
            GPT2_PATTERN,
            LLAMA3_PATTERN,
            QWEN2_PATTERN,
            O200K_PATTERN,
            TEKKEN_PATTERN,
        ] {
            let fast = Splitter::for_pattern(pat).unwrap();
            let slow = Splitter::Regex(Box::new(fancy_regex::Regex::new(pat).unwrap()));
            for t in &texts {
                assert_eq!(pieces(&fast, t), pieces(&slow, t), "{pat} {t:?}");
            }
        }
    }

    #[test]
    fn digits() {
        let mut v = Vec::new();
        split_digits("ab12 3c", true, &mut |p| v.push(p));
        assert_eq!(v, ["ab", "1", "2", " ", "3", "c"]);
        v.clear();
        split_digits("ab12 3c", false, &mut |p| v.push(p));
        assert_eq!(v, ["ab", "12", " ", "3", "c"]);
    }
}

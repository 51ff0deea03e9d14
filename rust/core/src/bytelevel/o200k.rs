//! The hand-written splitter of o200k's pattern (GPT-4o, LLaMA-4) and Tekken's (Mistral),
//! with U = `[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]`, W = `[\p{Ll}\p{Lm}\p{Lo}\p{M}]`,
//! P = `[^\r\n\p{L}\p{N}]`, C = `(?i:'s|'t|'re|'ve|'m|'ll|'d)`:
//!
//! ```text
//! P?U*W+C? | P?U+W*C? | \p{N}{1,K} | ?[^\s\p{L}\p{N}]+[\r\n/]* | \s*[\r\n]+ | \s+(?!\S) | \s+
//! ```
//!
//! o200k: C present, K = 3; Tekken: no C, K = 1. Han characters, kana and marks are in both U
//! and W, so the backtracking of `U*W+` is decided here from the run (see [`letters_end`]).

use super::blocks::{split_windows, Rules};
use super::pretok::{contraction, punct_or_space_end, run_end, skip_ascii_letters};
use super::unicode::{class_bits, LETTER, LOWER, NUMBER, PUNCT, SPACE, UPPER};

/// Class bits of the char at byte `i` and its length.
#[inline(always)]
pub(super) fn at(s: &str, i: usize) -> (char, u8, usize) {
    let b = s.as_bytes()[i];
    if b < 0x80 {
        return (b as char, ASCII[b as usize], 1);
    }
    let c = s[i..].chars().next().unwrap_or('\0');
    (c, class_bits(c), c.len_utf8())
}

const ASCII: [u8; 128] = {
    let mut t = [0u8; 128];
    let mut i = 0;
    while i < 128 {
        let b = i as u8;
        t[i] = match b {
            b'a'..=b'z' => LETTER | LOWER,
            b'A'..=b'Z' => LETTER | UPPER,
            b'0'..=b'9' => NUMBER,
            b'\t' | b'\n' | 0x0B | 0x0C | b'\r' | b' ' => SPACE,
            b'!'..=b'/' | b':'..=b'@' | b'['..=b'`' | b'{'..=b'~' => PUNCT,
            _ => 0,
        };
        i += 1;
    }
    t
};

/// End of the run of chars whose bits include one of `bit`, from byte `i`.
#[inline(always)]
pub(super) fn bits_run_end(s: &str, mut i: usize, bit: u8) -> usize {
    let b = s.as_bytes();
    // Every ASCII letter has LETTER, and a lowercase one LOWER: runs of them go eight at a time.
    let mut max = usize::MAX;
    if bit & LETTER != 0 {
        i = skip_ascii_letters(b, i, true, &mut max);
    } else if bit & LOWER != 0 {
        i = skip_ascii_letters(b, i, false, &mut max);
    }
    while i < b.len() {
        if b[i] < 0x80 {
            if ASCII[b[i] as usize] & bit == 0 {
                break;
            }
            i += 1;
        } else {
            let (_, k, n) = at(s, i);
            if k & bit == 0 {
                break;
            }
            i += n;
        }
    }
    i
}

/// Where `U*W+` (`plus`) or `U+W*` (`!plus`) starting at byte `q` ends, before the contraction;
/// `None` when it does not match at `q`.
///
/// `U*` takes the whole run of U chars, then gives chars back until `W+` can start. If the char
/// after the run is in W (a lowercase letter: anything else in W is in U too), `W+` takes the W
/// run from there. Otherwise `W+` starts at the last char of the run that is in W, and that
/// char alone is its match (the chars after it in the run are not in W, nor is the one after
/// the run). `U+W*`: the U run (at least one char), then the W run after it.
#[inline]
fn letters_end(s: &str, q: usize, plus: bool) -> Option<usize> {
    let mut i = q;
    let mut last_w = None;
    let b = s.as_bytes();
    while i < b.len() {
        let (_, k, n) = at(s, i);
        if k & UPPER == 0 {
            break;
        }
        if k & LOWER != 0 {
            last_w = Some(i + n);
        }
        i += n;
    }
    let after_w = i < b.len() && at(s, i).1 & LOWER != 0;
    if after_w {
        return Some(bits_run_end(s, i, LOWER));
    }
    if plus {
        last_w
    } else {
        (i > q).then_some(i)
    }
}

pub(crate) fn split_o200k<'a>(
    s: &'a str,
    contractions: bool,
    max_digits: usize,
    f: &mut impl FnMut(&'a str),
) {
    let rules = Rules::O200k {
        contractions,
        max_digits,
    };
    split_windows(
        s,
        rules,
        |s, p| o200k_end(s, p, contractions, max_digits),
        f,
    );
}

/// Where the piece that starts at `p` ends.
#[inline(always)]
pub(super) fn o200k_end(s: &str, p: usize, contractions: bool, max_digits: usize) -> usize {
    let b = s.as_bytes();
    let (c, k, cl) = at(s, p);
    // P? is greedy: each letter alternative is tried with the prefix, then without it.
    let prefix = k & (LETTER | NUMBER) == 0 && c != '\r' && c != '\n' && p + cl < b.len();
    let mut end = None;
    for plus in [true, false] {
        if prefix {
            end = letters_end(s, p + cl, plus);
        }
        if end.is_none() && k & (UPPER | LOWER) != 0 {
            end = letters_end(s, p, plus);
        }
        if end.is_some() {
            break;
        }
    }
    if let Some(mut e) = end {
        if contractions && e < b.len() && b[e] == b'\'' {
            let n = contraction(s, e + 1, true);
            if n > 0 {
                e += 1 + n;
            }
        }
        return e;
    }
    // \p{N}{1,K}
    if k & NUMBER != 0 {
        return run_end(s, p, NUMBER, max_digits);
    }
    punct_or_space_end(s, p, c, k & (LETTER | NUMBER | SPACE), true)
}

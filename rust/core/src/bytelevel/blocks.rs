//! The cl100k splitter (LLaMA-3, Qwen2), the o200k one (LLaMA-4, Tekken) and DeepSeek-V3's third
//! stage ([`Rules::DeepSeek3`]) 64 bytes at a time on ASCII text: the bytes of a window are
//! classified at once into bit masks (SSE2 on x86-64), the piece starts are computed from the
//! masks with word operations, and the pieces come out between consecutive set bits, with no
//! branch per byte or per alternative (English, one thread: see benches/RESULTS.md, seventh
//! session).
//!
//! The window starts at a piece start `p`, and the splitter's choice of pieces from `p` depends
//! only on the text from `p` on, so the window is split as if it were a text of its own. A start
//! at `i` is decided by the classes of bytes `i - 2..=i` (looking back) and, inside a whitespace
//! run, by where the run ends; so every start before the window's last whitespace run (and
//! before its first non-ASCII byte) is trusted, and the next window starts at the last trusted
//! start. The text's last bytes (fewer than 64, at least 8) are split in a copy followed by
//! non-ASCII bytes: the starts a window trusts hold whatever follows, the end of the text too.
//! Anything else (non-ASCII bytes near the start, a piece longer than the window, the last few
//! pieces) goes to the one-piece-at-a-time splitter.
//!
//! Classes: L `[A-Za-z]`, N `[0-9]`, W whitespace (`\t\n\v\f\r `), R `[\r\n]`, Z = W without R,
//! O every other ASCII byte. Where the pattern
//! `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,K}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
//! starts pieces, by the class of the byte before (`prev`) and of the byte itself:
//! - after L: any non-L (a letter run is maximal);
//! - after N: any non-N; inside a digit run every K-th digit;
//! - after O: N; Z; L only when the O is not a piece start itself (it then prefixes the letters:
//!   an O is a start unless an O or a space precedes it). R right after an O run, and the R
//!   chars right after those, belong to the O piece (`[\r\n]*`): "absorbed";
//! - after an absorbed R: anything but R;
//! - a whitespace run W' (W without the absorbed R) starts a piece; inside it, the byte after
//!   its last R (`\s*[\r\n]+`), and its last byte when the part after the last R has two or more
//!   (`\s+(?!\S)`); after it: N; O unless the last byte is a space (` ?` takes it); L unless the
//!   last byte is in Z (the letter prefix takes it): a run's last byte, if in Z, is always a start;
//! - an apostrophe that is a start, followed by a contraction: a start after the contraction.
//!
//! o200k/Tekken on ASCII differ in three places: a letter run also splits before an uppercase
//! letter that follows a lowercase one (`U*W+|U+W*`); the O piece takes `[\r\n/]*`; and (o200k)
//! a contraction right after letters belongs to their piece (`...W+C?`) instead of starting one.

use super::pretok::contraction_at;

/// Bit masks of one 64-byte window (bit `i`: byte `i`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Classes {
    pub(super) letter: u64,
    pub(super) upper: u64,
    pub(super) digit: u64,
    pub(super) space: u64,
    pub(super) newline: u64,
    pub(super) blank: u64,
    pub(super) quote: u64,
    pub(super) slash: u64,
    pub(super) high: u64,
}

/// The classes of `b[..64]`, one byte at a time (the reference, and the code on other CPUs).
#[cfg(any(test, not(target_arch = "x86_64")))]
pub(super) fn classify_bytes(b: &[u8]) -> Classes {
    let mut c = Classes::default();
    for (i, &x) in b[..64].iter().enumerate() {
        let bit = 1u64 << i;
        let set = |m: &mut u64, yes: bool| *m |= if yes { bit } else { 0 };
        set(&mut c.letter, x.is_ascii_alphabetic());
        set(&mut c.upper, x.is_ascii_uppercase());
        set(&mut c.digit, x.is_ascii_digit());
        set(&mut c.space, matches!(x, b'\t'..=b'\r' | b' '));
        set(&mut c.newline, x == b'\r' || x == b'\n');
        set(&mut c.blank, x == b' ');
        set(&mut c.quote, x == b'\'');
        set(&mut c.slash, x == b'/');
        set(&mut c.high, x >= 0x80);
    }
    c
}

/// [`classify_bytes`] with SSE2, 16 bytes a step.
///
/// # Safety
/// `b` must have at least 64 bytes.
#[cfg(target_arch = "x86_64")]
#[inline]
unsafe fn classify_sse2(b: &[u8]) -> Classes {
    use std::arch::x86_64::*;
    let mut c = Classes::default();
    let set = |x: u8| _mm_set1_epi8(x as i8);
    for k in 0..4 {
        // Bytes >= 0x80 are negative as i8, so the signed range tests below leave them out.
        let v = _mm_loadu_si128(b.as_ptr().add(16 * k) as *const __m128i);
        let bits = |m: __m128i| (_mm_movemask_epi8(m) as u32 as u64) << (16 * k);
        let folded = _mm_or_si128(v, set(0x20));
        let letter = _mm_and_si128(
            _mm_cmpgt_epi8(folded, set(b'a' - 1)),
            _mm_cmplt_epi8(folded, set(b'z' + 1)),
        );
        let upper = _mm_and_si128(
            _mm_cmpgt_epi8(v, set(b'A' - 1)),
            _mm_cmplt_epi8(v, set(b'Z' + 1)),
        );
        let digit = _mm_and_si128(
            _mm_cmpgt_epi8(v, set(b'0' - 1)),
            _mm_cmplt_epi8(v, set(b'9' + 1)),
        );
        let blank = _mm_cmpeq_epi8(v, set(b' '));
        let space = _mm_or_si128(
            blank,
            _mm_and_si128(
                _mm_cmpgt_epi8(v, set(b'\t' - 1)),
                _mm_cmplt_epi8(v, set(b'\r' + 1)),
            ),
        );
        let newline = _mm_or_si128(_mm_cmpeq_epi8(v, set(b'\n')), _mm_cmpeq_epi8(v, set(b'\r')));
        c.letter |= bits(letter);
        c.upper |= bits(upper);
        c.digit |= bits(digit);
        c.space |= bits(space);
        c.newline |= bits(newline);
        c.blank |= bits(blank);
        c.quote |= bits(_mm_cmpeq_epi8(v, set(b'\'')));
        c.slash |= bits(_mm_cmpeq_epi8(v, set(b'/')));
        c.high |= bits(v);
    }
    c
}

/// The bytes of `b[..64]` that are not ASCII (bit `i`: byte `i`; `b` has at least 64 bytes):
/// looked at first, so that Chinese text leaves a window after this alone.
#[inline]
fn high_bits(b: &[u8]) -> u64 {
    assert!(b.len() >= 64);
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::*;
        let mut high = 0;
        for k in 0..4 {
            // SAFETY: `b` has at least 64 bytes (asserted above); SSE2 is part of x86-64.
            let m = unsafe {
                _mm_movemask_epi8(_mm_loadu_si128(b.as_ptr().add(16 * k) as *const __m128i))
            };
            high |= (m as u32 as u64) << (16 * k);
        }
        high
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        b[..64]
            .iter()
            .enumerate()
            .fold(0, |h, (i, &x)| h | ((x >> 7) as u64) << i)
    }
}

/// The bytes of `b[..64]` below 0x20, non-ASCII ones or DEL (bit `i`: byte `i`; `b` has at
/// least 64 bytes): with the whitespace bits taken out, the control characters.
#[inline]
fn control_bits(b: &[u8]) -> u64 {
    assert!(b.len() >= 64);
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::*;
        let mut m = 0;
        for k in 0..4 {
            // SAFETY: `b` has at least 64 bytes (asserted above); SSE2 is part of x86-64.
            let bits = unsafe {
                let v = _mm_loadu_si128(b.as_ptr().add(16 * k) as *const __m128i);
                let low = _mm_cmplt_epi8(v, _mm_set1_epi8(0x20));
                let del = _mm_cmpeq_epi8(v, _mm_set1_epi8(0x7f));
                _mm_movemask_epi8(_mm_or_si128(low, del))
            };
            m |= (bits as u32 as u64) << (16 * k);
        }
        m
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        b[..64]
            .iter()
            .enumerate()
            .fold(0, |m, (i, &x)| m | ((x < 0x20 || x >= 0x7f) as u64) << i)
    }
}

/// The first byte at or after `p` that is not ASCII or (with `digits`) is an ASCII digit, or
/// `b.len()`: 16 bytes a step (SSE2 on x86-64), for the scans of DeepSeek-V3's first two
/// stages over ASCII text.
#[inline]
pub(super) fn skip_ascii(b: &[u8], mut p: usize, digits: bool) -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::*;
        while p + 16 <= b.len() {
            // SAFETY: `p + 16 <= b.len()`; SSE2 is part of x86-64.
            let m = unsafe {
                let v = _mm_loadu_si128(b.as_ptr().add(p) as *const __m128i);
                let mut m = _mm_movemask_epi8(v);
                if digits {
                    let d = _mm_and_si128(
                        _mm_cmpgt_epi8(v, _mm_set1_epi8(b'0' as i8 - 1)),
                        _mm_cmplt_epi8(v, _mm_set1_epi8(b'9' as i8 + 1)),
                    );
                    m |= _mm_movemask_epi8(d);
                }
                m as u32
            };
            if m != 0 {
                return p + m.trailing_zeros() as usize;
            }
            p += 16;
        }
    }
    while p < b.len() && b[p] < 0x80 && !(digits && b[p].is_ascii_digit()) {
        p += 1;
    }
    p
}

/// The classes of `b[..64]` (`b` has at least 64 bytes).
#[inline]
pub(super) fn classify(b: &[u8]) -> Classes {
    assert!(b.len() >= 64);
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: `b` has at least 64 bytes (asserted above); SSE2 is part of x86-64.
        unsafe { classify_sse2(b) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        classify_bytes(b)
    }
}

/// The bytes of the buffer a text's last bytes are split in (a window, and room for a
/// contraction read past it).
const TAIL: usize = 80;

/// What a window gives: the trusted piece starts after byte 0 (bit `i`: byte `i`), or, when
/// there are none, the byte before which the one-piece-at-a-time splitter should go on.
enum Window {
    Starts(u64),
    Scalar(usize),
}

/// Split `s` with `rules`: 64 bytes at a time where the text is ASCII, else piece by piece
/// with `end` (where the piece that starts at a byte ends: the splitter `rules` stand for).
#[inline(always)]
pub(super) fn split_windows<'a>(
    s: &'a str,
    rules: Rules,
    end: impl Fn(&str, usize) -> usize,
    f: &mut impl FnMut(&'a str),
) {
    let b = s.as_bytes();
    let mut p = 0;
    // The text's last bytes, followed by non-ASCII bytes: a window over them trusts only the
    // starts that hold whatever follows the text, so the ones it gives hold at its end too.
    let mut tail = [0x80u8; TAIL];
    while p < b.len() {
        let mut until = p + 1;
        let w = if p + 64 <= b.len() {
            Some(&b[p..])
        } else if b.len() - p >= 8 && b[p..p + 8].is_ascii() {
            tail[..b.len() - p].copy_from_slice(&b[p..]);
            tail[b.len() - p..].fill(0x80);
            Some(&tail[..])
        } else {
            None
        };
        if let Some(w) = w {
            match window(w, rules) {
                Window::Starts(mut starts) => {
                    let base = p;
                    while starts != 0 {
                        let e = base + starts.trailing_zeros() as usize;
                        f(&s[p..e]);
                        p = e;
                        starts &= starts - 1;
                    }
                    continue;
                }
                // At the tail: the rest piece by piece.
                Window::Scalar(_) if p + 64 > b.len() => until = b.len(),
                Window::Scalar(n) => until = p + n,
            }
        }
        while p < until.min(b.len()) {
            let e = end(s, p);
            f(&s[p..e]);
            p = e;
        }
    }
}

/// Which pattern a window is split by.
#[derive(Clone, Copy)]
pub(super) enum Rules {
    /// cl100k's (`K` = `max_digits`): a contraction is a piece of its own.
    Cl100k { max_digits: usize },
    /// o200k's (contractions after letters, `K` = 3) or Tekken's (none, `K` = 1): letter runs
    /// split before an uppercase letter that follows a lowercase one; `[\r\n/]*` after an O run.
    O200k {
        contractions: bool,
        max_digits: usize,
    },
    /// Stage 3 of DeepSeek-V3's pre-tokenizer ([`super::deepseek`]). On ASCII text without
    /// digits and control characters it splits as cl100k's pattern without contractions: its
    /// `[!"#...~][A-Za-z]+` and `[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+` together are cl100k's
    /// `[^\r\n\p{L}\p{N}]?\p{L}+` there (a letter run, or one with one prefix that is neither a
    /// letter nor CR/LF), `\p{P}\p{S}` is cl100k's `[^\s\p{L}\p{N}]` (the 32 punctuation
    /// characters), and the whitespace alternatives are the same. So the window stops before
    /// its first digit or control character (a digit may prefix letters here, and a control
    /// character is matched by no alternative), as before its first non-ASCII byte.
    DeepSeek3,
}

/// The pieces of `rules` in `w[..64]`, a window of a text that starts at a piece start (`w` may
/// go on past 64 bytes: a contraction is read there).
#[inline(always)]
fn window(w: &[u8], rules: Rules) -> Window {
    let (o200k, contractions, max_digits) = match rules {
        Rules::Cl100k { max_digits } => (false, true, max_digits),
        Rules::O200k {
            contractions,
            max_digits,
        } => (true, contractions, max_digits),
        Rules::DeepSeek3 => (false, false, 3),
    };
    // The window is cut before its first non-ASCII byte.
    let high = high_bits(w);
    let mut m = high.trailing_zeros() as usize;
    if m < 8 {
        // Mostly non-ASCII text: the other splitter, through the window's last non-ASCII byte.
        return Window::Scalar(64 - high.leading_zeros() as usize);
    }
    let c = classify(w);
    if let Rules::DeepSeek3 = rules {
        // ... and DeepSeek-V3's stage 3 before its first digit or control character.
        let stop = high | c.digit | control_bits(w) & !c.space;
        m = stop.trailing_zeros() as usize;
        if m < 8 {
            return Window::Scalar(64 - stop.leading_zeros() as usize);
        }
    }
    let valid = if m == 64 { !0 } else { (1u64 << m) - 1 };
    let (l, n, w_all, r) = (
        c.letter & valid,
        c.digit & valid,
        c.space & valid,
        c.newline & valid,
    );
    let blank = c.blank & valid;
    let o = valid & !(l | n | w_all);
    let prev = |x: u64| x << 1;
    let next = |x: u64| x >> 1;
    // The O piece's `[\r\n]*` (o200k: `[\r\n/]*`): from an R right after an O, the run of
    // R (and `/`) chars there.
    let chain = if o200k { r | (c.slash & valid) } else { r };
    let mut absorbed = 0u64;
    let mut seeds = r & prev(o);
    while seeds != 0 {
        let i = seeds.trailing_zeros();
        let len = (!(chain >> i)).trailing_zeros();
        let run = (u64::MAX >> (64 - len)) << i;
        absorbed |= run;
        seeds &= !run;
    }
    let ws = w_all & !absorbed;
    let rs = r & ws;
    let z = ws & !rs;
    let tab = z & !blank;

    let mut s = 1u64;
    s |= prev(l) & !l & valid;
    s |= prev(n) & !n & valid;
    s |= n & !prev(n);
    if max_digits == 1 {
        s |= n;
    } else if max_digits == 3 {
        let n3 = n & prev(n) & prev(prev(n));
        let mut g = n & !prev(n);
        loop {
            g = (g << 3) & n3;
            if g == 0 {
                break;
            }
            s |= g;
        }
    } else {
        return Window::Scalar(1);
    }
    s |= prev(o) & (n | z);
    // (An absorbed `/` ends its piece: the O after it is a start, and prefixes letters.)
    s |= prev(o) & l & prev(prev((o & !absorbed) | blank));
    s |= prev(absorbed) & !absorbed & valid;
    s |= ws & !prev(ws);
    s |= prev(rs) & !w_all & valid;
    s |= prev(z) & n;
    s |= prev(tab) & o;
    if o200k {
        s |= c.upper & prev(l & !c.upper);
    }
    // Inside a whitespace run: its last byte when the part after its last R has two or more...
    s |= z & prev(z) & !next(ws);
    // ... and the byte after its last R.
    let mut nl = rs;
    while nl != 0 {
        let i = nl.trailing_zeros() as usize;
        nl &= nl - 1;
        if i == 63 {
            break;
        }
        let run_end = i + 1 + (!(ws >> (i + 1))).trailing_zeros() as usize;
        let later = if nl == 0 {
            64
        } else {
            nl.trailing_zeros() as usize
        };
        if later >= run_end && i + 1 < run_end {
            s |= 1 << (i + 1);
        }
    }
    // Starts inside or after the window's last whitespace run wait for its end.
    let mut limit = m;
    if w_all >> (m - 1) & 1 == 1 {
        limit = m - (!(w_all << (64 - m))).leading_zeros() as usize;
    }
    let below = |i: usize| if i >= 64 { !0 } else { (1u64 << i) - 1 };
    s &= below(limit);
    if contractions {
        // cl100k: an apostrophe that starts a piece; o200k: one right after a letter (the
        // letters' piece takes the contraction). A start after the contraction.
        let mut q = c.quote & below(limit) & if o200k { prev(l) } else { s };
        let mut after = usize::MAX;
        while q != 0 {
            let i = q.trailing_zeros() as usize;
            q &= q - 1;
            if o200k && i == after {
                // Right after a contraction, not after a letters' piece: a start.
                continue;
            }
            let k = contraction_at(&w[i + 1..], true);
            if k == 0 {
                continue;
            }
            let end = i + 1 + k;
            if end >= limit {
                if o200k {
                    // Where the letters' piece ends is not known here.
                    s &= below(i);
                    break;
                }
                continue;
            }
            if o200k {
                s &= !(below(end) & !below(i));
            }
            s |= 1 << end;
            after = end;
        }
    }
    s &= !1;
    if s == 0 {
        Window::Scalar(1)
    } else {
        Window::Starts(s)
    }
}

#[cfg(test)]
mod tests {
    use super::super::deepseek::deepseek3_main_end;
    use super::super::o200k::o200k_end;
    use super::super::pretok::{cl100k_end, test_rng, PreTokenizer, Splitter, Stage};
    use super::super::tables::{
        DEEPSEEK3_CJK_PATTERN, DEEPSEEK3_DIGITS_PATTERN, DEEPSEEK3_PATTERN, LLAMA3_PATTERN,
        O200K_PATTERN, QWEN2_PATTERN, TEKKEN_PATTERN,
    };
    use super::*;

    fn pieces(sp: &Splitter, s: &str) -> Vec<String> {
        let mut v = Vec::new();
        sp.split(s, &mut |p| v.push(p.to_string()));
        v
    }

    /// The one-piece-at-a-time splitter (the windows left out).
    fn scalar(s: &str, end: impl Fn(&str, usize) -> usize) -> Vec<String> {
        let (mut v, mut p) = (Vec::new(), 0);
        while p < s.len() {
            let e = end(s, p);
            v.push(s[p..e].to_string());
            p = e;
        }
        v
    }

    /// Every byte value at every position of a window, against the byte-at-a-time reference.
    #[test]
    fn classify_equals_bytes() {
        let mix = b" aZ9'\n\r\t.\x0b\x0c\xc3\xa9_@[`{\x7f/0";
        let base: Vec<u8> = (0..80).map(|i| mix[i % mix.len()]).collect();
        for x in 0..=255u8 {
            for i in 0..64 {
                let mut w = base.clone();
                w[i] = x;
                assert_eq!(classify(&w), classify_bytes(&w), "{x} at {i}");
                assert_eq!(high_bits(&w), classify_bytes(&w).high, "{x} at {i}");
            }
        }
    }

    /// The windowed splitters and the one-piece-at-a-time ones against fancy-regex; and
    /// DeepSeek-V3's three stages (windows in its third) against the three regexes in turn.
    fn check(texts: &[String]) {
        type End<'a> = &'a dyn Fn(&str, usize) -> usize;
        let ends: [(&str, End); 5] = [
            (LLAMA3_PATTERN, &|s, p| cl100k_end(s, p, 3)),
            (QWEN2_PATTERN, &|s, p| cl100k_end(s, p, 1)),
            (O200K_PATTERN, &|s, p| o200k_end(s, p, true, 3)),
            (TEKKEN_PATTERN, &|s, p| o200k_end(s, p, false, 1)),
            (DEEPSEEK3_PATTERN, &deepseek3_main_end),
        ];
        for (pat, end) in ends {
            let fast = Splitter::for_pattern(pat).unwrap();
            assert!(fast.is_hand_written(), "{pat}");
            let slow = Splitter::Regex(Box::new(fancy_regex::Regex::new(pat).unwrap()));
            for t in texts {
                let want = pieces(&slow, t);
                assert_eq!(pieces(&fast, t), want, "{pat} {t:?}");
                assert_eq!(scalar(t, end), want, "scalar {pat} {t:?}");
            }
        }
        let three = [
            DEEPSEEK3_DIGITS_PATTERN,
            DEEPSEEK3_CJK_PATTERN,
            DEEPSEEK3_PATTERN,
        ];
        let stages = |hand: bool| PreTokenizer {
            stages: three
                .iter()
                .map(|p| {
                    Stage::Split(if hand {
                        Splitter::for_pattern(p).unwrap()
                    } else {
                        Splitter::Regex(Box::new(fancy_regex::Regex::new(p).unwrap()))
                    })
                })
                .collect(),
        };
        let (fast, slow) = (stages(true), stages(false));
        for t in texts {
            let (mut got, mut want) = (Vec::new(), Vec::new());
            fast.split(t, &mut |p| got.push(p.to_string()));
            slow.split(t, &mut |p| want.push(p.to_string()));
            assert_eq!(got, want, "DeepSeek-V3's three stages {t:?}");
        }
    }

    /// Every ASCII byte, and chars beside the ASCII classes, at every position of texts that
    /// cross several windows, against fancy-regex.
    #[test]
    fn every_byte_at_every_position() {
        let base = "    def f(x):\n        \"\"\"Return x's 12345 items, don'T 'RE-read.\"\"\"\r\n\t\treturn  x  \
                    (a)//b ;; It'll  \n\n  end 'S 'tis 0x7f, ";
        let mut inserts: Vec<String> = (0..128u8).map(|b| (b as char).to_string()).collect();
        inserts.extend(
            [
                "é", "中", "\u{3000}", "\u{a0}", "\u{85}", "ſ", "²", "\u{301}",
            ]
            .map(String::from),
        );
        let mut texts = Vec::new();
        for x in &inserts {
            for i in (0..=base.len()).filter(|&i| base.is_char_boundary(i)) {
                let mut t = base.to_string();
                t.insert_str(i, x);
                texts.push(t);
            }
        }
        check(&texts);
    }

    /// Random strings over atoms that hit every rule of the windows: runs longer than a
    /// window, whitespace runs with and without newlines, contractions, digit runs.
    #[test]
    fn random_texts_equal_regex() {
        let atoms = [
            "a",
            "Z",
            "q",
            "word",
            " ",
            "  ",
            "\t",
            "\n",
            "\r\n",
            "\r",
            "\x0b",
            "\x0c",
            "'",
            "'s",
            "'T",
            "'re",
            "'VE",
            "'ll",
            "'d",
            "'m",
            "1",
            "22",
            "333",
            "4444",
            ".",
            "(",
            ")",
            ",",
            "/",
            "\"",
            "\0",
            "\x7f",
            "-",
            "é",
            "中",
            "\u{3000}",
            "\u{a0}",
            "\u{85}",
            "ſ",
            "²",
            "        ",
            "abcdefghijklmnopqrstuvwxyz",
            "............",
            "\n\n\n",
            "Hello",
            "WORLD",
            "aB",
            "ABc",
            "//",
            "\n/",
            "/\n",
            "It'S",
        ];
        let mut next = test_rng(2024);
        let texts: Vec<String> = (0..3000)
            .map(|_| {
                // Mostly ASCII, so that most windows take the bit-mask path.
                let ascii = next(4) > 0;
                (0..next(120))
                    .map(|_| loop {
                        let a = atoms[next(atoms.len())];
                        if !ascii || a.is_ascii() {
                            break a;
                        }
                    })
                    .collect()
            })
            .collect();
        check(&texts);
    }
}

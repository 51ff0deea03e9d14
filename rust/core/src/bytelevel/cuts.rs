//! Cuts inside a pre-token between two three-byte characters (CJK, kana, Hangul ...) that no
//! token of the vocabulary spans: BPE never merges across such a cut, so each side is encoded
//! alone, and a side that is one character with a token of its own, or two characters that
//! are one token, is that token, with no trie walk and no compatibility check. On Chinese
//! about half the boundaries between two Han characters are cuts (Han runs of the first 800
//! reviews: Qwen3 1.9 characters a segment, 42 % of segments one character; LLaMA-4 1.6 and
//! 58 %; Tekken 1.3 and 76 %).
//! Tables: 256 KiB by code point, a 128 KiB bigram filter, 17 KiB of byte sets, and the
//! two-character tokens (Qwen3: 256 KiB).
//!
//! Why it is exact. Let c1 end and c2 start at p, both three-byte characters. A merge across
//! p makes a token T that spans p in the text: T = text[i..j], i < p < j. Either
//! 1. T starts inside c1: T begins with c1's last one or two bytes (continuation bytes) and
//!    goes on with c2's first byte, a lead byte E0-EF (`after` below);
//! 2. T holds all of c1 and ends inside c2: T ends with c2's first one or two bytes, after
//!    c1's last byte, a continuation byte (`before`);
//! 3. T holds all of c1 and all of c2: the six bytes c1 c2 occur in T (`bigrams`).
//!
//! Each is checked against every token of the vocabulary at load (reachable or not, so more
//! than M can make: a check that says "may span" only forgoes a cut). Where none can hold, no
//! merge of M ever crosses p, and by the argument of point 1 in [`super::backtrack`] M(s) is
//! M(text before p) followed by M(text after p). The cuts hold for the merge loop too
//! (a byte without a token is dropped there): c1's and c2's bytes must then all have tokens,
//! which the table records.

/// No token (the low 24 bits of an entry).
const NO_TOKEN: u32 = 0xFF_FFFF;
/// Entry flags (above the token): a token may start inside the character and go on into the
/// next (case 1), a token may end inside it after the previous one (case 2), a byte of it has
/// no token (no cut beside it).
const AFTER: u32 = 1 << 24;
const BEFORE: u32 = 1 << 25;
const NEVER: u32 = 1 << 26;
/// Bits of the bigram filter (128 KiB: it stays in the CPU's cache).
const BIGRAM_BITS: usize = 1 << 20;

pub(crate) struct CharCuts {
    /// By the 16 payload bits of a three-byte character: its flags and its token (the token M
    /// makes of its three bytes, or [`NO_TOKEN`]).
    chars: Vec<u32>,
    /// Case 1, by the one (`after1`: its low 6 bits) or two (`after2`: 12 bits) continuation
    /// bytes a token starts with: the lead bytes E0-EF (a bit each, by the low 4 bits) it goes
    /// on with.
    after1: Vec<u16>,
    after2: Vec<u16>,
    /// Case 2, by the lead byte (`before1`: its low 4 bits) or the lead and continuation byte
    /// (`before2`: 10 bits) a token ends with: the continuation bytes (a bit each, by the low
    /// 6 bits) before them in the token.
    before1: Vec<u64>,
    before2: Vec<u64>,
    /// One bit per pair of characters that occurs in some token (case 3), by a hash of their
    /// 32 payload bits; a false positive only forgoes a cut.
    bigrams: Vec<u64>,
    /// The reachable tokens of two three-byte characters, by their 32 payload bits: slots
    /// `key << 32 | id` (`u64::MAX`: empty), open addressing, at most half full. A segment of
    /// two characters that is such a token is that token, with no trie walk.
    pairs: Vec<u64>,
}

#[inline(always)]
fn is_cont(b: u8) -> bool {
    b & 0xC0 == 0x80
}

#[inline(always)]
fn is_lead3(b: u8) -> bool {
    b & 0xF0 == 0xE0
}

/// The 16 payload bits of the three-byte character `c`.
#[inline(always)]
fn payload(c: &[u8]) -> usize {
    ((c[0] & 15) as usize) << 12 | ((c[1] & 63) as usize) << 6 | (c[2] & 63) as usize
}

/// A three-byte character at the start of `t` (a lead byte E0-EF, two continuation bytes).
#[inline(always)]
fn char3(t: &[u8]) -> bool {
    t.len() >= 3 && is_lead3(t[0]) && is_cont(t[1]) && is_cont(t[2])
}

#[inline(always)]
fn bigram_bit(a: usize, b: usize) -> usize {
    ((a << 16 | b) as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) as usize >> (64 - 20)
}

impl CharCuts {
    /// The cuts of a vocabulary (`tokens[id]`: the model token's bytes; `byte_ids[b]`: byte
    /// b's token or `u32::MAX`; `reachable(id)`: M makes token `id` of its own bytes). `None`
    /// when ids do not fit 24 bits.
    pub(crate) fn build(
        tokens: &[Option<Vec<u8>>],
        byte_ids: &[u32; 256],
        reachable: impl Fn(u32) -> bool,
    ) -> Option<Self> {
        if tokens.len() >= NO_TOKEN as usize {
            return None;
        }
        let mut c = CharCuts {
            chars: vec![NO_TOKEN; 1 << 16],
            after1: vec![0; 1 << 6],
            after2: vec![0; 1 << 12],
            before1: vec![0; 1 << 4],
            before2: vec![0; 1 << 10],
            bigrams: vec![0; BIGRAM_BITS / 64],
            pairs: Vec::new(),
        };
        let mut pairs = Vec::new();
        let low = |b: u8, bits: u32| (b & ((1u8 << bits) - 1)) as usize;
        for (id, t) in tokens.iter().enumerate() {
            let Some(t) = t.as_deref() else { continue };
            let n = t.len();
            match t.iter().take_while(|&&b| is_cont(b)).count() {
                1 if n > 1 && is_lead3(t[1]) => c.after1[low(t[0], 6)] |= 1 << low(t[1], 4),
                2 if n > 2 && is_lead3(t[2]) => {
                    c.after2[low(t[0], 6) << 6 | low(t[1], 6)] |= 1 << low(t[2], 4)
                }
                _ => {}
            }
            if n >= 2 && is_lead3(t[n - 1]) && is_cont(t[n - 2]) {
                c.before1[low(t[n - 1], 4)] |= 1 << low(t[n - 2], 6);
            }
            if n >= 3 && is_lead3(t[n - 2]) && is_cont(t[n - 1]) && is_cont(t[n - 3]) {
                c.before2[low(t[n - 2], 4) << 6 | low(t[n - 1], 6)] |= 1 << low(t[n - 3], 6);
            }
            for o in 0..n.saturating_sub(5) {
                if char3(&t[o..]) && char3(&t[o + 3..]) {
                    let bit = bigram_bit(payload(&t[o..]), payload(&t[o + 3..]));
                    c.bigrams[bit / 64] |= 1 << (bit % 64);
                }
            }
            if n == 3 && char3(t) && reachable(id as u32) {
                c.chars[payload(t)] = id as u32;
            }
            if n == 6 && char3(t) && char3(&t[3..]) && reachable(id as u32) {
                pairs.push(((payload(t) << 16 | payload(&t[3..])) as u64) << 32 | id as u64);
            }
        }
        c.pairs = vec![u64::MAX; (2 * pairs.len()).next_power_of_two().max(16)];
        for slot in pairs {
            let mut h = c.pair_slot((slot >> 32) as usize);
            while c.pairs[h] != u64::MAX {
                h = (h + 1) & (c.pairs.len() - 1);
            }
            c.pairs[h] = slot;
        }
        for p in 0..1 << 16 {
            let bytes = [
                0xE0 | (p >> 12) as u8,
                0x80 | (p >> 6 & 63) as u8,
                0x80 | (p & 63) as u8,
            ];
            let mut flags = 0;
            if c.after_set(p) != 0 {
                flags |= AFTER;
            }
            if c.before_set(p) != 0 {
                flags |= BEFORE;
            }
            if bytes.iter().any(|&b| byte_ids[b as usize] == u32::MAX) {
                flags |= NEVER;
            }
            c.chars[p] |= flags;
        }
        Some(c)
    }

    /// Case 1 for the character of payload `p`: the lead bytes (by their low 4 bits) a token
    /// that starts inside it goes on with.
    #[inline(always)]
    fn after_set(&self, p: usize) -> u16 {
        self.after1[p & 63] | self.after2[p & 4095]
    }

    /// Case 2 for the character of payload `p`: the continuation bytes (by their low 6 bits)
    /// before the part of it a token ends with.
    #[inline(always)]
    fn before_set(&self, p: usize) -> u64 {
        self.before1[p >> 12] | self.before2[p >> 6]
    }

    /// The home slot of the pair key `key` in `pairs`.
    #[inline(always)]
    fn pair_slot(&self, key: usize) -> usize {
        (key as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) as usize >> 8 & (self.pairs.len() - 1)
    }

    /// The reachable token of the two characters of payloads `p1` and `p2`, else `u32::MAX`.
    #[inline(always)]
    fn pair_token(&self, p1: usize, p2: usize) -> u32 {
        let key = p1 << 16 | p2;
        let mut h = self.pair_slot(key);
        loop {
            let slot = self.pairs[h];
            if slot == u64::MAX {
                return u32::MAX;
            }
            if (slot >> 32) as usize == key {
                return slot as u32;
            }
            h = (h + 1) & (self.pairs.len() - 1);
        }
    }

    /// The token a segment (between cuts, ending with the three-byte character `last`: entry
    /// and payload) is, when it is one character with a token of its own or two that are a
    /// token; else `u32::MAX`.
    #[inline(always)]
    fn token_of(&self, seg: &[u8], (e, p): (u32, usize)) -> u32 {
        match seg.len() {
            3 if e & NO_TOKEN != NO_TOKEN => e & NO_TOKEN,
            6 if is_lead3(seg[0]) => self.pair_token(payload(seg), p),
            _ => u32::MAX,
        }
    }

    /// Whether no token spans the boundary between the three-byte characters whose entries
    /// are `e1` and `e2`, payloads `p1` and `p2`.
    #[inline(always)]
    fn cut(&self, (e1, p1): (u32, usize), (e2, p2): (u32, usize)) -> bool {
        // One test of the flags first: most characters have none.
        if (e1 & (AFTER | NEVER)) | (e2 & (BEFORE | NEVER)) != 0
            && ((e1 | e2) & NEVER != 0
                || (e1 & AFTER != 0 && self.after_set(p1) >> (p2 >> 12) & 1 != 0)
                || (e2 & BEFORE != 0 && self.before_set(p2) >> (p1 & 63) & 1 != 0))
        {
            return false;
        }
        let bit = bigram_bit(p1, p2);
        self.bigrams[bit / 64] >> (bit % 64) & 1 == 0
    }

    /// Call `f(segment, token)` on the segments of `b` (valid UTF-8) between its cuts, in
    /// order; `token`: the segment's one token where [`Self::token_of`] knows it, else
    /// `u32::MAX`.
    #[inline]
    pub(crate) fn split(&self, b: &[u8], mut f: impl FnMut(&[u8], u32)) {
        let n = b.len();
        let (mut seg, mut i) = (0usize, 0usize);
        // The entry and payload of the three-byte character just before `i`, if it is one.
        let mut prev: Option<(u32, usize)> = None;
        while i < n {
            let x = b[i];
            if !is_lead3(x) || i + 3 > n {
                prev = None;
                i += 1;
                continue;
            }
            let p = payload(&b[i..i + 3]);
            let e = self.chars[p];
            if let Some(pe) = prev {
                if self.cut(pe, (e, p)) {
                    f(&b[seg..i], self.token_of(&b[seg..i], pe));
                    seg = i;
                }
            }
            prev = Some((e, p));
            i += 3;
        }
        f(
            &b[seg..],
            prev.map_or(u32::MAX, |pe| self.token_of(&b[seg..], pe)),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bytelevel::backtrack::tests::{rng, vocabulary_over};
    use crate::bytelevel::backtrack::Backtrack;
    use crate::bytelevel::merge::{merge, PairTable};
    use rustc_hash::FxHashMap;

    /// Four Han characters that share bytes (中 一 人 国), an ASCII letter and a space.
    const CHARS: [&[u8]; 6] = [
        b"\xe4\xb8\xad",
        b"\xe4\xb8\x80",
        b"\xe4\xba\xba",
        b"\xe5\x9b\xbd",
        b"a",
        b" ",
    ];

    /// A random text of `len` characters of [`CHARS`], mostly Han ones, skewed by `seed`.
    fn text(s: &mut u64, len: usize, seed: u64) -> Vec<u8> {
        (0..len)
            .flat_map(|_| {
                let k = (rng(s) % (6 + seed % 5)) as usize;
                CHARS[(k + seed as usize) % 6].iter().copied()
            })
            .collect()
    }

    /// Byte-level BPE learned greedily on random texts of [`CHARS`] with no pre-tokenizer,
    /// `n` merges (HF style): tokens of whole characters and of pairs of them, and tokens that
    /// start or end inside a character where its bytes are frequent.
    fn learned(seed: u64, n: usize) -> (Vec<Option<Vec<u8>>>, PairTable) {
        let mut s = seed * 7919;
        let mut tokens: Vec<Option<Vec<u8>>> = (0..=255u8).map(|b| Some(vec![b])).collect();
        let mut corpus: Vec<Vec<u32>> = (0..60)
            .map(|_| {
                let len = 3 + rng(&mut s) as usize % 12;
                text(&mut s, len, seed).iter().map(|&b| b as u32).collect()
            })
            .collect();
        let mut table = PairTable::new();
        for rank in 0..n {
            let mut counts: FxHashMap<(u32, u32), usize> = FxHashMap::default();
            for w in &corpus {
                for p in w.windows(2) {
                    *counts.entry((p[0], p[1])).or_default() += 1;
                }
            }
            let Some((&(a, b), _)) = counts
                .iter()
                .max_by_key(|(k, c)| (**c, std::cmp::Reverse(**k)))
            else {
                break;
            };
            let mut t = tokens[a as usize].clone().unwrap_or_default();
            t.extend_from_slice(tokens[b as usize].as_deref().unwrap_or_default());
            let id = tokens.len() as u32;
            tokens.push(Some(t));
            table.insert(a, b, rank as u32, id);
            for w in &mut corpus {
                let mut out = Vec::with_capacity(w.len());
                let mut i = 0;
                while i < w.len() {
                    if i + 1 < w.len() && (w[i], w[i + 1]) == (a, b) {
                        out.push(id);
                        i += 2;
                    } else {
                        out.push(w[i]);
                        i += 1;
                    }
                }
                *w = out;
            }
        }
        (tokens, table)
    }

    /// Encoding each segment alone gives M's ids on the whole text, for learned vocabularies
    /// and random ones over the characters' bytes (HF and tiktoken style: tokens that start
    /// and end inside characters at every offset, unreachable tokens), on every string of up
    /// to four characters and on long random ones; and cuts and lone characters are not rare.
    #[test]
    fn segments_encode_as_the_whole() {
        let mut alphabet: Vec<u8> = CHARS.concat();
        alphabet.sort_unstable();
        alphabet.dedup();
        let mut texts: Vec<Vec<u8>> = vec![Vec::new()];
        let mut level = texts.clone();
        for _ in 0..4 {
            level = level
                .iter()
                .flat_map(|t| CHARS.map(|c| [t.as_slice(), c].concat()))
                .collect();
            texts.extend(level.iter().cloned());
        }
        let mut s = 5u64;
        for k in 0..400 {
            let len = 5 + rng(&mut s) as usize % 40;
            texts.push(text(&mut s, len, k % 7));
        }
        let byte_ids: [u32; 256] = std::array::from_fn(|b| b as u32);
        let (mut cuts_made, mut lone, mut boundaries) = (0usize, 0usize, 0usize);
        let vocabularies = (1..=8u64).flat_map(|seed| {
            [
                vocabulary_over(seed, 30 + 8 * seed as usize, false, &alphabet),
                vocabulary_over(seed, 30 + 8 * seed as usize, true, &alphabet),
                learned(seed, 10 + 4 * seed as usize),
            ]
        });
        for (v, (tokens, mut table)) in vocabularies.enumerate() {
            table.finish(&byte_ids);
            let bt = Backtrack::build(&tokens, &table, &byte_ids);
            let cuts = CharCuts::build(&tokens, &byte_ids, |id| bt.reachable(id))
                .unwrap_or_else(|| panic!("vocabulary {v}"));
            let m = |t: &[u8], out: &mut Vec<u32>| {
                let start: Vec<u32> = t.iter().map(|&b| b as u32).collect();
                merge(&table, t, &start, out);
            };
            for t in &texts[1..] {
                let mut want = Vec::new();
                m(t, &mut want);
                let mut got = Vec::new();
                cuts.split(t, |seg, token| {
                    cuts_made += 1;
                    if token != u32::MAX {
                        lone += 1;
                        got.push(token);
                    } else {
                        m(seg, &mut got);
                    }
                });
                cuts_made -= 1;
                boundaries += t.windows(6).filter(|w| char3(w) && char3(&w[3..])).count();
                assert_eq!(
                    got,
                    want,
                    "vocabulary {v}, {:?}",
                    String::from_utf8_lossy(t)
                );
            }
        }
        assert!(
            cuts_made * 5 > boundaries && lone * 20 > boundaries,
            "{cuts_made} cuts, {lone} lone characters, {boundaries} boundaries"
        );
    }

    /// A vocabulary of the 256 bytes and `merges` (left and right bytes, in rank order), its
    /// pair table, and its cuts.
    fn by_merges(merges: &[(&[u8], &[u8])]) -> (Vec<Option<Vec<u8>>>, PairTable, CharCuts) {
        let byte_ids: [u32; 256] = std::array::from_fn(|b| b as u32);
        let mut tokens: Vec<Option<Vec<u8>>> = (0..=255u8).map(|b| Some(vec![b])).collect();
        let mut table = PairTable::new();
        for (rank, &(a, b)) in merges.iter().enumerate() {
            let id = |t: &[u8]| tokens.iter().position(|x| x.as_deref() == Some(t));
            let (Some(ia), Some(ib)) = (id(a), id(b)) else {
                panic!("{a:x?} {b:x?}: no such token")
            };
            table.insert(ia as u32, ib as u32, rank as u32, tokens.len() as u32);
            tokens.push(Some([a, b].concat()));
        }
        table.finish(&byte_ids);
        let bt = Backtrack::build(&tokens, &table, &byte_ids);
        let cuts =
            CharCuts::build(&tokens, &byte_ids, |id| bt.reachable(id)).unwrap_or_else(|| panic!());
        (tokens, table, cuts)
    }

    /// Each of the three ways a token can span the boundary of 中国, alone in a vocabulary,
    /// keeps the two characters in one segment; cut there, the ids would differ from M's.
    #[test]
    fn every_way_of_spanning_a_boundary() {
        let (zh, guo): (&[u8], &[u8]) = ("中".as_bytes(), "国".as_bytes());
        // Merges in rank order, as (left, right) bytes; the span merges before what it cuts.
        let cases: [Vec<(&[u8], &[u8])>; 3] = [
            // AD + 国: starts inside 中 (case 1).
            vec![
                (&zh[..1], &zh[1..2]),
                (&guo[..1], &guo[1..2]),
                (&guo[..2], &guo[2..]),
                (&zh[2..], guo),
                (&zh[..2], &zh[2..]),
            ],
            // 中 + E5: ends inside 国 (case 2).
            vec![
                (&zh[..1], &zh[1..2]),
                (&zh[..2], &zh[2..]),
                (zh, &guo[..1]),
                (&guo[..1], &guo[1..2]),
                (&guo[..2], &guo[2..]),
            ],
            // 中 + 国 (case 3).
            vec![
                (&zh[..1], &zh[1..2]),
                (&zh[..2], &zh[2..]),
                (&guo[..1], &guo[1..2]),
                (&guo[..2], &guo[2..]),
                (zh, guo),
            ],
        ];
        for (k, merges) in cases.iter().enumerate() {
            let (_, table, cuts) = by_merges(merges);
            let text = "中国".as_bytes();
            let mut segs = Vec::new();
            cuts.split(text, |s, _| segs.push(s.len()));
            assert_eq!(segs, [6], "case {}", k + 1);
            let m = |t: &[u8]| {
                let (mut ids, start) =
                    (Vec::new(), t.iter().map(|&b| b as u32).collect::<Vec<_>>());
                merge(&table, t, &start, &mut ids);
                ids
            };
            let alone = [m(&text[..3]), m(&text[3..])].concat();
            assert_ne!(alone, m(text), "case {}: the span changes the ids", k + 1);
        }
    }

    /// A segment of two characters is their token only where M makes it: 中国 built as
    /// E4 B8 + (AD + 国) is a token, but M makes 中 and 国 first.
    #[test]
    fn pair_tokens_only_where_reachable() {
        let (zh, guo): (&[u8], &[u8]) = ("中".as_bytes(), "国".as_bytes());
        for reachable_pair in [false, true] {
            let mut merges: Vec<(&[u8], &[u8])> = vec![
                (&zh[..1], &zh[1..2]),
                (&zh[..2], &zh[2..]),
                (&guo[..1], &guo[1..2]),
                (&guo[..2], &guo[2..]),
            ];
            if reachable_pair {
                merges.push((zh, guo));
            } else {
                merges.extend([(&zh[2..], guo), (&zh[..2], &b"\xad\xe5\x9b\xbd"[..])]);
            }
            let (tokens, table, cuts) = by_merges(&merges);
            let text = "中国".as_bytes();
            let (mut want, start) = (
                Vec::new(),
                text.iter().map(|&b| b as u32).collect::<Vec<_>>(),
            );
            merge(&table, text, &start, &mut want);
            let mut got = Vec::new();
            cuts.split(text, |_, t| got.push(t));
            let pair = tokens
                .iter()
                .position(|t| t.as_deref() == Some(text))
                .map(|i| i as u32);
            assert_eq!(want.len(), if reachable_pair { 1 } else { 2 });
            assert_eq!(
                got,
                [if reachable_pair {
                    pair.unwrap_or(0)
                } else {
                    u32::MAX
                }]
            );
            // Three ASCII bytes whose payload bits are 中's, then 国: no pair token.
            got.clear();
            cuts.split(b"tx-\xe5\x9b\xbd", |_, t| got.push(t));
            assert_eq!(got, [u32::MAX]);
        }
    }

    /// A character whose token M does not make of its bytes is not emitted as that token; a
    /// byte without a token allows no cut beside its character.
    #[test]
    fn unreachable_characters_and_missing_bytes() {
        // 中 = E4 B8 AD is a token, built only as E4 + (B8 AD); but E4 B8 merges first.
        let mut tokens: Vec<Option<Vec<u8>>> = (0..=255u8).map(|b| Some(vec![b])).collect();
        tokens.extend([&b"\xe4\xb8"[..], b"\xb8\xad", "中".as_bytes()].map(|t| Some(t.to_vec())));
        let mut table = PairTable::new();
        table.insert(0xE4, 0xB8, 0, 256);
        table.insert(0xB8, 0xAD, 1, 257);
        table.insert(0xE4, 257, 2, 258);
        let mut byte_ids: [u32; 256] = std::array::from_fn(|b| b as u32);
        table.finish(&byte_ids);
        let bt = Backtrack::build(&tokens, &table, &byte_ids);
        let cuts =
            CharCuts::build(&tokens, &byte_ids, |id| bt.reachable(id)).unwrap_or_else(|| panic!());
        let mut segs = Vec::new();
        cuts.split("中国".as_bytes(), |s, t| segs.push((s.len(), t)));
        assert_eq!(segs, [(3, u32::MAX), (3, u32::MAX)]);
        byte_ids[0xAD] = u32::MAX;
        let cuts = CharCuts::build(&tokens, &byte_ids, |_| true).unwrap_or_else(|| panic!());
        segs.clear();
        cuts.split("中国".as_bytes(), |s, t| segs.push((s.len(), t)));
        assert_eq!(segs, [(6, u32::MAX)]);
    }
}

//! Whole-token lookup: with `ignore_merges` (every tiktoken conversion: LLaMA-3/4, Qwen,
//! Tekken) HF's BPE gives a pre-token that is itself a token that token, whatever the merges;
//! without it (GPT-2, SmolLM2) BPE gives a pre-token that spells a *reachable* token (one the
//! merges make of its own bytes) that token. So every new pre-token is looked up here, among
//! all the tokens or among the reachable ones, before any BPE.
//!
//! Short tokens (at most [`MAX_KEY`] bytes, nearly all of them) are keyed inline by their
//! packed bytes and length (one cache miss fewer than a map whose keys live on the heap); those
//! of at most 8 bytes by one word in a table of their own (`Tiny`: one line a lookup). Long
//! tokens are few (Qwen3: 1,918 of 151,643; LLaMA-4: 5,750 of 200,000) and long pre-tokens
//! are mostly Chinese clauses that are no token, so a 4 KiB bit array keyed by (length, first
//! 16 bytes) answers "no" for nearly all of them before the small map of long tokens is
//! probed (Chinese, fresh tokenizer, one pass: see benches/RESULTS.md, fourth session).

use super::cache::{key16, word, MAX_KEY};
use rustc_hash::FxHashMap;

const LONG_BITS: usize = 1 << 15;

pub(crate) struct WholeTokens {
    tiny: Tiny,
    /// Tokens of 9..=[`MAX_KEY`] bytes.
    short: FxHashMap<([u64; 2], u8), u32>,
    long: FxHashMap<Vec<u8>, u32>,
    long_bits: Vec<u64>,
}

/// The bit of a byte string longer than [`MAX_KEY`] in `long_bits`.
#[inline(always)]
fn long_bit(b: &[u8]) -> usize {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let k = key16(&b[..MAX_KEY]);
    let h = ((k[0] ^ b.len() as u64).wrapping_mul(K) ^ k[1]).wrapping_mul(K);
    (h >> 40) as usize & (LONG_BITS - 1)
}

impl WholeTokens {
    /// From the vocabulary (bytes -> id).
    pub(crate) fn build(vocab: &FxHashMap<Vec<u8>, u32>) -> Self {
        let mut by_id: Vec<(&[u8], u32)> = vocab.iter().map(|(t, &id)| (&t[..], id)).collect();
        // Lower ids first: in a tiktoken file (and its conversions) the rank, so the tokens
        // merged early (the frequent ones) sit nearest their home slot in `tiny`.
        by_id.sort_unstable_by_key(|&(_, id)| id);
        let mut w = WholeTokens {
            tiny: Tiny::new(
                by_id
                    .iter()
                    .filter(|(t, _)| (1..=8).contains(&t.len()))
                    .count(),
            ),
            short: FxHashMap::default(),
            long: FxHashMap::default(),
            long_bits: vec![0; LONG_BITS / 64],
        };
        for (t, id) in by_id {
            if t.is_empty() {
                // No piece is empty (and an empty key would mark a free slot in `tiny`).
                continue;
            }
            if t.len() <= 8 {
                w.tiny.insert(t, id);
            } else if t.len() <= MAX_KEY {
                w.short.insert((key16(t), t.len() as u8), id);
            } else {
                let bit = long_bit(t);
                w.long_bits[bit / 64] |= 1 << (bit % 64);
                w.long.insert(t.to_vec(), id);
            }
        }
        w
    }

    /// The id of the token spelled exactly `b`, if there is one.
    #[inline(always)]
    pub(crate) fn get(&self, b: &[u8]) -> Option<u32> {
        if b.len() <= 8 {
            return self.tiny.get(b);
        }
        if b.len() <= MAX_KEY {
            return self.short.get(&(key16(b), b.len() as u8)).copied();
        }
        let bit = long_bit(b);
        if self.long_bits[bit / 64] >> (bit % 64) & 1 == 0 {
            return None;
        }
        self.long.get(b).copied()
    }
}

/// Tokens of at most 8 bytes: open addressing with linear probing, at most [`TINY_FILL`] full,
/// each slot the token's bytes as one word with its id and length: one load (one cache line
/// nearly always) where a SwissTable reads a control group and then a bucket.
struct Tiny {
    slots: Vec<TinySlot>,
    /// 64 - log2(slots.len()): the hash's top bits pick the home slot.
    shift: u32,
}

/// Slots per token, at least (a power of two: `slots.len()` is `n * TINY_FILL` rounded up).
const TINY_FILL: usize = 2;

#[repr(C, align(16))]
#[derive(Clone, Copy, Default)]
struct TinySlot {
    key: u64,
    id: u32,
    /// The token's length in bytes; 0: an empty slot.
    len: u32,
}

impl Tiny {
    fn new(n: usize) -> Self {
        let size = (n * TINY_FILL).next_power_of_two().max(2);
        Tiny {
            slots: vec![TinySlot::default(); size],
            shift: 64 - size.trailing_zeros(),
        }
    }

    #[inline(always)]
    fn home(&self, key: u64, len: usize) -> usize {
        const K: u64 = 0x9E37_79B9_7F4A_7C15;
        ((key ^ (len as u64) << 56).wrapping_mul(K) >> self.shift) as usize
    }

    /// Add a token (1..=8 bytes) not in the table yet.
    fn insert(&mut self, t: &[u8], id: u32) {
        let key = word(t);
        let mask = self.slots.len() - 1;
        let mut i = self.home(key, t.len());
        while self.slots[i].len != 0 {
            i = (i + 1) & mask;
        }
        self.slots[i] = TinySlot {
            key,
            id,
            len: t.len() as u32,
        };
    }

    /// The id of the token spelled `b` (1..=8 bytes).
    #[inline(always)]
    fn get(&self, b: &[u8]) -> Option<u32> {
        let key = word(b);
        let len = b.len() as u32;
        let mask = self.slots.len() - 1;
        let mut i = self.home(key, b.len());
        loop {
            let s = &self.slots[i & mask];
            if s.key == key && s.len == len {
                return Some(s.id);
            }
            if s.len == 0 {
                return None;
            }
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A token's zero bytes are not padding: `a\0` is not `a`, `\0\0` not `\0` (the short
    /// keys are zero-padded words, so the length must tell them apart).
    #[test]
    fn zero_bytes_are_not_padding() {
        let mut vocab: FxHashMap<Vec<u8>, u32> = FxHashMap::default();
        for k in [1, 3, 5, 7] {
            let n = vocab.len() as u32;
            vocab.insert(vec![0; k], n);
            let n = vocab.len() as u32;
            vocab.insert([&b"a"[..], &vec![0; k - 1]].concat(), n);
        }
        let w = WholeTokens::build(&vocab);
        for k in 1..=12 {
            for probe in [vec![0; k], [&b"a"[..], &vec![0; k - 1]].concat()] {
                assert_eq!(w.get(&probe), vocab.get(&probe).copied(), "{probe:?}");
            }
        }
    }

    /// Every token of 1..=60 bytes is found with its id; strings that differ from one only
    /// after byte 16, or by one byte more or less, are not (unless they are tokens too).
    #[test]
    fn finds_exactly_the_tokens() {
        let mut vocab: FxHashMap<Vec<u8>, u32> = FxHashMap::default();
        let mut s = 7u64;
        for len in 1..=60usize {
            for _ in 0..40 {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                let t: Vec<u8> = (0..len)
                    .map(|k| b'a' + (s >> (k % 32 * 2) & 3) as u8)
                    .collect();
                let n = vocab.len() as u32;
                vocab.entry(t).or_insert(n);
            }
        }
        let w = WholeTokens::build(&vocab);
        for (t, &id) in &vocab {
            assert_eq!(w.get(t), Some(id), "{t:?}");
            let mut tail = t.clone();
            let last = tail.len() - 1;
            tail[last] ^= 0x40;
            let mut longer = t.clone();
            longer.push(b'a');
            for probe in [&tail[..], &longer[..], &t[..last]] {
                if !probe.is_empty() {
                    assert_eq!(w.get(probe), vocab.get(probe).copied(), "{probe:?}");
                }
            }
        }
    }
}

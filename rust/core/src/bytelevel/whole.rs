//! Whole-token lookup for `ignore_merges` vocabularies (every tiktoken conversion: LLaMA-3/4,
//! Qwen, Tekken): HF's BPE gives a pre-token that is itself a token that token, whatever the
//! merges, so every new pre-token is looked up before any BPE.
//!
//! Short tokens (at most [`MAX_KEY`] bytes, nearly all of them) are keyed inline by their
//! packed bytes and length (one cache miss fewer than a map whose keys live on the heap). Long
//! tokens are few (Qwen3: 1,918 of 151,643; LLaMA-4: 5,750 of 200,000) and long pre-tokens
//! are mostly Chinese clauses that are no token, so a 4 KiB bit array keyed by (length, first
//! 16 bytes) answers "no" for nearly all of them before the small map of long tokens is
//! probed (Chinese, fresh tokenizer, one pass: see benches/RESULTS.md, fourth session).

use super::cache::{key16, MAX_KEY};
use rustc_hash::FxHashMap;

const LONG_BITS: usize = 1 << 15;

pub(crate) struct WholeTokens {
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
        let mut w = WholeTokens {
            short: FxHashMap::default(),
            long: FxHashMap::default(),
            long_bits: vec![0; LONG_BITS / 64],
        };
        for (t, &id) in vocab {
            if t.len() <= MAX_KEY {
                w.short.insert((key16(t), t.len() as u8), id);
            } else {
                let bit = long_bit(t);
                w.long_bits[bit / 64] |= 1 << (bit % 64);
                w.long.insert(t.clone(), id);
            }
        }
        w
    }

    /// The id of the token spelled exactly `b`, if there is one.
    #[inline(always)]
    pub(crate) fn get(&self, b: &[u8]) -> Option<u32> {
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

#[cfg(test)]
mod tests {
    use super::*;

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

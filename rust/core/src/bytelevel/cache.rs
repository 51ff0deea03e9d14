//! A bounded, per-thread cache of short pre-tokens and their ids: a repeated pre-token that
//! needed BPE (" tokenizers", "——") skips it. Pieces that are one whole token (most English
//! words) are answered by the vocabulary before the cache is asked, so they take no slot, and
//! runs of Chinese characters, which seldom repeat, skip it ([`han_run`]).
//!
//! Two-way set-associative: [`SETS`] sets of two 32-byte slots (one cache line a set), keyed
//! by the pre-token's bytes (at most [`MAX_KEY`]) and the tokenizer's serial number, so
//! tokenizers used in turn on one thread share the table without clearing it. A hit moves its
//! entry to the set's first slot; a new entry goes there and pushes the other out (least
//! recently used). Memory: `SETS * 64` bytes per thread that encodes (1 MiB), whatever the
//! corpus. Each thread owns its table (no locks). A hit compares the whole key, so the ids
//! returned are exactly the ones the merge loop gave for these bytes.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU32, Ordering};

/// Pre-tokens of more bytes are not cached (Chinese clauses: long and mostly unique).
pub(crate) const MAX_KEY: usize = 16;
/// Pre-tokens that merge into more ids are not cached.
const MAX_IDS: usize = 2;
/// Number of sets (a power of two).
pub(crate) const SETS: usize = 1 << 14;

#[repr(C)]
#[derive(Clone, Copy)]
struct Slot {
    /// The key's bytes, zero-padded.
    key: [u64; 2],
    ids: [u32; MAX_IDS],
    /// The tokenizer's serial number; 0: an empty slot.
    owner: u32,
    key_len: u8,
    n_ids: u8,
}

#[repr(C, align(64))]
#[derive(Clone, Copy)]
struct Set([Slot; 2]);

const EMPTY: Slot = Slot {
    key: [0; 2],
    ids: [0; MAX_IDS],
    owner: 0,
    key_len: 0,
    n_ids: 0,
};

/// Whether `piece` (more than one byte) ends in a character of U+3000..U+9FFF (CJK punctuation,
/// kana, ideographs) after at least one more: a run of Chinese or Japanese, which repeats too
/// seldom to pay for a probe and an insert (reviews: 2.7 % of the bytes in a repeated pre-token).
/// Such pieces skip the cache (fastokens does the same for its long ones): harness, cold / new
/// text / again, two alternations, Qwen3 reviews +2 / +3 / +5 %, LLaMA-4 reviews +6 / +9 / +6 %,
/// People's Daily within the noise (benches/RESULTS.md, twelfth session).
#[inline(always)]
pub(crate) fn han_run(piece: &[u8]) -> bool {
    piece.len() >= 6 && (0xE3..=0xE9).contains(&piece[piece.len() - 3])
}

/// A fresh serial number for a tokenizer (never 0).
pub(crate) fn next_serial() -> u32 {
    static NEXT: AtomicU32 = AtomicU32::new(1);
    // Wrapping past u32::MAX would take four billion tokenizers; skip 0 if it ever happens.
    match NEXT.fetch_add(1, Ordering::Relaxed) {
        0 => NEXT.fetch_add(1, Ordering::Relaxed),
        s => s,
    }
}

pub(crate) struct Cache {
    sets: Box<[Set]>,
}

/// Bytes `b` (at most 8) as a little-endian word, zero-extended: two overlapping loads, no
/// copy through memory.
#[inline(always)]
pub(crate) fn word(b: &[u8]) -> u64 {
    let n = b.len();
    if n >= 8 {
        u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
    } else if n >= 4 {
        let lo = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as u64;
        let hi = u32::from_le_bytes([b[n - 4], b[n - 3], b[n - 2], b[n - 1]]) as u64;
        lo | hi << (8 * (n - 4))
    } else if n > 0 {
        b[0] as u64 | (b[n / 2] as u64) << (8 * (n / 2)) | (b[n - 1] as u64) << (8 * (n - 1))
    } else {
        0
    }
}

/// Bytes `piece` (at most [`MAX_KEY`]) as two words, zero-padded.
#[inline(always)]
pub(crate) fn key16(piece: &[u8]) -> [u64; 2] {
    let n = piece.len();
    [word(&piece[..n.min(8)]), word(&piece[n.min(8)..])]
}

/// The key as two words and its set.
#[inline(always)]
fn key_of(piece: &[u8], owner: u32) -> ([u64; 2], usize) {
    let n = piece.len();
    let key = key16(piece);
    const K: u64 = 0xf135_7aea_2e62_a9c5; // rustc-hash's multiplier
    let mut h = (owner as u64) << 8 | n as u64;
    for k in key {
        h = (h ^ k).wrapping_mul(K).rotate_left(26);
    }
    h ^= h >> 32;
    h = h.wrapping_mul(K);
    (key, (h >> 40) as usize & (SETS - 1))
}

impl Slot {
    #[inline(always)]
    fn is(&self, key: &[u64; 2], len: usize, owner: u32) -> bool {
        self.key == *key && self.owner == owner && self.key_len as usize == len
    }
}

impl Cache {
    fn new() -> Self {
        Cache {
            sets: vec![Set([EMPTY; 2]); SETS].into_boxed_slice(),
        }
    }

    /// The ids cached for `piece` (at most [`MAX_KEY`] bytes) under tokenizer `owner`.
    #[inline]
    pub(crate) fn get(&mut self, piece: &[u8], owner: u32) -> Option<&[u32]> {
        let (key, i) = key_of(piece, owner);
        let set = &mut self.sets[i].0;
        if set[0].is(&key, piece.len(), owner) {
        } else if set[1].is(&key, piece.len(), owner) {
            set.swap(0, 1);
        } else {
            return None;
        }
        Some(&set[0].ids[..set[0].n_ids as usize])
    }

    /// Remember `ids` for `piece` (ignored when there are more than fit in a slot).
    #[inline]
    pub(crate) fn put(&mut self, piece: &[u8], owner: u32, ids: &[u32]) {
        if ids.len() > MAX_IDS {
            return;
        }
        let (key, i) = key_of(piece, owner);
        let set = &mut self.sets[i].0;
        set[1] = set[0];
        let s = &mut set[0];
        s.key = key;
        s.owner = owner;
        s.key_len = piece.len() as u8;
        s.n_ids = ids.len() as u8;
        s.ids[..ids.len()].copy_from_slice(ids);
    }

    /// Slots in use (for tests).
    #[cfg(test)]
    fn used(&self) -> usize {
        self.sets
            .iter()
            .flat_map(|s| &s.0)
            .filter(|s| s.owner != 0)
            .count()
    }
}

thread_local! {
    static CACHE: RefCell<Option<Cache>> = const { RefCell::new(None) };
}

/// Run `f` with this thread's cache (allocated on first use).
pub(crate) fn with<R>(f: impl FnOnce(&mut Cache) -> R) -> R {
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        f(c.get_or_insert_with(Cache::new))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words() {
        for n in 0..=8 {
            let b: Vec<u8> = (1..=n as u8).map(|x| x * 17).collect();
            let mut w = [0u8; 8];
            w[..n].copy_from_slice(&b);
            assert_eq!(word(&b), u64::from_le_bytes(w), "{n}");
        }
    }

    #[test]
    fn keys_owners_and_bounds() {
        let mut c = Cache::new();
        assert_eq!(std::mem::size_of::<Set>(), 64);
        c.put(b" the", 1, &[5, 6]);
        assert_eq!(c.get(b" the", 1), Some(&[5u32, 6][..]));
        assert_eq!(c.get(b" the", 2), None, "another tokenizer's entry");
        assert_eq!(c.get(b" the\0", 1), None, "a zero byte is no padding");
        assert_eq!(c.get(b" th", 1), None);
        c.put(b"x", 1, &[1; MAX_IDS + 1]);
        assert_eq!(c.get(b"x", 1), None, "too many ids: not cached");
        // A million distinct keys: the table never grows past its slots, and every hit is
        // the key's own ids.
        for i in 0..1_000_000u32 {
            let k = format!("{i}-{}", i % 7);
            c.put(k.as_bytes(), 3, &[i, i % 7]);
        }
        assert!(c.used() <= 2 * SETS);
        let mut hits = 0;
        for i in 0..1_000_000u32 {
            let k = format!("{i}-{}", i % 7);
            if let Some(ids) = c.get(k.as_bytes(), 3) {
                assert_eq!(ids, [i, i % 7]);
                hits += 1;
            }
        }
        assert!(hits > SETS, "{hits}");
        // Keys that land in one set apart from the owner or the length alone (zero padding).
        let set = |k: &[u8], o: u32| key_of(k, o).1;
        let o = (4..1 << 24)
            .find(|&o| set(b" the", o) == set(b" the", 1))
            .unwrap_or(0);
        c.put(b" the", 1, &[5, 6]);
        assert_eq!(c.get(b" the", o), None, "owner {o}");
        let o = (4..1 << 24)
            .find(|&o| set(b"a", o) == set(b"a\0", o))
            .unwrap_or(0);
        c.put(b"a", o, &[7]);
        assert_eq!(c.get(b"a\0", o), None, "owner {o}");
        assert_eq!(c.get(b"a", o), Some(&[7u32][..]));
        let k = [0xffu8; MAX_KEY];
        c.put(&k, 1, &[9]);
        assert_eq!(c.get(&k, 1), Some(&[9u32][..]));
    }
}

/// The encoder with the cache on and off: the same ids, for two tokenizers used in turn on one
/// thread, on pieces that repeat, collide and overflow the table.
#[cfg(test)]
mod on_off {
    use super::super::pretok::Splitter;
    use super::super::tables::byte_to_char;
    use super::super::ByteLevelTokenizer;
    use std::collections::BTreeMap;

    /// A byte-level tokenizer.json with `n` merges learned greedily on `text` (GPT-2 pattern).
    fn learned(text: &str, n: usize) -> ByteLevelTokenizer {
        let mut words: BTreeMap<Vec<Vec<u8>>, usize> = BTreeMap::new();
        Splitter::Gpt2.split(text, &mut |p: &str| {
            *words
                .entry(p.bytes().map(|b| vec![b]).collect())
                .or_default() += 1;
        });
        let alphabet = byte_to_char();
        let show = |t: &[u8]| -> String { t.iter().map(|&b| alphabet[b as usize]).collect() };
        let mut vocab: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
        let mut merges = Vec::new();
        for _ in 0..n {
            let mut counts: BTreeMap<(Vec<u8>, Vec<u8>), usize> = BTreeMap::new();
            for (w, c) in &words {
                for p in w.windows(2) {
                    *counts.entry((p[0].clone(), p[1].clone())).or_default() += c;
                }
            }
            let Some(((a, b), _)) = counts
                .into_iter()
                .max_by_key(|(k, c)| (*c, std::cmp::Reverse(k.clone())))
            else {
                break;
            };
            let ab = [a.as_slice(), b.as_slice()].concat();
            words = words
                .into_iter()
                .map(|(w, c)| {
                    let mut out: Vec<Vec<u8>> = Vec::new();
                    for t in w {
                        if out.last() == Some(&a) && t == b {
                            *out.last_mut().unwrap_or(&mut Vec::new()) = ab.clone();
                        } else {
                            out.push(t);
                        }
                    }
                    (out, c)
                })
                .fold(BTreeMap::new(), |mut m, (w, c)| {
                    *m.entry(w).or_default() += c;
                    m
                });
            merges.push(format!("{} {}", show(&a), show(&b)));
            if !vocab.contains(&ab) {
                vocab.push(ab);
            }
        }
        let vocab: serde_json::Map<String, serde_json::Value> = vocab
            .iter()
            .enumerate()
            .map(|(i, t)| (show(t), i.into()))
            .collect();
        let j = serde_json::json!({
            "model": {"type": "BPE", "vocab": vocab, "merges": merges},
            "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true},
            "decoder": {"type": "ByteLevel"},
        });
        ByteLevelTokenizer::from_json_bytes(j.to_string().as_bytes(), None, "t.json")
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn same_ids_with_and_without() {
        let text =
            "the cat sat on the mat. The cats' hats, the rats' mats! 我们的人民，人民的我们。\
                    it's 2024; a\0b a\0 \0\0 don't    stop 中华人民共和国 the the the";
        let toks = [learned(text, 120), learned(text, 60)];
        let plain = [learned(text, 120), learned(text, 60)];
        for t in &plain {
            t.set_pretoken_cache(false);
        }
        let atoms = [
            "the", " the", "cat", " cats", "'s", "a", "\0", "a\0", " ", "  ", "\n", "人民", "我们",
            "，", "中华", "x", "1", "22", "mat", "hat", "don't", "é", "😀",
        ];
        let mut seed = 12345u64;
        let mut next = |m: usize| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as usize % m
        };
        for round in 0..40_000 {
            let len = next(12);
            let s: String = (0..len).map(|_| atoms[next(atoms.len())]).collect();
            let k = round % 2;
            let want = plain[k].encode(&s, false, false, false);
            assert_eq!(toks[k].encode(&s, false, false, false), want, "{s:?}");
            assert_eq!(
                toks[k].decode_bytes(&want).ok().as_deref(),
                Some(s.as_bytes())
            );
        }
    }
}

//! Byte-pair merging of one pre-token: repeatedly merge the adjacent pair of lowest rank,
//! the leftmost on ties (tiktoken's `byte_pair_merge` and HF's BPE `merge_word` both do
//! exactly this; tiktoken's rank of a pair is the rank of the merged token, HF's is the
//! merge's line in `merges`).
//!
//! Short pieces (most) merge in a flat array, rescanning for the minimum (no allocation, cache
//! resident); long ones in a linked list with a heap, O(n log n): a megabyte of one Han
//! character is a single pre-token under every pattern, where tiktoken is quadratic.

use rustc_hash::FxHashMap;
use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Pieces of at most this many bytes take the flat path.
const FLAT_MAX: usize = 128;

pub(crate) const NO_RANK: u32 = u32::MAX;

/// (left id, right id) → (rank, merged id).
pub(crate) struct PairTable {
    map: FxHashMap<u64, u64>,
    /// The packed merge of every two single-byte tokens, by the two bytes: the first lookup
    /// of every adjacent byte pair, from a 512 KiB array instead of the hash table.
    byte_pairs: Vec<u64>,
}

impl PairTable {
    pub(crate) fn new() -> Self {
        PairTable {
            map: FxHashMap::default(),
            byte_pairs: Vec::new(),
        }
    }

    /// Fill the byte-pair array once every merge is in; `byte_ids[b]`: the token of byte `b`.
    pub(crate) fn finish(&mut self, byte_ids: &[u32; 256]) {
        let mut t = vec![u64::MAX; 1 << 16];
        for (a, &ia) in byte_ids.iter().enumerate() {
            for (b, &ib) in byte_ids.iter().enumerate() {
                if ia != u32::MAX && ib != u32::MAX {
                    t[(a << 8) | b] = self.get_packed(ia, ib);
                }
            }
        }
        self.byte_pairs = t;
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    /// Every (left, right) with a merge.
    pub(crate) fn keys(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.map.keys().map(|&k| ((k >> 32) as u32, k as u32))
    }

    /// Insert, keeping the lower rank when the pair is already there (tiktoken: the first
    /// split of a token found; HF: the first line of a duplicated merge).
    pub(crate) fn insert(&mut self, left: u32, right: u32, rank: u32, id: u32) {
        let v = ((rank as u64) << 32) | id as u64;
        self.map
            .entry(((left as u64) << 32) | right as u64)
            .and_modify(|old| *old = (*old).min(v))
            .or_insert(v);
    }

    /// [`Self::get_packed`] of the single-byte tokens of bytes `a` and `b`.
    #[inline(always)]
    pub(crate) fn byte_pair(&self, a: u8, b: u8) -> u64 {
        self.byte_pairs[(a as usize) << 8 | b as usize]
    }

    /// `rank << 32 | merged id`, or `u64::MAX` for no merge.
    #[inline(always)]
    pub(crate) fn get_packed(&self, left: u32, right: u32) -> u64 {
        self.map
            .get(&(((left as u64) << 32) | right as u64))
            .copied()
            .unwrap_or(u64::MAX)
    }

    #[inline(always)]
    fn get(&self, left: u32, right: u32) -> (u32, u32) {
        match self.map.get(&(((left as u64) << 32) | right as u64)) {
            Some(&v) => ((v >> 32) as u32, v as u32),
            None => (NO_RANK, 0),
        }
    }
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

#[derive(Default)]
struct Scratch {
    ids: Vec<u32>,
    ranks: Vec<u32>,
    next: Vec<u32>,
    prev: Vec<u32>,
    version: Vec<u32>,
    merged: Vec<u32>,
    heap: BinaryHeap<Reverse<(u32, u32, u32)>>,
}

/// Merge the byte ids `start` (each byte's single-byte token) and append the result to `out`.
/// `raw`: the piece's bytes when every byte has a token (`start[i]` is `raw[i]`'s), else empty.
pub(crate) fn merge(table: &PairTable, raw: &[u8], start: &[u32], out: &mut Vec<u32>) {
    if start.len() <= 1 {
        out.extend_from_slice(start);
        return;
    }
    if start.len() <= FLAT_MAX && raw.len() == start.len() && !table.byte_pairs.is_empty() {
        return merge_flat_bytes(table, raw, start, out);
    }
    SCRATCH.with(|s| {
        let mut s = s.borrow_mut();
        if start.len() <= FLAT_MAX {
            merge_flat(table, start, &mut s, out)
        } else {
            merge_heap(table, start, &mut s, out)
        }
    })
}

fn merge_flat(table: &PairTable, start: &[u32], s: &mut Scratch, out: &mut Vec<u32>) {
    let n = start.len();
    let mut pairs = [0u64; FLAT_MAX];
    for i in 0..n - 1 {
        pairs[i] = table.get_packed(start[i], start[i + 1]);
    }
    let _ = s;
    merge_flat_from(table, start, pairs, out)
}

fn merge_flat_bytes(table: &PairTable, raw: &[u8], start: &[u32], out: &mut Vec<u32>) {
    let mut pairs = [0u64; FLAT_MAX];
    for i in 0..start.len() - 1 {
        pairs[i] = table.byte_pairs[((raw[i] as usize) << 8) | raw[i + 1] as usize];
    }
    merge_flat_from(table, start, pairs, out)
}

/// The flat merge loop. `pairs[i]`: (rank << 32 | merged id) of (start[i], start[i + 1]).
/// Equal ranks always merge into the same token (tiktoken: rank = id of the merged token; HF:
/// one rank per merge line), so the minimum of the packed values, first occurrence, is the
/// leftmost lowest-rank pair.
#[inline(always)]
fn merge_flat_from(
    table: &PairTable,
    start: &[u32],
    mut pairs: [u64; FLAT_MAX],
    out: &mut Vec<u32>,
) {
    let n = start.len();
    let mut ids = [0u32; FLAT_MAX];
    ids[..n].copy_from_slice(start);
    let mut len = n;
    while len > 1 {
        let mut best = u64::MAX;
        let mut at = 0;
        for (i, &p) in pairs[..len - 1].iter().enumerate() {
            if p < best {
                best = p;
                at = i;
            }
        }
        if best == u64::MAX {
            break;
        }
        ids[at] = best as u32;
        ids.copy_within(at + 2..len, at + 1);
        pairs.copy_within(at + 1..len - 1, at);
        len -= 1;
        if at + 1 < len {
            pairs[at] = table.get_packed(ids[at], ids[at + 1]);
        }
        if at > 0 {
            pairs[at - 1] = table.get_packed(ids[at - 1], ids[at]);
        }
    }
    out.extend_from_slice(&ids[..len]);
}

fn merge_heap(table: &PairTable, start: &[u32], s: &mut Scratch, out: &mut Vec<u32>) {
    const NONE: u32 = u32::MAX;
    let n = start.len();
    let Scratch {
        ids,
        ranks,
        next,
        prev,
        version,
        merged: merged_id,
        heap,
    } = s;
    ids.clear();
    ids.extend_from_slice(start);
    next.clear();
    next.extend((1..=n as u32).map(|i| if i as usize == n { NONE } else { i }));
    prev.clear();
    prev.extend((0..n as u32).map(|i| i.wrapping_sub(1)));
    prev[0] = NONE;
    version.clear();
    version.resize(n, 0);
    ranks.clear();
    ranks.resize(n, NO_RANK);
    heap.clear();
    merged_id.clear();
    merged_id.resize(n, 0);
    for i in 0..n - 1 {
        let (r, m) = table.get(ids[i], ids[i + 1]);
        ranks[i] = r;
        merged_id[i] = m;
        if r != NO_RANK {
            heap.push(Reverse((r, i as u32, 0)));
        }
    }
    let refresh = |i: usize,
                   ids: &[u32],
                   next: &[u32],
                   ranks: &mut [u32],
                   merged_id: &mut [u32],
                   version: &mut [u32],
                   heap: &mut BinaryHeap<Reverse<(u32, u32, u32)>>| {
        version[i] = version[i].wrapping_add(1);
        let j = next[i];
        let (r, m) = if j == NONE {
            (NO_RANK, 0)
        } else {
            table.get(ids[i], ids[j as usize])
        };
        ranks[i] = r;
        merged_id[i] = m;
        if r != NO_RANK {
            heap.push(Reverse((r, i as u32, version[i])));
        }
    };
    while let Some(Reverse((r, i, v))) = heap.pop() {
        let i = i as usize;
        if version[i] != v || ranks[i] != r {
            continue;
        }
        // Merge i with its right neighbour j.
        let j = next[i] as usize;
        ids[i] = merged_id[i];
        let k = next[j];
        next[i] = k;
        if k != NONE {
            prev[k as usize] = i as u32;
        }
        version[j] = version[j].wrapping_add(1);
        ranks[j] = NO_RANK;
        refresh(i, ids, next, ranks, merged_id, version, heap);
        let p = prev[i];
        if p != NONE {
            refresh(p as usize, ids, next, ranks, merged_id, version, heap);
        }
    }
    let mut i = 0u32;
    while i != NONE {
        out.push(ids[i as usize]);
        i = next[i as usize];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A table over bytes a=0, b=1 with merges ab=2 (rank 0), aa=3 (rank 1), abab=4 (rank 2),
    /// 3,3 → 5 (rank 3); both paths must agree on every string of a/b up to length 12 and on
    /// long ones.
    #[test]
    fn flat_and_heap_agree() {
        let mut t = PairTable::new();
        t.insert(0, 1, 0, 2);
        t.insert(0, 0, 1, 3);
        t.insert(2, 2, 2, 4);
        t.insert(3, 3, 3, 5);
        let mut s = Scratch::default();
        for len in 2..=12usize {
            for bits in 0..(1u32 << len) {
                let ids: Vec<u32> = (0..len).map(|i| (bits >> i) & 1).collect();
                let (mut a, mut b) = (Vec::new(), Vec::new());
                merge_flat(&t, &ids, &mut s, &mut a);
                merge_heap(&t, &ids, &mut s, &mut b);
                assert_eq!(a, b, "{ids:?}");
            }
        }
        let long: Vec<u32> = (0..5000u32).map(|i| (i * 7 / 3) % 2).collect();
        let mut b = Vec::new();
        merge_heap(&t, &long, &mut s, &mut b);
        // Reference: the quadratic algorithm on the flat array without its size limit.
        let mut ids = long.clone();
        loop {
            let best = (0..ids.len() - 1)
                .map(|i| (t.get(ids[i], ids[i + 1]).0, i))
                .min()
                .unwrap();
            if best.0 == NO_RANK {
                break;
            }
            ids[best.1] = t.get(ids[best.1], ids[best.1 + 1]).1;
            ids.remove(best.1 + 1);
        }
        assert_eq!(b, ids);
    }
}

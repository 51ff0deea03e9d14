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
const FLAT_MAX: usize = 48;

pub(crate) const NO_RANK: u32 = u32::MAX;

/// (left id, right id) → (rank, merged id).
pub(crate) struct PairTable {
    map: FxHashMap<u64, u64>,
}

impl PairTable {
    pub(crate) fn new() -> Self {
        PairTable {
            map: FxHashMap::default(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
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
    heap: BinaryHeap<Reverse<(u32, u32, u32)>>,
}

/// Merge the byte ids `start` (each byte's single-byte token) and append the result to `out`.
pub(crate) fn merge(table: &PairTable, start: &[u32], out: &mut Vec<u32>) {
    if start.len() <= 1 {
        out.extend_from_slice(start);
        return;
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
    let Scratch { ids, ranks, .. } = s;
    ids.clear();
    ids.extend_from_slice(start);
    ranks.clear();
    // ranks[i]: the pair (ids[i], ids[i + 1]); merged ids kept in the other half of the u64.
    let mut merged: [u32; FLAT_MAX] = [0; FLAT_MAX];
    for i in 0..ids.len() - 1 {
        let (r, m) = table.get(ids[i], ids[i + 1]);
        ranks.push(r);
        merged[i] = m;
    }
    loop {
        let mut best = NO_RANK;
        let mut at = 0;
        for (i, &r) in ranks.iter().enumerate() {
            if r < best {
                best = r;
                at = i;
            }
        }
        if best == NO_RANK {
            break;
        }
        ids[at] = merged[at];
        ids.remove(at + 1);
        ranks.remove(at);
        merged.copy_within(at + 1.., at);
        if at < ranks.len() {
            let (r, m) = table.get(ids[at], ids[at + 1]);
            ranks[at] = r;
            merged[at] = m;
        }
        if at > 0 {
            let (r, m) = table.get(ids[at - 1], ids[at]);
            ranks[at - 1] = r;
            merged[at - 1] = m;
        }
    }
    out.extend_from_slice(ids);
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
    let mut merged_id = vec![0u32; n];
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
        refresh(i, ids, next, ranks, &mut merged_id, version, heap);
        let p = prev[i];
        if p != NONE {
            refresh(p as usize, ids, next, ranks, &mut merged_id, version, heap);
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

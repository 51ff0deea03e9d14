//! BPE segmentation with exactly the merges of sentencepiece's `bpe::Model::SampleEncode`
//! (alpha = 0, src/bpe_model.cc).
//!
//! sentencepiece's rule: split the normalized text into characters (a user-defined symbol is
//! one frozen symbol), then repeatedly merge the adjacent pair whose concatenation is a
//! NORMAL / USER_DEFINED / UNUSED piece with the highest score, ties to the leftmost pair.
//! Finally UNUSED pieces are split back ("resegmented") into the two symbols they were last
//! built from. Any procedure that performs that same merge sequence gives the same ids.
//!
//! Performance notes (People's Daily on the 49,953-piece reference merge):
//! - Symbols are integer keys; merges are looked up in packed open-addressing tables keyed by
//!   `(left_key, right_key)`; scores become dense ranks (rank order == score order, equal
//!   scores share a rank, so "leftmost among equal ranks" is sentencepiece's tie rule).
//! - The text is cut into independent chunks at every boundary no merge can ever cross:
//!   between characters `x` and `y` when no piece contains `xy`. A merge crossing it would
//!   build a piece containing `xy`, so chunks merge independently, and the global "best pair,
//!   leftmost" order restricted to one chunk is that chunk's own order. This is proven, not
//!   assumed. It is off for models with UNUSED pieces, whose resegmentation table is shared
//!   by the whole sentence. On Chinese news the average chunk is ~1.5 characters, so the
//!   work is one small-table lookup per character, done while scanning the text.
//! - Short chunks merge by a linear scan (as tiktoken: for a few symbols a scan beats a heap);
//!   long ones (whitespace runs, long Latin words) use a lazy heap.

use crate::bpe_table::{SymbolTable, MAX_KEYS, NO_KEY, NO_RANK, PROBE_MISS};
use crate::model::Piece;
use rustc_hash::FxHashMap;
use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum BpeError {
    #[error(
        "the model has {0} distinct pieces and characters; the BPE tables hold at most {MAX_KEYS}"
    )]
    TooManySymbols(usize),
}

/// Chunks up to this many symbols merge by linear scan; longer ones use the heap.
const LINEAR_MAX: usize = 32;
const NIL: u32 = u32::MAX;

/// A BPE model ready to segment normalized text.
#[derive(Debug, Clone)]
pub struct BpeModel {
    table: SymbolTable,
}

/// The symbols of the chunk being merged, and the merge of each adjacent pair.
#[derive(Default)]
struct Work {
    keys: Vec<u32>,
    starts: Vec<u32>,
    frozen: Vec<bool>,
    /// `ranks[i]`/`merged[i]`: pair (i, i + 1).
    ranks: Vec<u32>,
    merged: Vec<u32>,
    prev: Vec<u32>,
    next: Vec<u32>,
    heap: BinaryHeap<Reverse<u64>>,
    rev_merge: FxHashMap<u32, (u32, u32)>,
}

impl Work {
    fn clear(&mut self) {
        self.keys.clear();
        self.starts.clear();
        self.frozen.clear();
        self.ranks.clear();
        self.merged.clear();
    }
}

/// The whole sentence's symbols and the first-probe code of each adjacent pair (passes 1
/// and 2 of `encode_with`); [`BpeModel::flush`] merges one chunk of them at a time.
#[derive(Default)]
struct Sentence {
    keys: Vec<u32>,
    starts: Vec<u32>,
    frozen: Vec<bool>,
    codes: Vec<u32>,
}

impl Sentence {
    /// Append the frozen flags of symbols `r` to `out`. Without user-defined symbols `frozen`
    /// is not filled: a symbol is frozen exactly when it has no key.
    fn frozen_into(&self, r: std::ops::Range<usize>, out: &mut Vec<bool>) {
        if self.frozen.is_empty() {
            out.extend(self.keys[r].iter().map(|&k| k == NO_KEY));
        } else {
            out.extend_from_slice(&self.frozen[r]);
        }
    }
}

/// Buffers reused from one `encode` to the next on a thread.
#[derive(Default)]
struct Scratch {
    sentence: Sentence,
    work: Work,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

impl BpeModel {
    pub fn new(pieces: &[Piece]) -> Result<Self, BpeError> {
        let table = SymbolTable::new(pieces);
        if table.num_keys() >= MAX_KEYS {
            return Err(BpeError::TooManySymbols(table.num_keys()));
        }
        Ok(BpeModel { table })
    }

    /// Segment `normalized`; `emit(id, start, end)` receives each piece in order with its
    /// byte range. `id` is sentencepiece's `PieceToId(piece)`: the UNKNOWN id for a character
    /// that is not a piece (the caller applies byte fallback / unknown fusion).
    pub fn encode(&self, normalized: &str, unk_id: u32, emit: &mut impl FnMut(u32, usize, usize)) {
        if normalized.is_empty() {
            return;
        }
        SCRATCH.with(|s| match s.try_borrow_mut() {
            Ok(mut s) => self.encode_with(&mut s, normalized, unk_id, emit),
            Err(_) => self.encode_with(&mut Scratch::default(), normalized, unk_id, emit),
        })
    }

    fn encode_with(
        &self,
        scratch: &mut Scratch,
        text: &str,
        unk_id: u32,
        emit: &mut impl FnMut(u32, usize, usize),
    ) {
        let t = &self.table;
        let b = text.as_bytes();
        let id_of = |key: u32| if key < t.num_pieces { key } else { unk_id };
        let whole = t.has_unused;
        let Scratch {
            sentence: sen,
            work: s,
        } = scratch;
        self.symbols_and_probes(sen, b);
        let sen = &*sen;
        let (keys, codes) = (&sen.keys, &sen.codes);
        // Pass 3: cut chunks where no piece joins the two characters, merge each. A chunk is
        // a range of the sentence's arrays; only chunks of three or more symbols are copied
        // into the scratch arrays the merge loops work on.
        s.clear();
        if whole {
            for i in 1..keys.len() {
                let (rank, merged) = match t.char_pair_resolve(codes[i - 1], keys[i - 1], keys[i]) {
                    Some(e) => (e.rank, e.merged),
                    None => (NO_RANK, NO_KEY),
                };
                s.ranks.push(rank);
                s.merged.push(merged);
            }
            s.keys.extend_from_slice(keys);
            s.starts.extend_from_slice(&sen.starts);
            sen.frozen_into(0..keys.len(), &mut s.frozen);
            s.rev_merge.clear();
            self.merge_heap(s);
            self.emit_resegmented(s, b.len(), &id_of, emit);
        } else {
            let mut a = 0;
            for i in 1..keys.len() {
                match t.char_pair_resolve(codes[i - 1], keys[i - 1], keys[i]) {
                    Some(e) => {
                        s.ranks.push(e.rank);
                        s.merged.push(e.merged);
                    }
                    None => {
                        self.flush(s, sen, a..i, sen.starts[i] as usize, &id_of, emit);
                        s.ranks.clear();
                        s.merged.clear();
                        a = i;
                    }
                }
            }
            self.flush(s, sen, a..keys.len(), b.len(), &id_of, emit);
        }
    }

    /// Passes 1 and 2 of [`Self::encode_with`] over the normalized text `b`, into `sen`.
    fn symbols_and_probes(&self, sen: &mut Sentence, b: &[u8]) {
        let t = &self.table;
        let Sentence {
            keys,
            starts,
            frozen,
            codes,
        } = sen;
        keys.clear();
        starts.clear();
        frozen.clear();
        codes.clear();
        let mut pos = 0;
        if !t.has_user() {
            // No user-defined symbols: every symbol is one character, frozen exactly when it
            // has no key, and a pair with `NO_KEY` matches no table entry, so the probes need
            // no mask and `frozen` stays empty (see [`Sentence::frozen_into`]).
            while pos < b.len() {
                let (key, len) = t.char_key(b, pos);
                keys.push(key);
                starts.push(pos as u32);
                pos += len;
            }
            codes.extend((1..keys.len()).map(|i| t.char_pair_code(keys[i - 1], keys[i])));
            return;
        }
        // Pass 1: symbols. sentencepiece's `PrefixMatcher`: the longest user-defined symbol
        // here, frozen; otherwise one UTF-8 character.
        while pos < b.len() {
            let (key, len, fr) = match t.user_match(&b[pos..]) {
                Some((id, len)) => (id, len, true),
                None => {
                    let (k, len) = t.char_key(b, pos);
                    (k, len, k == NO_KEY)
                }
            };
            keys.push(key);
            starts.push(pos as u32);
            frozen.push(fr);
            pos += len;
        }
        // Pass 2: the first probe of every adjacent pair, with nothing branching on what it
        // loads, so the cache misses of many pairs overlap instead of queueing behind
        // mispredicted "is this a chunk boundary" branches.
        codes.extend((1..keys.len()).map(|i| {
            let c = t.char_pair_code(keys[i - 1], keys[i]);
            if frozen[i - 1] | frozen[i] {
                PROBE_MISS
            } else {
                c
            }
        }));
    }

    /// Merge the chunk of symbols `r` (ending at byte `end`; `s.ranks` holds its pairs'
    /// merges) and emit its pieces. Inlined into the scan for the common one- and
    /// two-symbol chunks (a call per chunk cost more than their work); longer chunks go to
    /// [`Self::flush_long`].
    #[inline(always)]
    fn flush(
        &self,
        s: &mut Work,
        c: &Sentence,
        r: std::ops::Range<usize>,
        end: usize,
        id_of: &impl Fn(u32) -> u32,
        emit: &mut impl FnMut(u32, usize, usize),
    ) {
        let a = r.start;
        match r.len() {
            0 => {}
            1 => emit(id_of(c.keys[a]), c.starts[a] as usize, end),
            // The commonest multi-symbol chunk (two CJK characters): merge or not, no scan.
            2 if s.ranks[0] != NO_RANK => emit(id_of(s.merged[0]), c.starts[a] as usize, end),
            2 => {
                emit(
                    id_of(c.keys[a]),
                    c.starts[a] as usize,
                    c.starts[a + 1] as usize,
                );
                emit(id_of(c.keys[a + 1]), c.starts[a + 1] as usize, end);
            }
            _ => self.flush_long(s, c, r, end, id_of, emit),
        }
    }

    #[inline(never)]
    fn flush_long(
        &self,
        s: &mut Work,
        c: &Sentence,
        r: std::ops::Range<usize>,
        end: usize,
        id_of: &impl Fn(u32) -> u32,
        emit: &mut impl FnMut(u32, usize, usize),
    ) {
        let n = r.len();
        s.keys.clear();
        s.starts.clear();
        s.frozen.clear();
        s.keys.extend_from_slice(&c.keys[r.clone()]);
        s.starts.extend_from_slice(&c.starts[r.clone()]);
        c.frozen_into(r, &mut s.frozen);
        if n <= LINEAR_MAX {
            self.merge_linear(s);
            for j in 0..s.keys.len() {
                let e = s.starts.get(j + 1).map_or(end, |&x| x as usize);
                emit(id_of(s.keys[j]), s.starts[j] as usize, e);
            }
        } else {
            self.merge_heap(s);
            linked_symbols(s, end, |key, start, e| emit(id_of(key), start, e));
        }
    }

    /// Merge by repeated linear scans for the best (lowest rank, leftmost) pair.
    fn merge_linear(&self, s: &mut Work) {
        let t = &self.table;
        let Work {
            keys,
            starts,
            ranks,
            merged,
            ..
        } = s;
        // The merge table is far larger than the cache, and every merge asks it about the new
        // symbol's two neighbours: start those loads for every possible first merge now, so
        // that they overlap instead of queueing one after another.
        for j in 0..ranks.len() {
            if ranks[j] != NO_RANK {
                if j > 0 {
                    t.prefetch_merge(keys[j - 1], merged[j]);
                }
                if j + 2 < keys.len() {
                    t.prefetch_merge(merged[j], keys[j + 2]);
                }
            }
        }
        loop {
            let mut best = NO_RANK;
            let mut at = 0;
            for (j, &r) in ranks.iter().enumerate() {
                if r < best {
                    best = r;
                    at = j;
                }
            }
            if best == NO_RANK {
                break;
            }
            keys[at] = merged[at];
            keys.remove(at + 1);
            starts.remove(at + 1);
            ranks.remove(at);
            merged.remove(at);
            if at < ranks.len() {
                let e = t.merge(keys[at], keys[at + 1]);
                ranks[at] = e.rank;
                merged[at] = e.merged;
            }
            if at > 0 {
                let e = t.merge(keys[at - 1], keys[at]);
                ranks[at - 1] = e.rank;
                merged[at - 1] = e.merged;
            }
        }
    }

    /// Merge with a lazy min-heap of `(rank, left index)`. A popped entry is re-validated
    /// against the current symbols; a stale entry that still validates names the same
    /// (rank, left) as a live one, so popping it merges the same pair. Leaves the surviving
    /// symbols linked through `next` from index 0.
    fn merge_heap(&self, s: &mut Work) {
        let t = &self.table;
        let Work {
            keys,
            frozen,
            ranks,
            merged,
            prev,
            next,
            heap,
            rev_merge,
            ..
        } = s;
        let n = keys.len();
        prev.clear();
        next.clear();
        prev.extend((0..n as u32).map(|i| i.wrapping_sub(1)));
        next.extend((1..=n as u32).map(|i| if i as usize == n { NIL } else { i }));
        heap.clear();
        let record = |rev: &mut FxHashMap<u32, (u32, u32)>, merged: u32, l: u32, r: u32| {
            if t.has_unused && t.is_unused(merged) {
                rev.insert(merged, (l, r));
            }
        };
        for i in 0..n.saturating_sub(1) {
            if ranks[i] != NO_RANK {
                heap.push(Reverse(((ranks[i] as u64) << 32) | i as u64));
                record(rev_merge, merged[i], keys[i], keys[i + 1]);
            }
        }
        while let Some(Reverse(top)) = heap.pop() {
            let rank = (top >> 32) as u32;
            let left = (top & 0xffff_ffff) as usize;
            let right = next[left];
            if right == NIL || keys[left] == NO_KEY {
                continue;
            }
            let right = right as usize;
            if frozen[left] || frozen[right] {
                continue;
            }
            let e = t.merge(keys[left], keys[right]);
            if e.rank != rank {
                continue;
            }
            keys[left] = e.merged;
            keys[right] = NO_KEY;
            let nr = next[right];
            next[left] = nr;
            if nr != NIL {
                prev[nr as usize] = left as u32;
            }
            // sentencepiece adds (prev, left) then (left, next); the order matters only for
            // which split of an UNUSED piece is remembered last.
            let pl = prev[left];
            if pl != NIL && !frozen[pl as usize] {
                let e = t.merge(keys[pl as usize], keys[left]);
                if e.rank != NO_RANK {
                    heap.push(Reverse(((e.rank as u64) << 32) | pl as u64));
                    record(rev_merge, e.merged, keys[pl as usize], keys[left]);
                }
            }
            if nr != NIL && !frozen[nr as usize] {
                let e = t.merge(keys[left], keys[nr as usize]);
                if e.rank != NO_RANK {
                    heap.push(Reverse(((e.rank as u64) << 32) | left as u64));
                    record(rev_merge, e.merged, keys[left], keys[nr as usize]);
                }
            }
        }
    }

    /// Emit the merged sentence, splitting UNUSED pieces back into the two symbols they were
    /// last built from, recursively (sentencepiece's `resegment`).
    fn emit_resegmented(
        &self,
        s: &Work,
        end: usize,
        id_of: &impl Fn(u32) -> u32,
        emit: &mut impl FnMut(u32, usize, usize),
    ) {
        if s.keys.is_empty() {
            return;
        }
        linked_symbols(s, end, |key, start, e| {
            self.resegment(&s.rev_merge, key, start, e, id_of, emit)
        });
    }

    fn resegment(
        &self,
        rev: &FxHashMap<u32, (u32, u32)>,
        key: u32,
        start: usize,
        end: usize,
        id_of: &impl Fn(u32) -> u32,
        emit: &mut impl FnMut(u32, usize, usize),
    ) {
        let t = &self.table;
        if t.is_unused(key) {
            if let Some(&(l, r)) = rev.get(&key) {
                let mid = start + t.key_len(l);
                self.resegment(rev, l, start, mid, id_of, emit);
                self.resegment(rev, r, mid, end, id_of, emit);
                return;
            }
        }
        emit(id_of(key), start, end);
    }
}

/// The symbols `merge_heap` left linked from index 0, in order, as `(key, start, end)`
/// (`end` closes the last one).
fn linked_symbols(s: &Work, end: usize, mut f: impl FnMut(u32, usize, usize)) {
    let mut k = 0u32;
    while k != NIL {
        let nx = s.next[k as usize];
        let e = if nx == NIL {
            end
        } else {
            s.starts[nx as usize] as usize
        };
        f(s.keys[k as usize], s.starts[k as usize] as usize, e);
        k = nx;
    }
}

//! BPE segmentation with exactly the merges of sentencepiece's `bpe::Model::SampleEncode`
//! (alpha = 0, src/bpe_model.cc).
//!
//! sentencepiece's rule: split the normalized text into characters (a user-defined symbol is
//! one frozen symbol), then repeatedly merge the adjacent pair whose concatenation is a
//! NORMAL / USER_DEFINED / UNUSED piece with the highest score, ties to the leftmost pair.
//! Finally UNUSED pieces are split back ("resegmented") into the two symbols they were last
//! built from. Any procedure that performs that same merge sequence gives the same ids; this one
//! is faster in three ways:
//!
//! - symbols are integer keys and merges are looked up in one hash table keyed by
//!   `(left_key, right_key)`; scores become dense ranks (rank order == score order, equal
//!   scores share a rank, so "leftmost among equal ranks" is sentencepiece's tie rule);
//! - the text is cut into independent chunks at every boundary no merge can ever cross:
//!   between characters `x` and `y` when no piece contains `xy`. A merge crossing the boundary
//!   would build a piece containing `xy`, so the chunks merge independently, and the global
//!   "best pair, leftmost" order restricted to one chunk is that chunk's own order. This is
//!   proven, not assumed; it is switched off for models with UNUSED pieces, whose
//!   resegmentation table is shared across the whole sentence;
//! - short chunks (almost all of them) merge by a linear scan over a small array instead of a
//!   heap (as tiktoken does: for a handful of symbols a scan beats heap bookkeeping); long
//!   chunks use a lazy heap.

use crate::bpe_table::{PairEntry, SymbolTable, NO_KEY, NO_RANK};
use crate::model::{Piece, PieceType};
use rustc_hash::FxHashMap;
use std::cell::RefCell;
use std::collections::BinaryHeap;

/// Chunks up to this many symbols merge by linear scan; longer ones use the heap.
const LINEAR_MAX: usize = 48;

/// A BPE model ready to segment normalized text.
#[derive(Debug, Clone)]
pub struct BpeModel {
    table: SymbolTable,
}

/// One initial symbol: a character or a user-defined symbol.
#[derive(Clone, Copy)]
struct Sym {
    key: u32,
    start: u32,
    /// A user-defined symbol or a character no piece contains: never merges.
    frozen: bool,
}

#[derive(Default)]
struct Scratch {
    syms: Vec<Sym>,
    /// Entry for the pair (syms[i], syms[i + 1]), or `None` when it can never merge.
    pairs: Vec<Option<PairEntry>>,
    keys: Vec<u32>,
    starts: Vec<u32>,
    ranks: Vec<u32>,
    merged: Vec<u32>,
    prev: Vec<u32>,
    next: Vec<u32>,
    heap: BinaryHeap<std::cmp::Reverse<u64>>,
    rev_merge: FxHashMap<u32, (u32, u32)>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

const NIL: u32 = u32::MAX;

impl BpeModel {
    pub fn new(pieces: &[Piece]) -> Self {
        BpeModel {
            table: SymbolTable::new(pieces),
        }
    }

    /// Number of pieces in the model (ids `0..num_pieces`).
    pub fn num_pieces(&self) -> u32 {
        self.table.num_pieces
    }

    /// Segment `normalized`; `emit(id, start, end)` receives each piece in order with its
    /// byte range. `id` is sentencepiece's `PieceToId(piece)`: the UNKNOWN id for a character
    /// that is not a piece (the caller applies byte fallback / unknown fusion).
    pub fn encode(&self, normalized: &str, unk_id: u32, emit: &mut impl FnMut(u32, usize, usize)) {
        if normalized.is_empty() {
            return;
        }
        SCRATCH.with(|s| {
            let mut s = s.borrow_mut();
            self.encode_with(&mut s, normalized, unk_id, emit)
        })
    }

    fn encode_with(
        &self,
        s: &mut Scratch,
        text: &str,
        unk_id: u32,
        emit: &mut impl FnMut(u32, usize, usize),
    ) {
        let t = &self.table;
        self.split_symbols(text, &mut s.syms);
        let n = s.syms.len();
        // Look every adjacent pair up once; `None` marks a boundary no merge crosses.
        s.pairs.clear();
        for w in s.syms.windows(2) {
            let e = if w[0].frozen || w[1].frozen {
                None
            } else {
                t.pair(w[0].key, w[1].key)
            };
            s.pairs.push(e);
        }
        let id_of = |key: u32| if key < t.num_pieces { key } else { unk_id };
        if t.has_unused {
            // UNUSED resegmentation looks at every merge of the sentence: one chunk.
            s.rev_merge.clear();
            self.merge_heap(s, 0, n);
            self.emit_resegmented(s, text.len(), &id_of, emit);
            return;
        }
        let mut start = 0;
        for i in 0..n {
            if i + 1 == n || s.pairs[i].is_none() {
                let end_byte = if i + 1 == n {
                    text.len()
                } else {
                    s.syms[i + 1].start as usize
                };
                if i == start {
                    emit(id_of(s.syms[i].key), s.syms[i].start as usize, end_byte);
                } else if i + 1 - start <= LINEAR_MAX {
                    self.merge_linear(s, start, i + 1, end_byte, &id_of, emit);
                } else {
                    self.merge_heap(s, start, i + 1);
                    let mut k = start as u32;
                    while k != NIL {
                        let nx = s.next[k as usize];
                        let e = if nx == NIL {
                            end_byte
                        } else {
                            s.syms[nx as usize].start as usize
                        };
                        emit(
                            id_of(s.syms[k as usize].key),
                            s.syms[k as usize].start as usize,
                            e,
                        );
                        k = nx;
                    }
                }
                start = i + 1;
            }
        }
    }

    /// sentencepiece's `PrefixMatcher` split: the longest user-defined symbol at each
    /// position (frozen), otherwise one UTF-8 character.
    fn split_symbols(&self, text: &str, out: &mut Vec<Sym>) {
        out.clear();
        let t = &self.table;
        let b = text.as_bytes();
        let mut pos = 0;
        while pos < b.len() {
            if let Some((id, len)) = t.user_match(&b[pos..]) {
                out.push(Sym {
                    key: id,
                    start: pos as u32,
                    frozen: true,
                });
                pos += len;
                continue;
            }
            let (key, len) = t.char_key(b, pos);
            out.push(Sym {
                key,
                start: pos as u32,
                frozen: key == NO_KEY,
            });
            pos += len;
        }
    }

    /// Merge `syms[lo..hi]` by repeated linear scans for the best (lowest rank, leftmost) pair.
    fn merge_linear(
        &self,
        s: &mut Scratch,
        lo: usize,
        hi: usize,
        end_byte: usize,
        id_of: &impl Fn(u32) -> u32,
        emit: &mut impl FnMut(u32, usize, usize),
    ) {
        let t = &self.table;
        let Scratch {
            syms,
            pairs,
            keys,
            starts,
            ranks,
            merged,
            ..
        } = s;
        keys.clear();
        starts.clear();
        ranks.clear();
        merged.clear();
        for i in lo..hi {
            keys.push(syms[i].key);
            starts.push(syms[i].start);
        }
        for p in &pairs[lo..hi - 1] {
            let e = p.unwrap_or(PairEntry {
                merged: NO_KEY,
                rank: NO_RANK,
            });
            ranks.push(e.rank);
            merged.push(e.merged);
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
        for j in 0..keys.len() {
            let e = if j + 1 < keys.len() {
                starts[j + 1] as usize
            } else {
                end_byte
            };
            emit(id_of(keys[j]), starts[j] as usize, e);
        }
    }

    /// Merge `syms[lo..hi]` with a lazy min-heap of `(rank, left index)`. A popped entry is
    /// re-validated against the current symbols; a stale entry that still validates names
    /// the same (rank, left) as a live one, so popping it merges the same pair.
    fn merge_heap(&self, s: &mut Scratch, lo: usize, hi: usize) {
        let t = &self.table;
        let Scratch {
            syms,
            pairs,
            prev,
            next,
            heap,
            rev_merge,
            ..
        } = s;
        prev.clear();
        next.clear();
        prev.resize(syms.len(), NIL);
        next.resize(syms.len(), NIL);
        heap.clear();
        for i in lo..hi {
            prev[i] = if i > lo { (i - 1) as u32 } else { NIL };
            next[i] = if i + 1 < hi { (i + 1) as u32 } else { NIL };
        }
        let record = |rev: &mut FxHashMap<u32, (u32, u32)>, e: PairEntry, l: u32, r: u32| {
            if t.has_unused && t.is_unused(e.merged) {
                rev.insert(e.merged, (l, r));
            }
        };
        for i in lo..hi.saturating_sub(1) {
            if let Some(e) = pairs[i] {
                if e.rank != NO_RANK {
                    heap.push(std::cmp::Reverse(((e.rank as u64) << 32) | i as u64));
                    record(rev_merge, e, syms[i].key, syms[i + 1].key);
                }
            }
        }
        while let Some(std::cmp::Reverse(top)) = heap.pop() {
            let rank = (top >> 32) as u32;
            let left = (top & 0xffff_ffff) as usize;
            let right = next[left];
            if right == NIL || syms[left].key == NO_KEY {
                continue;
            }
            let right = right as usize;
            if syms[left].frozen || syms[right].frozen {
                continue;
            }
            let e = t.merge(syms[left].key, syms[right].key);
            if e.rank != rank {
                continue;
            }
            syms[left].key = e.merged;
            syms[right].key = NO_KEY;
            let nr = next[right];
            next[left] = nr;
            if nr != NIL {
                prev[nr as usize] = left as u32;
            }
            // sentencepiece adds (prev, left) then (left, next); the order matters only for
            // which split of an UNUSED piece is remembered last.
            let pl = prev[left];
            if pl != NIL && !syms[pl as usize].frozen {
                let e = t.merge(syms[pl as usize].key, syms[left].key);
                if e.rank != NO_RANK {
                    heap.push(std::cmp::Reverse(((e.rank as u64) << 32) | pl as u64));
                    record(rev_merge, e, syms[pl as usize].key, syms[left].key);
                }
            }
            if nr != NIL && !syms[nr as usize].frozen {
                let e = t.merge(syms[left].key, syms[nr as usize].key);
                if e.rank != NO_RANK {
                    heap.push(std::cmp::Reverse(((e.rank as u64) << 32) | left as u64));
                    record(rev_merge, e, syms[left].key, syms[nr as usize].key);
                }
            }
        }
    }

    /// Emit the merged sentence, splitting UNUSED pieces back into the two symbols they were
    /// last built from, recursively (sentencepiece's `resegment`).
    fn emit_resegmented(
        &self,
        s: &Scratch,
        text_len: usize,
        id_of: &impl Fn(u32) -> u32,
        emit: &mut impl FnMut(u32, usize, usize),
    ) {
        if s.syms.is_empty() {
            return;
        }
        let mut k = 0u32;
        while k != NIL {
            let nx = s.next[k as usize];
            let sym = s.syms[k as usize];
            let end = if nx == NIL {
                text_len
            } else {
                s.syms[nx as usize].start as usize
            };
            self.resegment(&s.rev_merge, sym.key, sym.start as usize, end, id_of, emit);
            k = nx;
        }
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
        if key < t.num_pieces && t.is_unused(key) {
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

/// Piece types sentencepiece's BPE may produce by merging (`pieces_` in model_interface.cc);
/// CONTROL, UNKNOWN and BYTE pieces live in `reserved_id_map_` and are never merge results.
pub fn is_mergeable(kind: PieceType) -> bool {
    matches!(
        kind,
        PieceType::Normal | PieceType::UserDefined | PieceType::Unused
    )
}

//! BPE of one pre-token without a merge loop: the longest token at each position, checked
//! against the token before it, backing off where the check fails — the backtracking encoder
//! of GitHub's `bpe` crate (van Antwerpen and Neubeck, "So many tokens, so little time", 2024),
//! here over a double-array trie ([`super::trie`]). Linear in practice; the ids are exactly
//! the merge loop's ([`super::merge`]) for every vocabulary, by the argument below: what the
//! walk of point 3 needs is checked per token at load ([`Backtrack::build`]), and a pair with
//! a token that fails it is checked by running the merge loop on the pair's bytes.
//!
//! Why it is exact. Write M(s) for the merge loop's result on the bytes s (repeatedly merge the
//! adjacent pair of least packed value `rank << 32 | id`, leftmost on ties). A token t is
//! *reachable* when M(bytes(t)) = [t]; two tokens a, b are *compatible* when
//! M(bytes(a) bytes(b)) = [a, b].
//!
//! 1. Inside a span that ends as one token of M(s), the merges M makes are those of M on the
//!    span alone, in the same order: each was the least pair of all of s, so of the span; a
//!    pair straddling the span's edge is never merged. So every token of M(s) is reachable and
//!    every two neighbours in M(s) are compatible.
//! 2. Conversely, let a sequence of reachable tokens spell s with every two neighbours
//!    compatible. Run M on s and take its first merge across a boundary between tokens a and
//!    b: up to then each token's span evolved as M on it alone, and the same merges happen in
//!    M(bytes(a) bytes(b)), which then makes that cross merge too (it was least among more
//!    pairs) — against compatibility. So M never merges across a boundary, and each span ends
//!    as its token: the sequence is M(s). It is therefore unique, and the search below (the
//!    longest reachable token first, a shorter one on failure, a position marked dead once
//!    nothing fits after it — the prefix before it has a unique valid encoding, so a dead end
//!    there is dead whatever came before) finds it.
//! 3. The compatibility check ([`Backtrack::compatible`]) follows the two tokens' own merges
//!    backwards: while no cross merge happens, the pair across the boundary is (a node on a's
//!    right edge, a node on b's left edge), and it changes when M builds the next node on
//!    either edge. If the merge values of M on every reachable token never decrease (checked
//!    at load), the two spans' merges interleave in order of value (the left one first on
//!    ties), and the pair across is merged iff its value is below the next left-edge merge's
//!    value (the left wins ties) and at most the next right-edge one's (the cross pair is left
//!    of it). Walking back from (a, b), always undoing the later of the two edge merges, checks
//!    exactly these conditions.
//! 4. Every node on a's right edge ends with a's last byte, every node on b's left edge starts
//!    with b's first byte. So if no node below a on its right edge merges with a token that
//!    starts with b's first byte, and no node below b on its left edge merges with a token that
//!    ends with a's last byte (two bit sets per token, built at load from the pair table), no
//!    pair of the walk but (a, b) itself has a merge, and a and b are compatible iff (a, b) has
//!    none: one probe instead of the walk (94 % of the pairs of two Han characters on Qwen3's
//!    reviews, half of all checks).

use super::merge::{merge, PairTable};
use super::trie::{Trie, NONE};
use rayon::prelude::*;
use std::cell::RefCell;

/// What the compatibility check reads of a token: 16 bytes, four to a cache line. A
/// candidate's length comes from the trie walk that found it, and a shorter candidate is the
/// token found before it on that walk (the trie holds exactly the reachable tokens), so the
/// search itself reads nothing here.
#[derive(Clone, Copy)]
struct Tok {
    /// The last merge of M on the token's bytes: its left and right part (`NONE`: one byte).
    left: u32,
    right: u32,
    /// That merge's rank (its packed value is `rank << 32 | id`: M's last merge on a reachable
    /// token's bytes yields the token); for a one-byte token, the byte.
    rank: u32,
    /// Point 4: the bit sets of the token's right and left edge, as indexes into
    /// [`Backtrack::edge_sets`] (0: every byte, so the check walks).
    right_set: u16,
    left_set: u16,
}

impl Tok {
    /// The packed value of the merge that builds `id`, whose record this is.
    #[inline(always)]
    fn val(&self, id: u32) -> u64 {
        (self.rank as u64) << 32 | id as u64
    }
}

const UNREACHABLE: Tok = Tok {
    left: NONE,
    right: NONE,
    rank: 0,
    right_set: 0,
    left_set: 0,
};

/// A set of bytes, one bit each.
type ByteSet = [u64; 4];

#[inline(always)]
fn has(set: &ByteSet, b: u8) -> u64 {
    set[b as usize / 64] >> (b % 64) & 1
}

pub(crate) struct Backtrack {
    trie: Trie,
    toks: Vec<Tok>,
    /// A one-sided filter of the pair table: two bits of one word per pair (the word and bits
    /// from a hash of the pair). Most pairs the walk asks about have no merge (97 % on Chinese
    /// reviews): a clear bit answers from this 512 KiB array, which stays in the CPU's cache,
    /// instead of a probe of the table's megabytes.
    filter: Vec<u64>,
    /// One bit per token: M's merge values on its bytes decrease somewhere, so the walk of
    /// point 3 does not apply and a pair with it is checked by running M on the two tokens'
    /// bytes.
    decreasing_bits: Vec<u64>,
    byte_ids: [u32; 256],
    /// How many reachable tokens have their `decreasing_bits` bit set.
    decreasing: usize,
    /// The distinct edge sets of point 4 (the first is every byte). A token's right set: the
    /// first bytes of the tokens that a node below it on its right edge merges with on their
    /// right; its left set: the last bytes of those that a node below it on its left edge
    /// merges with on their left.
    edge_sets: Vec<ByteSet>,
    /// How many tokens are reachable (candidates).
    #[cfg(test)]
    reachable: usize,
}

/// M on `start` (ids), recording the merges: (result, last merge's parts and value, whether
/// the values never decrease). Load time only, on one token's bytes.
fn trace(table: &PairTable, start: &[u32]) -> (Vec<u32>, (u32, u32, u64), bool) {
    let mut ids = start.to_vec();
    let mut vals: Vec<u64> = ids
        .windows(2)
        .map(|w| table.get_packed(w[0], w[1]))
        .collect();
    let mut last = (NONE, NONE, 0u64);
    let mut monotone = true;
    while ids.len() > 1 {
        let (mut best, mut at) = (u64::MAX, 0);
        for (i, &v) in vals.iter().enumerate() {
            if v < best {
                (best, at) = (v, i);
            }
        }
        if best == u64::MAX {
            break;
        }
        monotone &= last.0 == NONE || best >= last.2;
        last = (ids[at], ids[at + 1], best);
        ids[at] = best as u32;
        ids.remove(at + 1);
        vals.remove(at);
        if at + 1 < ids.len() {
            vals[at] = table.get_packed(ids[at], ids[at + 1]);
        }
        if at > 0 {
            vals[at - 1] = table.get_packed(ids[at - 1], ids[at]);
        }
    }
    (ids, last, monotone)
}

const FILTER_WORDS: usize = 1 << 16;

/// The filter word of the pair (a, b) and its two bits.
#[inline(always)]
fn filter_slot(a: u32, b: u32) -> (usize, u64) {
    let h = ((a as u64) << 32 | b as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let w = (h >> 48) as usize & (FILTER_WORDS - 1);
    (w, 1 << (h & 63) | 1 << (h >> 6 & 63))
}

impl Backtrack {
    /// The encoder for a vocabulary (`tokens[id]`: the model token's bytes; `byte_ids[b]`:
    /// byte b's token or `NONE`).
    pub(crate) fn build(
        tokens: &[Option<Vec<u8>>],
        table: &PairTable,
        byte_ids: &[u32; 256],
    ) -> Self {
        let mut toks = vec![UNREACHABLE; tokens.len()];
        let mut live = vec![false; tokens.len()];
        let mut decreasing_bits = vec![0u64; tokens.len().div_ceil(64)];
        for (b, &id) in byte_ids.iter().enumerate().filter(|x| *x.1 != NONE) {
            toks[id as usize] = Tok {
                rank: b as u32,
                ..UNREACHABLE
            };
            live[id as usize] = true;
        }
        // M on every token's bytes (the load's main cost: shared out over the threads).
        let traced: Vec<Option<(Tok, bool)>> = tokens
            .par_iter()
            .enumerate()
            .map(|(id, t)| {
                // A token with a byte that has no token of its own is never a candidate: a piece
                // with such a byte goes to the merge loop (see `encode`).
                let t = t
                    .as_deref()
                    .filter(|t| t.len() > 1 && t.iter().all(|&b| byte_ids[b as usize] != NONE))?;
                let start: Vec<u32> = t.iter().map(|&b| byte_ids[b as usize]).collect();
                let (got, (left, right, val), monotone) = trace(table, &start);
                // A token M never outputs is not a candidate.
                (got == [id as u32]).then(|| {
                    debug_assert_eq!(val as u32, id as u32);
                    let rank = (val >> 32) as u32;
                    (
                        Tok {
                            left,
                            right,
                            rank,
                            ..UNREACHABLE
                        },
                        !monotone,
                    )
                })
            })
            .collect();
        let mut decreasing = 0;
        for (id, t) in traced.into_iter().enumerate() {
            if let Some((t, dec)) = t {
                toks[id] = t;
                live[id] = true;
                if dec {
                    decreasing_bits[id / 64] |= 1 << (id % 64);
                    decreasing += 1;
                }
            }
        }
        let edge_sets = edge_sets(tokens, table, &mut toks, &live, &decreasing_bits);
        let trie = Trie::build(
            tokens
                .iter()
                .enumerate()
                .filter_map(|(id, t)| t.as_deref().filter(|_| live[id]).map(|t| (t, id as u32))),
        );
        let mut filter = vec![0u64; FILTER_WORDS];
        for (a, b) in table.keys() {
            let (w, bits) = filter_slot(a, b);
            filter[w] |= bits;
        }
        Backtrack {
            edge_sets,
            trie,
            toks,
            filter,
            decreasing_bits,
            byte_ids: *byte_ids,
            decreasing,
            #[cfg(test)]
            reachable: live.iter().filter(|&&l| l).count(),
        }
    }

    /// How many reachable tokens M builds with decreasing merge values (their pairs are
    /// checked the slow way).
    pub(crate) fn decreasing(&self) -> usize {
        self.decreasing
    }

    /// Memory of the tables, in bytes.
    pub(crate) fn bytes(&self) -> usize {
        self.trie.bytes()
            + self.toks.len() * std::mem::size_of::<Tok>()
            + (self.filter.len() + self.decreasing_bits.len()) * 8
            + self.edge_sets.len() * std::mem::size_of::<ByteSet>()
    }

    /// Whether M makes token `id` (of more than one byte) of its own bytes.
    pub(crate) fn reachable(&self, id: u32) -> bool {
        self.toks.get(id as usize).is_some_and(|t| t.left != NONE)
    }

    #[inline(always)]
    fn is_decreasing(&self, id: u32) -> bool {
        self.decreasing_bits[id as usize / 64] >> (id % 64) & 1 != 0
    }

    /// The packed value of merging `a` and `b` (`u64::MAX`: no merge).
    #[inline(always)]
    fn pair(&self, table: &PairTable, a: &Tok, ia: u32, b: &Tok, ib: u32) -> u64 {
        if a.left == NONE && b.left == NONE {
            return table.byte_pair(a.rank as u8, b.rank as u8);
        }
        let (w, bits) = filter_slot(ia, ib);
        if self.filter[w] & bits != bits {
            return u64::MAX;
        }
        table.get_packed(ia, ib)
    }

    /// Whether M(bytes(a) bytes(b)) = [a, b], for reachable a and b spelling `both`, a its
    /// first `la` bytes (points 3 and 4 above).
    #[inline]
    fn compatible(&self, table: &PairTable, a: u32, b: u32, both: &[u8], la: usize) -> bool {
        let (ta, tb) = (&self.toks[a as usize], &self.toks[b as usize]);
        if self.one_probe(ta, tb, both, la) {
            return self.pair(table, ta, a, tb, b) == u64::MAX;
        }
        self.walk(table, a, b, both)
    }

    /// Point 4: whether no pair of the walk but (a, b) itself can merge (b's first byte is not
    /// in a's right set, a's last byte not in b's left set), so one probe of (a, b) answers.
    #[inline(always)]
    fn one_probe(&self, ta: &Tok, tb: &Tok, both: &[u8], la: usize) -> bool {
        let right = &self.edge_sets[ta.right_set as usize];
        let left = &self.edge_sets[tb.left_set as usize];
        has(right, both[la]) | has(left, both[la - 1]) == 0
    }

    /// [`Self::compatible`] by the walk of point 3 (or by M, for a token with decreasing
    /// merge values).
    #[inline(never)]
    fn walk(&self, table: &PairTable, a: u32, b: u32, both: &[u8]) -> bool {
        let (mut r, mut l) = (a, b);
        if self.is_decreasing(r) || self.is_decreasing(l) {
            let start: Vec<u32> = both.iter().map(|&x| self.byte_ids[x as usize]).collect();
            let mut ids = Vec::with_capacity(2);
            merge(table, both, &start, &mut ids);
            return ids == [a, b];
        }
        // The pair across merges iff its value is below `limit`.
        let mut limit = u64::MAX;
        loop {
            let (tr, tl) = (&self.toks[r as usize], &self.toks[l as usize]);
            if self.pair(table, tr, r, tl, l) < limit {
                return false;
            }
            if tr.left != NONE && (tl.left == NONE || tr.val(r) > tl.val(l)) {
                limit = tr.val(r);
                r = tr.right;
            } else if tl.left != NONE {
                limit = tl.val(l) + 1;
                l = tl.left;
            } else {
                return true;
            }
        }
    }

    /// Append M(text) to `out` (`text`: one pre-token, every byte with a token: the merge
    /// loop drops a byte without one and may then merge across the gap, which this search
    /// cannot). False (and `out` as it was) only if the search fails, which the argument above
    /// rules out.
    pub(crate) fn encode(&self, table: &PairTable, text: &[u8], out: &mut Vec<u32>) -> bool {
        let n = text.len();
        let base = out.len();
        SCRATCH.with(|s| {
            let s = &mut *s.borrow_mut();
            let Scratch { dead, cands, lens } = s;
            dead.clear();
            dead.resize(n / 64 + 1, 0);
            lens.clear();
            let mut pos = 0usize;
            // The candidates at `pos` are shorter than this (after a back-off: than the token
            // taken back, which was tried there already).
            let mut limit = usize::MAX;
            while pos < n {
                self.trie.prefixes(&text[pos..], limit, cands);
                // The token before `pos` (placed by this call) and its length.
                let last = lens.last().map(|&l| (out[out.len() - 1], l as usize));
                let mut placed = false;
                for &(token, len) in cands.iter().rev() {
                    let end = pos + len as usize;
                    if dead[end / 64] >> (end % 64) & 1 == 0
                        && last.is_none_or(|(lt, ll)| {
                            self.compatible(table, lt, token, &text[pos - ll..end], ll)
                        })
                    {
                        out.push(token);
                        lens.push(len);
                        pos = end;
                        limit = usize::MAX;
                        placed = true;
                        break;
                    }
                }
                if !placed {
                    let Some((_, ll)) = last else {
                        out.truncate(base);
                        return false;
                    };
                    dead[pos / 64] |= 1 << (pos % 64);
                    out.pop();
                    lens.pop();
                    pos -= ll;
                    limit = ll;
                }
            }
            true
        })
    }
}

/// Point 4's sets: fill in each reachable token's `right_set` and `left_set` (left at 0, every
/// byte, for a token with decreasing merge values and where the distinct sets outrun the
/// indexes) and return the distinct sets.
fn edge_sets(
    tokens: &[Option<Vec<u8>>],
    table: &PairTable,
    toks: &mut [Tok],
    live: &[bool],
    decreasing_bits: &[u64],
) -> Vec<ByteSet> {
    const ALL: ByteSet = [!0; 4];
    let add = |set: &mut ByteSet, b: Option<&u8>| match b {
        Some(&b) => set[b as usize / 64] |= 1 << (b % 64),
        None => *set = ALL,
    };
    let bytes = |id: u32| tokens.get(id as usize).and_then(|t| t.as_deref());
    // The first bytes of each token's right partners, the last bytes of its left partners.
    let (mut rights, mut lefts) = (vec![[0; 4]; toks.len()], vec![[0; 4]; toks.len()]);
    for (a, b) in table.keys() {
        if let Some(set) = rights.get_mut(a as usize) {
            add(set, bytes(b).and_then(|t| t.first()));
        }
        if let Some(set) = lefts.get_mut(b as usize) {
            add(set, bytes(a).and_then(|t| t.last()));
        }
    }
    let mut sets = vec![ALL];
    let mut index = rustc_hash::FxHashMap::default();
    index.insert(ALL, 0u16);
    let mut intern = |set: ByteSet| {
        *index.entry(set).or_insert_with(|| {
            sets.push(set);
            u16::try_from(sets.len() - 1).unwrap_or_else(|_| {
                sets.pop();
                0
            })
        })
    };
    for id in 0..toks.len() {
        if !live[id] || decreasing_bits[id / 64] >> (id % 64) & 1 != 0 {
            continue;
        }
        let (mut right, mut left) = ([0u64; 4], [0u64; 4]);
        let mut n = id;
        while toks[n].left != NONE {
            n = toks[n].right as usize;
            (0..4).for_each(|k| right[k] |= rights[n][k]);
        }
        let mut n = id;
        while toks[n].left != NONE {
            n = toks[n].left as usize;
            (0..4).for_each(|k| left[k] |= lefts[n][k]);
        }
        toks[id].right_set = intern(right);
        toks[id].left_set = intern(left);
    }
    sets
}

/// The search's reusable buffers.
#[derive(Default)]
struct Scratch {
    /// Positions known to start no valid rest, one bit each.
    dead: Vec<u64>,
    /// The candidates at the current position: (token, length), shortest first.
    cands: Vec<(u32, u32)>,
    /// The lengths of the tokens this call has placed, in order.
    lens: Vec<u32>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::bytelevel::merge;

    pub(crate) fn rng(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    /// 256 byte tokens (id = byte), then tokens over the bytes a, b, c. HF style: `n` merges
    /// of random pairs of tokens, one rank each (a merge whose result is already a token
    /// yields that token). tiktoken style: `n` random strings as tokens in random order,
    /// every split of a token into two tokens a pair at the token's rank. Both make tokens M
    /// never outputs and tokens whose merges decrease in rank.
    fn vocabulary(seed: u64, n: usize, tiktoken: bool) -> (Vec<Option<Vec<u8>>>, PairTable) {
        vocabulary_over(seed, n, tiktoken, b"abc")
    }

    /// [`vocabulary`] over the bytes of `alphabet`.
    pub(crate) fn vocabulary_over(
        seed: u64,
        n: usize,
        tiktoken: bool,
        alphabet: &[u8],
    ) -> (Vec<Option<Vec<u8>>>, PairTable) {
        let m = alphabet.len();
        let mut s = seed;
        let mut tokens: Vec<Option<Vec<u8>>> = (0..=255u8).map(|b| Some(vec![b])).collect();
        let mut table = PairTable::new();
        let id_of = |tokens: &[Option<Vec<u8>>], t: &[u8]| {
            tokens.iter().position(|x| x.as_deref() == Some(t))
        };
        if tiktoken {
            while tokens.len() < 256 + n {
                let len = 2 + rng(&mut s) as usize % 5;
                let t: Vec<u8> = (0..len)
                    .map(|_| alphabet[rng(&mut s) as usize % m])
                    .collect();
                if id_of(&tokens, &t).is_none() {
                    tokens.push(Some(t));
                }
            }
            for (id, t) in tokens.iter().enumerate().skip(256) {
                let t = t.as_deref().unwrap_or_default();
                for k in 1..t.len() {
                    if let (Some(a), Some(b)) = (id_of(&tokens, &t[..k]), id_of(&tokens, &t[k..])) {
                        table.insert(a as u32, b as u32, id as u32, id as u32);
                    }
                }
            }
        } else {
            for rank in 0..n {
                let pick = |s: &mut u64, tokens: &[Option<Vec<u8>>]| {
                    let k = rng(s) as usize % (tokens.len() - 256 + m);
                    if k < m {
                        alphabet[k] as usize
                    } else {
                        256 + k - m
                    }
                };
                let (a, b) = (pick(&mut s, &tokens), pick(&mut s, &tokens));
                let mut t = tokens[a].clone().unwrap_or_default();
                t.extend_from_slice(tokens[b].as_deref().unwrap_or_default());
                let id = id_of(&tokens, &t).unwrap_or_else(|| {
                    tokens.push(Some(t));
                    tokens.len() - 1
                });
                table.insert(a as u32, b as u32, rank as u32, id as u32);
            }
        }
        (tokens, table)
    }

    /// Bytes of every kind: an ASCII letter, space, punctuation, the three bytes of a Han
    /// character, a two-byte lead, a four-byte lead.
    const EVERY_KIND: [u8; 8] = [b'a', b' ', b'.', 0xE4, 0xB8, 0xAD, 0xC3, 0xF0];

    type Vocab = (u64, bool, Vec<Option<Vec<u8>>>, PairTable, Backtrack);

    /// Sixteen random vocabularies over [`EVERY_KIND`] (8 seeds, HF and tiktoken style) and
    /// their encoders: (seed, tiktoken, tokens, table, encoder).
    fn every_kind_vocabularies() -> impl Iterator<Item = Vocab> {
        let byte_ids: [u32; 256] = std::array::from_fn(|b| b as u32);
        (1..=8u64).flat_map(move |seed| {
            [false, true].map(|tiktoken| {
                let (tokens, mut table) =
                    vocabulary_over(seed, 60 + 15 * seed as usize, tiktoken, &EVERY_KIND);
                table.finish(&byte_ids);
                let bt = Backtrack::build(&tokens, &table, &byte_ids);
                (seed, tiktoken, tokens, table, bt)
            })
        })
    }

    /// As [`equals_the_merge_loop`], over bytes of every kind (ASCII letters, space,
    /// punctuation, leads of two, three and four bytes, continuation bytes): tokens that end
    /// or start inside a character, and the trie's first-character table (a lead byte, the
    /// first two bytes, the whole character E4 B8 AD, each a token or not).
    #[test]
    fn equals_the_merge_loop_on_every_kind() {
        let alphabet = EVERY_KIND;
        let mut texts: Vec<Vec<u8>> = vec![Vec::new()];
        let mut level = texts.clone();
        for _ in 0..5 {
            level = level
                .iter()
                .flat_map(|t| alphabet.map(|c| [t.as_slice(), &[c]].concat()))
                .collect();
            texts.extend(level.iter().cloned());
        }
        let mut s = 11u64;
        for _ in 0..300 {
            let len = 20 + rng(&mut s) as usize % 200;
            texts.push(
                (0..len)
                    .map(|_| alphabet[rng(&mut s) as usize % 8])
                    .collect(),
            );
        }
        for (seed, tiktoken, _, table, bt) in every_kind_vocabularies() {
            for t in &texts[1..] {
                let (mut want, mut got) = (Vec::new(), Vec::new());
                let start: Vec<u32> = t.iter().map(|&b| b as u32).collect();
                merge::merge(&table, t, &start, &mut want);
                assert!(bt.encode(&table, t, &mut got));
                assert_eq!(got, want, "seed {seed}, tiktoken {tiktoken}, {t:x?}");
            }
        }
    }

    /// Point 4's one-probe answer equals the walk's (and M's) on every pair of reachable
    /// tokens for which the edge sets give it, and those are a good share of the pairs.
    #[test]
    fn edge_sets_answer_as_the_walk() {
        let (mut pairs, mut fast) = (0, 0);
        for (_, _, tokens, table, bt) in every_kind_vocabularies() {
            let m = |t: &[u8]| {
                let (mut ids, start) =
                    (Vec::new(), t.iter().map(|&x| x as u32).collect::<Vec<_>>());
                merge::merge(&table, t, &start, &mut ids);
                ids
            };
            // The reachable tokens: M on the token's bytes gives the token.
            let live: Vec<u32> = (0..tokens.len() as u32)
                .filter(|&t| m(tokens[t as usize].as_deref().unwrap()) == [t])
                .collect();
            for &a in &live {
                for &b in &live {
                    let (ta, tb) = (&bt.toks[a as usize], &bt.toks[b as usize]);
                    let (sa, sb) = (tokens[a as usize].as_deref(), tokens[b as usize].as_deref());
                    let both = [sa.unwrap(), sb.unwrap()].concat();
                    let la = sa.unwrap().len();
                    pairs += 1;
                    if !bt.one_probe(ta, tb, &both, la) {
                        continue;
                    }
                    fast += 1;
                    let ids = m(&both);
                    assert_eq!(bt.walk(&table, a, b, &both), ids == [a, b]);
                    assert_eq!(bt.compatible(&table, a, b, &both, la), ids == [a, b]);
                }
            }
        }
        assert!(fast * 5 > pairs, "{fast} of {pairs}");
    }

    /// The backtracking encoder gives M's ids on every string of a, b, c up to 8 bytes and
    /// on long random ones, for vocabularies that exercise the unreachable tokens and the
    /// check by M of pairs with decreasing merges.
    #[test]
    fn equals_the_merge_loop() {
        let byte_ids: [u32; 256] = std::array::from_fn(|b| b as u32);
        let mut texts: Vec<Vec<u8>> = vec![Vec::new()];
        let mut level = texts.clone();
        for _ in 0..8 {
            level = level
                .iter()
                .flat_map(|t| (b'a'..=b'c').map(move |c| [t.as_slice(), &[c]].concat()))
                .collect();
            texts.extend(level.iter().cloned());
        }
        let mut s = 7u64;
        for _ in 0..300 {
            let len = 20 + rng(&mut s) as usize % 400;
            texts.push((0..len).map(|_| b'a' + (rng(&mut s) % 3) as u8).collect());
        }
        let (mut unreachable, mut decreasing) = (0, 0);
        for seed in 1..=12u64 {
            for tiktoken in [false, true] {
                let (tokens, mut table) = vocabulary(seed, 40 + 10 * seed as usize, tiktoken);
                table.finish(&byte_ids);
                let bt = Backtrack::build(&tokens, &table, &byte_ids);
                unreachable += tokens.len() - bt.reachable;
                decreasing += bt.decreasing();
                for t in &texts[1..] {
                    let (mut want, mut got) = (Vec::new(), Vec::new());
                    let start: Vec<u32> = t.iter().map(|&b| b as u32).collect();
                    merge::merge(&table, t, &start, &mut want);
                    assert!(bt.encode(&table, t, &mut got));
                    assert_eq!(
                        got,
                        want,
                        "seed {seed}, tiktoken {tiktoken}, {:?}",
                        String::from_utf8_lossy(t)
                    );
                }
            }
        }
        assert!(
            unreachable > 0 && decreasing > 0,
            "{unreachable} {decreasing}"
        );
        // Byte c without a token (SmolLM2 lacks a few control bytes): the tokens that hold it
        // are never candidates, and the pieces without it still encode exactly.
        let mut no_c = byte_ids;
        no_c[b'c' as usize] = NONE;
        let (tokens, mut table) = vocabulary(3, 80, false);
        table.finish(&no_c);
        let bt = Backtrack::build(&tokens, &table, &no_c);
        for t in texts[1..].iter().filter(|t| !t.contains(&b'c')) {
            let (mut want, mut got) = (Vec::new(), Vec::new());
            let start: Vec<u32> = t.iter().map(|&b| b as u32).collect();
            merge::merge(&table, t, &start, &mut want);
            assert!(bt.encode(&table, t, &mut got));
            assert_eq!(got, want, "no c: {:?}", String::from_utf8_lossy(t));
        }
    }
}

//! The lookup tables behind [`crate::bpe::BpeModel`]: symbol keys for characters, the merge
//! table keyed by `(left_key, right_key)`, and the user-defined symbol matcher.
//!
//! A *key* names a symbol's string. sentencepiece compares symbols by string
//! (`pieces_.find(left + right)`), so any injective string → integer map preserves its
//! merges: a piece's key is its id (any type, as `PieceToId` checks reserved pieces too), and a
//! character that is not itself a piece but occurs inside one gets a virtual key past the last
//! id. A character no piece contains gets [`NO_KEY`]: it can never merge and encodes as unknown.

use crate::model::{Piece, PieceType};
use rustc_hash::FxHashMap;

/// Piece types sentencepiece's BPE may produce by merging (`pieces_` in model_interface.cc);
/// CONTROL, UNKNOWN and BYTE pieces live in `reserved_id_map_` and are never merge results.
fn is_mergeable(kind: PieceType) -> bool {
    !kind.is_reserved()
}

pub const NO_KEY: u32 = u32::MAX;
pub const NO_RANK: u32 = u32::MAX;
/// Codes of [`SymbolTable::char_pair_code`] besides a merged id.
pub const PROBE_MISS: u32 = u32::MAX;
pub const PROBE_SLOW: u32 = u32::MAX - 1;
pub const PROBE_NO_MERGE: u32 = u32::MAX - 2;

/// `merged`/`rank` of a pair; `rank == NO_RANK` marks two characters that are adjacent inside
/// some piece but do not merge directly (so the boundary between them is not a chunk cut).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PairEntry {
    pub merged: u32,
    pub rank: u32,
}

const NO_MERGE: PairEntry = PairEntry {
    merged: NO_KEY,
    rank: NO_RANK,
};

#[derive(Debug, Clone)]
pub struct SymbolTable {
    pub num_pieces: u32,
    pub has_unused: bool,
    ascii: [u32; 128],
    /// Keys of U+0080..U+FFFF, indexed by code point.
    bmp: Vec<u32>,
    /// `bmp` as u16 (`u16::MAX` = no key) when every key fits: half the cache footprint
    /// on the per-character lookup (128 KiB; the reference merge has ~50K keys).
    bmp16: Vec<u16>,
    astral: FxHashMap<u32, u32>,
    /// Byte length of every key's string (pieces, then virtual characters).
    key_len: Vec<u32>,
    /// Merges of any two symbols, keyed by `(left_key, right_key)`.
    pairs: PairTable,
    /// Adjacent characters inside some piece, with their merge if they make a piece: the
    /// first lookup of every character pair of the text, small enough to stay in L2 cache.
    bigrams: PairTable,
    /// Rank of every piece id (`NO_RANK` for pieces that are no merge result).
    rank: Vec<u32>,
    unused: Vec<bool>,
    /// User-defined symbols by first byte, longest first: `(bytes, id)`.
    user: Vec<Vec<(Box<[u8]>, u32)>>,
    has_user: bool,
}

/// An open-addressing hash table from `(left, right)` to a merged id, all in one `u64` per
/// slot (`left:21 | right:21 | merged:21`), linear probing. Built once; lookups touch one or
/// two cache lines, where a general hash map of `u64 → (u32, u32)` would be twice the size.
#[derive(Debug, Clone)]
struct PairTable {
    slots: Vec<u64>,
    mask: usize,
    /// `64 - log2(slots.len())`: the hash is the top bits of a multiplicative hash.
    shift: u32,
}

const EMPTY: u64 = u64::MAX;
/// Slots per entry, at least (load factor at most 1/4). At a load of 1/2, linear probing
/// needed a third slot for about one absent pair in three, and most pairs the first probe
/// sees are absent (every chunk boundary): the sparser tables made the encoder 4-14 % faster
/// (benches/RESULTS.md, round 3) for 512 KiB more bigram table and 2 MiB more merge table on
/// the reference merge.
const SPREAD: usize = 4;
const BITS: u32 = 21;
const FIELD: u64 = (1 << BITS) - 1;
/// `merged` value for "adjacent in a piece, but no direct merge".
const NO_MERGE_FIELD: u64 = FIELD;
/// Keys must fit in a field, with the all-ones value reserved.
pub const MAX_KEYS: usize = (FIELD - 1) as usize;

impl PairTable {
    /// A table of at least `spread` slots per entry.
    fn new(entries: &[(u32, u32, u32)], spread: usize) -> Self {
        let cap = (entries.len() * spread).next_power_of_two().max(16);
        let mut t = PairTable {
            slots: vec![EMPTY; cap],
            mask: cap - 1,
            shift: 64 - cap.trailing_zeros(),
        };
        for &(l, r, m) in entries {
            let key = ((l as u64) << BITS) | r as u64;
            let mut i = t.hash(key);
            loop {
                let s = t.slots[i];
                if s == EMPTY {
                    t.slots[i] = (key << BITS) | (m as u64 & FIELD);
                    break;
                }
                if s >> BITS == key {
                    break; // first insertion wins (callers insert merges before bigrams)
                }
                i = (i + 1) & t.mask;
            }
        }
        t
    }

    #[inline]
    fn hash(&self, key: u64) -> usize {
        (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> self.shift) as usize
    }

    /// First-look probe of two slots with no branch on the table's contents, so that probes
    /// for many pairs can be in flight at once: the merged id, [`PROBE_NO_MERGE`],
    /// [`PROBE_MISS`], or [`PROBE_SLOW`] (undecided after two slots: call [`Self::get`]).
    #[inline]
    fn probe2(&self, l: u32, r: u32) -> u32 {
        let key = ((l as u64) << BITS) | r as u64;
        let i = self.hash(key);
        let (a, b) = (self.slots[i], self.slots[(i + 1) & self.mask]);
        let code = |s: u64| {
            let m = (s & FIELD) as u32;
            if m == NO_MERGE_FIELD as u32 {
                PROBE_NO_MERGE
            } else {
                m
            }
        };
        let later = if b >> BITS == key {
            code(b)
        } else if b == EMPTY {
            PROBE_MISS
        } else {
            PROBE_SLOW
        };
        if a >> BITS == key {
            code(a)
        } else if a == EMPTY {
            PROBE_MISS
        } else {
            later
        }
    }

    /// Start loading the slot of `(l, r)` into cache, without waiting for it.
    #[inline(always)]
    fn prefetch(&self, l: u32, r: u32) {
        let i = self.hash(((l as u64) << BITS) | r as u64);
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a prefetch is a hint that never faults, and the address is inside `slots`.
        unsafe {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            _mm_prefetch::<_MM_HINT_T0>(self.slots.as_ptr().add(i) as *const i8);
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = i;
    }

    /// `Some(merged)` (`NO_KEY` when the pair is known but does not merge), `None` if absent.
    #[inline]
    fn get(&self, l: u32, r: u32) -> Option<u32> {
        let key = ((l as u64) << BITS) | r as u64;
        let mut i = self.hash(key);
        loop {
            let s = self.slots[i];
            if s >> BITS == key {
                let m = s & FIELD;
                return Some(if m == NO_MERGE_FIELD {
                    NO_KEY
                } else {
                    m as u32
                });
            }
            if s == EMPTY {
                return None;
            }
            i = (i + 1) & self.mask;
        }
    }
}

impl SymbolTable {
    pub fn new(pieces: &[Piece]) -> Self {
        let num_pieces = pieces.len() as u32;
        let mut by_str: FxHashMap<&str, u32> = FxHashMap::default();
        for (i, p) in pieces.iter().enumerate() {
            by_str.entry(p.piece.as_str()).or_insert(i as u32);
        }
        let mut t = SymbolTable {
            num_pieces,
            has_unused: false,
            ascii: [NO_KEY; 128],
            bmp: vec![NO_KEY; 0x10000],
            bmp16: Vec::new(),
            astral: FxHashMap::default(),
            key_len: pieces.iter().map(|p| p.piece.len() as u32).collect(),
            pairs: PairTable::new(&[], SPREAD),
            bigrams: PairTable::new(&[], SPREAD),
            rank: vec![NO_RANK; pieces.len()],
            unused: pieces
                .iter()
                .map(|p| p.kind() == PieceType::Unused)
                .collect(),
            user: vec![Vec::new(); 256],
            has_user: false,
        };
        t.has_unused = t.unused.iter().any(|&u| u);
        // Keys for every character a mergeable piece contains, and for single-char pieces.
        for p in pieces {
            let mergeable = is_mergeable(p.kind());
            let single = p.piece.chars().count() == 1;
            if !(mergeable || single) {
                continue;
            }
            for c in p.piece.chars() {
                if t.key_of_char(c) != NO_KEY {
                    continue;
                }
                let mut buf = [0u8; 4];
                let key = match by_str.get(c.encode_utf8(&mut buf) as &str) {
                    Some(&id) => id,
                    None => {
                        t.key_len.push(c.len_utf8() as u32);
                        (t.key_len.len() - 1) as u32
                    }
                };
                t.set_char_key(c, key);
            }
        }
        // Ranks: scores in descending order, equal scores (C++ `==`, so -0.0 == 0.0) sharing one.
        let mut scores: Vec<f32> = pieces
            .iter()
            .filter(|p| is_mergeable(p.kind()))
            .map(|p| p.score())
            .collect();
        scores.sort_by(|a, b| b.total_cmp(a));
        scores.dedup_by(|a, b| a == b);
        let rank_of = |s: f32| scores.partition_point(|&x| x > s) as u32;
        let key_of_str = |t: &SymbolTable, s: &str| -> Option<u32> {
            if let Some(&id) = by_str.get(s) {
                return Some(id);
            }
            let mut cs = s.chars();
            match (cs.next(), cs.next()) {
                (Some(c), None) => Some(t.key_of_char(c)).filter(|&k| k != NO_KEY),
                _ => None,
            }
        };
        let mut merges = Vec::new();
        let mut bigrams = Vec::new();
        for (id, p) in pieces.iter().enumerate() {
            if !is_mergeable(p.kind()) || by_str[p.piece.as_str()] != id as u32 {
                continue;
            }
            let s = p.piece.as_str();
            t.rank[id] = rank_of(p.score());
            for (b, _) in s.char_indices().skip(1) {
                if let (Some(l), Some(r)) = (key_of_str(&t, &s[..b]), key_of_str(&t, &s[b..])) {
                    merges.push((l, r, id as u32));
                }
            }
            let mut cs = s.chars();
            if let (Some(a), Some(b), None) = (cs.next(), cs.next(), cs.next()) {
                bigrams.push((t.key_of_char(a), t.key_of_char(b), id as u32));
            }
            if p.kind() == PieceType::UserDefined {
                t.user[s.as_bytes()[0] as usize].push((s.as_bytes().into(), id as u32));
                t.has_user = true;
            }
        }
        // Two-character pieces first, so that a bigram that is itself a piece keeps its merge.
        for p in pieces.iter().filter(|p| is_mergeable(p.kind())) {
            let cs: Vec<char> = p.piece.chars().collect();
            for w in cs.windows(2) {
                bigrams.push((
                    t.key_of_char(w[0]),
                    t.key_of_char(w[1]),
                    NO_MERGE_FIELD as u32,
                ));
            }
        }
        if t.key_len.len() < u16::MAX as usize {
            t.bmp16 = t
                .bmp
                .iter()
                .map(|&k| if k == NO_KEY { u16::MAX } else { k as u16 })
                .collect();
        }
        t.pairs = PairTable::new(&merges, SPREAD);
        // One entry per pair (the first: a two-character piece's merge beats "no merge"), so
        // the table is sized by distinct pairs (~14K on the reference merge: 512 KiB at a
        // load of at most 1/4) rather than by every window of every piece.
        let mut seen = rustc_hash::FxHashSet::default();
        bigrams.retain(|&(l, r, _)| seen.insert((l, r)));
        t.bigrams = PairTable::new(&bigrams, SPREAD);
        for v in &mut t.user {
            v.sort_by_key(|e| std::cmp::Reverse(e.0.len()));
        }
        t
    }

    /// Number of distinct symbol keys (pieces plus virtual characters).
    pub fn num_keys(&self) -> usize {
        self.key_len.len()
    }

    fn key_of_char(&self, c: char) -> u32 {
        let cp = c as u32;
        if cp < 0x80 {
            self.ascii[cp as usize]
        } else if cp < 0x10000 {
            self.bmp[cp as usize]
        } else {
            self.astral.get(&cp).copied().unwrap_or(NO_KEY)
        }
    }

    fn set_char_key(&mut self, c: char, key: u32) {
        let cp = c as u32;
        if cp < 0x80 {
            self.ascii[cp as usize] = key;
        } else if cp < 0x10000 {
            self.bmp[cp as usize] = key;
        } else {
            self.astral.insert(cp, key);
        }
    }

    #[inline(always)]
    fn bmp_key(&self, cp: u32) -> u32 {
        match self.bmp16.get(cp as usize) {
            Some(&k) if k == u16::MAX => NO_KEY,
            Some(&k) => k as u32,
            None => self.bmp[cp as usize],
        }
    }

    /// Key and byte length of the character at `b[pos..]` (`b` is valid UTF-8).
    #[inline(always)]
    pub fn char_key(&self, b: &[u8], pos: usize) -> (u32, usize) {
        let b0 = b[pos];
        if b0 < 0x80 {
            return (self.ascii[b0 as usize], 1);
        }
        if b0 < 0xE0 {
            let cp = ((b0 as u32 & 0x1F) << 6) | (b[pos + 1] as u32 & 0x3F);
            return (self.bmp_key(cp), 2);
        }
        if b0 < 0xF0 {
            let cp = ((b0 as u32 & 0x0F) << 12)
                | ((b[pos + 1] as u32 & 0x3F) << 6)
                | (b[pos + 2] as u32 & 0x3F);
            return (self.bmp_key(cp), 3);
        }
        let cp = ((b0 as u32 & 0x07) << 18)
            | ((b[pos + 1] as u32 & 0x3F) << 12)
            | ((b[pos + 2] as u32 & 0x3F) << 6)
            | (b[pos + 3] as u32 & 0x3F);
        (self.astral.get(&cp).copied().unwrap_or(NO_KEY), 4)
    }

    pub fn has_user(&self) -> bool {
        self.has_user
    }

    /// The longest user-defined symbol that prefixes `rest`, as `(id, byte length)`.
    #[inline]
    pub fn user_match(&self, rest: &[u8]) -> Option<(u32, usize)> {
        if !self.has_user {
            return None;
        }
        self.user[rest[0] as usize]
            .iter()
            .find(|(s, _)| rest.starts_with(s))
            .map(|(s, id)| (*id, s.len()))
    }

    /// Two adjacent characters: `None` when no piece contains them together (no merge can
    /// ever join them), else their direct merge (`rank == NO_RANK` when there is none).
    #[inline]
    pub fn char_pair(&self, l: u32, r: u32) -> Option<PairEntry> {
        self.bigrams.get(l, r).map(|m| self.entry(m))
    }

    /// [`Self::char_pair`] in two steps: a branch-free first probe (any keys, even `NO_KEY`,
    /// are safe to probe: they match nothing) ...
    #[inline]
    pub fn char_pair_code(&self, l: u32, r: u32) -> u32 {
        self.bigrams.probe2(l, r)
    }

    /// ... and its resolution.
    #[inline]
    pub fn char_pair_resolve(&self, code: u32, l: u32, r: u32) -> Option<PairEntry> {
        match code {
            PROBE_MISS => None,
            PROBE_NO_MERGE => Some(NO_MERGE),
            PROBE_SLOW => self.char_pair(l, r),
            m => Some(self.entry(m)),
        }
    }

    /// Start loading what [`Self::merge`] of `(l, r)` will read.
    #[inline(always)]
    pub fn prefetch_merge(&self, l: u32, r: u32) {
        self.pairs.prefetch(l, r);
    }

    /// The merge of two symbols, with `rank == NO_RANK` when there is none.
    #[inline]
    pub fn merge(&self, l: u32, r: u32) -> PairEntry {
        self.pairs.get(l, r).map_or(NO_MERGE, |m| self.entry(m))
    }

    #[inline]
    fn entry(&self, merged: u32) -> PairEntry {
        if merged == NO_KEY {
            NO_MERGE
        } else {
            PairEntry {
                merged,
                rank: self.rank[merged as usize],
            }
        }
    }

    pub fn is_unused(&self, key: u32) -> bool {
        self.unused.get(key as usize).copied().unwrap_or(false)
    }

    pub fn key_len(&self, key: u32) -> usize {
        self.key_len[key as usize] as usize
    }
}

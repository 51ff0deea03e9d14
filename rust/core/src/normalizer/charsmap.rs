//! sentencepiece's precompiled charsmap: a darts-clone double-array trie over the source
//! strings, whose values are byte offsets into a blob of NUL-terminated replacement strings.
//!
//! Layout (normalizer.cc, `DecodePrecompiledCharsMap`): `<trie size: u32 LE><trie units: u32 LE
//! each><replacement strings>`. The reader below walks the array exactly as darts-clone's
//! `commonPrefixSearch` does, so every key it finds is one sentencepiece finds, and it accepts
//! exactly the blobs sentencepiece 0.2.3 accepts (its `DecodePrecompiledCharsMap` checks plus
//! darts-clone's `validate`). After validation every walk stays inside the array.

use super::NormalizerError;

/// A darts-clone double array, read-only. Unit layout (darts.h, `DoubleArrayUnit`): bits 0-7
/// label, bit 8 has-leaf, bit 9 offset scale, bits 10-30 offset; value units set bit 31 and keep
/// the value in bits 0-30.
#[derive(Debug, Clone)]
pub(crate) struct DoubleArray {
    units: Vec<u32>,
}

#[inline]
fn has_leaf(unit: u32) -> bool {
    (unit >> 8) & 1 == 1
}
#[inline]
fn value(unit: u32) -> u32 {
    unit & ((1 << 31) - 1)
}
#[inline]
fn label(unit: u32) -> u32 {
    unit & ((1 << 31) | 0xFF)
}
#[inline]
fn offset(unit: u32) -> usize {
    ((unit >> 10) << ((unit & (1 << 9)) >> 6)) as usize
}

impl DoubleArray {
    pub(crate) fn from_units(units: Vec<u32>) -> Self {
        DoubleArray { units }
    }

    /// darts-clone's `validate(max_value_limit)` as sentencepiece 0.2.3 calls it: the root is a
    /// plain node, every node's child block lies inside the array, every has-leaf node points
    /// at a value unit, and every value is below `max_value`.
    pub(crate) fn validate(&self, max_value: u32) -> bool {
        let units = &self.units;
        let size = units.len();
        let Some(&root) = units.first() else {
            return false;
        };
        if label(root) != 0 || has_leaf(root) || offset(root) == 0 || (offset(root) | 0xFF) >= size
        {
            return false;
        }
        for (i, &u) in units.iter().enumerate().skip(1) {
            if label(u) <= 0xFF {
                let child = i ^ offset(u);
                if (child | 0xFF) >= size || (has_leaf(u) && label(units[child]) <= 0xFF) {
                    return false;
                }
            } else if value(u) >= max_value {
                return false;
            }
        }
        true
    }

    /// The first `limit` `(value, key length)` pairs whose key is a prefix of `key`, shortest
    /// first, as darts-clone's `commonPrefixSearch` filling a `limit`-entry result buffer.
    /// Indices outside the array (impossible after `validate`) end the search.
    #[inline]
    pub(crate) fn common_prefix_search(
        &self,
        key: &[u8],
        limit: usize,
        mut found: impl FnMut(u32, usize),
    ) {
        let Some(&root) = self.units.first() else {
            return;
        };
        let mut pos = offset(root);
        let mut n = 0;
        for (i, &b) in key.iter().enumerate() {
            if n == limit {
                return;
            }
            pos ^= b as usize;
            let Some(&unit) = self.units.get(pos) else {
                return;
            };
            if label(unit) != b as u32 {
                return;
            }
            pos ^= offset(unit);
            if has_leaf(unit) {
                let Some(&v) = self.units.get(pos) else {
                    return;
                };
                found(value(v), i + 1);
                n += 1;
            }
        }
    }

    /// The longest of the first `limit` keys that are prefixes of `key`: `(value, length)`.
    #[inline]
    pub(crate) fn longest_prefix(&self, key: &[u8], limit: usize) -> Option<(u32, usize)> {
        let mut best = None;
        self.common_prefix_search(key, limit, |v, len| best = Some((v, len)));
        best
    }

    /// Whether some key longer than one byte starts with byte `b`.
    fn has_longer_key(&self, b: u8) -> bool {
        let Some(&root) = self.units.first() else {
            return false;
        };
        let pos = offset(root) ^ b as usize;
        let Some(&unit) = self.units.get(pos) else {
            return false;
        };
        if label(unit) != b as u32 {
            return false;
        }
        let child = pos ^ offset(unit);
        // Label 0 is the leaf (value) slot; any other matching label is a deeper key.
        (1..=255u32).any(|c| {
            self.units
                .get(child ^ c as usize)
                .is_some_and(|&u| label(u) == c)
        })
    }
}

/// What one leading byte tells without walking the trie.
#[derive(Debug, Clone, Copy)]
pub(crate) enum FirstByte {
    /// No key starts with this byte: the prefix is one UTF-8 character of the input.
    NoKey,
    /// The only key starting with this byte is the byte itself, mapped to the given blob offset.
    Single(u32),
    /// Longer keys exist: walk the trie.
    Walk,
}

/// `Normalizer::kMaxTrieResultsSize`: `NormalizePrefix` only looks at this many matches.
const MAX_TRIE_RESULTS: usize = 32;

#[derive(Debug, Clone)]
pub(crate) struct CharsMap {
    trie: DoubleArray,
    blob: Vec<u8>,
    /// `valid_start[i]`: the NUL-terminated string at blob offset `i` is valid UTF-8. A rule
    /// pointing elsewhere (only in hand-made blobs: sentencepiece's builder writes UTF-8) is
    /// treated as absent, since a `String` cannot hold the bytes sentencepiece would copy.
    valid_start: Vec<bool>,
    first: [FirstByte; 256],
}

impl CharsMap {
    /// Decode a `precompiled_charsmap` with the checks of sentencepiece 0.2.3's
    /// `DecodePrecompiledCharsMap` and `Normalizer::Init`.
    pub(crate) fn parse(data: &[u8]) -> Result<Self, NormalizerError> {
        let bad = |why: String| Err(NormalizerError::CorruptCharsMap(why));
        if data.len() <= 4 {
            return bad(format!(
                "{} bytes is too short to hold the trie size",
                data.len()
            ));
        }
        let trie_size = u32::from_le_bytes([data[0], data[1], data[2], data[3]]) as usize;
        let body = &data[4..];
        if trie_size >= body.len() {
            return bad(format!(
                "trie size {trie_size} leaves no room for strings in a {} byte blob",
                data.len()
            ));
        }
        // 256-unit blocks of 4-byte units.
        if trie_size < 1024 || trie_size & 0x3FF != 0 {
            return bad(format!(
                "trie size {trie_size} is not a positive multiple of 1024"
            ));
        }
        let blob = body[trie_size..].to_vec();
        if blob.last() != Some(&0) {
            return bad("the replacement strings are not NUL-terminated".into());
        }
        let units = body[..trie_size]
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let trie = DoubleArray::from_units(units);
        if !trie.validate(blob.len().min(i32::MAX as usize) as u32) {
            return bad("the double-array trie does not validate".into());
        }
        let valid_start = valid_starts(&blob);
        let mut map = CharsMap {
            trie,
            blob,
            valid_start,
            first: [FirstByte::NoKey; 256],
        };
        for b in 0..=255u8 {
            map.first[b as usize] = if map.trie.has_longer_key(b) {
                FirstByte::Walk
            } else {
                match map.trie.longest_prefix(&[b], MAX_TRIE_RESULTS) {
                    Some((v, _)) if map.replacement(v).is_some() => FirstByte::Single(v),
                    _ => FirstByte::NoKey,
                }
            };
        }
        Ok(map)
    }

    #[inline]
    pub(crate) fn first_byte(&self, b: u8) -> FirstByte {
        self.first[b as usize]
    }

    /// The replacement string at blob offset `v` (up to its NUL, or the blob's end).
    #[inline]
    pub(crate) fn replacement(&self, v: u32) -> Option<&[u8]> {
        let v = v as usize;
        if !*self.valid_start.get(v)? {
            return None;
        }
        let rest = &self.blob[v..];
        let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        Some(&rest[..end])
    }

    /// Longest rule matching a prefix of `input`: `(replacement, consumed bytes)`, as
    /// `Normalizer::NormalizePrefix` picks it (longest key wins).
    #[inline]
    pub(crate) fn lookup(&self, input: &[u8]) -> Option<(&[u8], usize)> {
        let (v, len) = self.trie.longest_prefix(input, MAX_TRIE_RESULTS)?;
        Some((self.replacement(v)?, len))
    }
}

/// For each blob offset, whether the string from there to its NUL is valid UTF-8. Computed
/// right to left per string: a start is valid when one valid character begins there and the
/// rest of the string from after it is valid.
fn valid_starts(blob: &[u8]) -> Vec<bool> {
    let mut ok = vec![false; blob.len()];
    for i in (0..blob.len()).rev() {
        if blob[i] == 0 {
            ok[i] = true;
            continue;
        }
        ok[i] = match super::utf8_char_len(&blob[i..]) {
            Some(n) => blob.get(i + n).is_none() || ok[i + n],
            None => false,
        };
    }
    ok
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hand-built double array for keys {"a" -> 7, "ab" -> 9} following darts-clone's layout:
    /// root at 0 with offset 1; 'a' at 1^'a'; its children block at offset 256.
    fn tiny() -> DoubleArray {
        let mut units = vec![0u32; 1024];
        let unit = |label: u32, has_leaf: bool, offset: u32| {
            (offset << 10) | ((has_leaf as u32) << 8) | label
        };
        let value = |v: u32| v | (1 << 31);
        units[0] = unit(0, false, 1); // root: children at 1 ^ label
        let a = 1 ^ b'a' as usize;
        units[a] = unit(b'a' as u32, true, (a ^ 256) as u32); // children at 256 ^ label
        units[256] = value(7); // leaf of "a"
        let ab = 256 ^ b'b' as usize;
        units[ab] = unit(b'b' as u32, true, (ab ^ 512) as u32);
        units[512] = value(9);
        DoubleArray::from_units(units)
    }

    #[test]
    fn common_prefix_search_finds_every_prefix_key() {
        let t = tiny();
        let mut got = Vec::new();
        t.common_prefix_search(b"abc", 32, |v, l| got.push((v, l)));
        assert_eq!(got, vec![(7, 1), (9, 2)]);
        assert_eq!(t.longest_prefix(b"ax", 32), Some((7, 1)));
        assert_eq!(t.longest_prefix(b"b", 32), None);
        assert_eq!(t.longest_prefix(b"", 32), None);
        // NUL never matches: the leaf slot's label carries bit 31.
        assert_eq!(t.longest_prefix(b"a\0", 32), Some((7, 1)));
        assert!(t.has_longer_key(b'a'));
        assert!(!t.has_longer_key(b'b'));
        assert!(DoubleArray::from_units(vec![])
            .longest_prefix(b"a", 32)
            .is_none());
    }

    fn blob(units: &[u32], strings: &[u8]) -> Vec<u8> {
        let mut out = ((units.len() * 4) as u32).to_le_bytes().to_vec();
        units
            .iter()
            .for_each(|u| out.extend_from_slice(&u.to_le_bytes()));
        out.extend_from_slice(strings);
        out
    }

    #[test]
    fn validation_matches_sentencepiece_0_2_3() {
        let t = tiny();
        assert!(t.validate(10));
        assert!(!t.validate(9), "value 9 must be below the strings' size");
        assert!(CharsMap::parse(&blob(&t.units, b"0123456789\0")).is_ok());
        let bad = |why: &str, data: Vec<u8>| {
            let err = CharsMap::parse(&data)
                .err()
                .unwrap_or_else(|| panic!("accepted: {why}"));
            assert!(err.to_string().contains("corrupt"), "{err}");
        };
        bad("empty", vec![]);
        bad("header only", vec![1, 0, 0, 0]);
        bad("trie larger than blob", vec![9, 0, 0, 0, 0, 0]);
        bad("no strings", blob(&t.units, b""));
        bad("strings not NUL-terminated", blob(&t.units, b"0123456789"));
        bad(
            "trie not a multiple of 1024 bytes",
            blob(&t.units[..1000], b"0123456789\0"),
        );
        let mut broken = t.units.clone();
        broken[0] |= 1 << 8; // root with a leaf
        bad("root has leaf", blob(&broken, b"0123456789\0"));
        let mut broken = t.units.clone();
        broken[256] = 0; // "a" points at a non-value unit
        bad("leaf without value", blob(&broken, b"0123456789\0"));
    }

    #[test]
    fn result_cap_limits_the_longest_match() {
        let t = tiny();
        assert_eq!(t.longest_prefix(b"ab", 1), Some((7, 1)));
        assert_eq!(t.longest_prefix(b"ab", 2), Some((9, 2)));
    }

    #[test]
    fn valid_starts_follow_utf8() {
        let v = valid_starts("a\u{e9}\0\u{ff}".as_bytes());
        // a, é (2 bytes: start ok, continuation not), NUL, ÿ (2 bytes)
        assert_eq!(v, vec![true, true, false, true, true, false]);
        let v = valid_starts(b"\xffa\0");
        assert_eq!(v, vec![false, true, true]);
    }
}

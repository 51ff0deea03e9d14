//! sentencepiece's precompiled charsmap: a darts-clone double-array trie over the source
//! strings, whose values are byte offsets into a blob of NUL-terminated replacement strings.
//!
//! Layout (normalizer.cc, `DecodePrecompiledCharsMap`): `<trie size: u32 LE><trie units: u32 LE
//! each><replacement strings>`. The reader below walks the array exactly as darts-clone's
//! `commonPrefixSearch` does, so every key it finds is one sentencepiece finds.

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

    /// Every `(value, key length)` whose key is a prefix of `key`, shortest first, as darts-clone's
    /// `commonPrefixSearch`. Indices outside the array (only in corrupt blobs; C++ would read out
    /// of bounds there) end the search.
    #[inline]
    pub(crate) fn common_prefix_search(&self, key: &[u8], mut found: impl FnMut(u32, usize)) {
        let Some(&root) = self.units.first() else {
            return;
        };
        let mut pos = offset(root);
        for (i, &b) in key.iter().enumerate() {
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
            }
        }
    }

    /// The longest key that is a prefix of `key`: `(value, length)`.
    #[inline]
    pub(crate) fn longest_prefix(&self, key: &[u8]) -> Option<(u32, usize)> {
        let mut best = None;
        self.common_prefix_search(key, |v, len| best = Some((v, len)));
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

#[derive(Debug, Clone)]
pub(crate) struct CharsMap {
    trie: DoubleArray,
    blob: Vec<u8>,
    /// `valid_start[i]`: the NUL-terminated string at blob offset `i` is valid UTF-8. Offsets
    /// that fail (only in corrupt models) are ignored as matches, since a `String` cannot hold
    /// the bytes sentencepiece would copy there.
    valid_start: Vec<bool>,
    first: [FirstByte; 256],
}

impl CharsMap {
    /// Decode a `precompiled_charsmap` with the checks of `DecodePrecompiledCharsMap`.
    pub(crate) fn parse(data: &[u8]) -> Result<Self, NormalizerError> {
        if data.len() <= 4 {
            return Err(NormalizerError::CorruptCharsMap(format!(
                "{} bytes is too short to hold the trie size",
                data.len()
            )));
        }
        let trie_size = u32::from_le_bytes([data[0], data[1], data[2], data[3]]) as usize;
        if trie_size >= data.len() {
            return Err(NormalizerError::CorruptCharsMap(format!(
                "trie size {trie_size} exceeds the blob size {}",
                data.len()
            )));
        }
        // `trie_size < data.len()` but the header itself takes 4 bytes, so clamp like the
        // C++ code, which would read past the end there; we read what is present.
        let body = &data[4..];
        let trie_bytes = &body[..trie_size.min(body.len())];
        // darts `set_array(data, size / unit_size)`: a trailing partial unit is ignored.
        let units = trie_bytes
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let blob = body[trie_bytes.len()..].to_vec();
        let trie = DoubleArray::from_units(units);
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
                match map.trie.longest_prefix(&[b]) {
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
        let (v, len) = self.trie.longest_prefix(input)?;
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
        t.common_prefix_search(b"abc", |v, l| got.push((v, l)));
        assert_eq!(got, vec![(7, 1), (9, 2)]);
        assert_eq!(t.longest_prefix(b"ax"), Some((7, 1)));
        assert_eq!(t.longest_prefix(b"b"), None);
        assert_eq!(t.longest_prefix(b""), None);
        // NUL never matches: the leaf slot's label carries bit 31.
        assert_eq!(t.longest_prefix(b"a\0"), Some((7, 1)));
        assert!(t.has_longer_key(b'a'));
        assert!(!t.has_longer_key(b'b'));
        assert!(DoubleArray::from_units(vec![])
            .longest_prefix(b"a")
            .is_none());
    }

    #[test]
    fn corrupt_blobs_are_errors() {
        assert!(CharsMap::parse(&[]).is_err());
        assert!(CharsMap::parse(&[1, 0, 0, 0]).is_err());
        assert!(CharsMap::parse(&[9, 0, 0, 0, 0, 0]).is_err());
        // Out-of-range offsets inside an accepted blob do not panic.
        let m = CharsMap::parse(&[4, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, b'x']).unwrap();
        assert!(m.lookup(b"abc").is_none());
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

//! A double-array trie over a set of byte strings (the tokens the backtracking encoder may
//! emit): walking one byte costs two array reads (`base[node] + byte`, then `check` confirms
//! the parent), so the longest token at a position takes one read per byte of it, with no
//! hashing. Built once per tokenizer.

/// No child / no token.
pub(crate) const NONE: u32 = u32::MAX;

#[derive(Clone, Copy)]
struct Unit {
    /// Children of this node sit at `base + byte`.
    base: u32,
    /// The parent node of this slot (`NONE`: a free slot).
    check: u32,
    /// The token that ends at this node, or `NONE`.
    token: u32,
}

pub(crate) struct Trie {
    units: Vec<Unit>,
}

/// The first free slot at or after `p` (slots past the end of `skip` are free).
fn free_from(skip: &mut [u32], p: usize) -> usize {
    let mut root = p;
    while root < skip.len() && skip[root] as usize != root {
        root = skip[root] as usize;
    }
    let mut q = p;
    while q < skip.len() && skip[q] as usize != root && q != root {
        let next = skip[q] as usize;
        skip[q] = root as u32;
        q = next;
    }
    root
}

impl Trie {
    /// `entries`: (bytes, token id); bytes non-empty and distinct.
    pub(crate) fn build<'a>(entries: impl Iterator<Item = (&'a [u8], u32)>) -> Self {
        let mut entries: Vec<(&[u8], u32)> = entries.collect();
        entries.sort_unstable();
        let empty = Unit {
            base: 0,
            check: NONE,
            token: NONE,
        };
        let mut units = vec![empty; 1024];
        units[0].check = 0; // the root
                            // `skip[s]`: s if slot s is free, else a slot nearer the next free one (followed with
                            // path compression, so the search for a free slot skips used runs in amortised O(1)).
        let mut skip: Vec<u32> = (0..units.len() as u32).collect();
        skip[0] = 1;
        // (slot, entries of the node's subtree, depth): entries[lo..hi] share the node's path.
        let mut stack = vec![(0usize, 0usize, entries.len(), 0usize)];
        let mut kids: Vec<(u8, usize, usize)> = Vec::new();
        while let Some((slot, lo, hi, depth)) = stack.pop() {
            let mut i = lo;
            if i < hi && entries[i].0.len() == depth {
                units[slot].token = entries[i].1;
                i += 1;
            }
            kids.clear();
            while i < hi {
                let b = entries[i].0[depth];
                let start = i;
                while i < hi && entries[i].0[depth] == b {
                    i += 1;
                }
                kids.push((b, start, i));
            }
            if kids.is_empty() {
                continue;
            }
            // Try bases whose lowest child lands on a free slot, in order.
            let lo_byte = kids[0].0 as usize;
            let mut p = free_from(&mut skip, lo_byte + 1);
            let base = loop {
                if units.len() < p + 257 {
                    let n = (p + 257) * 2;
                    units.resize(n, empty);
                    skip.extend(skip.len() as u32..n as u32);
                }
                let base = p - lo_byte;
                if kids
                    .iter()
                    .all(|&(b, _, _)| units[base + b as usize].check == NONE)
                {
                    break base;
                }
                p = free_from(&mut skip, p + 1);
            };
            units[slot].base = base as u32;
            for &(b, start, end) in kids.iter().rev() {
                let s = base + b as usize;
                units[s].check = slot as u32;
                skip[s] = s as u32 + 1;
                stack.push((s, start, end, depth + 1));
            }
        }
        let last = units.iter().rposition(|u| u.check != NONE).unwrap_or(0);
        units.truncate(last + 257);
        units.shrink_to_fit();
        Trie { units }
    }

    /// The child of `node` by `byte`, or `NONE`.
    #[inline(always)]
    pub(crate) fn child(&self, node: u32, byte: u8) -> u32 {
        let s = self.units[node as usize].base as usize + byte as usize;
        match self.units.get(s) {
            Some(u) if u.check == node => s as u32,
            _ => NONE,
        }
    }

    /// The token ending at `node`, or `NONE`.
    #[inline(always)]
    pub(crate) fn token(&self, node: u32) -> u32 {
        self.units[node as usize].token
    }

    /// The tokens that `text` starts with and that are shorter than `limit` bytes, as
    /// (token, length), shortest first, into `out` (cleared first).
    #[inline(always)]
    pub(crate) fn prefixes(&self, text: &[u8], limit: usize, out: &mut Vec<(u32, u32)>) {
        out.clear();
        let mut node = 0u32;
        for (i, &b) in text[..text.len().min(limit.saturating_sub(1))]
            .iter()
            .enumerate()
        {
            node = self.child(node, b);
            if node == NONE {
                break;
            }
            let t = self.token(node);
            if t != NONE {
                out.push((t, i as u32 + 1));
            }
        }
    }

    /// Memory of the arrays, in bytes.
    pub(crate) fn bytes(&self) -> usize {
        self.units.len() * std::mem::size_of::<Unit>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_match_a_scan() {
        let words: Vec<&[u8]> = vec![
            b"a",
            b"ab",
            b"abc",
            b"b",
            b"bcd",
            b"\xff",
            b"\xff\x00",
            b"c",
        ];
        let t = Trie::build(words.iter().enumerate().map(|(i, w)| (*w, i as u32)));
        for text in [
            &b"abcd"[..],
            b"abd",
            b"bcdx",
            b"bc",
            b"\xff\x00\x01",
            b"zz",
            b"cab",
        ] {
            for limit in [0, 1, 2, 3, usize::MAX] {
                let mut want: Vec<(u32, u32)> = words
                    .iter()
                    .enumerate()
                    .filter(|(_, w)| text.starts_with(w) && w.len() < limit)
                    .map(|(i, w)| (i as u32, w.len() as u32))
                    .collect();
                want.sort_by_key(|&(_, len)| len);
                let mut got = vec![(7, 7)];
                t.prefixes(text, limit, &mut got);
                assert_eq!(got, want, "{text:?} {limit}");
            }
        }
    }
}

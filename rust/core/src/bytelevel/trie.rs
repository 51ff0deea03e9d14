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
    /// A text that starts with a three-byte sequence (lead byte `E0..=EF`, two continuation
    /// bytes: a CJK character, among others) skips the walk's first three steps: by the
    /// sequence's 16 payload bits (the code point), the node the three bytes reach, as a unit
    /// whose `check` is that node's slot (`NONE`: no node).
    jump3: Vec<Unit>,
    /// The tokens of the first byte (by its low four bits) and of the first two bytes (by
    /// their ten payload bits) of such a sequence, or `NONE`.
    lead_token: [u32; 16],
    pair_token: Vec<u32>,
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
        let mut t = Trie {
            units,
            jump3: Vec::new(),
            lead_token: [NONE; 16],
            pair_token: vec![NONE; 1 << 10],
        };
        let mut jump3 = vec![empty; 1 << 16];
        for b0 in 0xE0..=0xEFu8 {
            let n0 = t.child(0, b0);
            if n0 == NONE {
                continue;
            }
            t.lead_token[(b0 & 15) as usize] = t.token(n0);
            for b1 in 0x80..=0xBFu8 {
                let n1 = t.child(n0, b1);
                if n1 == NONE {
                    continue;
                }
                let hi = ((b0 & 15) as usize) << 6 | (b1 & 63) as usize;
                t.pair_token[hi] = t.token(n1);
                for b2 in 0x80..=0xBFu8 {
                    let n2 = t.child(n1, b2);
                    if n2 != NONE {
                        jump3[hi << 6 | (b2 & 63) as usize] = Unit {
                            check: n2,
                            ..t.units[n2 as usize]
                        };
                    }
                }
            }
        }
        t.jump3 = jump3;
        t
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
        let text = &text[..text.len().min(limit.saturating_sub(1))];
        let (mut node, mut base, mut i) = (0u32, self.units[0].base, 0usize);
        if let [b0 @ 0xE0..=0xEF, b1 @ 0x80..=0xBF, b2 @ 0x80..=0xBF, ..] = *text {
            let lead = self.lead_token[(b0 & 15) as usize];
            if lead != NONE {
                out.push((lead, 1));
            }
            let hi = ((b0 & 15) as usize) << 6 | (b1 & 63) as usize;
            let pair = self.pair_token[hi];
            if pair != NONE {
                out.push((pair, 2));
            }
            let u = &self.jump3[hi << 6 | (b2 & 63) as usize];
            if u.check == NONE {
                return;
            }
            if u.token != NONE {
                out.push((u.token, 3));
            }
            (node, base, i) = (u.check, u.base, 3);
        }
        while i < text.len() {
            let s = base as usize + text[i] as usize;
            let u = match self.units.get(s) {
                Some(u) if u.check == node => u,
                _ => break,
            };
            i += 1;
            if u.token != NONE {
                out.push((u.token, i as u32));
            }
            (node, base) = (s as u32, u.base);
        }
    }

    /// Memory of the arrays, in bytes.
    pub(crate) fn bytes(&self) -> usize {
        (self.units.len() + self.jump3.len()) * std::mem::size_of::<Unit>()
            + (self.lead_token.len() + self.pair_token.len()) * 4
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
            // Three-byte sequences (the first-character table): a lead byte, the first two
            // bytes, the whole character and tokens beyond it; a lead byte that is no token.
            b"\xe4",
            b"\xe4\xb8",
            b"\xe4\xb8\xad",
            b"\xe4\xb8\xad\xe6\x96\x87",
            b"\xe4\xb8\xadx",
            b"\xe4\xb9\x80",
            b"\xe5\xa5\xbd",
            b"\xef\xbf",
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
            b"\xe4\xb8\xad\xe6\x96\x87\xe5",
            b"\xe4\xb8\xadxy",
            b"\xe4\xb8\xae",
            b"\xe4\xb9\x80\xe4",
            b"\xe4\xba\x80",
            b"\xe5\xa5\xbd\xe5\xa5\xbd",
            b"\xe5\xa5",
            b"\xef\xbf\xbd",
            b"\xe4\xb8",
            b"\xe4x\x80",
        ] {
            for limit in [0, 1, 2, 3, 4, 5, 7, usize::MAX] {
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

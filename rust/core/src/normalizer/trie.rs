//! A read-only byte trie for the vocabulary (Unigram lattice) and the user-defined symbols
//! (normalizer prefix matcher). sentencepiece uses darts-clone for both; only the set of keys
//! found matters for exactness, so any trie that finds the same prefixes will do.

use std::collections::BTreeMap;

const NONE: u32 = u32::MAX;

#[derive(Debug, Clone, Default)]
pub struct ByteTrie {
    /// Root children by byte, for the first step of every walk.
    root: Vec<u32>,
    /// Per node: its value (`NONE` when no key ends here) and its edge range.
    values: Vec<u32>,
    edge_start: Vec<u32>,
    /// Edges of all nodes, each node's run sorted by label.
    labels: Vec<u8>,
    targets: Vec<u32>,
    len: usize,
}

impl ByteTrie {
    /// Build from `(key, value)` pairs. Empty keys are ignored (sentencepiece rejects empty
    /// pieces at load); a repeated key keeps its last value.
    pub fn new<'a>(keys: impl IntoIterator<Item = (&'a [u8], u32)>) -> Self {
        // Node 0 is the root; children kept ordered so the flattened edges come out sorted.
        let mut tree: Vec<(u32, BTreeMap<u8, u32>)> = vec![(NONE, BTreeMap::new())];
        let mut len = 0;
        for (key, value) in keys {
            if key.is_empty() {
                continue;
            }
            let mut node = 0usize;
            for &b in key {
                let next = tree.len() as u32;
                let child = *tree[node].1.entry(b).or_insert(next);
                if child == next {
                    tree.push((NONE, BTreeMap::new()));
                }
                node = child as usize;
            }
            if tree[node].0 == NONE {
                len += 1;
            }
            tree[node].0 = value;
        }
        let mut t = ByteTrie {
            root: vec![NONE; 256],
            len,
            ..Default::default()
        };
        for (value, children) in &tree {
            t.values.push(*value);
            t.edge_start.push(t.labels.len() as u32);
            for (&b, &c) in children {
                t.labels.push(b);
                t.targets.push(c);
            }
        }
        t.edge_start.push(t.labels.len() as u32);
        for (&b, &c) in &tree[0].1 {
            t.root[b as usize] = c;
        }
        t
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether some key starts with byte `b`.
    #[inline]
    pub fn starts_with_byte(&self, b: u8) -> bool {
        self.root.get(b as usize).is_some_and(|&c| c != NONE)
    }

    #[inline]
    fn child(&self, node: u32, b: u8) -> Option<u32> {
        if node == 0 {
            let c = self.root[b as usize];
            return (c != NONE).then_some(c);
        }
        let lo = self.edge_start[node as usize] as usize;
        let hi = self.edge_start[node as usize + 1] as usize;
        let labels = &self.labels[lo..hi];
        let i = if labels.len() <= 8 {
            labels.iter().position(|&l| l == b)?
        } else {
            labels.binary_search(&b).ok()?
        };
        Some(self.targets[lo + i])
    }

    /// Calls `found(value, key length)` for every key that is a prefix of `text`, shortest
    /// first (the order of darts-clone's `commonPrefixSearch` and `traverse`).
    #[inline]
    pub fn for_each_prefix(&self, text: &[u8], mut found: impl FnMut(u32, usize)) {
        if self.root.is_empty() {
            return;
        }
        let mut node = 0u32;
        for (i, &b) in text.iter().enumerate() {
            match self.child(node, b) {
                Some(c) => node = c,
                None => return,
            }
            let v = self.values[node as usize];
            if v != NONE {
                found(v, i + 1);
            }
        }
    }

    /// Length of the longest key that is a prefix of `text`, with its value.
    #[inline]
    pub fn longest_prefix(&self, text: &[u8]) -> Option<(u32, usize)> {
        let mut best = None;
        self.for_each_prefix(text, |v, len| best = Some((v, len)));
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_shortest_first() {
        let keys: [(&[u8], u32); 4] = [(b"ab", 1), (b"a", 0), (b"abcd", 2), (b"b", 3)];
        let t = ByteTrie::new(keys);
        assert_eq!(t.len(), 4);
        let mut got = Vec::new();
        t.for_each_prefix(b"abcde", |v, l| got.push((v, l)));
        assert_eq!(got, vec![(0, 1), (1, 2), (2, 4)]);
        assert_eq!(t.longest_prefix(b"abc"), Some((1, 2)));
        assert_eq!(t.longest_prefix(b"c"), None);
        assert!(t.starts_with_byte(b'b') && !t.starts_with_byte(b'c'));
        assert_eq!(ByteTrie::new([]).longest_prefix(b"a"), None);
    }

    #[test]
    fn wide_nodes_use_binary_search() {
        let keys: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b'x', b]).collect();
        let t = ByteTrie::new(
            keys.iter()
                .enumerate()
                .map(|(i, k)| (k.as_slice(), i as u32)),
        );
        for b in 0..=255u8 {
            assert_eq!(t.longest_prefix(&[b'x', b, b'z']), Some((b as u32, 2)));
        }
    }
}

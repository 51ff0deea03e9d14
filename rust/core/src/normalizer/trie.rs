//! A read-only byte trie for the vocabulary (Unigram lattice) and the user-defined symbols
//! (normalizer prefix matcher). sentencepiece uses darts-clone for both; only the set of keys
//! found, and their shortest-first order, matter for exactness, so any trie that finds the
//! same prefixes will do.
//!
//! Performance notes: the Unigram Viterbi walks this trie from every character position, so
//! one step must be cheap. A double array (child of node `s` by byte `c` at `base[s] + c`,
//! valid when `check` there is `s`) makes each step one bounds-free load of a 12-byte cell;
//! sorted edge lists with binary search were ~2x slower on Chinese text, where the nodes after
//! a UTF-8 lead byte have dozens of children.

use std::collections::BTreeMap;

const NONE: u32 = u32::MAX;

/// One double-array cell: `check` = parent position (`NONE` if free), `base` = offset of this
/// node's children, `value` = key id ending here (`NONE` if none).
#[derive(Debug, Clone, Copy)]
#[repr(C)]
struct Cell {
    base: u32,
    check: u32,
    value: u32,
}

const FREE: Cell = Cell {
    base: 0,
    check: NONE,
    value: NONE,
};

#[derive(Debug, Clone)]
pub struct ByteTrie {
    /// Position 0 is the root. Sized so `base + 255` is always in range: no bounds checks in
    /// the walk beyond the slice's own.
    cells: Vec<Cell>,
    len: usize,
}

impl Default for ByteTrie {
    fn default() -> Self {
        ByteTrie::new([])
    }
}

impl ByteTrie {
    /// Build from `(key, value)` pairs. Empty keys are ignored (sentencepiece rejects empty
    /// pieces at load); a repeated key keeps its last value.
    pub fn new<'a>(keys: impl IntoIterator<Item = (&'a [u8], u32)>) -> Self {
        // A pointer trie first (node 0 = root), then laid out breadth-first as a double array.
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
        ByteTrie {
            cells: layout(&tree),
            len,
        }
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline]
    fn child(&self, node: u32, b: u8) -> Option<u32> {
        let t = self.cells[node as usize].base as usize + b as usize;
        let cell = self.cells.get(t)?;
        (cell.check == node).then_some(t as u32)
    }

    /// Whether some key starts with byte `b`.
    #[inline]
    pub fn starts_with_byte(&self, b: u8) -> bool {
        self.child(0, b).is_some()
    }

    /// Calls `found(value, key length)` for every key that is a prefix of `text`, shortest
    /// first (the order of darts-clone's `commonPrefixSearch` and `traverse`).
    #[inline]
    pub fn for_each_prefix(&self, text: &[u8], mut found: impl FnMut(u32, usize)) {
        let mut node = 0u32;
        for (i, &b) in text.iter().enumerate() {
            match self.child(node, b) {
                Some(c) => node = c,
                None => return,
            }
            let v = self.cells[node as usize].value;
            if v != NONE {
                found(v, i + 1);
            }
        }
    }

    /// The longest of the first `limit` keys (shortest first) that are prefixes of `text`:
    /// `(value, length)`. sentencepiece's `PrefixMatcher` reads at most 64 matches.
    #[inline]
    pub fn longest_prefix(&self, text: &[u8], limit: usize) -> Option<(u32, usize)> {
        let mut best = None;
        let mut n = 0;
        let mut node = 0u32;
        for (i, &b) in text.iter().enumerate() {
            if n == limit {
                break;
            }
            match self.child(node, b) {
                Some(c) => node = c,
                None => break,
            }
            let v = self.cells[node as usize].value;
            if v != NONE {
                best = Some((v, i + 1));
                n += 1;
            }
        }
        best
    }
}

/// Place every node of `tree` in a double array, breadth first, each node's children at the
/// first base where all their slots are free. Candidate positions come from a linked list of
/// free cells; like darts-clone's builder, a cell that keeps failing as a first slot is
/// dropped from the search (left as a hole), which bounds the build to roughly linear time.
fn layout(tree: &[(u32, BTreeMap<u8, u32>)]) -> Vec<Cell> {
    let mut free = FreeCells::new();
    let mut cells: Vec<Cell> = Vec::new();
    free.grow(&mut cells, 512);
    free.take(
        &mut cells,
        0,
        Cell {
            base: 0,
            check: NONE,
            value: tree[0].0,
        },
    );
    let mut queue = std::collections::VecDeque::from([(0usize, 0usize)]); // (tree node, position)
    let mut labels: Vec<u8> = Vec::with_capacity(256);
    while let Some((node, pos)) = queue.pop_front() {
        let children = &tree[node].1;
        if children.is_empty() {
            continue;
        }
        labels.clear();
        labels.extend(children.keys().copied());
        let base = free.find_base(&mut cells, &labels);
        cells[pos].base = base as u32;
        for (&c, &child) in children {
            let t = base + c as usize;
            free.take(
                &mut cells,
                t,
                Cell {
                    base: 0,
                    check: pos as u32,
                    value: tree[child as usize].0,
                },
            );
            queue.push_back((child as usize, t));
        }
    }
    let used = cells.iter().rposition(|c| c.check != NONE).unwrap_or(0);
    cells.truncate(used + 257);
    cells
}

/// Doubly linked list of the free cells, in position order, plus per-cell failure counts.
struct FreeCells {
    next: Vec<u32>,
    prev: Vec<u32>,
    fails: Vec<u8>,
    /// First cell of the list, or `NONE` when empty; the list always ends at the array's end.
    head: u32,
    tail: u32,
}

impl FreeCells {
    /// A cell that failed this many times as the head is no longer searched.
    const MAX_FAILS: u8 = 16;

    fn new() -> Self {
        FreeCells {
            next: Vec::new(),
            prev: Vec::new(),
            fails: Vec::new(),
            head: NONE,
            tail: NONE,
        }
    }

    fn grow(&mut self, cells: &mut Vec<Cell>, to: usize) {
        for p in cells.len()..to {
            cells.push(FREE);
            self.next.push(NONE);
            self.prev.push(self.tail);
            self.fails.push(0);
            if self.tail == NONE {
                self.head = p as u32;
            } else {
                self.next[self.tail as usize] = p as u32;
            }
            self.tail = p as u32;
        }
    }

    fn unlink(&mut self, p: usize) {
        let (n, pr) = (self.next[p], self.prev[p]);
        if pr == NONE {
            self.head = n;
        } else {
            self.next[pr as usize] = n;
        }
        if n == NONE {
            self.tail = pr;
        } else {
            self.prev[n as usize] = pr;
        }
        self.next[p] = NONE;
        self.prev[p] = NONE;
    }

    fn take(&mut self, cells: &mut [Cell], p: usize, cell: Cell) {
        debug_assert_eq!(cells[p].check, NONE);
        cells[p] = cell;
        if self.head == p as u32 || self.prev[p] != NONE {
            self.unlink(p);
        }
    }

    /// Smallest base (>= 1) found by walking free cells for the first label, such that every
    /// label's slot is free.
    fn find_base(&mut self, cells: &mut Vec<Cell>, labels: &[u8]) -> usize {
        let lo = labels[0] as usize;
        let mut f = self.head;
        loop {
            if f == NONE {
                let len = cells.len();
                self.grow(cells, len + 256);
                f = self.tail;
                continue;
            }
            let p = f as usize;
            if p > lo {
                let base = p - lo;
                if cells.len() < base + 256 {
                    self.grow(cells, base + 256);
                }
                if labels
                    .iter()
                    .all(|&c| cells[base + c as usize].check == NONE)
                {
                    return base;
                }
            }
            let next = self.next[p];
            if f == self.head {
                self.fails[p] = self.fails[p].saturating_add(1);
                if self.fails[p] >= Self::MAX_FAILS && next != NONE {
                    self.unlink(p); // a permanent hole: never used again
                }
            }
            f = next;
        }
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
        assert_eq!(t.longest_prefix(b"abc", 64), Some((1, 2)));
        assert_eq!(t.longest_prefix(b"abcd", 2), Some((1, 2)));
        assert_eq!(t.longest_prefix(b"c", 64), None);
        assert!(t.starts_with_byte(b'b') && !t.starts_with_byte(b'c'));
        assert_eq!(ByteTrie::new([]).longest_prefix(b"a", 64), None);
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
            assert_eq!(t.longest_prefix(&[b'x', b, b'z'], 64), Some((b as u32, 2)));
        }
    }
}

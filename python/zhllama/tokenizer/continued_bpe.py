"""Continue BPE training from a base tokenizer's merge list.

The words are the unique pre-tokens of a corpus (with their counts), each already segmented by
the base tokenizer. Appended merges rank after every base merge, so the extended tokenizer
first does exactly what the base does and only then applies the new merges in their order:
each new merge fires only on a segmentation the base produced, and never creates a pair the
base knows (its result is a new or Chinese token). Learning the merges on the base's
segmentation is therefore learning exactly what the extended encoder will do.

Efficiency: pair counts are kept incrementally (a merge only re-counts the words that contain
its pair, found through a pair -> words index) and the best pair comes from a heap whose stale
entries are skipped when popped; only pairs the caller accepts (``eligible``) are counted at
all, which for Chinese-only merges is a small share of the pairs.

``ignore_merges`` (LLaMA-3): the encoder looks a whole pre-token up in the vocabulary before
any merge, so when a new token equals a whole word, that word becomes the single token.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Optional

Pair = tuple[int, int]


@dataclass(frozen=True)
class NewMerge:
    left: int
    right: int
    result: int  # a new id, or the id of an existing token the merge also yields
    count: int  # occurrences in the training words when it was learned
    is_new_token: bool


def apply_merges(ids: list[int], ranks: dict[Pair, tuple[int, int]]) -> list[int]:
    """BPE over ``ids`` with ``ranks`` (pair -> (rank, result)): the lowest-ranked pair first,
    leftmost occurrence first, as HF tokenizers and tiktoken do."""
    ids = list(ids)
    while len(ids) > 1:
        best: Optional[tuple[int, int]] = None
        for i in range(len(ids) - 1):
            r = ranks.get((ids[i], ids[i + 1]))
            if r is not None and (best is None or r[0] < best[0]):
                best = (r[0], i)
        if best is None:
            break
        pair = (ids[best[1]], ids[best[1] + 1])
        result = ranks[pair][1]
        out, i = [], 0
        while i < len(ids):
            if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
                out.append(result)
                i += 2
            else:
                out.append(ids[i])
                i += 1
        ids = out
    return ids


class ContinuedBpe:
    """Learns merges appended after a base's; ``learn`` may be called again to go on."""

    def __init__(
        self,
        words: Sequence[list[int]],
        counts: Sequence[int],
        token_bytes: dict[int, bytes],
        next_id: int,
        eligible: Callable[[bytes], bool],
        ignore_merges: bool = False,
    ) -> None:
        self.words = [list(w) for w in words]
        self.counts = list(counts)
        self.token_bytes = dict(token_bytes)
        self.by_bytes = {b: i for i, b in self.token_bytes.items()}
        self.next_id = next_id
        self.eligible = eligible
        self.ignore_merges = ignore_merges
        self.merges: list[NewMerge] = []
        self.rejected: set[Pair] = set()
        self._eligible_cache: dict[Pair, bool] = {}
        self.pair_counts: dict[Pair, int] = defaultdict(int)
        self.where: dict[Pair, set[int]] = defaultdict(set)
        self.total_tokens = sum(len(w) * c for w, c in zip(self.words, self.counts))
        self.word_index = {b"".join(self.token_bytes[t] for t in w): i for i, w in enumerate(self.words)}
        for i, w in enumerate(self.words):
            self._add_pairs(i, w, self.counts[i], None)
        self.heap = [(-c, p) for p, c in self.pair_counts.items()]
        heapq.heapify(self.heap)

    def _is_eligible(self, pair: Pair) -> bool:
        ok = self._eligible_cache.get(pair)
        if ok is None:
            ok = self._eligible_cache[pair] = self.eligible(self.token_bytes[pair[0]] + self.token_bytes[pair[1]])
        return ok

    def _add_pairs(self, i: int, w: list[int], delta: int, touched: Optional[set[Pair]]) -> None:
        for pair in zip(w, w[1:]):
            if self._is_eligible(pair):
                self.pair_counts[pair] += delta
                if delta > 0:
                    self.where[pair].add(i)
                    if touched is not None:
                        touched.add(pair)

    def _replace_word(self, i: int, new: list[int], touched: set[Pair]) -> None:
        c = self.counts[i]
        self.total_tokens += (len(new) - len(self.words[i])) * c
        self._add_pairs(i, self.words[i], -c, touched)
        self.words[i] = new
        self._add_pairs(i, new, c, touched)

    def _merge_word(self, i: int, a: int, b: int, result: int, touched: set[Pair]) -> None:
        """Merge every (a, b) of word ``i``, left to right, and update only the pair counts
        next to each merge: the word's other pairs are unchanged (as HF's trainer does)."""
        w = self.words[i]
        n = len(w)
        pos: list[int] = []  # where the merges start (list.index keeps the scan in C)
        j = 0
        try:
            while True:
                j = w.index(a, j)
                if j + 1 < n and w[j + 1] == b:
                    pos.append(j)
                    j += 2
                else:
                    j += 1
        except ValueError:
            pass
        if not pos:
            return  # the index is lazy: this word lost the pair to an earlier merge
        c = self.counts[i]
        cache, counts, where = self._eligible_cache, self.pair_counts, self.where
        last = len(pos) - 1
        for k, p in enumerate(pos):
            # The pairs around each merge: (left, a) and (b, right) go, (left', result) and
            # (result, right) come. When two merges touch (…a b a b…), the old (b, a) goes once,
            # on the second merge's left side, and (result, result) comes there.
            changes: tuple[tuple[Pair, int], ...] = ()
            if p > 0:
                changes = (((w[p - 1], a), -c),
                           ((result if k > 0 and pos[k - 1] == p - 2 else w[p - 1], result), c))
            if p + 2 < n and not (k < last and pos[k + 1] == p + 2):
                changes += (((b, w[p + 2]), -c), ((result, w[p + 2]), c))
            for pair, delta in changes:
                ok = cache.get(pair)
                if ok is None:
                    ok = self._is_eligible(pair)
                if ok:
                    counts[pair] += delta
                    if delta > 0:
                        where[pair].add(i)
                        touched.add(pair)
        out: list[int] = []
        prev = 0
        for p in pos:
            out.extend(w[prev:p])
            out.append(result)
            prev = p + 2
        out.extend(w[prev:])
        self.words[i] = out
        self.total_tokens -= len(pos) * c

    def best(self, min_count: int) -> Optional[tuple[Pair, int]]:
        """The most frequent pair not rejected (ties: smallest ids, for a repeatable order)."""
        while self.heap:
            neg, pair = self.heap[0]
            count = self.pair_counts.get(pair, 0)
            if count != -neg or pair in self.rejected:
                # Stale: a pair is pushed again only when its count grows, so an entry above
                # the current count (the pair lost occurrences) goes back in at its count.
                heapq.heappop(self.heap)
                if 0 < count < -neg and pair not in self.rejected:
                    heapq.heappush(self.heap, (-count, pair))
                continue
            return (pair, count) if count >= min_count else None
        return None

    def reject(self, pair: Pair) -> None:
        self.rejected.add(pair)

    def accept(self, pair: Pair) -> NewMerge:
        """Learn ``pair`` as the next merge and apply it to every word."""
        data = self.token_bytes[pair[0]] + self.token_bytes[pair[1]]
        existing = self.by_bytes.get(data)
        merge = NewMerge(pair[0], pair[1], self.next_id if existing is None else existing,
                         self.pair_counts.get(pair, 0), existing is None)
        self.apply(merge)
        return merge

    def apply(self, merge: NewMerge) -> None:
        """Apply a merge (learned here, or replayed from another corpus's training)."""
        a, b, result = merge.left, merge.right, merge.result
        if merge.is_new_token:
            data = self.token_bytes[a] + self.token_bytes[b]
            self.token_bytes[result] = data
            self.by_bytes[data] = result
            self.next_id = max(self.next_id, result + 1)
        self.merges.append(merge)
        pair = (a, b)
        touched: set[Pair] = set()
        for i in self.where.pop(pair, ()):
            self._merge_word(i, a, b, result, touched)
        if merge.is_new_token and self.ignore_merges:
            whole = self.word_index.get(self.token_bytes[result])
            if whole is not None and self.words[whole] != [result]:
                self._replace_word(whole, [result], touched)
        self.pair_counts.pop(pair, None)
        for p in touched:  # the pairs whose count grew
            heapq.heappush(self.heap, (-self.pair_counts[p], p))

    def ranks(self, first_rank: int) -> dict[Pair, tuple[int, int]]:
        """The learned merges as ``apply_merges`` takes them, ranked after the base's."""
        return {(m.left, m.right): (first_rank + k, m.result) for k, m in enumerate(self.merges)}

"""Coverage-directed training windows for ``zhllama init-rows --windows coverage``.

Read in corpus order, a short init-rows run spends its batches on the frequent new tokens: on
SmolLM2 + 8,000 merges, after 60 steps 270 of the 1,592 new-token occurrences of held-out People's
Daily were of rows no batch had used (docs/init.md). Here each batch slot instead takes a window of
the block size around an occurrence of the new token used least so far (RowAdam's per-row count of
the steps that moved it; ties: the token more frequent in the corpus first, then the lower id),
and counts the new tokens of that window as used before the next slot is chosen.

Where the tokens occur is found once, on the first ``max_chars`` characters of the corpus: per new
token a reservoir sample of ``keep`` occurrences (seeded). The occurrence a slot takes is drawn
with a generator seeded by (seed, step), so a batch is a function of the seed, the step and the
per-row counts: a run resumed from its saved state chooses exactly the batches the uninterrupted
run would have.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from typing import Any

from zhllama.model.row_targets import Chunk, Chunker


class Occurrences:
    """The documents that hold the sampled occurrences, and per new row: its count in the text read
    and up to ``keep`` (document, extended position) pairs."""

    def __init__(self, docs: Iterable[str], chunker: Chunker, first: int, end: int, keep: int, seed: int,
                 max_chars: int):
        rng = random.Random(f"occurrences:{seed}")
        rows = end - first
        self.count = [0] * rows
        self.sample: list[list[tuple[int, int]]] = [[] for _ in range(rows)]
        texts: list[str] = []
        chars = 0
        for doc in docs:
            if chars >= max_chars:
                break
            d = len(texts)
            texts.append(doc)
            chars += len(doc)
            for j, t in enumerate(chunker.ext.encode(doc)):
                r = t - first
                if 0 <= r < rows:
                    self.count[r] += 1
                    if len(self.sample[r]) < keep:  # reservoir sampling (Algorithm R)
                        self.sample[r].append((d, j))
                    else:
                        k = rng.randrange(self.count[r])
                        if k < keep:
                            self.sample[r][k] = (d, j)
        used = {d for s in self.sample for d, _ in s}
        self.texts = {d: texts[d] for d in used}
        self.chars = chars


class CoverageWindows:
    """Batches of windows around the occurrences of the least-used new tokens."""

    def __init__(self, occ: Occurrences, chunker: Chunker, first: int, seed: int):
        self.occ, self.chunker, self.first, self.seed = occ, chunker, first, seed
        self.rows = [r for r in range(len(occ.count)) if occ.sample[r]]
        if not self.rows:
            raise ValueError("the corpus holds none of the new tokens: no window to learn from")
        # the tie order: the more frequent token first, then the lower id
        self.rank = {r: k for k, r in enumerate(sorted(self.rows, key=lambda r: (-occ.count[r], r)))}
        self._encoded: dict[int, tuple[list[int], list[int], list[int]]] = {}

    def _encode(self, d: int):
        if d not in self._encoded:
            if len(self._encoded) > 4096:
                self._encoded.clear()
            self._encoded[d] = self.chunker.encode(self.occ.texts[d])
        return self._encoded[d]

    def window(self, d: int, j: int) -> Chunk | None:
        """The block-size window of document ``d`` with extended position ``j`` in its middle."""
        ext_ids, base_ids, pi = self._encode(d)
        n = len(self.chunker.prefix)
        start = max(0, j - (self.chunker.block - n) // 2)
        while start > 0 and pi[start - 1] < 0:  # start at a boundary both tokenizations share
            start -= 1
        return self.chunker.window(ext_ids, base_ids, pi, start)[0]

    def batch(self, step: int, uses: Sequence[float], size: int) -> list[Chunk]:
        """``size`` windows for optimizer step ``step`` (0-based), given each new row's uses so far."""
        import heapq

        rng = random.Random(f"windows:{self.seed}:{step}")
        used = {r: float(uses[r]) for r in self.rows}
        heap = [(u, self.rank[r], r) for r, u in used.items()]
        heapq.heapify(heap)
        out: list[Chunk] = []
        tries = 0
        while len(out) < size and tries < 4 * size + len(self.rows):
            u, rank, r = heapq.heappop(heap)
            if u != used[r]:  # stale: the row was counted again since (a fresh entry was pushed then)
                continue
            tries += 1
            chunk = self.window(*rng.choice(self.occ.sample[r]))
            used[r] += 1  # even without a window (no shared boundary around it): do not pick it again now
            heapq.heappush(heap, (used[r], rank, r))
            if chunk is None or len(chunk.ext) < 2:
                continue
            for t in {i - self.first for i in chunk.ext if i >= self.first}:
                if t in used and t != r:
                    used[t] += 1
                    heapq.heappush(heap, (used[t], self.rank[t], t))
            out.append(chunk)
        return out


def coverage_windows(docs: Iterable[str], chunker: Chunker, first: int, end: int, seed: int, keep: int = 16,
                     max_chars: int = 20_000_000) -> CoverageWindows:
    return CoverageWindows(Occurrences(docs, chunker, first, end, keep, seed, max_chars), chunker, first, seed)


def uses_of(optimizer: Any) -> list[float]:
    """RowAdam's per-row step counts (the first tensor's: input and output rows move together)."""
    return optimizer.state[0]["n"].tolist()

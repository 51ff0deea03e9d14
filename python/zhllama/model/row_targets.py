"""What the frozen base says about the new tokens, on real text: the targets of ``zhllama init-rows``.

``extend-vocab`` appends merges after every base merge (and ``merge-vocab`` appends whole pieces),
so the extended tokens of a text join tokens of its base tokenization: a boundary of the extended
segmentation is, almost always, a boundary of the base one (aligned here by byte offsets; where it
is not, the position is skipped). One forward pass of the frozen base over the base tokens then
gives, at each extended boundary j (after extended token e_j, which ends where base token
b_{pi(j)} ends):

- ``base_hidden``: the base's final hidden state after reading e_j's pieces, h_b[pi(j)] (the
  target of the new input rows: Token Distillation, Dobler et al. 2025, arXiv 2505.20133);
- ``span_logit``: the base's log-probability of the next extended token's whole span,
  log p(b_{pi(j)+1} .. b_{pi(j+1)} | prefix), plus the base's log-normaliser at pi(j): the logit an
  output row must produce for the extended model to give that span the base's probability.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import accumulate
from typing import Any, Optional

from zhllama.tokenizer import Tokenizer


def align(base_lengths: Sequence[int], base_ids: Sequence[int], ext_lengths: Sequence[int],
          ext_ids: Sequence[int]) -> list[int]:
    """For each extended position j, the base position whose token ends at the same byte offset
    as ``ext_ids[j]`` (the last base piece of that token), or -1 where no base token ends there."""
    where: dict[int, int] = {}
    for k, end in enumerate(accumulate(base_lengths[i] for i in base_ids)):
        where[end] = k  # a zero-length token (the prefix) shares its offset: the last one wins
    return [where.get(end, -1) for end in accumulate(ext_lengths[i] for i in ext_ids)]


@dataclass
class Chunk:
    """One window of a document in both tokenizations; ``pi[j]`` indexes ``base`` (-1: not aligned)."""

    base: list[int]
    ext: list[int]
    pi: list[int]


class Chunker:
    """Documents -> chunks of at most ``block`` extended tokens, each starting with ``prefix`` (BOS,
    or end-of-text for a tokenizer without BOS, as ``zhllama eval`` scores the first token)."""

    def __init__(self, base: Tokenizer, ext: Tokenizer, block: int, base_lengths: Sequence[int],
                 ext_lengths: Sequence[int]):
        self.base, self.ext, self.block = base, ext, block
        self.base_lengths, self.ext_lengths = base_lengths, ext_lengths
        prefix = ext.bos_id if ext.bos_id is not None else ext.eos_id
        self.prefix = [] if prefix is None else [prefix]

    def encode(self, doc: str) -> tuple[list[int], list[int], list[int]]:
        """A document's extended ids, base ids and their alignment (``align``)."""
        ext_ids, base_ids = self.ext.encode(doc), self.base.encode(doc)
        return ext_ids, base_ids, align(self.base_lengths, base_ids, self.ext_lengths, ext_ids)

    def window(self, ext_ids: Sequence[int], base_ids: Sequence[int], pi: Sequence[int],
               start: int) -> tuple[Optional[Chunk], int]:
        """The chunk of at most ``block`` extended tokens from ``start`` (the prefix included), ended
        where both tokenizations end, and where it stops; None when its ends are not shared."""
        n = len(self.prefix)
        stop = min(start + self.block - n, len(ext_ids))
        while stop > start + 1 and pi[stop - 1] < 0:  # end the window where both tokenizations end
            stop -= 1
        if pi[stop - 1] < 0 or (start > 0 and pi[start - 1] < 0):
            return None, stop
        first = pi[start - 1] + 1 if start else 0
        window = [p - first + n if p >= 0 else -1 for p in pi[start:stop]]
        return Chunk(self.prefix + list(base_ids[first:pi[stop - 1] + 1]), self.prefix + list(ext_ids[start:stop]),
                     list(range(n)) + window), stop

    def chunks(self, doc: str) -> Iterator[Chunk]:
        ext_ids, base_ids, pi = self.encode(doc)
        start = 0
        while start < len(ext_ids):
            chunk, start = self.window(ext_ids, base_ids, pi, start)
            if chunk is not None:
                yield chunk
            while start < len(ext_ids) and pi[start - 1] < 0:  # the next window starts at a shared boundary
                start += 1


def batches(docs: Iterable[str], chunker: Chunker, size: int,
            skip_chunks: int = 0) -> Iterator[tuple[list[Chunk], tuple[int, int]]]:
    """Batches of ``size`` chunks (the last one may be smaller), each with where the next batch
    starts: (documents wholly read, chunks of the next document already used). Resuming skips
    those documents and ``skip_chunks`` chunks of the first one."""
    batch: list[Chunk] = []
    for k, doc in enumerate(docs):
        chunks = [c for c in chunker.chunks(doc) if len(c.ext) > 1]
        for c, chunk in enumerate(chunks[skip_chunks if k == 0 else 0:], skip_chunks if k == 0 else 0):
            batch.append(chunk)
            if len(batch) == size:
                yield batch, ((k + 1, 0) if c + 1 == len(chunks) else (k, c + 1))
                batch = []
    if batch:
        yield batch, (-1, 0)


def pad(rows: Sequence[Sequence[int]], value: int, device: Any = None):
    """(ids, attention mask) as [batch, longest] tensors, padded on the right."""
    import torch

    n = max(map(len, rows))
    ids = torch.tensor([list(r) + [value] * (n - len(r)) for r in rows], device=device)
    mask = torch.tensor([[1] * len(r) + [0] * (n - len(r)) for r in rows], device=device)
    return ids, mask


@dataclass
class Targets:
    """Per aligned training position (flattened over the batch): where it sits in the extended
    batch (``row``, ``col``), the next extended token, and the base's targets there."""

    row: Any
    col: Any
    next_id: Any
    base_hidden: Any
    span_logit: Any


def positions(chunks: Sequence[Chunk], device: Any = None) -> Targets:
    """Every next-token position of the extended chunks, without the base's targets (not needed
    when only the cross-entropy trains: the base then need not read the text)."""
    import torch

    rows, cols, nexts = zip(*[(r, j, c.ext[j + 1]) for r, c in enumerate(chunks) for j in range(len(c.ext) - 1)])
    row, col, nxt = (torch.tensor(x, dtype=torch.long, device=device) for x in (rows, cols, nexts))
    return Targets(row, col, nxt, None, None)


def base_targets(model, chunks: Sequence[Chunk], head_weight, pad_id: int, slice_rows: int = 256,
                 device: Any = None) -> Targets:
    """One forward pass of the frozen base over the chunks' base tokens (no gradient)."""
    import torch

    ids, mask = pad([c.base for c in chunks], pad_id, device)
    with torch.no_grad():
        hidden = model.model(input_ids=ids, attention_mask=mask).last_hidden_state
        # log p(b_{m+1} | b_<=m) at every base position, and the log-normaliser, in slices (memory)
        flat = hidden.reshape(-1, hidden.shape[-1])
        nxt = torch.cat([ids[:, 1:], ids[:, :1]], 1).reshape(-1)
        lse, tok = torch.empty(len(flat), device=device), torch.empty(len(flat), device=device)
        for s in range(0, len(flat), slice_rows):
            logits = flat[s:s + slice_rows] @ head_weight.T
            lse[s:s + slice_rows] = torch.logsumexp(logits.float(), -1)
            tok[s:s + slice_rows] = logits.gather(1, nxt[s:s + slice_rows, None])[:, 0].float()
        lse, logp = lse.view(ids.shape), (tok.view(ids.shape) - lse.view(ids.shape))
        # cum[:, m] = sum logp[:, :m]
        cum = torch.cat([torch.zeros(len(chunks), 1, device=device), torch.cumsum(logp, 1)], 1)
    rows: list[int] = []
    cols: list[int] = []
    nexts: list[int] = []
    bpos: list[int] = []
    bnext: list[int] = []
    for r, c in enumerate(chunks):
        for j in range(len(c.ext) - 1):
            if c.pi[j] >= 0 and c.pi[j + 1] >= 0:
                for lst, v in ((rows, r), (cols, j), (nexts, c.ext[j + 1]), (bpos, c.pi[j]), (bnext, c.pi[j + 1])):
                    lst.append(v)
    t = [torch.tensor(x, dtype=torch.long, device=device) for x in (rows, cols, nexts, bpos, bnext)]
    span = cum[t[0], t[4]] - cum[t[0], t[3]]  # sum of logp over base positions pi(j) .. pi(j+1)-1
    return Targets(t[0], t[1], t[2], hidden[t[0], t[3]].float(), span + lse[t[0], t[3]])

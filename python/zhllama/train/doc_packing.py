"""``pretrain --packing doc``: packed blocks in which no document sees another.

A block cut from the packed stream holds the end of one document, whole ones, and the start of
the next. With ``--packing stream`` (the default, the reference script's ``group_texts``) every
token attends to all earlier tokens of its block, across document boundaries. With ``doc``:

- ``position_ids`` restart at 0 at each document start (after each EOS the stream's
  :class:`~zhllama.corpus.packing.Packing` appends, or at each BOS it prepends);
- attention stays inside each document. transformers reads packed sequences from
  ``position_ids`` when no ``attention_mask`` is passed: sdpa and eager get a block-diagonal
  causal mask, flash-attention 2 its varlen kernel (``cu_seqlens``). flash-attention 2 sees
  packing only in a batch of one row, so for it the micro-batch is flattened into one row of
  ``batch x block`` tokens (the blocks are documents boundaries too);
- the label of each document's first token is -100: the EOS before it does not learn to predict
  an unrelated next document.

Opt-in, not the default: sdpa's block-diagonal mask is an explicit (batch, 1, L, L) mask, which
turns off PyTorch's fused attention kernels and costs memory; with flash-attention 2 it is free.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from zhllama.corpus.packing import Packing

IGNORE_INDEX = -100
PACKING_MODES = ("stream", "doc")  # pretrain --packing (spelled there too: its module must not import torch)


def document_starts(ids: torch.Tensor, packing: Packing, bos_id: Optional[int], eos_id: Optional[int]) -> torch.Tensor:
    """A bool tensor like ``ids`` (batch, length): True where a document starts (and at position 0)."""
    starts = torch.zeros_like(ids, dtype=torch.bool)
    if packing.add_bos and bos_id is not None:
        starts |= ids == bos_id
    elif packing.append_eos and eos_id is not None:
        starts[:, 1:] |= ids[:, :-1] == eos_id
    else:
        raise ValueError("--packing doc needs documents marked in the stream: packed with an EOS after each "
                         "(tokenize-corpus --append-eos, the default) or a BOS before each (--add-bos)")
    starts[:, 0] = True
    return starts


def restart_positions(starts: torch.Tensor) -> torch.Tensor:
    """Position ids counting from 0 at each True of ``starts`` (batch, length)."""
    idx = torch.arange(starts.shape[-1], device=starts.device).expand_as(starts)
    last_start = torch.where(starts, idx, torch.zeros_like(idx)).cummax(dim=-1).values
    return idx - last_start


@dataclass
class DocumentCollator:
    """Stacks ``{"input_ids", "labels"}`` blocks and adds per-document ``position_ids``."""

    packing: Packing
    bos_id: Optional[int]
    eos_id: Optional[int]
    flatten: bool = False  # one row of batch x block tokens (flash-attention 2's varlen path)

    def __call__(self, batch: list[dict]) -> dict[str, torch.Tensor]:
        ids = torch.stack([torch.as_tensor(ex["input_ids"]) for ex in batch]).long()
        labels = torch.stack([torch.as_tensor(ex["labels"]) for ex in batch]).long().clone()
        starts = document_starts(ids, self.packing, self.bos_id, self.eos_id)
        labels[:, 1:][starts[:, 1:]] = IGNORE_INDEX
        positions = restart_positions(starts)
        if self.flatten:
            labels[:, 0] = IGNORE_INDEX  # never a target within its row; in one row, the previous block's would be
            ids, labels, positions = (t.reshape(1, -1) for t in (ids, labels, positions))
        return {"input_ids": ids, "labels": labels, "position_ids": positions}

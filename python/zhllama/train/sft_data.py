"""Alpaca-format instruction data as training examples: masked labels, truncation, padding.

Records and the prompt template are :mod:`zhllama.prompt`'s. The response is followed by EOS.
Prompt tokens get label -100 so only the response is learned. Tokenization is zhllama's exact
encoder: the prompt with BOS, the response separately (as the reference does). An example longer
than ``max_seq_length`` loses the end of its response but keeps the EOS (cut before it): a
truncated answer still teaches the model to stop. Those are counted and logged.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
from torch.utils.data import Dataset

from zhllama.prompt import build_prompt, read_records
from zhllama.tokenizer import Tokenizer

log = logging.getLogger("zhllama.train")

IGNORE_INDEX = -100


def encode_record(tokenizer: Tokenizer, record: dict[str, str], max_seq_length: int) -> Optional[dict]:
    """input_ids / labels for one record, or None when the prompt leaves no room for a response
    token and its EOS. A response cut to fit keeps its EOS; ``"truncated"`` says whether it was cut."""
    prompt = tokenizer.encode(build_prompt(record["instruction"], record["input"]), add_bos=True)
    response = tokenizer.encode(record["output"], add_eos=True)
    room = max_seq_length - len(prompt)
    truncated = len(response) > room
    if truncated:
        if room < 2:  # not even one response token before the EOS
            return None
        response = response[: room - 1] + response[-1:]  # the EOS (the last id) stays
    return {"input_ids": prompt + response, "labels": [IGNORE_INDEX] * len(prompt) + response,
            "truncated": truncated}


class InstructionDataset(Dataset):
    """Encoded Alpaca records; ``dropped`` counts those whose prompt leaves no room for a response,
    ``truncated`` those whose response was cut (before its EOS) to fit ``max_seq_length``."""

    def __init__(self, files: Sequence[str | Path], tokenizer: Tokenizer, max_seq_length: int) -> None:
        self.examples: list[dict] = []
        self.dropped = self.truncated = 0
        for f in files:
            for r in read_records(f):
                ex = encode_record(tokenizer, r, max_seq_length)
                if ex is None:
                    self.dropped += 1
                    continue
                self.truncated += ex.pop("truncated")
                self.examples.append(ex)
        if self.dropped:
            log.warning("dropped %d records whose prompt fills --max-seq-length %d (no room for a response token "
                        "and its EOS)", self.dropped, max_seq_length)
        if self.truncated:
            log.warning("truncated %d of %d records to --max-seq-length %d (the end of the response cut, its EOS "
                        "kept); raise --max-seq-length to train on them whole", self.truncated,
                        len(self.examples), max_seq_length)
        if not self.examples:
            raise ValueError(f"{', '.join(map(str, files))}: no usable record (dropped {self.dropped} whose prompt "
                             f"fills --max-seq-length {max_seq_length})")
        log.info("%d instruction examples from %s", len(self.examples), ", ".join(map(str, files)))

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> dict:
        return self.examples[i]


@dataclass
class PaddingCollator:
    """Right-pads a batch with the pad id; padded labels are -100 and masked out of attention."""

    pad_id: int

    def __call__(self, batch: list[dict]) -> dict[str, torch.Tensor]:
        n = max(len(ex["input_ids"]) for ex in batch)
        ids = torch.full((len(batch), n), self.pad_id, dtype=torch.long)
        labels = torch.full((len(batch), n), IGNORE_INDEX, dtype=torch.long)
        mask = torch.zeros((len(batch), n), dtype=torch.long)
        for row, ex in enumerate(batch):
            k = len(ex["input_ids"])
            ids[row, :k] = torch.as_tensor(ex["input_ids"])
            labels[row, :k] = torch.as_tensor(ex["labels"])
            mask[row, :k] = 1
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}

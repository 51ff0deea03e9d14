"""Alpaca-format instruction data: records, the report's prompt, masked labels, padding.

A record is ``{"instruction", "input", "output"}``. The prompt is the Stanford Alpaca template the
Chinese-Alpaca report uses (a non-empty input joined to the instruction by a newline); the
response is followed by EOS. Prompt tokens get label -100 so only the response is learned.
Tokenization is zhllama's exact encoder: the prompt with BOS, the response separately (as the
reference does), then truncated to ``max_seq_length``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
from torch.utils.data import Dataset

from zhllama.tokenizer import Tokenizer

log = logging.getLogger("zhllama.train")

PROMPT = ("Below is an instruction that describes a task. Write a response that appropriately completes the "
          "request.\n\n### Instruction:\n{instruction}\n\n### Response: ")
FIELDS = ("instruction", "input", "output")
IGNORE_INDEX = -100


def build_prompt(instruction: str, input: str = "") -> str:
    if input:
        instruction = instruction + "\n" + input
    return PROMPT.format(instruction=instruction)


def read_records(path: str | Path) -> list[dict[str, str]]:
    """Records of an Alpaca ``.json`` (a list) or ``.jsonl`` file; a bad record names file and index."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    text = path.read_text(encoding="utf-8")
    records: list = []
    if path.suffix == ".jsonl":
        for n, line in enumerate(text.splitlines()):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise ValueError(f"{path}: line {n + 1} is not valid JSON ({e.msg})") from None
    else:
        try:
            records = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not valid JSON ({e.msg} at line {e.lineno}); "
                             "JSONL files need a .jsonl suffix") from None
        if not isinstance(records, list):
            raise ValueError(f"{path}: expected a JSON list of {{instruction, input, output}} records")
    for i, r in enumerate(records):
        if not isinstance(r, dict):
            raise ValueError(f"{path}: record {i} is not an object")
        for key in FIELDS:
            value = r.get(key, "" if key == "input" else None)
            if not isinstance(value, str):
                raise ValueError(f"{path}: record {i} has no string field {key!r} (Alpaca records need "
                                 f"instruction, input, output)")
            r[key] = value
    return records


def encode_record(tokenizer: Tokenizer, record: dict[str, str], max_seq_length: int) -> Optional[dict]:
    """input_ids / labels for one record, or None when truncation leaves no response token."""
    prompt = tokenizer.encode(build_prompt(record["instruction"], record["input"]), add_bos=True)
    response = tokenizer.encode(record["output"], add_eos=True)
    input_ids = (prompt + response)[:max_seq_length]
    labels = ([IGNORE_INDEX] * len(prompt) + response)[:max_seq_length]
    if all(label == IGNORE_INDEX for label in labels):
        return None
    return {"input_ids": input_ids, "labels": labels}


class InstructionDataset(Dataset):
    """Encoded Alpaca records; ``dropped`` counts those truncated to no response token."""

    def __init__(self, files: Sequence[str | Path], tokenizer: Tokenizer, max_seq_length: int) -> None:
        self.examples: list[dict] = []
        self.dropped = 0
        for f in files:
            for r in read_records(f):
                ex = encode_record(tokenizer, r, max_seq_length)
                if ex is None:
                    self.dropped += 1
                else:
                    self.examples.append(ex)
        if self.dropped:
            log.warning("dropped %d records whose prompt fills --max-seq-length %d (no response token left)",
                        self.dropped, max_seq_length)
        if not self.examples:
            raise ValueError(f"{', '.join(map(str, files))}: no usable record (dropped {self.dropped} truncated ones)")
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

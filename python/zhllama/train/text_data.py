"""Pretraining data: packed blocks of token ids.

Two sources. A tokenized-corpus directory (``zhllama tokenize-corpus`` output, Megatron-format
shards) is read by ``zhllama.corpus.dataset.PackedDataset``. Raw text files (``.txt``: one document a
line; ``.jsonl``: a ``text`` field a line) are tokenized here with zhllama's exact encoder and
packed the same way: ``<s> doc </s>`` documents concatenated, cut into ``block_size`` blocks,
the incomplete tail dropped. Labels equal the inputs; the model shifts them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Optional

import torch
from torch.utils.data import Dataset, Subset

from zhllama.tokenizer import Tokenizer

log = logging.getLogger("zhllama.train")


def read_documents(path: str | Path, text_field: str = "text") -> list[str]:
    """Documents of a ``.txt`` (one per non-empty line) or ``.jsonl`` (``text_field`` per line) file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--train-file {path}: no such file")
    docs = []
    with open(path, encoding="utf-8") as f:
        if path.suffix == ".jsonl":
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as e:
                    raise ValueError(f"{path}:{n}: not valid JSON ({e.msg})") from None
                if not isinstance(record, dict) or not isinstance(record.get(text_field), str):
                    raise ValueError(f"{path}:{n}: expected an object with a string {text_field!r} field")
                docs.append(record[text_field])
        else:
            docs = [line.rstrip("\n") for line in f if line.strip()]
    return docs


class PackedTextDataset(Dataset):
    """Fixed-length blocks of a token stream; item ``i`` is ``{"input_ids", "labels"}``."""

    def __init__(self, tokens: torch.Tensor, block_size: int) -> None:
        self.block_size = block_size
        n = tokens.numel() // block_size
        self.blocks = tokens[: n * block_size].view(n, block_size)

    @classmethod
    def from_files(cls, files: Sequence[str | Path], tokenizer: Tokenizer, block_size: int) -> PackedTextDataset:
        docs: list[str] = []
        for f in files:
            docs.extend(read_documents(f))
        ids = tokenizer.encode_batch(docs, add_bos=True, add_eos=True)
        stream = torch.tensor([t for doc in ids for t in doc], dtype=torch.long)
        ds = cls(stream, block_size)
        if len(ds) == 0:
            raise ValueError(f"{', '.join(map(str, files))}: {stream.numel()} tokens, fewer than one block of "
                             f"{block_size}; add text or lower --block-size")
        log.info("packed %d documents, %d tokens into %d blocks of %d", len(docs), stream.numel(), len(ds), block_size)
        return ds

    def __len__(self) -> int:
        return self.blocks.shape[0]

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        block = self.blocks[i]
        return {"input_ids": block, "labels": block.clone()}


def check_corpus_tokenizer(dataset_dir: str | Path, tokenizer_path: str | Path) -> None:
    """Refuse a corpus tokenized with another tokenizer (its ids would index the wrong rows)."""
    import json

    from zhllama.tokenizer.directory import resolve_model_file, sha256_file

    manifest = json.loads((Path(dataset_dir) / "manifest.json").read_text(encoding="utf-8"))
    want = manifest.get("tokenizer_sha256")
    model = resolve_model_file(tokenizer_path)
    have = sha256_file(model)
    if want and want != have:
        raise ValueError(f"--dataset-dir {dataset_dir} was tokenized with a tokenizer of sha256 {want[:12]}…, but "
                         f"--tokenizer {model} has sha256 {have[:12]}…; re-run `zhllama tokenize-corpus` with this "
                         f"tokenizer or pass the one the corpus was made with")


def load_tokenized_corpus(dataset_dir: str | Path, block_size: int, seed: int) -> Dataset:
    """``zhllama.corpus.dataset.PackedDataset`` over a tokenized-corpus directory."""
    from zhllama.corpus.dataset import PackedDataset
    if not (Path(dataset_dir) / "manifest.json").is_file():
        raise FileNotFoundError(f"--dataset-dir {dataset_dir}: no manifest.json; pass the output directory of "
                                f"`zhllama tokenize-corpus`")
    return PackedDataset(str(dataset_dir), block_size=block_size, seed=seed)


def split_validation(dataset: Dataset, percentage: float, seed: int) -> tuple[Dataset, Optional[Dataset]]:
    """Hold out ``percentage`` % of the blocks (at least one when > 0), chosen by a seeded permutation."""
    n = len(dataset)  # type: ignore[arg-type]
    if percentage <= 0 or n < 2:
        return dataset, None
    k = min(n - 1, max(1, round(n * percentage / 100)))
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    return Subset(dataset, sorted(order[k:])), Subset(dataset, sorted(order[:k]))

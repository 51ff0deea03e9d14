"""Pretraining data: packed blocks of token ids.

Two sources, packed the same way. A tokenized-corpus directory (``zhllama tokenize-corpus``
output, Megatron-format shards; ``--dataset-dir``) is read by
``zhllama.corpus.dataset.PackedDataset``. Raw text (``--train-file``: any input
``tokenize-corpus`` takes, read by the same reader, ``zhllama.corpus.inputs.read_documents``)
is tokenized here with zhllama's exact encoder. Either way each document is packed by
``zhllama.corpus.dataset.Packing`` — ``doc </s>`` by default, where the reference script packs
``<s> doc`` (its ``LlamaTokenizer`` adds BOS, no EOS); the EOS marks where a document ends, so
the model learns to stop — the documents are concatenated and cut into ``block_size`` blocks,
the incomplete tail dropped. Labels equal the inputs; the model shifts them. The same text
through ``--train-file`` or through ``tokenize-corpus`` + ``--dataset-dir`` gives the same
blocks (``--dataset-dir`` then visits them in a seeded order).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Optional

import torch
from torch.utils.data import Dataset, Subset

from zhllama.corpus.dataset import Packing
from zhllama.corpus.inputs import read_documents
from zhllama.tokenizer import Tokenizer

log = logging.getLogger("zhllama.train")


class PackedTextDataset(Dataset):
    """Fixed-length blocks of a token stream; item ``i`` is ``{"input_ids", "labels"}``."""

    def __init__(self, tokens: torch.Tensor, block_size: int) -> None:
        self.block_size = block_size
        n = tokens.numel() // block_size
        self.blocks = tokens[: n * block_size].view(n, block_size)

    @classmethod
    def from_files(cls, files: Sequence[str | Path], tokenizer: Tokenizer, block_size: int,
                   packing: Optional[Packing] = None) -> PackedTextDataset:
        """Blocks of ``files`` (files, directories or globs), each document packed by ``packing``."""
        docs = list(read_documents(files))
        ids = (packing or Packing()).encode(tokenizer, docs)
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

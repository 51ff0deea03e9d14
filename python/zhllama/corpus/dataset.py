"""Reading a tokenized corpus (the output of ``zhllama tokenize-corpus``) for training.

- ``TokenizedCorpus(dir)``: documents as zero-copy ``numpy.memmap`` views.
- ``PackedDataset(dir, block_size=512, seed=0)``: fixed-size ``input_ids``/``labels`` blocks cut
  from the concatenation of every document of the corpus (``group_texts`` over the whole corpus:
  only the final partial block is dropped), optionally shuffled. (A training run resumes through
  the Trainer's checkpoints, which skip the samples already seen.)
- ``to_hf_dataset(...)``: the same blocks as a ``datasets.Dataset``.

How a document becomes ids in the stream is ``zhllama.corpus.packing.Packing`` (``doc </s>`` by
default; a corpus's own is ``Packing.of_corpus(TokenizedCorpus(dir).manifest)``).

The shards are Megatron-LM indexed datasets, so Megatron-LM / GPT-NeoX / NeMo read them too.
"""

from __future__ import annotations

import bisect
import json
import os
from pathlib import Path
from typing import Any, Optional

import numpy as np

try:  # torch is an optional dependency (zhllama[train]); the corpus reader does not need it.
    from torch.utils.data import Dataset as _TorchDataset
except ImportError:  # pragma: no cover - depends on the environment
    _TorchDataset = object  # type: ignore[assignment,misc]

__all__ = ["PackedDataset", "TokenizedCorpus", "to_hf_dataset"]

_DTYPES = {8: np.uint16, 4: np.int32}
_HEADER = 9 + 8 + 1 + 8 + 8


class TokenizedCorpus:
    """A tokenized-corpus directory: ``len(c)`` documents, ``c.doc(i)`` their ids."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        path = self.directory / "manifest.json"
        if not path.exists():
            interrupted = (self.directory / "progress.json").exists()
            hint = " (an interrupted run: rerun tokenize-corpus to finish it)" if interrupted else ""
            raise FileNotFoundError(f"{path}: not a finished tokenized corpus{hint}")
        with open(path, encoding="utf-8") as f:
            self.manifest: dict[str, Any] = json.load(f)
        self.dtype = np.dtype(_DTYPES[self.manifest["megatron_dtype_code"]])
        self._names = [s["name"] for s in self.manifest["shards"]]
        docs = [s["docs"] for s in self.manifest["shards"]]
        toks = [s["tokens"] for s in self.manifest["shards"]]
        # Global document / token index of each shard's first element.
        self._doc_start = np.concatenate([[0], np.cumsum(docs, dtype=np.int64)])
        self._tok_start = np.concatenate([[0], np.cumsum(toks, dtype=np.int64)])
        self._open: Optional[list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = None

    def _shards(self) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        # Opened lazily and never pickled: DataLoader workers and forks map the files themselves.
        if self._open is None:
            self._open = [self._map(n) for n in self._names]
        return self._open

    def _map(self, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        idx_path = self.directory / f"{name}.idx"
        with open(idx_path, "rb") as f:
            head = f.read(_HEADER)
        if head[:9] != b"MMIDIDX\x00\x00" or int.from_bytes(head[9:17], "little") != 1:
            raise ValueError(f"{idx_path}: not a Megatron MMIDIDX version-1 index")
        n = int.from_bytes(head[18:26], "little")
        lengths = (np.memmap(idx_path, dtype=np.int32, mode="r", offset=_HEADER, shape=(n,)) if n
                   else np.zeros(0, np.int32))
        pointers = (np.memmap(idx_path, dtype=np.int64, mode="r", offset=_HEADER + 4 * n, shape=(n,)) if n
                    else np.zeros(0, np.int64))
        bin_path = self.directory / f"{name}.bin"
        size = os.path.getsize(bin_path) // self.dtype.itemsize
        tokens = np.memmap(bin_path, dtype=self.dtype, mode="r") if size else np.zeros(0, self.dtype)
        return tokens, lengths, pointers

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_open"] = None
        return state

    def __len__(self) -> int:
        return int(self._doc_start[-1])

    @property
    def num_tokens(self) -> int:
        return int(self._tok_start[-1])

    @property
    def num_shards(self) -> int:
        return len(self._names)

    def doc(self, i: int) -> np.ndarray:
        """Document ``i``'s ids (with EOS/BOS as the corpus was made): a read-only memmap view."""
        n = len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"document {i} out of range for a corpus of {n}")
        s = bisect.bisect_right(self._doc_start, i) - 1
        tokens, lengths, pointers = self._shards()[s]
        j = i - int(self._doc_start[s])
        start = int(pointers[j]) // self.dtype.itemsize
        return tokens[start : start + int(lengths[j])]

    __getitem__ = doc

    def tokens(self, start: int, stop: int) -> np.ndarray:
        """Ids ``[start, stop)`` of the whole corpus as one stream (documents back to back)."""
        if not 0 <= start <= stop <= self.num_tokens:
            raise IndexError(f"token range [{start}, {stop}) outside [0, {self.num_tokens})")
        parts = []
        s = bisect.bisect_right(self._tok_start, start) - 1
        shards = self._shards()
        while start < stop:
            base, end = int(self._tok_start[s]), int(self._tok_start[s + 1])
            take = min(stop, end)
            if take > start:
                parts.append(shards[s][0][start - base : take - base])
            start, s = take, s + 1
        if len(parts) == 1:
            return parts[0]
        return np.concatenate(parts) if parts else np.zeros(0, self.dtype)


class PackedDataset(_TorchDataset):
    """Map-style torch Dataset of ``{"input_ids", "labels"}`` LongTensor blocks.

    Block ``k`` is tokens ``[k*block_size, (k+1)*block_size)`` of the corpus stream (documents
    concatenated; the EOS that tokenize-corpus appends separates them). ``labels`` equals
    ``input_ids``, as ``group_texts`` makes them (the model shifts). With ``seed`` the blocks are
    visited in a fixed pseudo-random order (numpy PCG64). Safe with DataLoader workers (files are mapped
    per process) and with DistributedSampler.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        block_size: int = 512,
        seed: Optional[int] = None,
    ) -> None:
        if block_size < 1:
            raise ValueError(f"block_size {block_size} must be positive")
        self.corpus = TokenizedCorpus(directory)
        self.block_size = block_size
        self.seed = seed
        self.num_blocks = self.corpus.num_tokens // block_size
        self.order: Optional[np.ndarray] = None
        if seed is not None:
            dtype = np.int32 if self.num_blocks < 2**31 else np.int64
            self.order = np.random.default_rng(seed).permutation(self.num_blocks).astype(dtype)

    def __len__(self) -> int:
        return self.num_blocks

    def block_id(self, i: int) -> int:
        """The corpus block that sample ``i`` of this dataset is."""
        if not 0 <= i < len(self):
            raise IndexError(f"sample {i} out of range for {len(self)} samples")
        return int(self.order[i]) if self.order is not None else i

    def block(self, i: int) -> np.ndarray:
        b = self.block_id(i) * self.block_size
        return self.corpus.tokens(b, b + self.block_size)

    def __getitem__(self, i: int) -> dict[str, Any]:
        import torch

        ids = torch.from_numpy(self.block(i).astype(np.int64))
        return {"input_ids": ids, "labels": ids.clone()}

    def to_hf_dataset(self) -> Any:
        """These samples, in this order, as a ``datasets.Dataset`` (materialised as Arrow)."""
        import datasets

        def gen() -> Any:
            for i in range(len(self)):
                ids = self.block(i).astype(np.int64).tolist()
                yield {"input_ids": ids, "labels": ids}

        features = datasets.Features({"input_ids": datasets.Sequence(datasets.Value("int64")),
                                      "labels": datasets.Sequence(datasets.Value("int64"))})
        return datasets.Dataset.from_generator(gen, features=features)


def to_hf_dataset(
    directory: str | os.PathLike[str], block_size: int = 512, seed: Optional[int] = None) -> Any:
    """``PackedDataset(...).to_hf_dataset()``."""
    return PackedDataset(directory, block_size=block_size, seed=seed).to_hf_dataset()

"""Pretraining data: packed blocks of token ids.

Two sources, packed the same way. A tokenized-corpus directory (``zhllama tokenize-corpus``
output, Megatron-format shards; ``--dataset-dir``) is read by
``zhllama.corpus.dataset.PackedDataset``. Raw text (``--train-file``: any input
``tokenize-corpus`` takes, read by the same reader, ``zhllama.documents.read_documents``)
is tokenized here with zhllama's exact encoder. Either way each document is packed by
``zhllama.corpus.packing.Packing`` — ``doc </s>`` by default, where the reference script packs
``<s> doc`` (its ``LlamaTokenizer`` adds BOS, no EOS); the EOS marks where a document ends, so
the model learns to stop — the documents are concatenated and cut into ``block_size`` blocks,
the incomplete tail dropped. Labels equal the inputs; the model shifts them. The same text
through ``--train-file`` or through ``tokenize-corpus`` + ``--dataset-dir`` gives the same
blocks (``--dataset-dir`` then visits them in a seeded order).

``--train-file`` is streamed: documents are read and encoded a batch at a time, and only the
token stream is kept, as int32 (4 bytes a token), in memory. Inputs over
``--max-train-file-gib`` (1 GiB by default) are refused: tokenize those once with
``zhllama tokenize-corpus`` and train with ``--dataset-dir``, which memory-maps the shards.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from torch.utils.data import Dataset, Subset

from zhllama.corpus.packing import Packing
from zhllama.documents import expand_inputs, read_documents
from zhllama.tokenizer import Tokenizer

log = logging.getLogger("zhllama.train")

MAX_TRAIN_FILE_GIB = 1.0  # --max-train-file-gib: raw text above this goes through tokenize-corpus
_BATCH_CHARS = 1 << 22  # characters of text per encoder call (~4-12 MB of UTF-8)
_BATCH_DOCS = 8192
_PROGRESS_BYTES = 64 << 20  # inputs this large get a progress bar


def check_train_file_size(files: Sequence[str], max_bytes: Optional[int], flag: str = "--max-train-file-gib") -> int:
    """The total size of ``files``; a ValueError naming them when it is over ``max_bytes``."""
    sizes = [os.path.getsize(f) for f in files]
    total = sum(sizes)
    if max_bytes is not None and total > max_bytes:
        what = files[0] if len(files) == 1 else f"{len(files)} files (largest {files[sizes.index(max(sizes))]})"
        raise ValueError(f"--train-file {what}: {_human(total)} is over the {_human(max_bytes)} limit for raw text, "
                         f"which is tokenized in memory; run `zhllama tokenize-corpus --tokenizer TOKENIZER --input "
                         f"{' '.join(files) if len(files) <= 3 else '...'} --out DIR` once and train with "
                         f"--dataset-dir DIR (memory-mapped), or raise {flag}")
    return total


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def _batches(docs: Iterable[str]) -> Iterator[list[str]]:
    batch: list[str] = []
    chars = 0
    for doc in docs:
        batch.append(doc)
        chars += len(doc)
        if chars >= _BATCH_CHARS or len(batch) >= _BATCH_DOCS:
            yield batch
            batch, chars = [], 0
    if batch:
        yield batch


def encode_files(files: Sequence[str], total: int, tokenizer: Tokenizer, packing: Packing, text_field: str = "text",
                 on_bad_line: str = "fail") -> tuple[np.ndarray, int]:
    """``(stream, documents)``: the packed ids of every document of ``files`` (expanded paths,
    ``total`` bytes in all: ``check_train_file_size``'s answer), back to back as one int32 array,
    read and encoded a batch at a time."""
    from tqdm import tqdm

    large = total >= _PROGRESS_BYTES
    if large:
        log.info("tokenizing --train-file: %d files, %s", len(files), _human(total))
    quiet = not large or int(os.environ.get("RANK", "0")) != 0 or not sys.stderr.isatty()
    chunks: list[np.ndarray] = []
    ndocs = tokens = 0
    with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1000, desc="tokenizing", file=sys.stderr,
              dynamic_ncols=True, disable=quiet) as bar:
        reader = read_documents(files, text_field=text_field, on_bad_line=on_bad_line)
        for batch in _batches(reader):
            chunks.append(packing.encode_flat(tokenizer, batch))
            ndocs += len(batch)
            tokens += chunks[-1].size
            if not quiet:
                bar.update(min(reader.bytes_read, total) - bar.n)
                bar.set_postfix_str(f"{ndocs:,} docs, {tokens:,} tokens", refresh=False)
        bar.update(total - bar.n)
    stream = np.concatenate(chunks) if chunks else np.zeros(0, np.int32)
    if reader.bad_lines:
        log.warning("--train-file: skipped %d bad lines (--on-bad-line skip)", reader.bad_lines)
    return stream, ndocs


class PackedTextDataset(Dataset):
    """Fixed-length blocks of a token stream; item ``i`` is ``{"input_ids", "labels"}`` (int64).

    ``blocks`` keeps the stream's dtype: int32 from :meth:`from_files`, widened per item.
    """

    def __init__(self, tokens: torch.Tensor, block_size: int) -> None:
        self.block_size = block_size
        self.stream = tokens.numpy()
        n = tokens.numel() // block_size
        self.blocks = tokens[: n * block_size].view(n, block_size)

    @classmethod
    def from_files(cls, files: Sequence[str | Path], tokenizer: Tokenizer, block_size: int,
                   packing: Optional[Packing] = None,
                   max_bytes: Optional[int] = int(MAX_TRAIN_FILE_GIB * 2**30), text_field: str = "text",
                   on_bad_line: str = "fail") -> PackedTextDataset:
        """Blocks of ``files`` (files, directories or globs), each document packed by ``packing``.

        Streamed: the documents are encoded a batch at a time into int32 chunks, joined once.
        Inputs over ``max_bytes`` in all (None: no limit) are refused with a ValueError pointing
        to ``zhllama tokenize-corpus`` + ``--dataset-dir``.
        """
        paths = expand_inputs([os.fspath(f) for f in files])
        total = check_train_file_size(paths, max_bytes)
        stream, ndocs = encode_files(paths, total, tokenizer, packing or Packing(), text_field, on_bad_line)
        ds = cls(torch.from_numpy(stream), block_size)
        if len(ds) == 0:
            raise ValueError(f"{', '.join(map(str, files))}: {stream.size} tokens, fewer than one block of "
                             f"{block_size}; add text or lower --block-size")
        log.info("packed %d documents, %d tokens into %d blocks of %d", ndocs, stream.size, len(ds), block_size)
        return ds

    def __len__(self) -> int:
        return self.blocks.shape[0]

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        block = self.blocks[i].long()  # a copy for int32 storage; the block itself for int64
        return {"input_ids": block, "labels": block.clone()}


CACHE_DIR = ".zhllama-cache"  # in --output-dir: --train-file's token stream, keyed by what it depends on


def tokenize_once(training_args, out_dir: str | Path, key: dict, files: Sequence[str], tokenizer: Tokenizer,
                  block_size: int, max_bytes: Optional[int], text_field: str = "text",
                  on_bad_line: str = "fail") -> PackedTextDataset:
    """:meth:`PackedTextDataset.from_files`, encoded by global rank 0 only and read by the others.

    Rank 0 goes first (``training_args.main_process_first``), encodes and saves the stream in
    ``OUT/.zhllama-cache/train-HASH.npy``; the other ranks then load it instead of encoding the
    same files again. ``key`` (the files with their sizes, the tokenizer's sha256) names the
    cache, so a resumed run reads it too and changed inputs are encoded afresh. On a node that
    does not share the output directory the cache is missing and that node encodes for itself.
    """
    import hashlib
    import json

    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    cache = Path(out_dir) / CACHE_DIR / f"train-{digest}.npy"
    with training_args.main_process_first(desc="tokenizing --train-file", local=False):
        if cache.is_file():
            log.info("--train-file: reading the tokens encoded before from %s", cache)
            ds = PackedTextDataset(torch.from_numpy(np.load(cache)), block_size)
        else:
            ds = PackedTextDataset.from_files(files, tokenizer, block_size, max_bytes=max_bytes,
                                              text_field=text_field, on_bad_line=on_bad_line)
            if training_args.process_index == 0:
                cache.parent.mkdir(parents=True, exist_ok=True)
                tmp = cache.with_name(cache.name + ".tmp.npy")
                np.save(tmp, ds.stream)
                os.replace(tmp, cache)
    return ds


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


class Without(Dataset):
    """``dataset`` less the held-out indices ``held`` (sorted): item ``i`` is its ``i``-th index not held.

    Memory is that of ``held`` only: a 10⁷-block corpus with 1,000 held out keeps 1,000 numbers,
    not a list of the 10⁷ kept indices on every rank.
    """

    def __init__(self, dataset: Dataset, held: np.ndarray) -> None:
        self.dataset = dataset
        # Kept indices below held[j]: held[j] - j. The i-th kept index skips every held one whose
        # count of kept indices below it is <= i.
        self._kept_below = held - np.arange(len(held))

    def __len__(self) -> int:
        return len(self.dataset) - len(self._kept_below)  # type: ignore[arg-type]

    def __getitem__(self, i: int):
        if not -len(self) <= i < len(self):
            raise IndexError(f"sample {i} out of range for {len(self)} samples")
        i %= len(self)
        return self.dataset[i + int(np.searchsorted(self._kept_below, i, side="right"))]


MAX_EVAL_BLOCKS = 1000  # pretrain --max-eval-blocks (its default is spelled there: no torch at --help)


def split_validation(dataset: Dataset, percentage: float, seed: int,
                     max_eval: Optional[int] = None) -> tuple[Dataset, Optional[Dataset]]:
    """Hold out ``percentage`` % of the blocks (at least one when > 0, at most ``max_eval``), chosen
    by a seeded generator; both splits are index arrays over ``dataset`` (O(held) memory)."""
    n = len(dataset)  # type: ignore[arg-type]
    if percentage <= 0 or n < 2:
        return dataset, None
    k = min(n - 1, max(1, round(n * percentage / 100)))
    if max_eval is not None:
        k = max(1, min(k, max_eval))
    dtype = np.int32 if n < 2**31 else np.int64
    held = np.sort(np.random.default_rng(seed).choice(n, size=k, replace=False)).astype(dtype)
    return Without(dataset, held), Subset(dataset, held)  # type: ignore[arg-type]

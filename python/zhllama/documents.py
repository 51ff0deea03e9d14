"""Documents: which files an input names, and the one reader of their documents.

A bottom layer (it imports only the native core): ``tokenizer/`` (train-spm, extend-vocab),
``corpus/`` (tokenize-corpus, stats), ``train/`` (pretrain --train-file) and ``infer/`` (eval
--text-file) all read text through it.

Every verb that reads text goes through here: ``tokenize-corpus`` (its Rust pipeline reads the
files ``expand_inputs`` returns), ``stats``, ``train-spm``, ``pretrain --train-file`` and
``eval --text-file`` (through ``read_documents``). So they all see the same documents:

- ``.txt`` (a document a line), ``.jsonl`` (a string field a line), either gzip (``.gz``) or
  zstd (``.zst``) compressed, and ``.parquet`` (a string column, read with pyarrow);
- a line that is empty or only whitespace holds no document: skipped, counted as empty;
- invalid UTF-8: each invalid byte becomes U+FFFD, as sentencepiece does;
- a bad line (malformed JSON, missing or non-string field, null value) stops the read with
  ``file:line`` and the reason (``on_bad_line="fail"``, the default), or is skipped and counted
  (``"skip"``).
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Optional

from zhllama import _native

if TYPE_CHECKING:
    from zhllama._native import DocumentReader

# What to do with a bad line; the Rust core's ``OnBadLine`` spells the values.
ON_BAD_LINE: tuple[str, ...] = tuple(_native.ON_BAD_LINE)


def input_format(path: str) -> Optional[str]:
    """``"txt"``, ``"jsonl"`` or ``"parquet"`` for a file name zhllama reads, else None."""
    return _native.corpus_input_format(path)


def expand_inputs(patterns: Sequence[str]) -> list[str]:
    """Files named, found under directories, or matched by globs; each argument sorted."""
    files: list[str] = []
    for pat in map(str, patterns):
        if os.path.isdir(pat):
            found = sorted(
                os.path.join(root, f) for root, _, names in os.walk(pat) for f in names if input_format(f)
            )
            if not found:
                raise FileNotFoundError(f"{pat}: directory holds no .txt/.jsonl[.gz|.zst]/.parquet files")
        elif os.path.exists(pat):
            if not input_format(pat):
                raise ValueError(f"{pat}: unsupported input; expected .txt, .jsonl, .jsonl.gz, .jsonl.zst or .parquet")
            found = [pat]
        elif glob.has_magic(pat):
            found = sorted(f for f in glob.glob(pat, recursive=True) if os.path.isfile(f) and input_format(f))
            if not found:
                raise FileNotFoundError(f"{pat}: glob matches no input files")
        else:
            raise FileNotFoundError(f"{pat}: no such file or directory")
        files.extend(os.path.abspath(f) for f in found)
    return files


def parquet_batches(path: str, column: str, skip: int) -> Iterator[list[Optional[bytes]]]:
    """Column ``column`` of a Parquet file from row ``skip`` on, as batches of UTF-8 bytes."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    f = pq.ParquetFile(path)
    if column not in f.schema_arrow.names:
        raise ValueError(f"no column {column!r} (columns: {f.schema_arrow.names}); choose it with --text-field")
    for batch in f.iter_batches(batch_size=4096, columns=[column]):
        if skip >= batch.num_rows:
            skip -= batch.num_rows
            continue
        col = batch.column(0).slice(skip)
        skip = 0
        if not (pa.types.is_binary(col.type) or pa.types.is_large_binary(col.type)):
            col = col.cast(pa.large_binary())
        yield col.to_pylist()


def read_documents(patterns: Sequence[str | os.PathLike[str]], text_field: str = "text",
                   on_bad_line: str = "fail") -> DocumentReader:
    """The documents of ``patterns`` (files, directories, globs), in order, as ``str``.

    Returns the native iterator: read in Rust in chunks with the GIL released; its counters
    (``documents``, ``bad_lines``, ``empty_docs``, ``invalid_utf8_docs``…) grow as it is read.
    """
    files = expand_inputs([os.fspath(p) for p in patterns])
    return _native.DocumentReader(files, text_field=text_field, on_bad_line=on_bad_line, table_reader=parquet_batches)

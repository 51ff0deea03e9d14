"""Where a datatrove task writes its part of the corpus, and the options both steps share."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zhllama.corpus.packing import Packing
from zhllama.documents import ON_BAD_LINE

PART_PREFIX = "part-"


def local_path(folder: Any, what: str) -> Path:
    """A datatrove ``DataFolderLike`` (path, ``DataFolder``) on the local file system, as a path.

    The Rust writer and reader work on local files (a shared file system on a cluster);
    object stores are refused by name rather than failing deep inside a task.
    """
    from datatrove.io import get_datafolder
    from fsspec.utils import get_protocol

    if isinstance(folder, os.PathLike):
        folder = os.fspath(folder)
    # A URL is refused by its protocol before its file system is built (s3fs may be absent).
    remote = isinstance(folder, str) and get_protocol(folder) not in ("file", "local")
    df = None if remote else get_datafolder(folder)
    if df is None or not df.is_local():
        raise ValueError(f"{what} {folder if df is None else df.path!r} is not on a local or mounted file system; "
                         "zhllama reads and writes local files (copy the data over, or write locally and upload "
                         "the merged corpus)")
    return Path(os.path.abspath(df.path))


def part_dir(output_folder: str | os.PathLike[str], rank: int) -> Path:
    """Task ``rank``'s corpus directory: ``OUTPUT/part-RANK`` (5 digits, as datatrove names ranks,
    so ``OUTPUT/part-*`` lists the parts in rank order)."""
    return Path(output_folder) / f"{PART_PREFIX}{rank:05d}"


@dataclass(frozen=True)
class CorpusOptions:
    """The ``tokenize-corpus`` options a step records in each part's manifest; parts merge only
    when these agree, so a CLI part and a datatrove part made alike can be merged together."""

    tokenizer: str
    text_field: str = "text"
    append_eos: bool = Packing.append_eos
    add_bos: bool = Packing.add_bos
    shard_size: str = "1GB"
    on_bad_line: str = "fail"

    def __post_init__(self) -> None:
        from zhllama.sizes import parse_size

        if self.on_bad_line not in ON_BAD_LINE:
            raise ValueError(f"on_bad_line {self.on_bad_line!r} is not one of {', '.join(ON_BAD_LINE)}")
        parse_size(self.shard_size, "--shard-size")  # a bad size fails when the pipeline is built, not in every task

    def shard_bytes(self) -> int:
        from zhllama.sizes import parse_size

        return parse_size(self.shard_size, "--shard-size")


def task_extra(rank: int, world_size: int) -> dict[str, int]:
    """What ``tokenize-corpus --num-shards K --shard-index I`` records for its split."""
    return {"num_shards": world_size, "shard_index": rank}

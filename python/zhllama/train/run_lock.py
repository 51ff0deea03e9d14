"""One training run per ``--output-dir``: the lock ``tokenize-corpus`` takes, taken by ``pretrain``/``sft``.

The lock is the Rust core's (``rust/core/src/corpus/lock.rs``, bound as ``zhllama._native.OutputLock``):
an advisory ``flock`` on ``DIR/.zhllama-lock``, whose content names the holder's pid, host and
command. A training run and a ``tokenize-corpus`` run exclude each other too, and the refusal
reads the same. The kernel drops the lock when its holder dies (even ``kill -9``), so a stale
file never blocks a rerun; a clean exit removes the file.

Under torchrun/deepspeed only global rank 0 takes it: the other ranks of the same run are not
second writers, and a second run's rank 0 is refused before any rank of it writes.
"""

from __future__ import annotations

import contextlib
import os
from typing import Optional

from zhllama._native import LOCK_FILE as LOCK
from zhllama._native import OutputLock

__all__ = ["LOCK", "OutputLock", "lock_output_dir"]


def lock_output_dir(directory: str | os.PathLike[str]) -> contextlib.AbstractContextManager[Optional[OutputLock]]:
    """``with lock_output_dir(out):`` the run, holding the lock on global rank 0 (nothing on the others)."""
    if int(os.environ.get("RANK", "0")) != 0:
        return contextlib.nullcontext()
    return OutputLock(os.fspath(directory))

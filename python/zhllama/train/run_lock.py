"""One training run per ``--output-dir``: the lock ``tokenize-corpus`` takes, taken by ``pretrain``/``sft``.

The lock is the Rust core's (``rust/core/src/corpus/lock.rs``): an advisory ``flock`` on
``DIR/.zhllama-lock``, whose content names the holder's pid, host and command. The binding
exposes it only inside the corpus jobs, so this module takes the same ``flock`` on the same file
with the same record: a training run and a ``tokenize-corpus`` run exclude each other too, and
the refusal reads the same. The kernel drops the lock when its holder dies (even ``kill -9``),
so a stale file never blocks a rerun; a clean exit removes the file.

Under torchrun/deepspeed only global rank 0 takes it: the other ranks of the same run are not
second writers, and a second run's rank 0 is refused before any rank of it writes.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sys
from pathlib import Path
from typing import Optional

LOCK = ".zhllama-lock"  # rust/core/src/corpus/lock.rs: LOCK

class OutputLock:
    """The held lock on ``directory`` (created if missing); :meth:`release` removes the file."""

    def __init__(self, directory: str | os.PathLike[str], flag: str = "--output-dir") -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / LOCK
        # A holder that is releasing unlinks the file before closing it: having locked an unlinked
        # file, we would hold nothing, so check that the path still names the file we locked.
        for _ in range(8):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 1 << 16).decode("utf-8", "replace")
                os.close(fd)
                raise ValueError(f"{directory}: another run is writing this directory ({_describe(holder)}); wait "
                                 f"for it to finish, or give each run its own {flag}") from None
            if _same_file(fd, self.path):
                os.ftruncate(fd, 0)
                os.write(fd, (json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                          "command": " ".join(sys.argv)}) + "\n").encode())
                self._fd: Optional[int] = fd
                return
            os.close(fd)
        raise ValueError(f"{directory}: another run is writing this directory (runs keep taking and releasing its "
                         f"lock); give each run its own {flag}")

    def __enter__(self) -> OutputLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def release(self) -> None:
        if self._fd is None:
            return
        # Unlink first, then unlock (close), as the Rust lock does: see __init__.
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        os.close(self._fd)
        self._fd = None


def _same_file(fd: int, path: Path) -> bool:
    try:
        a, b = os.fstat(fd), os.stat(path)
    except FileNotFoundError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _describe(record: str) -> str:
    try:
        v = json.loads(record)
        return f"pid {v['pid']} on {v.get('host', '?')}: {v.get('command', '?')}"
    except (ValueError, KeyError, TypeError):
        return "its holder has not recorded itself yet"


def lock_output_dir(directory: str | os.PathLike[str]) -> contextlib.AbstractContextManager[Optional[OutputLock]]:
    """``with lock_output_dir(out):`` the run, holding the lock on global rank 0 (nothing on the others)."""
    if int(os.environ.get("RANK", "0")) != 0:
        return contextlib.nullcontext()
    return OutputLock(directory)

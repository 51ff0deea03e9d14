"""Checkpoints a run can resume from: complete ones only.

The Trainer writes ``checkpoint-N`` file by file (weights, optimizer, scheduler, RNG states, then
``trainer_state.json``; under DeepSpeed every rank writes its own partitions), so a run killed
during a save leaves a directory that looks like a checkpoint and is not one. A checkpoint counts
once :class:`CompleteCheckpoints` has written :data:`MARKER` into it: after every rank finished
its part of the save (a barrier), written last and atomically. The same callback rotates
checkpoints (``--save-total-limit``) itself, after marking, and counts only complete ones, so the
newest complete checkpoint is never deleted before a newer one is complete (the Trainer's own
rotation runs before its ``on_save`` and would).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from pathlib import Path
from typing import Any, Optional

log = logging.getLogger("zhllama.train")

MARKER = "zhllama-checkpoint.json"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def all_checkpoints(out: str | os.PathLike[str]) -> list[tuple[int, Path]]:
    """``(step, path)`` of every ``checkpoint-N`` directory in ``out``, by step."""
    out = Path(out)
    if not out.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in out.iterdir() if (m := _CHECKPOINT.match(p.name)) and p.is_dir()]
    return sorted(found)


def is_complete(checkpoint: str | os.PathLike[str]) -> bool:
    return (Path(checkpoint) / MARKER).is_file()


def complete_checkpoints(out: str | os.PathLike[str]) -> list[tuple[int, Path]]:
    return [(step, p) for step, p in all_checkpoints(out) if is_complete(p)]


def write_json_atomic(path: Path, data: Any) -> None:
    """``path`` holds all of ``data`` or its old content, never a part (write, fsync, rename)."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(json.dumps(data, indent=2) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def mark_complete(checkpoint: Path, global_step: int) -> None:
    write_json_atomic(checkpoint / MARKER, {"global_step": global_step})


def remove_incomplete(out: str | os.PathLike[str]) -> list[Path]:
    """Delete the ``checkpoint-N`` directories a killed save left without a marker; returns them."""
    gone = [p for _, p in all_checkpoints(out) if not is_complete(p)]
    for p in gone:
        log.warning("removing %s: a save that did not finish (no %s)", p, MARKER)
        shutil.rmtree(p)
    return gone


def rotate(out: str | os.PathLike[str], limit: Optional[int]) -> None:
    """Keep the ``limit`` newest complete checkpoints (all when None)."""
    if limit is None or limit <= 0:
        return
    complete = complete_checkpoints(out)
    for _, p in complete[: max(0, len(complete) - limit)]:
        shutil.rmtree(p, ignore_errors=True)


def callback(out: str, limit: Optional[int], base: Optional[dict] = None):
    """The Trainer callback that marks each saved checkpoint complete, then rotates; ``base``
    (``zhllama.model.identity.base_record``) is saved in each, so its adapter names its base too."""
    from transformers import TrainerCallback

    class CompleteCheckpoints(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            import torch.distributed as dist

            if dist.is_available() and dist.is_initialized():
                dist.barrier()  # every rank has written its part of the checkpoint
            if state.is_world_process_zero:
                ckpt = Path(out) / f"checkpoint-{state.global_step}"
                if ckpt.is_dir():
                    if base is not None:
                        from zhllama.model.identity import write_base_record

                        write_base_record(ckpt, base)
                    mark_complete(ckpt, state.global_step)
                    rotate(out, limit)
            return control

    return CompleteCheckpoints()

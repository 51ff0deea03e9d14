"""``python tests/kill_in_save.py VERB ARGS...``: ``zhllama VERB ARGS...``, killed with SIGKILL in the middle
of saving a checkpoint, for the kill-during-save tests (test_train_kill_save.py).

ZHLLAMA_TEST_KILL_AT names the file whose writing kills the process (``adapter_model.safetensors``,
``optimizer.pt``, ``trainer_state.json``, a DeepSpeed ``*optim_states.pt``..., or ``marker`` for the
moment just before the checkpoint is marked complete) and ZHLLAMA_TEST_KILL_IN the checkpoint
directory (``checkpoint-4``). The writers are replaced before transformers/peft/deepspeed import
them, so every ``from ... import save_file`` binds the replacement. Under torchrun each rank
reaching the moment kills itself, and torchrun then stops the others: a real ``kill -9``.
"""

from __future__ import annotations

import os
import signal
import sys

AT = os.environ["ZHLLAMA_TEST_KILL_AT"]
IN = os.environ["ZHLLAMA_TEST_KILL_IN"]


def _maybe_die(path: object) -> None:
    p = os.fspath(path) if isinstance(path, (str, os.PathLike)) else ""
    if IN in p and p.endswith(AT):
        os.kill(os.getpid(), signal.SIGKILL)


def _wrap(module: object, name: str, path_arg: int) -> None:
    original = getattr(module, name)

    def wrapper(*args, **kwargs):
        if len(args) > path_arg:
            _maybe_die(args[path_arg])
        result = original(*args, **kwargs)
        return result

    setattr(module, name, wrapper)


import safetensors.torch  # noqa: E402
import torch  # noqa: E402

_wrap(safetensors.torch, "save_file", 1)
_wrap(torch, "save", 1)

from transformers.trainer_callback import TrainerState  # noqa: E402

_wrap(TrainerState, "save_to_json", 1)

from zhllama.train import checkpoints  # noqa: E402

if AT == "marker":
    _original_mark = checkpoints.mark_complete

    def _mark(checkpoint, global_step):
        if IN in str(checkpoint):
            os.kill(os.getpid(), signal.SIGKILL)
        _original_mark(checkpoint, global_step)

    checkpoints.mark_complete = _mark

from zhllama.cli import main  # noqa: E402

sys.exit(main(sys.argv[1:]))

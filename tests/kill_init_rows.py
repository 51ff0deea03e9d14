"""``python tests/kill_init_rows.py ARGS...``: ``zhllama init-rows ARGS...``, killed with SIGKILL right
after it saved its resume state at step ZHLLAMA_TEST_KILL_STEP (test_init_rows.py)."""

from __future__ import annotations

import os
import signal
import sys

from zhllama.model import row_training

STEP = int(os.environ["ZHLLAMA_TEST_KILL_STEP"])
_save = row_training.RowTrainer.save_state


def save_then_die(self, path):
    _save(self, path)
    if self.step == STEP:
        os.kill(os.getpid(), signal.SIGKILL)


row_training.RowTrainer.save_state = save_then_die  # type: ignore[method-assign]

if __name__ == "__main__":
    from zhllama.cli import main

    sys.exit(main(["init-rows", *sys.argv[1:]]))

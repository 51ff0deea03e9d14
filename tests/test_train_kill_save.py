"""kill -9 during a checkpoint save, then ``--resume last``: the final weights and the loss curve equal an
uninterrupted run's, under plain torch and under 2-process DeepSpeed (torchrun, gloo, CPU).

The run is killed (SIGKILL, by tests/kill_in_save.py) while it writes checkpoint-4 of 6 steps: at its
first file, at a later one, and just before the marker that makes it complete. The resumed run must
take checkpoint-2, the newest complete one, and not the partial checkpoint-4 (which `get_last_checkpoint`,
the highest step, would pick).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

import train_helpers as h
from fixture_paths import package_env

pytest.importorskip("transformers")
pytest.importorskip("peft")

STEPS = 6


def _args(model, text, out, *extra):
    return ["pretrain", "--stage", "2", "--model", model, "--train-file", text, "--output-dir", out,
            "--block-size", "32", "--max-steps", str(STEPS), "--save-steps", "2", "--logging-steps", "1",
            "--report-to", "none", "--validation-split-percentage", "0", "--learning-rate", "1e-2", *extra]


def _run(argv, launcher, kill_at=None, timeout=900):
    env = package_env(DS_ACCELERATOR="cpu", OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    script = [str(h.REPO / "tests" / "kill_in_save.py")] if kill_at else ["-m", "zhllama.cli"]
    if kill_at:
        env.update(ZHLLAMA_TEST_KILL_AT=kill_at, ZHLLAMA_TEST_KILL_IN="checkpoint-4")
    if launcher == "python":
        cmd = [sys.executable, *script]
    else:
        from test_train_run_dir import torchrun_prefix

        cmd = [*torchrun_prefix()[:-2], *script]
        argv = [*argv, "--deepspeed", h.REPO / "configs" / "ds_zero2.json"]
    return subprocess.run([*cmd, *map(str, argv)], env=env, cwd=h.REPO, capture_output=True, text=True,
                          timeout=timeout)


def _losses(out):
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    return {e["step"]: e["loss"] for e in history if "loss" in e}


def _check_killed_then_resumed(resized, text_file, tmp_path, launcher, moments):
    straight = tmp_path / "straight"
    proc = _run(_args(resized, text_file, straight), launcher)
    assert proc.returncode == 0, proc.stderr[-6000:]
    want = h.safetensors_of(straight / "adapter_model.safetensors")
    for at in moments:
        out = tmp_path / f"killed-{at.replace('*', '')}"
        proc = _run(_args(resized, text_file, out), launcher, kill_at=at)
        assert proc.returncode != 0, f"{at}: the run was not killed\n{proc.stderr[-3000:]}"
        assert (out / "checkpoint-4").is_dir(), f"{at}: killed before checkpoint-4\n{proc.stderr[-4000:]}"
        assert not (out / "checkpoint-4" / "zhllama-checkpoint.json").exists()
        proc = _run(_args(resized, text_file, out, "--resume", "last"), launcher)
        assert proc.returncode == 0, f"{at}: {proc.stderr[-6000:]}"
        assert "resuming from" in proc.stderr and "checkpoint-2" in proc.stderr
        got = h.safetensors_of(out / "adapter_model.safetensors")
        assert got.keys() == want.keys()
        for name in want:
            assert torch.allclose(got[name], want[name], atol=1e-6, rtol=1e-5), (at, name)
        a, b = _losses(straight), _losses(out)
        assert sorted(a) == sorted(b) == list(range(1, STEPS + 1)), (a, b)
        for step in a:
            assert b[step] == pytest.approx(a[step], rel=1e-5, abs=1e-6), (at, step)
        assert (out / "checkpoint-4" / "zhllama-checkpoint.json").is_file()


@pytest.mark.slow
def test_kill_during_save_then_resume_equals_straight_run(resized, text_file, tmp_path):
    _check_killed_then_resumed(resized, text_file, tmp_path, "python",
                               ["adapter_model.safetensors", "optimizer.pt", "marker"])


@pytest.mark.slow
def test_kill_during_save_then_resume_equals_straight_run_deepspeed(resized, text_file, tmp_path):
    # ZeRO-2 on 2 ranks: each rank writes its own optimizer partition; rank 1 dies writing its own.
    _check_killed_then_resumed(resized, text_file, tmp_path, "torchrun",
                               ["zero_pp_rank_1_mp_rank_00_optim_states.pt", "marker"])

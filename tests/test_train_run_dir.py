"""The output directory of a training run: one run at a time, its fingerprint, complete checkpoints only,
--overwrite-output-dir, a finished run, and every check done before any tokenizing or model loading."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

import train_helpers as h
from fixture_paths import package_env

pytest.importorskip("transformers")
pytest.importorskip("peft")


def pretrain(model, text, out, *extra, steps=4):
    return h.cli("pretrain", "--stage", "2", "--model", model, "--train-file", text, "--output-dir", out,
                 "--block-size", "32", "--max-steps", str(steps), "--save-steps", "2", "--logging-steps", "1",
                 "--report-to", "none", "--per-device-train-batch-size", "2", "--validation-split-percentage", "0",
                 *extra)


def test_a_held_output_dir_is_refused_before_anything_is_touched(resized, text_file, tmp_path, capsys):
    """The lock is the one tokenize-corpus takes: held by a run (here this test), a second pretrain, even
    with --overwrite-output-dir, stops at once naming the holder, and deletes nothing; tokenize-corpus
    on a directory a training run holds is refused the same way."""
    from zhllama.train.run_lock import LOCK, OutputLock

    out = tmp_path / "run"
    (out / "checkpoint-2").mkdir(parents=True)
    (out / "checkpoint-2" / "weights").write_text("the first run's")
    with OutputLock(out):
        assert pretrain(resized, text_file, out, "--overwrite-output-dir") == 2
        err = capsys.readouterr().err
        assert "another run is writing this directory" in err and f"pid {os.getpid()}" in err
        assert "give each run its own --output-dir" in err
        assert (out / "checkpoint-2" / "weights").read_text() == "the first run's"
        assert h.cli("tokenize-corpus", "--tokenizer", resized, "--input", text_file, "--out", out, "--quiet") == 2
        assert "another run is writing this directory" in capsys.readouterr().err
    assert not (out / LOCK).exists()
    # Released: the directory is usable again.
    assert pretrain(resized, text_file, out, "--overwrite-output-dir", steps=2) == 0


def _wait_for(path, proc, timeout=120.0):
    t0 = time.time()
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.time() - t0 < timeout, f"{path} never appeared"
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["python", "torchrun-deepspeed"])
def test_a_second_run_is_refused_and_the_first_finishes(resized, text_file, tmp_path, launcher):
    """Two real runs on one --output-dir: the first (paused while the second tries) is unharmed."""
    from zhllama.train.run_lock import LOCK

    out = tmp_path / "run"
    args = ["pretrain", "--stage", "2", "--model", resized, "--train-file", text_file, "--output-dir", out,
            "--block-size", "32", "--max-steps", "4", "--save-steps", "2", "--report-to", "none",
            "--validation-split-percentage", "0"]
    env = package_env(DS_ACCELERATOR="cpu", OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    if launcher == "python":
        first_cmd = [sys.executable, "-m", "zhllama.cli", *map(str, args)]
    else:
        first_cmd = [*torchrun_prefix(), *map(str, args), "--deepspeed", str(h.REPO / "configs" / "ds_zero2.json")]
    first = subprocess.Popen(first_cmd, env=env, cwd=h.REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, start_new_session=True)
    try:
        _wait_for(out / LOCK, first)
        os.killpg(first.pid, signal.SIGSTOP)  # the first run holds the lock for as long as the second tries
        second = subprocess.run([sys.executable, "-m", "zhllama.cli", *map(str, args), "--overwrite-output-dir"],
                                env=env, cwd=h.REPO, capture_output=True, text=True, timeout=300)
        os.killpg(first.pid, signal.SIGCONT)
        assert second.returncode == 2, second.stderr[-3000:]
        assert "another run is writing this directory" in second.stderr, second.stderr[-3000:]
        # The holder: the run itself, or its rank 0 under torchrun (torchrun's child).
        assert (f"pid {first.pid} " if launcher == "python" else "--deepspeed") in second.stderr
        stdout, stderr = first.communicate(timeout=600)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
    assert first.returncode == 0, stderr[-6000:]
    assert (out / "adapter_model.safetensors").is_file() and (out / "checkpoint-4").is_dir()
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 4


def torchrun_prefix():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
            "--master_port", str(port), "-m", "zhllama.cli"]


def test_resume_refuses_a_changed_data_order_or_shape_and_allows_the_rest(resized, text_file, tmp_path, capsys):
    out = tmp_path / "run"
    assert pretrain(resized, text_file, out, steps=2) == 0
    for flag, value, name in (("--block-size", "16", "--block-size"), ("--seed", "7", "--seed"),
                              ("--lora-rank", "4", "--lora-rank"),
                              ("--per-device-train-batch-size", "1", "--per-device-train-batch-size")):
        assert pretrain(resized, text_file, out, "--resume", "--reschedule", flag, value, steps=4) == 2, flag
        err = capsys.readouterr().err
        assert f"--resume: {name} was" in err and "zhllama-run.json" in err and "another --output-dir" in err, err
    # Another file list (same content, another name) changes the data identity too.
    other = h.write_text(tmp_path / "other.txt", text_file.read_text(encoding="utf-8").splitlines())
    assert pretrain(resized, other, out, "--resume", "--reschedule", steps=4) == 2
    assert "the --train-file files (path, size) was" in capsys.readouterr().err
    # --logging-steps changes neither: allowed (and logged); the run goes on from checkpoint-2.
    assert pretrain(resized, text_file, out, "--resume", "--reschedule", "--logging-steps", "2", steps=4) == 0
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == 4


def test_resume_of_a_run_whose_fingerprint_predates_an_option_left_off(resized, text_file, tmp_path):
    """A run fingerprinted by an older zhllama lacks the options added since; resuming it with them off
    (their defaults) is the same run, so it goes on; turned on, it is refused as any other change."""
    out = tmp_path / "run"
    assert pretrain(resized, text_file, out, steps=2) == 0
    fp = json.loads((out / "zhllama-run.json").read_text())
    for name in ("batch_rows_only", "batch_rows_only_steps"):
        del fp["settings"][name]
    (out / "zhllama-run.json").write_text(json.dumps(fp))
    assert pretrain(resized, text_file, out, "--resume", "--reschedule", "--batch-rows-only", steps=4) == 2
    assert pretrain(resized, text_file, out, "--resume", "--reschedule", steps=4) == 0
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == 4


def test_overwrite_output_dir_deletes_the_old_checkpoints(resized, text_file, tmp_path):
    out = tmp_path / "run"
    assert pretrain(resized, text_file, out, steps=4) == 0
    assert (out / "checkpoint-4").is_dir()
    assert pretrain(resized, text_file, out, "--overwrite-output-dir", steps=2) == 0
    assert not (out / "checkpoint-4").exists()  # a later --resume last cannot pick the old run's step 4
    assert json.loads((out / "zhllama-run.json").read_text())["finished"]["global_step"] == 2


def test_a_finished_run_resumed_with_the_same_max_steps_does_nothing(resized, text_file, tmp_path, capsys):
    out = tmp_path / "run"
    assert pretrain(resized, text_file, out, steps=4) == 0
    adapter = out / "adapter_model.safetensors"
    before = adapter.stat().st_mtime_ns
    capsys.readouterr()
    assert pretrain(resized, text_file, out, "--resume", steps=4) == 0
    assert "already finished at step 4: nothing to do" in capsys.readouterr().err
    assert adapter.stat().st_mtime_ns == before and not (out / "checkpoint-5").exists()
    # A higher --max-steps recomputes the cosine schedule (its rate would jump back up): refused, naming
    # both values and the two ways on; --reschedule is the explicit continuation and trains on.
    assert pretrain(resized, text_file, out, "--resume", steps=6) == 2
    err = capsys.readouterr().err
    assert "--resume: --max-steps was 4 in the run being resumed" in err and "is 6 now" in err, err
    assert "pass --max-steps 4 as before, or add --reschedule" in err, err
    assert not (out / "checkpoint-5").exists()
    assert pretrain(resized, text_file, out, "--resume", "--reschedule", steps=6) == 0
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == 6


def test_resume_refuses_a_changed_schedule_mid_run(resized, text_file, tmp_path, capsys):
    """Stopped at step 2 of 4: a new --max-steps, --warmup-ratio or --lr-scheduler-type would rebuild the
    schedule at step 2 (the cosine rate jumps), a new --learning-rate would be ignored (the checkpoint
    restores the old peak): each is refused with both values; --reschedule allows the schedule ones."""
    out = tmp_path / "run"
    assert pretrain(resized, text_file, out, steps=4) == 0
    shutil.rmtree(out / "checkpoint-4")  # killed after step 2's save
    (out / "zhllama-run.json").write_text(json.dumps({**json.loads((out / "zhllama-run.json").read_text()),
                                                      "finished": None}))
    capsys.readouterr()
    for extra, steps, needle in (((), 8, "--max-steps was 4"), (("--warmup-ratio", "0.5"), 4, "--warmup-ratio was"),
                                 (("--lr-scheduler-type", "linear"), 4, "--lr-scheduler-type was 'cosine'"),
                                 (("--learning-rate", "0.5"), 4, "--learning-rate was None")):
        assert pretrain(resized, text_file, out, "--resume", *extra, steps=steps) == 2, extra
        assert needle in capsys.readouterr().err, extra
    assert pretrain(resized, text_file, out, "--resume", "--learning-rate", "0.5", "--reschedule") == 2
    assert "restore" in capsys.readouterr().err
    assert not (out / "checkpoint-4").exists()
    assert pretrain(resized, text_file, out, "--resume", "--reschedule", "--warmup-ratio", "0.5", steps=6) == 0
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == 6


def test_resume_skips_an_incomplete_checkpoint(resized, text_file, tmp_path):
    """A checkpoint without its marker (a save killed half-way) is not resumed from, and is removed."""
    out = tmp_path / "run"
    assert pretrain(resized, text_file, out, steps=4) == 0
    (out / "checkpoint-4" / "zhllama-checkpoint.json").unlink()
    (out / "checkpoint-4" / "trainer_state.json").write_text("{")  # cut short
    (out / "checkpoint-4" / "adapter_model.safetensors").unlink()
    assert pretrain(resized, text_file, out, "--resume", "--reschedule", steps=6) == 0
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 6
    assert (out / "checkpoint-4" / "zhllama-checkpoint.json").is_file()  # written again, whole


def test_output_dir_and_fingerprint_are_checked_before_tokenizing_or_loading(resized, text_file, tmp_path, capsys,
                                                                            monkeypatch):
    from zhllama.train import text_data

    def no_work(*_a, **_k):
        raise AssertionError("tokenized before checking the output directory")

    out = tmp_path / "run"
    assert pretrain(resized, text_file, out, steps=2) == 0
    monkeypatch.setattr(text_data.PackedTextDataset, "from_files", no_work)
    assert pretrain(resized, text_file, out, steps=2) == 2
    assert "already holds checkpoint-2; pass --resume" in capsys.readouterr().err
    assert pretrain(resized, text_file, out, "--resume", "--reschedule", "--seed", "3", steps=4) == 2
    assert "--resume: --seed was 42" in capsys.readouterr().err

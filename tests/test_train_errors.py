"""Errors of the training verbs: zhllama's own stay one line (exit 2); an exception raised inside a library
keeps its traceback (exit 1); a CPU run prints no warning a user cannot act on."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import train_helpers as h
from fixture_paths import package_env

transformers = pytest.importorskip("transformers")
pytest.importorskip("peft")


def test_a_library_value_error_keeps_its_traceback():
    from zhllama.cli import exit_status

    with pytest.raises(ValueError) as raised:
        transformers.AutoConfig.for_model("no-such-model-type")
    assert exit_status(raised.value) is None  # re-raised by main: traceback, exit 1
    try:
        raise ValueError("--block-size must be >= 2, got 1")
    except ValueError as e:
        assert exit_status(e) == 2  # zhllama's own: one line
    try:
        json.loads("{")  # raised in the standard library on zhllama's behalf: still zhllama's report
    except ValueError as e:
        assert exit_status(e) == 2


def test_pretrain_on_a_config_transformers_rejects_shows_the_traceback(text_file, tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"model_type": "no-such-model-type"}))
    env = package_env(TOKENIZERS_PARALLELISM="false")
    proc = subprocess.run([sys.executable, "-m", "zhllama.cli", "pretrain", "--stage", "1", "--model", model,
                           "--tokenizer", h.tokenizer_dir("merged-pad"), "--train-file", text_file, "--output-dir",
                           tmp_path / "out", "--block-size", "32", "--max-steps", "1", "--report-to", "none"],
                          env=env, cwd=h.REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "Traceback (most recent call last)" in proc.stderr and "transformers" in proc.stderr


@pytest.mark.slow
def test_a_cpu_run_prints_no_warning_the_user_cannot_act_on(resized, text_file, tmp_path):
    env = package_env(TOKENIZERS_PARALLELISM="false")
    env.pop("DS_ACCELERATOR", None)
    proc = subprocess.run([sys.executable, "-m", "zhllama.cli", "pretrain", "--stage", "2", "--model", resized,
                           "--train-file", text_file, "--output-dir", tmp_path / "out", "--block-size", "32",
                           "--max-steps", "2", "--save-steps", "1", "--report-to", "none", "--logging-steps", "1"],
                          env=env, cwd=h.REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    for unactionable in ("Setting accelerator to CPU", "FutureWarning", "UserWarning", "DeprecationWarning"):
        assert unactionable not in out, out[-4000:]

"""The demo's completion markers are keyed by each step's settings and inputs (issue 28): a rerun
into the same --out reuses a step only when nothing it was made with changed, and redoes a changed
step and every step that reads it. The steps themselves are replaced by stand-ins that write their
outputs and report facts, so the sequences run in milliseconds; the stand-ins of the real demo read
the facts the real steps read (the tiny base's markers once left them missing: a KeyError)."""

from __future__ import annotations

import argparse
import json

import pytest

from zhllama.demo import demo as demo_cmd
from zhllama.demo import real
from zhllama.demo.tiny import TinyDemo

# What each real step reads from the facts of the steps before it (as RealDemo's methods do).
REAL_READS = {"extend-vocab": ("base_model",), "tokenize-corpus": ("tokenizer", "replay_docs"),
              "resize": ("base_model", "tokenizer"), "stage2": ("trained_from", "train_precision"),
              "generate": ("base_model", "tokenizer"), "eval": ("base_model", "tokenizer")}
REAL_WRITES = {"corpus": {"replay_docs": 1}, "base-model": {"base_model": "b", "train_precision": "fp32"},
               "extend-vocab": {"tokenizer": "t"}, "resize": {"trained_from": "r"}}


def run(tmp_path, monkeypatch, *flags):
    """One demo run with stand-in steps; returns the steps that ran (not reused) and the demo."""
    monkeypatch.setattr(real, "smollm2_gguf", lambda: tmp_path / "SmolLM2.gguf")
    ns = argparse.ArgumentParser()
    demo_cmd.add_arguments(ns)
    demo = demo_cmd.choose_demo(ns.parse_args(["--out", str(tmp_path / "out"), "--threads", "1", *flags]))
    ran: list[str] = []

    def stand_in(name):
        def fn():
            for key in REAL_READS.get(name, ()) if isinstance(demo, real.RealDemo) else ():
                demo.facts[key]  # noqa: B018 - KeyError when a step reuses another run's marker
            ran.append(name)
            for out in demo.STEPS[name].outputs:  # a directory unless the name has a suffix
                path = demo.path(out) if "." in out else demo.path(out, "made")
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(f"{demo.KIND} {name} {demo.settings}")
            return {**(REAL_WRITES.get(name, {}) if isinstance(demo, real.RealDemo) else {}),
                    f"{demo.KIND}.{name}": True}
        return fn

    for name in demo.STEPS:
        monkeypatch.setattr(demo, name.replace("-", "_"), stand_in(name))
    monkeypatch.setattr(demo, "report", lambda seconds: demo.path("report.md"))
    demo.path("report.md").write_text("report")
    demo.run()
    return ran, demo


def test_the_same_settings_reuse_every_step_and_a_changed_one_redoes_it_and_its_dependents(tmp_path, monkeypatch):
    ran, _ = run(tmp_path, monkeypatch, "--base", "tiny", "--quick")
    assert ran == list(TinyDemo.STEPS)
    assert run(tmp_path, monkeypatch, "--base", "tiny", "--quick", "--threads", "2")[0] == []  # threads: no setting
    # Another vocabulary: the SentencePiece model and everything made from the merged tokenizer, not
    # the corpus or the tiny base (which reads the base tokenizer only).
    ran, _ = run(tmp_path, monkeypatch, "--base", "tiny", "--quick", "--vocab-size", "5000")
    assert ran == ["train-spm", "merge-vocab", "tokenize-corpus", "stats", "resize", "stage2", "merge-stage2", "sft",
                   "merge-sft", "generate", "eval"]
    assert "vocab=5000" in (tmp_path / "out" / "tokenizer" / "made").read_text()


def test_quick_then_full_redoes_every_step_whose_settings_differ(tmp_path, monkeypatch):
    run(tmp_path, monkeypatch, "--base", "tiny", "--quick")
    ran, demo = run(tmp_path, monkeypatch, "--base", "tiny")
    assert ran == list(TinyDemo.STEPS)  # the quick run's corpus is smaller, and every step reads it
    assert not demo.quick
    for name in TinyDemo.STEPS:
        marker = json.loads((tmp_path / "out" / ".done" / f"{name}.json").read_text())
        settings = marker["settings"]
        assert all(settings[f] == getattr(demo.settings, f) for f in TinyDemo.STEPS[name].settings), name
    # A full rerun then reuses all of it.
    assert run(tmp_path, monkeypatch, "--base", "tiny")[0] == []


def test_tiny_then_smollm2_into_the_same_out_redoes_every_step(tmp_path, monkeypatch):
    run(tmp_path, monkeypatch, "--base", "tiny", "--quick")
    ran, demo = run(tmp_path, monkeypatch, "--quick")  # the default base: SmolLM2
    assert isinstance(demo, real.RealDemo)
    assert ran == list(real.RealDemo.STEPS)  # nothing of the tiny run is taken for SmolLM2's
    # A redone step's outputs are the new run's (the tiny run's tokenizer/ was deleted first).
    assert (tmp_path / "out" / "tokenizer" / "made").read_text().startswith("real extend-vocab")
    # And back: each tiny step whose marker SmolLM2's run replaced, or whose outputs it deleted (its
    # tokenizer/, corpus/...), is redone, with what reads it; the SentencePiece model and the stats,
    # which SmolLM2's run neither wrote nor changed the inputs of, are reused.
    ran, _ = run(tmp_path, monkeypatch, "--base", "tiny", "--quick")
    assert ran == [s for s in TinyDemo.STEPS if s not in ("train-spm", "stats")]


def test_force_redoes_everything(tmp_path, monkeypatch):
    run(tmp_path, monkeypatch, "--base", "tiny", "--quick")
    assert run(tmp_path, monkeypatch, "--base", "tiny", "--quick", "--force")[0] == list(TinyDemo.STEPS)


@pytest.mark.parametrize("steps", ["7"])
def test_steps_redoes_the_tiny_base_and_training_but_not_the_tokenizer(tmp_path, monkeypatch, steps):
    run(tmp_path, monkeypatch, "--base", "tiny", "--quick")
    ran, _ = run(tmp_path, monkeypatch, "--base", "tiny", "--quick", "--steps", steps)
    assert ran == ["base-model", "resize", "stage2", "merge-stage2", "sft", "merge-sft", "generate", "eval"]


def test_a_changed_init_code_redoes_resize_and_every_step_after_it(tmp_path, monkeypatch):
    """The resized model's rows are made by resize's and init-rows' code: a demo directory made before
    a change to it (the byte-exact subword-mean, the learned init) must not serve the old rows."""
    from zhllama.model import init_rows

    assert run(tmp_path, monkeypatch, "--quick")[0] == list(real.RealDemo.STEPS)
    assert run(tmp_path, monkeypatch, "--quick")[0] == []
    monkeypatch.setattr(init_rows, "init_code_sha256", lambda: "0" * 64)
    assert run(tmp_path, monkeypatch, "--quick")[0] == ["resize", "stage2", "merge-stage2", "sft", "merge-sft",
                                                         "generate", "eval"]

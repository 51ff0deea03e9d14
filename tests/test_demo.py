"""The quick demo runs end to end, writes its report, and a rerun reuses every step."""

from __future__ import annotations

import json

from fixture_paths import llama_tokenizer
from zhllama.cli import main as cli


def test_quick_demo_end_to_end(tmp_path, capsys, monkeypatch):
    llama = llama_tokenizer()
    # The demo picks its own base: the LLaMA fixture when ZHLLAMA_FIXTURES has it, else
    # mistral-common's model (the substitute's directory holds a copy, so point elsewhere).
    monkeypatch.setenv("ZHLLAMA_FIXTURES", str(llama.path.parent if llama.is_real else tmp_path / "no-fixtures"))
    out = tmp_path / "demo"
    assert cli(["demo", "--quick", "--steps", "6", "--out", str(out), "--threads", "2"]) == 0
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
    for p in ("stats/lengths.png", "stats/stats.json", "final/config.json", "tokens/manifest.json"):
        assert (out / p).exists(), p
    capsys.readouterr()
    assert cli(["demo", "--quick", "--steps", "6", "--out", str(out), "--threads", "2"]) == 0
    from zhllama.demo.demo import STEPS

    assert "stage1" not in STEPS  # stage 2 only: benches/EFFICACY.md
    assert capsys.readouterr().out.count("done already (reused)") == len(STEPS) == 13

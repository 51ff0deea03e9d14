"""benches/efficacy.py --quick: the machinery of the efficacy bench, not its conclusions.

Every recipe runs through the verbs, every number is finite, the inits differ at step 0, the
files are written, and a rerun reuses every cached step.
"""

from __future__ import annotations

import json
import math
import sys

import pytest

from fixture_paths import LLAMA, ROOT, fixture_or_substitute

sys.path.insert(0, str(ROOT / "benches"))
import efficacy  # noqa: E402


def _numbers(obj):
    if isinstance(obj, bool):
        return
    if isinstance(obj, (int, float)):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _numbers(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _numbers(v)


def test_help_explains_every_option(capsys):
    with pytest.raises(SystemExit) as e:
        efficacy.parse_args(["--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    for option in ("--out", "--preset", "--quick", "--seeds", "--only-seeds", "--recipes", "--keep-models", "--threads",
                   "--force"):
        assert option in text, option
    assert "gpu" in text and "quick" in text


def test_unknown_recipe_is_refused(capsys):
    with pytest.raises(SystemExit) as e:
        efficacy.parse_args(["--recipes", "zhllama,nope"])
    assert e.value.code == 2
    assert "nope" in capsys.readouterr().err


def test_quick_bench_end_to_end(tmp_path, monkeypatch, capsys):
    # With the real fixtures the bench uses them; without (a clone on its own) it falls back to
    # its own stand-ins, as the demo does: mistral-common's LLaMA-family tokenizer and a Chinese
    # model trained on the adaptation split. Either way the machinery is the same.
    llama = fixture_or_substitute(LLAMA)
    monkeypatch.setenv("ZHLLAMA_FIXTURES", str(llama.path.parent if llama.is_real else tmp_path / "no-fixtures"))
    out, keep = tmp_path / "eff", tmp_path / "models"
    argv = ["--quick", "--out", str(out), "--threads", "2", "--keep-models", str(keep)]
    assert efficacy.main(argv) == 0
    for name in ("efficacy.md", "efficacy.json", "efficacy.png"):
        assert (out / name).stat().st_size > 0, name
    result = json.loads((out / "efficacy.json").read_text(encoding="utf-8"))
    assert list(result["recipes"]) == list(efficacy.RECIPES)
    for name, rec in result["recipes"].items():
        assert len(rec["runs"]) == efficacy.PRESETS["quick"].seeds, name
        run = rec["runs"][0]
        settings = result["settings"]
        assert run["train_tokens"] == settings["steps"] * settings["batch"] * settings["block"]
        assert run["curve"][-1]["step"] == result["settings"]["steps"]
        assert (keep / f"{name}-seed0" / "config.json").is_file()
        assert (keep / f"{name}-seed0" / "tokenizer.model").is_file()
    numbers = list(_numbers(result["recipes"])) + list(_numbers(result["summary"]))
    assert numbers and all(math.isfinite(x) for x in numbers)
    # The inits differ at step 0 (each a different resized model of the same base).
    step0 = {n: result["recipes"][n]["step0"]["zh"] for n in ("reference", "zhllama", "mean", "split")}
    assert len(set(step0.values())) == 4, step0
    # zhllama and zhllama-no-s1 share the resized model; none is the base itself.
    assert result["recipes"]["zhllama"]["step0"] == result["recipes"]["zhllama-no-s1"]["step0"]
    # Extension halves Chinese tokens: more characters per forward pass than the base tokenizer.
    cpp = {n: result["summary"][n]["chars_per_pass"]["mean"] for n in result["summary"]}
    assert cpp["zhllama"] > 1.5 * cpp["none"]
    md = (out / "efficacy.md").read_text(encoding="utf-8")
    assert "| split |" in md and "Conclusions" in md
    capsys.readouterr()
    # A rerun reuses every cached step: nothing is recomputed, the numbers are the same.
    assert efficacy.main(argv) == 0
    printed = capsys.readouterr().out
    assert "--- run-" not in printed and "--- base-" not in printed
    again = json.loads((out / "efficacy.json").read_text(encoding="utf-8"))
    assert again["summary"] == result["summary"]


def _run(seed, init_s, train_s, zh_start, zh_end, zh2=None):
    """A run whose curve starts where its init ends and falls linearly over its training."""
    curve = [{"step": k, "tokens": 100 * k, "chars": 50.0 * k, "wall_s": init_s + train_s * k / 4,
              "cpu_s": init_s + train_s * k / 4, "zh": zh_start + (zh_end - zh_start) * k / 4,
              "zh2": (zh2 if zh2 is not None else zh_start) + (zh_end - zh_start) * k / 4, "en": 1.0}
             for k in range(5)]
    return {"seed": seed, "final": {"zh": zh_end, "zh2": curve[-1]["zh2"], "en": 1.0}, "curve": curve,
            "eval_tokens_per_char": {"zh": 0.5}, "generation": {"zh_chars_per_s": 1.0},
            "train_wall_s": init_s + train_s, "train_cpu_s": init_s + train_s, "train_chars": 200.0,
            "init": {"cpu_s": init_s, "wall_s": init_s}}


def test_equal_time_counts_the_init_and_compares_with_none():
    from efficacy_report import per_run_values, versus_none

    step0 = {"zh": 9.0, "zh2": 9.0, "en": 1.0}
    result = {"recipes": {
        "none": {"step0": {**step0, "zh": 8.0}, "runs": [_run(0, 0.0, 100.0, 8.0, 7.0), _run(1, 0.0, 100.0, 8.0, 7.2)]},
        # the same curve as `none`'s after a 50 s init: at `none`'s 100 s it has trained half its steps
        "slow": {"step0": step0, "runs": [_run(0, 50.0, 100.0, 8.0, 6.0), _run(1, 50.0, 100.0, 8.0, 6.0)]}}}
    v = per_run_values(result)
    assert result["equal_cpu_s"] == 100.0
    assert v["slow"]["zh_at_cpu"] == [7.0, 7.0]  # halfway from 8 to 6
    assert v["slow"]["init_cpu_s"] == [50.0, 50.0]
    assert v["none"]["zh_at_cpu"] == [7.0, 7.2]
    lines = versus_none(v)
    assert len(lines) == 1 and lines[0].startswith("- **`slow` − `none`**")
    assert "step-0 zh +1.00" in lines[0] and "zh -1.10 (beyond the spread)" in lines[0]
    assert "zh @ equal CPU -0.10 (inside the spread)" in lines[0]

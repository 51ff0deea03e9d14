"""benches/efficacy.py --quick: the machinery of the efficacy bench, not its conclusions.

Every recipe runs through the verbs, every number is finite, the inits differ at step 0, the
files are written, and a rerun reuses every cached step. The bench is driven as a program (a
child process, as a user runs it), never imported: tests do not import from benches/.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys

import pytest

from fixture_paths import LLAMA, ROOT, fixture_or_substitute, package_env

BENCH = ROOT / "benches" / "efficacy.py"


def _bench(*argv, timeout=60, **env):
    """Run benches/efficacy.py with ``argv``; the finished process (stdout and stderr as text)."""
    return subprocess.run([sys.executable, str(BENCH), *map(str, argv)], cwd=ROOT, env=package_env(**env),
                          capture_output=True, text=True, timeout=timeout)


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


def test_help_explains_every_option():
    proc = _bench("--help")
    assert proc.returncode == 0, proc.stderr
    for option in ("--out", "--preset", "--quick", "--seeds", "--only-seeds", "--recipes", "--keep-models", "--threads",
                   "--force", "--report-only", "--zh-vocab"):
        assert option in proc.stdout, option
    assert "gpu" in proc.stdout and "quick" in proc.stdout


def test_unknown_recipe_is_refused():
    proc = _bench("--recipes", "zhllama,nope")
    assert proc.returncode == 2
    assert "nope" in proc.stderr and "Traceback" not in proc.stderr


def test_zh_vocab_must_be_positive_and_runs_something():
    proc = _bench("--zh-vocab", "0")
    assert proc.returncode == 2 and "--zh-vocab must be >= 1, got 0" in proc.stderr
    proc = _bench("--report-only", "--zh-vocab", "2000", "--out", ROOT / "nowhere")
    assert proc.returncode == 2 and "--zh-vocab would do nothing" in proc.stderr


def _all_recipes() -> list[str]:
    """The recipes the bench runs by default, as its --help names them."""
    found = re.search(r"default: all: ([\w,-]+)\)", _bench("--help", COLUMNS="1000").stdout)  # one line
    assert found, "--help no longer names the default recipes"
    return found.group(1).split(",")


def test_quick_bench_end_to_end(tmp_path):
    # With the real fixtures the bench uses them; without (a clone on its own) it falls back to
    # its own stand-ins, as the demo does: mistral-common's LLaMA-family tokenizer and a Chinese
    # model trained on the adaptation split. Either way the machinery is the same.
    llama = fixture_or_substitute(LLAMA)
    fixtures = str(llama.path.parent if llama.is_real else tmp_path / "no-fixtures")
    out, keep = tmp_path / "eff", tmp_path / "models"
    argv = ["--quick", "--out", out, "--threads", "2", "--keep-models", keep]
    proc = _bench(*argv, timeout=1800, ZHLLAMA_FIXTURES=fixtures)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    for name in ("efficacy.md", "efficacy.json", "efficacy.png"):
        assert (out / name).stat().st_size > 0, name
    result = json.loads((out / "efficacy.json").read_text(encoding="utf-8"))
    settings = result["settings"]
    assert list(result["recipes"]) == _all_recipes()
    assert result["seeds"] == list(range(settings["seeds"])) and settings["seeds"] >= 1
    for name, rec in result["recipes"].items():
        assert len(rec["runs"]) == settings["seeds"], name
        run = rec["runs"][0]
        assert run["train_tokens"] == settings["steps"] * settings["batch"] * settings["block"]
        assert run["curve"][-1]["step"] == settings["steps"]
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
    assert md in proc.stdout  # the report is printed
    # A rerun reuses every cached step: nothing is recomputed, the numbers are the same.
    again_proc = _bench(*argv, timeout=1800, ZHLLAMA_FIXTURES=fixtures)
    assert again_proc.returncode == 0, again_proc.stdout[-3000:] + again_proc.stderr[-6000:]
    assert "--- run-" not in again_proc.stdout and "--- base-" not in again_proc.stdout
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


def _result(recipes):
    """An efficacy.json as the bench writes it, around ``recipes``: what --report-only reads."""
    settings = {"layers": 2, "hidden": 32, "base_steps": 30, "base_batch": 8, "block": 32, "steps": 4, "batch": 2,
                "lr": 1e-3, "stage1_share": 0.25, "curve_docs": 6, "seeds": 2}
    stats = {s: {"tokens_per_char": 0.5, "byte_fallback_share": 0.0, "vocab_size": 100} for s in ("zh", "zh2", "en")}
    return {"preset": "quick", "settings": settings, "seeds": [0, 1], "threads": 1, "bench_seconds": 60.0,
            "command": "python benches/efficacy.py --quick", "tokenizers": {"base_tokenizer": "b", "zh_spm": "z"},
            "texts": {"base_zh_chars": 10, "base_en_chars": 90, "base_docs": 5,
                      "test_docs": {"zh": 2, "zh2": 2, "en": 2}},
            "tokenizer_stats": {"base": stats}, "recipes": recipes}


def test_equal_time_counts_the_init_and_compares_with_none(tmp_path):
    step0 = {"zh": 9.0, "zh2": 9.0, "en": 1.0}
    result = _result({
        "none": {"step0": {**step0, "zh": 8.0}, "runs": [_run(0, 0.0, 100.0, 8.0, 7.0), _run(1, 0.0, 100.0, 8.0, 7.2)]},
        # the same curve as `none`'s after a 50 s init: at `none`'s 100 s it has trained half its steps
        "slow": {"step0": step0, "runs": [_run(0, 50.0, 100.0, 8.0, 6.0), _run(1, 50.0, 100.0, 8.0, 6.0)]}})
    (tmp_path / "efficacy.json").write_text(json.dumps(result), encoding="utf-8")
    proc = _bench("--report-only", "--out", tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert not (tmp_path / "work").exists()  # nothing ran
    rewritten = json.loads((tmp_path / "efficacy.json").read_text(encoding="utf-8"))
    assert rewritten["recipes"] == result["recipes"] and rewritten["equal_cpu_s"] == 100.0
    summary = rewritten["summary"]
    assert summary["slow"]["zh_at_cpu"] == {"mean": 7.0, "std": 0.0}  # halfway from 8 to 6
    assert summary["slow"]["init_cpu_s"] == {"mean": 50.0, "std": 0.0}
    assert summary["none"]["zh_at_cpu"]["mean"] == pytest.approx(7.1)  # 7.0 and 7.2
    assert summary["none"]["zh_at_cpu"]["std"] == pytest.approx(0.2 / math.sqrt(2))
    md = (tmp_path / "efficacy.md").read_text(encoding="utf-8")
    assert md in proc.stdout and (tmp_path / "efficacy.png").stat().st_size > 0
    lines = [line for line in md.splitlines() if line.startswith("- **`")]
    assert len(lines) == 1 and lines[0].startswith("- **`slow` − `none`**")
    assert "step-0 zh +1.00" in lines[0] and "zh -1.10 (beyond the spread)" in lines[0]
    assert "zh @ equal CPU -0.10 (inside the spread)" in lines[0]


def test_report_only_needs_results_and_runs_nothing(tmp_path):
    proc = _bench("--report-only", "--out", tmp_path / "empty")
    assert proc.returncode == 2 and "efficacy.json not found" in proc.stderr
    (tmp_path / "efficacy.json").write_text("{}", encoding="utf-8")
    proc = _bench("--report-only", "--out", tmp_path, "--recipes", "zhllama")
    assert proc.returncode == 2 and "--recipes would do nothing" in proc.stderr

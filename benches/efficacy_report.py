"""The efficacy bench's report: the table (mean ± std over seeds), the conclusion per metric, the plot.

"Inside the spread": two recipes' means differ by at most twice the standard error of their
difference, sqrt(s_a²/n_a + s_b²/n_b) (with one seed there is no spread, and no difference is
called real). Equal wall time: each run's bpc curve is interpolated linearly at the shortest
recipe's mean training time; equal CPU time likewise on the process's CPU seconds (one thread: the
wall time the run would take on an idle core; the figure to trust on a loaded machine); a recipe's
init (resize, and the learned init where it has one) counts as training time, so its curve starts
where its init ends. Equal characters likewise at the fewest characters any recipe trained.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any, Optional

METRICS = (  # key, column title, lower is better
    ("step0_zh", "step-0 zh", True), ("step0_zh2", "step-0 zh2", True), ("step0_en", "step-0 en", True),
    ("zh", "zh", True), ("zh2", "zh2", True), ("en", "en", True),
    ("zh_at_wall", "zh @ equal time", True), ("zh_at_cpu", "zh @ equal CPU", True),
    ("zh2_at_cpu", "zh2 @ equal CPU", True), ("zh_at_chars", "zh @ equal chars", True),
    ("init_cpu_s", "init CPU s", True), ("train_wall_s", "train s", True), ("train_cpu_s", "train CPU s", True),
    ("chars_per_pass", "zh chars/pass", False),
    ("zh_chars_per_s", "zh chars/s", False))


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def interpolate(curve: list[dict], axis: str, at: float, key: str) -> float:
    for a, b in zip(curve, curve[1:]):
        if a[axis] <= at <= b[axis]:
            w = 0.0 if b[axis] == a[axis] else (at - a[axis]) / (b[axis] - a[axis])
            return a[key] + w * (b[key] - a[key])
    return curve[-1][key] if at > curve[-1][axis] else curve[0][key]


def per_run_values(result: dict) -> dict[str, dict[str, list[float]]]:
    """recipe -> metric -> one value per seed (step-0 values repeat: the resized model is shared)."""
    recipes = result["recipes"]
    wall_at = min(statistics.fmean(r["train_wall_s"] for r in rec["runs"]) for rec in recipes.values())
    cpu_at = min(statistics.fmean(cpu_s(r) for r in rec["runs"]) for rec in recipes.values())
    chars_at = min(statistics.fmean(r["train_chars"] for r in rec["runs"]) for rec in recipes.values())
    out: dict[str, dict[str, list[float]]] = {}
    for name, rec in recipes.items():
        v: dict[str, list[float]] = {k: [] for k, _, _ in METRICS}
        for run in rec["runs"]:
            for s in ("zh", "zh2", "en"):
                v[f"step0_{s}"].append(rec["step0"][s])
                v[s].append(run["final"][s])
            v["zh_at_wall"].append(interpolate(run["curve"], "wall_s", wall_at, "zh"))
            cpu_axis = "cpu_s" if "cpu_s" in run["curve"][0] else "wall_s"  # runs from before CPU time was kept
            v["zh_at_cpu"].append(interpolate(run["curve"], cpu_axis, cpu_at, "zh"))
            v["zh2_at_cpu"].append(interpolate(run["curve"], cpu_axis, cpu_at, "zh2")
                                   if "zh2" in run["curve"][0] else math.nan)
            v["init_cpu_s"].append(run.get("init", {}).get("cpu_s", 0.0))
            v["train_cpu_s"].append(cpu_s(run))
            v["zh_at_chars"].append(interpolate(run["curve"], "chars", chars_at, "zh"))
            v["train_wall_s"].append(run["train_wall_s"])
            v["chars_per_pass"].append(1 / run["eval_tokens_per_char"]["zh"])
            v["zh_chars_per_s"].append(run["generation"]["zh_chars_per_s"])
        out[name] = v
    result["equal_wall_s"], result["equal_cpu_s"], result["equal_chars"] = wall_at, cpu_at, chars_at
    return out


def cpu_s(run: dict) -> float:
    """A run's CPU seconds, init included (its wall seconds for runs from before CPU time was kept)."""
    return float(run.get("train_cpu_s", run["train_wall_s"]))


def compare(values: dict[str, list[float]], lower_is_better: bool) -> tuple[str, list[str], list[str]]:
    """(best recipe, recipes inside its spread, recipes beyond it)."""
    sign = 1 if lower_is_better else -1
    best = min(values, key=lambda n: sign * statistics.fmean(values[n]))
    m0, s0 = mean_std(values[best])
    inside, beyond = [], []
    for name, vals in values.items():
        if name == best:
            continue
        m, s = mean_std(vals)
        se = math.sqrt(s0 ** 2 / len(values[best]) + s ** 2 / len(vals))
        (inside if len(vals) < 2 or abs(m - m0) <= 2 * se else beyond).append(name)
    return best, inside, beyond


def conclusions(v: dict[str, dict[str, list[float]]], result: dict) -> list[str]:
    lines = []
    for key, _title, low in METRICS:
        if key.startswith("step0") or key in ("train_wall_s", "train_cpu_s", "init_cpu_s") or any(
                math.isnan(x) for n in v for x in v[n][key]):
            continue
        best, inside, beyond = compare({n: v[n][key] for n in v}, low)
        m, s = mean_std(v[best][key])
        what = {"zh_at_wall": f"zh bpc at equal training time ({result['equal_wall_s']:.0f} s)",
                "zh_at_cpu": f"zh bpc at equal CPU time ({result['equal_cpu_s']:.0f} s, init included)",
                "zh2_at_cpu": f"zh2 bpc at equal CPU time ({result['equal_cpu_s']:.0f} s, init included)",
                "zh_at_chars": f"zh bpc at equal training characters ({result['equal_chars']:,.0f})",
                "zh": "zh bpc at equal tokens (People's Daily, held out)",
                "zh2": "zh2 bpc at equal tokens (second Chinese domain)", "en": "English bpc after adaptation",
                "chars_per_pass": "Chinese characters per forward pass",
                "zh_chars_per_s": "Chinese characters per second (generate's settings)"}[key]
        lines.append(f"- **{what}**: best `{best}` ({m:.3f} ± {s:.3f}); inside its spread: "
                     f"{', '.join(f'`{n}`' for n in inside) or 'none'}; beyond it: "
                     f"{', '.join(f'`{n}`' for n in beyond) or 'none'}.")
    for key in ("zh", "zh2", "en"):
        best, inside, beyond = compare({n: v[n][f"step0_{key}"] for n in v}, True)
        lines.append(f"- **step-0 {key} bpc** (the init alone): best `{best}` "
                     f"({v[best][f'step0_{key}'][0]:.3f}), then "
                     + ", ".join(f"`{n}` {v[n][f'step0_{key}'][0]:.3f}"
                                 for n in sorted(inside + beyond, key=lambda n: v[n][f'step0_{key}'][0])) + ".")
    return lines


def versus_none(v: dict[str, dict[str, list[float]]]) -> list[str]:
    """Each extended recipe minus `none` (the base tokenizer, no extension): the issue-26 comparisons."""
    if "none" not in v:
        return []
    lines = []
    for name in v:
        if name == "none":
            continue
        cells = []
        for key, title, _ in METRICS:
            if not (key.startswith("step0") or key in ("zh", "zh2", "en", "zh_at_cpu", "zh2_at_cpu", "zh_at_wall")):
                continue
            (m, s), (m0, s0) = mean_std(v[name][key]), mean_std(v["none"][key])
            if math.isnan(m - m0):
                continue
            n, n0 = len(v[name][key]), len(v["none"][key])
            se = 0.0 if key.startswith("step0") else math.sqrt(s ** 2 / n + s0 ** 2 / n0)
            verdict = "" if key.startswith("step0") else (
                " (beyond the spread)" if n > 1 and n0 > 1 and abs(m - m0) > 2 * se else " (inside the spread)")
            cells.append(f"{title} {m - m0:+.2f}{verdict}")
        lines.append(f"- **`{name}` − `none`**: " + "; ".join(cells) + ".")
    return lines


def fmt(vals: list[float], key: str) -> str:
    m, s = mean_std(vals)
    digits = (0 if key in ("train_wall_s", "train_cpu_s", "init_cpu_s") else 1 if key == "zh_chars_per_s"
              else 3 if key == "chars_per_pass" else 2)
    if key.startswith("step0"):
        return f"{m:.{digits}f}"
    return f"{m:.{digits}f} ± {s:.{digits}f}"


def table(v: dict[str, dict[str, list[float]]]) -> list[str]:
    head = "| recipe | " + " | ".join(t for _, t, _ in METRICS) + " |"
    rows = [head, "|" + "---|" * (len(METRICS) + 1)]
    for name, vals in v.items():
        rows.append(f"| {name} | " + " | ".join(fmt(vals[k], k) for k, _, _ in METRICS) + " |")
    return rows


def tokenizer_table(result: dict) -> list[str]:
    rows = ["| tokenizer | vocab | zh tokens/char | zh byte-fallback | zh2 tokens/char | zh2 byte-fallback "
            "| en tokens/char | en byte-fallback |", "|---|---|---|---|---|---|---|---|"]
    for kind, f in result["tokenizer_stats"].items():
        cells = [f"{f[s]['tokens_per_char']:.3f} | {100 * f[s]['byte_fallback_share']:.2f} %"
                 for s in ("zh", "zh2", "en")]
        rows.append(f"| {kind} | {f['zh']['vocab_size']:,} | " + " | ".join(cells) + " |")
    return rows


def plot(result: dict, path: Path) -> Optional[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    first = next(iter(result["recipes"].values()))["runs"][0]["curve"][0]
    time_axis, time_label = (("cpu_s", "CPU time, init included (s)") if "cpu_s" in first
                             else ("wall_s", "training wall time (s)"))
    panels = [("tokens", "zh", "training tokens"), ("chars", "zh", "training characters"),
              (time_axis, "zh", time_label), ("tokens", "en", "training tokens")]
    if "zh2" in first:
        panels[3:3] = [("tokens", "zh2", "training tokens"), (time_axis, "zh2", time_label)]
    fig, axes = plt.subplots(2, len(panels) // 2, figsize=(6 * len(panels) // 2, 8.5))
    for ax, (axis, key, xlabel) in zip(axes.flat, panels):
        for name, rec in result["recipes"].items():
            runs = rec["runs"]
            xs = np.array([[p[axis] for p in r["curve"]] for r in runs]).mean(axis=0)
            ys = np.array([[p[key] for p in r["curve"]] for r in runs])
            m = ys.mean(axis=0)
            (line,) = ax.plot(xs, m, marker="o", ms=3, label=name)
            if len(runs) > 1:
                s = ys.std(axis=0, ddof=1)
                ax.fill_between(xs, m - s, m + s, color=line.get_color(), alpha=0.2)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(f"{key} bits per character (held out)")
        ax.grid(alpha=0.3)
    axes.flat[0].legend(fontsize=8)
    fig.suptitle(f"efficacy ({result['preset']} preset, seeds {result['seeds']}): mean over seeds, band ± 1 std")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(out: Path, result: dict[str, Any]) -> Path:
    v = per_run_values(result)
    s = result["settings"]
    result["summary"] = {n: {k: dict(zip(("mean", "std"), mean_std(vals))) for k, vals in m.items()}
                         for n, m in v.items()}
    (out / "efficacy.json").write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    png = plot(result, out / "efficacy.png")
    threads = sorted({r.get("threads", result["threads"]) for rec in result["recipes"].values() for r in rec["runs"]})
    base_zh = result["texts"]["base_zh_chars"] / (result["texts"]["base_zh_chars"] + result["texts"]["base_en_chars"])
    lines = [
        f"# Efficacy: {result['preset']} preset", "",
        f"`{result['command']}`: seeds {', '.join(map(str, result['seeds']))}; torch threads per run: "
        f"{', '.join(map(str, threads))}; {result['bench_seconds'] / 60:.1f} min this invocation (steps cached "
        f"by an earlier invocation not counted).", "",
        f"Base: {s['layers']} layers, hidden {s['hidden']}, trained {s['base_steps']} steps of {s['base_batch']} x "
        f"{s['block']} tokens on {result['texts']['base_docs']:,} documents ({100 * base_zh:.1f} % of the characters "
        f"Chinese), tokenizer: {result['tokenizers']['base_tokenizer']}. Added Chinese model: "
        f"{result['tokenizers']['zh_spm']}.",
        f"Adaptation: {s['steps']} steps of {s['batch']} x {s['block']} tokens (the same tokens for every recipe), "
        f"lr {s['lr']}, cosine, stage 1 = {s['stage1_share']:.0%} of the steps where a recipe has it.",
        "Test sets: " + ", ".join(f"{k} {n} documents" for k, n in result["texts"]["test_docs"].items())
        + f" (curves: the first {s['curve_docs']} of each).", "",
        "bits per character (bpc), lower is better; zh = held-out People's Daily, zh2 = reviews no stage saw, "
        "en = held-out English docstrings. Mean ± std over seeds; step-0 is one resized model per recipe.", "",
        *table(v), "",
        "Tokenizers on the test sets (zhllama stats):", "", *tokenizer_table(result), "",
        "## Conclusions per metric", "",
        "(\"inside the spread\": |difference of means| <= 2 standard errors of the difference; "
        "wall-time figures depend on the load of the machine during each run.)", "",
        *(["Each extended recipe against `none` (bpc, its mean minus `none`'s; negative: the extension is better):",
           "", *versus_none(v), ""] if "none" in v and len(v) > 1 else []),
        *conclusions(v, result), "",
    ]
    if png is not None:
        lines += [f"![curves]({png.name})", ""]
    md = out / "efficacy.md"
    md.write_text("\n".join(lines), encoding="utf-8")
    return md

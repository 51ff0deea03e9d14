"""``zhllama merge-vocab``: merge a Chinese SentencePiece model into a LLaMA tokenizer.

    zhllama merge-vocab --base llama/tokenizer.model --add chinese_sp.model --out merged/
    zhllama merge-vocab --base llama/tokenizer.model --add chinese_sp.model --out merged-ref/ \\
        --mode reference --pad-token "[PAD]"

``--mode reference`` reproduces the Chinese-LLaMA-Alpaca script byte for byte (49,953 pieces);
the default mode fixes its measured flaws (see README, "Merge modes"). A byte-level BPE base
(a tokenizer.json, LLaMA-3's tiktoken file) has no pieces to append to: ``zhllama extend-vocab``
grows it with merges.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from zhllama.tokenizer.directory import resolve_model_file, sha256_file, tokenizer_file, write_tokenizer_dir


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--base", required=True,
                   help="Base BPE SentencePiece model (LLaMA's tokenizer.model) or its directory.")
    p.add_argument("--add", required=True,
                   help="SentencePiece model whose pieces are added (the Chinese model from train-spm).")
    p.add_argument("--out", required=True, help="Output tokenizer directory (created if missing).")
    p.add_argument(
        "--mode",
        choices=["default", "reference"],
        default="default",
        help="'reference': the original script, byte-identical; 'default': keeps base behaviour, no dead rows, "
        "fullwidth spellings (default).",
    )
    p.add_argument(
        "--pad-token",
        default=None,
        metavar="TOKEN",
        help="Add this pad token after the SentencePiece vocabulary (Alpaca uses [PAD]: 49,953 -> 49,954 entries).",
    )
    p.add_argument("--quiet", action="store_true", help="Print nothing but errors.")


def merge_vocab(base: str, add: str, out: str, mode: str = "default", pad_token: str | None = None) -> dict[str, Any]:
    """Merge and write the tokenizer directory; returns the report (also in merge_report.json)."""
    from zhllama import _native
    from zhllama.tokenizer.bytelevel_base import sniff_kind

    # A directory's tokenizer.model decides (HF LLaMA-2 directories also hold a tokenizer.json).
    found = tokenizer_file(base)  # a missing base is reported below, as before
    if found is not None:
        kind = sniff_kind(found)
        if kind != "sentencepiece":
            # A byte-level BPE has no pieces to append: it grows by merges learned on text.
            raise ValueError(f"{found}: a byte-level BPE tokenizer ({kind}); extend it with Chinese merges "
                             f"learned on a corpus: zhllama extend-vocab --base {base} --out OUT [--input CORPUS]")
    base_path, add_path = resolve_model_file(base), resolve_model_file(add)
    base_model = _native.SentencePieceModel.from_file(str(base_path))
    add_model = _native.SentencePieceModel.from_file(str(add_path))
    merged, report_json = _native.merge_vocab(base_model, add_model, mode)
    report: dict[str, Any] = json.loads(report_json)
    model_bytes = merged.to_bytes()
    report["inputs"] = {
        "base": {"path": str(base_path), "sha256": sha256_file(base_path)},
        "add": {"path": str(add_path), "sha256": sha256_file(add_path)},
    }
    pieces = merged.pieces()
    report["pad_token"] = pad_token
    report["hf_vocab_size"] = len(pieces) + (1 if pad_token else 0)
    out_dir = write_tokenizer_dir(out, model_bytes, pieces, pad_token=pad_token, report=report)
    report["output"] = {"path": str(out_dir / "tokenizer.model"), "sha256": sha256_file(out_dir / "tokenizer.model")}
    (out_dir / "merge_report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n",
                                               encoding="utf-8")
    return report


def run(args: argparse.Namespace) -> int:
    report = merge_vocab(args.base, args.add, args.out, args.mode, args.pad_token)
    if not args.quiet:
        n = report["normalizer"]
        print(
            f"merged ({report['mode']}): {report['base_pieces']:,} base "
            f"+ {report['final_pieces'] - report['base_pieces']:,} "
            f"added = {report['final_pieces']:,} pieces"
            + (f" (+{report['pad_token']} = {report['hf_vocab_size']:,})" if report["pad_token"] else "")
        )
        print(
            f"  duplicates skipped {report['duplicates_skipped']:,}, "
            f"non-Chinese filtered {report['filtered_non_chinese']:,}, "
            f"fullwidth variants {report['fullwidth_variants_added']:,}, "
            f"intermediates {report['intermediates_added']:,}, "
            f"unreachable {report['unreachable']:,} "
            f"({'kept: dead rows' if report['mode'] == 'reference' else 'left out'})"
        )
        if n["differs"]:
            print(f"  normalizer mismatch: base {n['base']!r} vs added {n['added']!r}; "
                  f"{n['affected_pieces']:,} added pieces affected")
        print(f"  wrote {args.out}/tokenizer.model (sha256 {report['output']['sha256'][:16]}…)", file=sys.stdout)
        tied = report.get("tokenizer_json", {}).get("tied_pieces", 0)
        if tied:
            print(f"  tokenizer.json: {tied:,} pieces share their score with another; HF tokenizers breaks such ties "
                  f"by rank, sentencepiece by position, so where two compete the ids differ (the reference merge: "
                  f"37 % of People's Daily paragraphs; see docs/serving-tokenizer.md)")
    return 0

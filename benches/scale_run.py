"""Scale run: tokenize a generated multi-GB corpus; report throughput, peak RSS, 20 GB estimate.

    python benches/scale_run.py --gb 2 [--files 8] [--threads N] [--giant-line-mb 200]

The corpus is People's Daily (JSONL) replicated to --gb GB across --files files; with
--giant-line-mb one extra file holds a single document of that size, to show that one huge
line does not break the memory bound of the pipeline. Peak RSS is GNU time's %M of the
tokenize-corpus process.
The 20 GB time is extrapolated linearly from the measured throughput on this machine.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpus_common import ROOT, reference_merge  # noqa: E402


def generate(work: Path, gb: float, files: int, giant_mb: int) -> list[Path]:
    from zhllama.samples import peoples_daily

    docs = peoples_daily()
    block = "".join(json.dumps({"text": d}, ensure_ascii=False) + "\n" for d in docs).encode()
    per_file = int(gb * 1e9 / files)
    paths = []
    for i in range(files):
        p = work / f"part-{i:03d}.jsonl"
        paths.append(p)
        if p.exists() and p.stat().st_size >= per_file:
            continue
        with open(p, "wb") as f:
            written = 0
            while written < per_file:
                f.write(block)
                written += len(block)
    if giant_mb:
        p = work / f"zz-giant-{giant_mb}MB.jsonl"
        paths.append(p)
        if not p.exists():
            text = "".join(docs)
            need = giant_mb * 1_000_000 // 3  # CJK is 3 bytes a character in UTF-8
            big = (text * (need // len(text) + 1))[:need]
            p.write_text(json.dumps({"text": big}, ensure_ascii=False) + "\n", encoding="utf-8")
    return paths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gb", type=float, default=1.0, help="Corpus size in GB (JSONL).")
    ap.add_argument("--files", type=int, default=4, help="Number of input files.")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="tokenize-corpus --threads.")
    ap.add_argument("--giant-line-mb", type=int, default=0, help="Add one document of this many MB (0: none).")
    ap.add_argument("--work", default=str(ROOT / "bench-out" / "scale"), help="Working directory (inputs are reused).")
    ap.add_argument("--keep", action="store_true", help="Keep the output shards.")
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    tok = reference_merge(ROOT / "bench-out" / "corpus" / "reference-merge")
    t0 = time.perf_counter()
    inputs = generate(work, args.gb, args.files, args.giant_line_mb)
    print(f"generated/reused {len(inputs)} files in {time.perf_counter() - t0:.1f} s")
    out = work / "tokens"
    shutil.rmtree(out, ignore_errors=True)
    import zhllama

    env = dict(os.environ, PYTHONPATH=str(Path(zhllama.__file__).resolve().parent.parent))
    cmd = [sys.executable, "-m", "zhllama.cli", "tokenize-corpus", "--tokenizer", str(tok),
           "--input", *map(str, inputs), "--out", str(out), "--threads", str(args.threads), "--quiet"]
    # GNU time's %M is the peak RSS of exactly that process; ru_maxrss of children can be
    # inflated by this (larger) process's pages right after fork, so it is only the fallback.
    rss_file = work / "peak_rss_kb"
    timer = ["/usr/bin/time", "-f", "%M", "-o", str(rss_file)] if os.path.exists("/usr/bin/time") else []
    t0 = time.perf_counter()
    subprocess.run(timer + cmd, check=True, env=env)
    dt = time.perf_counter() - t0
    if timer:
        peak_mb = int(rss_file.read_text().split()[-1]) / 1024
    else:
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    m = json.loads((out / "manifest.json").read_text())
    size = sum(p.stat().st_size for p in inputs)
    rate = size / dt
    result = {
        "input_gb": round(size / 1e9, 3), "files": len(inputs), "giant_line_mb": args.giant_line_mb,
        "threads": args.threads, "cores": os.cpu_count(), "seconds": round(dt, 1), "mb_per_s": round(rate / 1e6, 1),
        "peak_rss_mb": round(peak_mb), "docs": m["num_docs"], "tokens": m["num_tokens"], "shards": len(m["shards"]),
        "extrapolated_20gb_minutes": round(20e9 / rate / 60, 1),
    }
    print(f"{result['input_gb']} GB in {dt:.1f} s = {result['mb_per_s']} MB/s "
          f"on {args.threads} threads ({os.cpu_count()} cores); "
          f"peak RSS {result['peak_rss_mb']} MB; 20 GB ≈ {result['extrapolated_20gb_minutes']} min here")
    print(json.dumps(result))
    if not args.keep:
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()

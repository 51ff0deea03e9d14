"""zhllama inside datatrove, against HF tokenizers inside datatrove, on the same 120 MB.

    python benches/datatrove_bench.py [--mb 120] [--threads 2] [--repeat 1]

Same input for every row: People's Daily paragraphs replicated to --mb MB of text
(``corpus_common.replicated_corpus``), as one JSONL file in a folder; the reference
49,953-piece merged tokenizer (``corpus_common.reference_merge``, needs the fixtures). Rows:

- ``tokenize-corpus``: zhllama's CLI on that file;
- ``ZhllamaTokenizeFiles``: the file-level step on ``LocalPipelineExecutor`` (1 task);
- ``ZhllamaTokenize``: datatrove's ``JsonlReader`` + the document-level step (1 task);
- HF ``tokenizers`` in datatrove's own steps: ``JsonlReader`` + ``MegatronDocumentTokenizer``
  (the same Megatron output) and + ``DocumentTokenizer`` (its own format, no shuffle), with
  the same model converted to ``tokenizer.json`` by transformers (``LlamaTokenizerFast``).

Each row is its own process (start-up included), ``--threads`` encoder threads (HF: RAYON
threads), timed from the parent; MB/s are of the JSONL file's bytes. Prints the rows side by
side (wall MB/s, and MB per CPU-second, which other work on a shared machine disturbs less) and
each zhllama row's ratio to HF-in-datatrove (Megatron), plus the share of documents on which
HF's ids differ from zhllama's (= sentencepiece's; tests/test_datatrove.py).
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
from corpus_common import ROOT, reference_merge, replicated_corpus  # noqa: E402

ROWS = {
    "tokenize-corpus": "zhllama tokenize-corpus (CLI)",
    "files": "ZhllamaTokenizeFiles (file-level step)",
    "documents": "JsonlReader + ZhllamaTokenize (document-level step)",
    "hf-megatron": "JsonlReader + MegatronDocumentTokenizer (HF tokenizers)",
    "hf-document": "JsonlReader + DocumentTokenizer (HF tokenizers, no shuffle)",
}


def hf_tokenizer_json(tok_dir: Path) -> Path:
    """The merged model as a HF ``tokenizer.json``, converted once by transformers."""
    out = tok_dir.parent / (tok_dir.name + "-hf") / "tokenizer.json"
    if not out.exists():
        from transformers import LlamaTokenizerFast

        out.parent.mkdir(parents=True, exist_ok=True)
        LlamaTokenizerFast.from_pretrained(str(tok_dir)).backend_tokenizer.save(str(out))
    return out


def pipeline(row: str, src: Path, out: Path, tok: Path, hf: Path, threads: int) -> list:
    from datatrove.pipeline.readers import JsonlReader

    if row == "files":
        from zhllama.datatrove import ZhllamaTokenizeFiles

        return [ZhllamaTokenizeFiles(src, out, tokenizer=tok, threads=threads)]
    if row == "documents":
        from zhllama.datatrove import ZhllamaTokenize

        return [JsonlReader(str(src)), ZhllamaTokenize(out, tokenizer=tok, threads=threads)]
    if row == "hf-megatron":
        from datatrove.pipeline.tokens.megatron_tokenizer import MegatronDocumentTokenizer

        return [JsonlReader(str(src)), MegatronDocumentTokenizer(str(out), tokenizer_name_or_path=str(hf),
                                                                 eos_token="</s>")]
    if row == "hf-document":
        from datatrove.pipeline.tokens import DocumentTokenizer

        return [JsonlReader(str(src)), DocumentTokenizer(str(out), tokenizer_name_or_path=str(hf), eos_token="</s>",
                                                         shuffle_documents=False)]
    raise ValueError(row)


def child_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_row(row: str, src: Path, work: Path, tok: Path, hf: Path, threads: int) -> tuple[float, float]:
    """Wall and CPU seconds (user + sys) of one row, in a fresh process."""
    out, logs = work / f"out-{row}", work / f"logs-{row}"
    for d in (out, logs):
        shutil.rmtree(d, ignore_errors=True)
    import zhllama

    env = dict(os.environ, PYTHONPATH=str(Path(zhllama.__file__).resolve().parent.parent),
               RAYON_NUM_THREADS=str(threads), TOKENIZERS_PARALLELISM="true")
    if row == "tokenize-corpus":
        cmd = [sys.executable, "-m", "zhllama.cli", "tokenize-corpus", "--tokenizer", str(tok), "--input", str(src),
               "--out", str(out), "--threads", str(threads), "--quiet"]
    else:
        cmd = [sys.executable, __file__, "--row", row, "--src", str(src), "--out", str(out), "--logs", str(logs),
               "--tok", str(tok), "--hf", str(hf), "--threads", str(threads)]
    t0, c0 = time.perf_counter(), child_cpu()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0, child_cpu() - c0


def child(args: argparse.Namespace) -> None:
    from datatrove.executor import LocalPipelineExecutor

    steps = pipeline(args.row, Path(args.src), Path(args.out), Path(args.tok), Path(args.hf), args.threads)
    LocalPipelineExecutor(pipeline=steps, tasks=1, workers=1, logging_dir=args.logs).run()


def megatron_docs(prefix: Path, limit: int) -> list[list[int]]:
    """The first ``limit`` documents of a Megatron ``.bin``/``.idx`` pair (numpy, no Megatron)."""
    import numpy as np

    idx = prefix.with_suffix(".idx").read_bytes()
    code, n = idx[17], int.from_bytes(idx[18:26], "little")
    dtype = {8: np.uint16, 4: np.int32}[code]
    lengths = np.frombuffer(idx, np.int32, n, 34)
    pointers = np.frombuffer(idx, np.int64, n, 34 + 4 * n)
    tokens = np.memmap(prefix.with_suffix(".bin"), dtype=dtype, mode="r")
    size = np.dtype(dtype).itemsize
    return [tokens[p // size : p // size + n_].tolist() for p, n_ in zip(pointers[:limit], lengths[:limit])]


def disagreement(work: Path, limit: int = 20000) -> float:
    """Share of the first ``limit`` documents whose HF ids differ from zhllama's."""
    from zhllama.corpus.dataset import TokenizedCorpus

    ours = TokenizedCorpus(work / "out-documents" / "part-00000")
    theirs = sorted((work / "out-hf-megatron").glob("*.idx"))
    if not theirs:
        return float("nan")
    hf = megatron_docs(theirs[0].with_suffix(""), limit)
    n = min(len(hf), len(ours))
    return sum(ours.doc(i).tolist() != hf[i] for i in range(n)) / max(n, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=float, default=120, help="Corpus size in MB of plain text.")
    ap.add_argument("--threads", type=int, default=2, help="Encoder threads of every row (HF: RAYON_NUM_THREADS).")
    ap.add_argument("--repeat", type=int, default=1, help="Runs per row; the median is reported.")
    ap.add_argument("--rows", default=",".join(ROWS), help=f"Comma-separated rows, from: {', '.join(ROWS)}.")
    ap.add_argument("--work", default=str(ROOT / "bench-out" / "datatrove"), help="Working directory.")
    for name in ("--row", "--src", "--out", "--logs", "--tok", "--hf"):
        ap.add_argument(name, help=argparse.SUPPRESS)  # one row's own process (run_row)
    args = ap.parse_args()
    if args.row:
        return child(args)
    rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    for r in rows:
        if r not in ROWS:
            ap.error(f"--rows: unknown row {r!r}; choose from {', '.join(ROWS)}")
    work = Path(args.work)
    tok = reference_merge(work / "reference-merge")
    hf = hf_tokenizer_json(tok)
    _, jsonl = replicated_corpus(work, args.mb)
    src = work / "input"
    src.mkdir(parents=True, exist_ok=True)
    if not (src / jsonl.name).exists():
        os.link(jsonl, src / jsonl.name)
    mb = jsonl.stat().st_size / 1e6
    seconds, cpu = {}, {}
    for r in rows:
        runs = sorted(run_row(r, src, work, tok, hf, args.threads) for _ in range(args.repeat))
        seconds[r], cpu[r] = runs[len(runs) // 2]
    print(f"\ninput: {jsonl.name}, {mb:.1f} MB JSONL, {args.threads} threads, {os.cpu_count()} cores; "
          f"tokenizer: reference merge ({tok})")
    # MB per CPU-second moves less than wall MB/s when other work shares the machine.
    print(f"{'':<58} {'wall':>9}  {'MB/s':>7}  {'MB/CPU-s':>8}  vs HF-in-datatrove (wall, CPU)")
    base = "hf-megatron" if "hf-megatron" in rows else None
    for r in rows:
        ratio = ""
        if base and r not in ("hf-megatron", "hf-document"):
            ratio = f"  {seconds[base] / seconds[r]:5.2f}x, {cpu[base] / cpu[r]:5.2f}x"
        print(f"{ROWS[r]:<58} {seconds[r]:7.2f} s  {mb / seconds[r]:7.1f}  {mb / cpu[r]:8.1f}{ratio}")
    result = {"bench": "datatrove", "input_mb": round(mb, 1), "threads": args.threads,
              "mb_per_s": {r: round(mb / s, 2) for r, s in seconds.items()},
              "mb_per_cpu_s": {r: round(mb / c, 2) for r, c in cpu.items()}}
    if "documents" in rows and "hf-megatron" in rows:
        result["hf_ids_differ"] = round(disagreement(work), 4)
        print(f"documents whose HF ids differ from zhllama's (= sentencepiece's), first 20,000: "
              f"{100 * result['hf_ids_differ']:.1f} %")
    print(json.dumps(result))


if __name__ == "__main__":
    main()

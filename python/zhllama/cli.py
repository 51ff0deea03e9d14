"""The ``zhllama`` command: one verb per pipeline step.

Each verb lives in its own module exposing ``add_arguments(parser)`` and ``run(args) -> int``;
modules are imported only when their verb runs, so ``zhllama --help`` stays fast and the
tokenizer verbs do not import torch.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from collections.abc import Sequence
from typing import Optional

# Exit statuses, also in `zhllama --help`.
EXIT_ERROR = 2  # bad input or a failed file operation: one line on stderr, as argparse's usage errors
EXIT_INTERNAL = 70  # a bug in zhllama (a caught Rust panic): sysexits' EX_SOFTWARE
EXIT_INTERRUPTED = 130  # Ctrl-C

EPILOG = f"""exit status: 0 success; {EXIT_ERROR} an error in the input, options or files (one line on stderr:
'zhllama VERB: error: ...'); {EXIT_INTERNAL} an internal error in zhllama (a bug: the line says where;
please report it); 1 an exception with its traceback (raised inside a library such as transformers or
DeepSpeed, or an unexpected one); {EXIT_INTERRUPTED} interrupted (Ctrl-C)."""

# verb -> (module, one-line help). Order is pipeline order, as `zhllama --help` shows it.
VERBS: dict[str, tuple[str, str]] = {
    "train-spm": ("zhllama.tokenizer.train_spm", "Train a SentencePiece model (20K Chinese pieces by default)."),
    "merge-vocab": ("zhllama.tokenizer.merge_vocab",
                    "Merge an added SentencePiece model into a base (LLaMA) tokenizer."),
    "extend-vocab": ("zhllama.tokenizer.extend_vocab",
                     "Grow a byte-level BPE tokenizer (LLaMA-3, SmolLM2, Qwen) with Chinese merges."),
    "tokenize-corpus": ("zhllama.corpus.tokenize", "Tokenize a corpus into Megatron-format token shards, in parallel."),
    "stats": ("zhllama.corpus.stats", "Compare tokenizers on a corpus: tokens/char, lengths, byte fallback."),
    "convert-gguf": ("zhllama.model.convert_gguf",
                     "Convert a GGUF model file into a plain Hugging Face model directory (safetensors)."),
    "resize": ("zhllama.model.resize", "Grow a model's embeddings and LM head to a merged vocabulary."),
    "init-rows": ("zhllama.model.init_rows",
                  "Learn a resized model's new rows from the frozen base on the extension corpus (before stage 2)."),
    "plan": ("zhllama.train.plan",
             "Estimate the GPU memory of a training run from config.json (weights, optimizer, activations)."),
    "pretrain": ("zhllama.train.pretrain", "Pretrain stage 1 (embeddings) or stage 2 (LoRA + embeddings + head)."),
    "sft": ("zhllama.train.sft", "Instruction-tune with LoRA on Alpaca-format data (prompt masked)."),
    "merge-lora": ("zhllama.model.merge_lora", "Merge LoRA adapters into full weights (plain HF model)."),
    "generate": ("zhllama.infer.generate", "Generate text (Alpaca template; 0.2/40/0.9/1.3 sampling)."),
    "eval": ("zhllama.infer.evaluate",
             "Evaluate bits per character on held-out text, or C-Eval/CMMLU (lm-eval) with --tasks."),
    "export-gguf": ("zhllama.model.export_gguf",
                    "Export a model directory as a GGUF file (f16/bf16/f32/q8_0/q4_k_m) for llama.cpp and Ollama."),
    "demo": ("zhllama.demo.demo", "Run the whole pipeline on embedded defaults (People's Daily, tiny model)."),
}


def module_present(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # its parent package is missing
        return False


def available_verbs(only: Optional[str] = None) -> dict[str, tuple[str, str]]:
    """Verbs whose module is present in this installation. With ``only`` (a verb about to run),
    only that verb's module is looked up: finding a module imports its package, which is start-up
    time a run of ``tokenize-corpus`` should not pay for the training verbs."""
    running = only in VERBS
    return {v: m for v, m in VERBS.items() if (running and v != only) or module_present(m[0])}


def build_parser(only: Optional[str] = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zhllama",
        description="Teach a LLaMA-family model Chinese: tokenizer merge, corpus tokenization, "
        "two-stage pretraining, LoRA SFT, merge and generation.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="store_true", help="Print the zhllama version and exit.")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    for verb, (module, help_text) in available_verbs(only).items():
        p = sub.add_parser(verb, help=help_text, description=help_text)
        if only is None or verb == only:
            importlib.import_module(module).add_arguments(p)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    verb = next((a for a in argv if not a.startswith("-")), None)
    # Import only the module of the verb being run (or none for plain `zhllama --help`).
    try:
        parser = build_parser(only=verb if verb in VERBS else "")
    except ImportError as e:  # the verb's module needs a package this install lacks
        print(f"zhllama {verb}: {error_line(e)}", file=sys.stderr)
        return EXIT_ERROR
    args = parser.parse_args(argv)
    if args.version:
        from zhllama import __version__

        print(f"zhllama {__version__}")
        return 0
    if args.verb is None:
        parser.print_help()
        return 2
    module = importlib.import_module(VERBS[args.verb][0])
    ok = False
    try:
        code = int(module.run(args) or 0)
        ok = code == 0
        return code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as e:
        status = exit_status(e)
        if status is None:
            raise  # not an error zhllama reports: a bug, shown with its traceback
        print(f"zhllama {args.verb}: {error_line(e)}", file=sys.stderr)
        return status
    finally:
        close_process_group(wait_for_peers=ok)


def exit_status(e: BaseException) -> Optional[int]:
    """The exit status of an error the CLI reports in one line, or None for any other.

    This is the one place errors become messages: the verbs raise, never print and return.
    """
    from zhllama import _native

    if isinstance(e, _native.InternalError):
        return EXIT_INTERNAL
    if isinstance(e, ImportError):  # a missing package, or one too old: what to install, in one line
        return EXIT_ERROR
    if isinstance(e, (_native.ZhllamaError, ValueError, OSError)) and not raised_in_library(e):
        return EXIT_ERROR
    return None


def raised_in_library(e: BaseException) -> bool:
    """Whether ``e`` was raised inside an installed third-party package (transformers, accelerate,
    DeepSpeed, torch...) rather than by zhllama (or by the standard library on its behalf).

    A ValueError from inside transformers is that library's report, often of its own bug, not a
    message written for the user: it keeps its traceback (exit status 1) instead of one line.
    """
    import os

    here = os.path.dirname(os.path.abspath(__file__)) + os.sep
    owner = None
    tb = e.__traceback__
    while tb is not None:  # the innermost frame that is zhllama's or a package's decides
        path = os.path.abspath(tb.tb_frame.f_code.co_filename)
        if path.startswith(here):
            owner = "zhllama"
        elif f"{os.sep}site-packages{os.sep}" in path or f"{os.sep}dist-packages{os.sep}" in path:
            owner = "library"
        tb = tb.tb_next
    return owner == "library"


def error_line(e: BaseException) -> str:
    """``error: MESSAGE`` on one line (an internal error says so itself)."""
    text = "; ".join(line.strip() for line in str(e).splitlines() if line.strip()) or type(e).__name__
    if isinstance(e, ImportError):
        from zhllama.dependencies import import_error_hint

        text += import_error_hint(e)
    return text if text.startswith("internal error") else f"error: {text}"


def close_process_group(wait_for_peers: bool) -> None:
    """Tear down a torch.distributed process group the run opened (torchrun, deepspeed launchers).

    Left to interpreter shutdown, gloo's worker threads can still hold work items whose tensors
    need the GIL, and a rank then dies with SIGABRT ("terminate called without an active
    exception") after its job finished. On success the ranks first meet at a barrier, so no rank
    tears down while a peer still talks to it; after an error there is no barrier (a peer that
    died would never arrive).
    """
    dist = sys.modules.get("torch.distributed")  # never import torch just to find nothing to close
    if dist is None or not dist.is_available() or not dist.is_initialized():
        return
    if wait_for_peers:
        dist.barrier()
    dist.destroy_process_group()


def exit_launched_rank(code: int) -> None:
    """End a rank that torchrun or the deepspeed launcher started without interpreter teardown.

    After the run's process group is closed (``close_process_group``: barrier, destroy), a rank
    left to interpreter shutdown can still die with SIGABRT ("terminate called without an active
    exception", a C++ thread destroyed while joinable): CI saw rank 1 of a finished two-process
    ZeRO-3 run abort so, and the launcher then fails the whole job. Every output is written and
    closed by then, so the rank flushes its streams and logs and leaves with its exit status.
    """
    import logging
    import os

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        sys.exit(code)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    exit_launched_rank(main())

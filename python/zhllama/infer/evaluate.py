"""``zhllama eval``: loss, perplexity and bits per character on held-out text.

    zhllama eval --model chinese-llama-7b --text-file heldout.txt --output eval.json

Documents are read as every verb reads them (``zhllama.documents.read_documents``: a line
of a .txt, the 'text' field of a .jsonl[.gz|.zst], blank lines skipped, a bad line an error
naming file:line). Each is encoded with BOS by zhllama's
exact tokenizer and scored with a sliding window: each forward pass reads ``--block-size`` tokens
and scores only the last ``--stride`` of them (all of them in a document's first window), so every
token after BOS is predicted exactly once and with at least ``block-size - stride`` tokens of
context (all of its context when the document fits one window). Windows that restart with one
token of context would score a long document worse than the model is, and worse the fewer
characters a token holds, which flatters a tokenizer with more characters per token. A
tokenizer that adds no BOS (SmolLM2, Qwen) gets its end-of-text token as the context of the first
token instead (lm-evaluation-harness's rule for rolling log-likelihoods): every character is then
scored, whatever the tokenizer, and a tokenizer whose first token covers more characters gains
nothing from it going unscored.
Bits per character — total negative log-likelihood in bits over the number of characters — does
not depend on the tokenizer, so a 32,000-token LLaMA and a 49,953-token Chinese LLaMA compare
fairly on it (perplexity per token does not).

With ``--tasks`` (or ``--preset``) it runs lm-evaluation-harness benchmarks such as C-Eval and
CMMLU instead; see ``zhllama.infer.benchmark``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys

from zhllama.infer.benchmark import add_task_arguments, run_tasks
from zhllama.model.loading import add_model_arguments, load_for_inference

log = logging.getLogger("zhllama.eval")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from zhllama.documents import ON_BAD_LINE

    add_model_arguments(parser)
    parser.add_argument("--text-file", default=None,
                        help="Held-out text: .txt (a document a line) or .jsonl[.gz|.zst] ('text' field), "
                             "as tokenize-corpus reads it. Or --tasks.")
    parser.add_argument("--text-field", default="text", help="JSON field / Parquet column holding the document text.")
    parser.add_argument("--on-bad-line", choices=ON_BAD_LINE, default="fail",
                        help="Malformed JSON or a missing field: fail naming file:line (default) or skip and count.")
    parser.add_argument("--block-size", type=int, default=512,
                        help="Tokens read per forward pass (the context window of the sliding evaluation).")
    parser.add_argument("--stride", type=int, default=None,
                        help="Tokens newly scored per window after a document's first window; every scored token "
                             "sees at least block-size - stride tokens of context. Default: block-size / 2. "
                             "1 gives every token its full window of context (one forward pass per token).")
    parser.add_argument("--max-documents", type=int, default=None, help="Score only the first N documents.")
    parser.add_argument("--output", default=None,
                        help="Also write the JSON result to this file (with --tasks: lm-eval's results JSON, default "
                        "lm_eval_results.json, and the markdown table beside it as .md).")
    add_task_arguments(parser)


def document_nll(model, ids: list[int], block_size: int, stride: int | None = None) -> float:
    """Total NLL (nats) of ``ids[1:]`` given the prefix, by a sliding window.

    Each forward pass reads ``ids[e - block_size : e]`` and scores the targets not scored yet:
    the first ``block_size`` in the first window, then ``stride`` per window, so target ``j``
    (predicted from ``ids[:j]``) sees at least ``block_size - stride + 1`` tokens, or all of
    ``ids[:j]`` while the document fits the window.
    """
    import torch

    stride = default_stride(block_size) if stride is None else stride
    check_window(block_size, stride)
    total, scored, n = 0.0, 0, len(ids) - 1  # n targets: ids[1..n]
    while scored < n:
        end = min(scored + (block_size if scored == 0 else stride), n)  # targets scored..end-1 (0-based)
        begin = max(0, end - block_size)
        window = torch.tensor([ids[begin: end + 1]], device=model.device)
        with torch.no_grad():
            logits = model(input_ids=window[:, :-1]).logits.float()
        fresh = scored - begin  # positions in this window whose target was scored by an earlier window
        total += torch.nn.functional.cross_entropy(logits[0, fresh:], window[0, 1 + fresh:], reduction="sum").item()
        scored = end
    return total


def default_stride(block_size: int) -> int:
    return max(1, block_size // 2)


def check_window(block_size: int, stride: int) -> None:
    if block_size < 1:
        raise ValueError(f"--block-size must be >= 1, got {block_size}")
    if not 1 <= stride <= block_size:
        raise ValueError(f"--stride must be between 1 and --block-size ({block_size}), got {stride}")


def evaluate(model, tokenizer, docs: list[str], block_size: int, stride: int | None = None) -> dict:
    from tqdm import tqdm

    nll = 0.0
    tokens = chars = 0
    encoded = tokenizer.encode_batch(docs, add_bos=True)
    if tokenizer.bos_id is None and tokenizer.eos_id is not None:  # no BOS: the first token given end-of-text
        encoded = [[tokenizer.eos_id, *ids] for ids in encoded]
    for doc, ids in tqdm(list(zip(docs, encoded)), desc="eval", unit="doc", disable=len(docs) < 50, file=sys.stderr):
        if len(ids) < 2:
            continue
        nll += document_nll(model, ids, block_size, stride)
        tokens += len(ids) - 1
        chars += len(doc)
    if tokens == 0:
        raise ValueError("no document with any token to score")
    loss = nll / tokens
    return {"loss": loss, "perplexity": math.exp(min(loss, 700.0)), "bits_per_char": nll / math.log(2) / chars,
            "tokens": tokens, "characters": chars, "documents": len(docs), "tokens_per_char": tokens / chars,
            "block_size": block_size, "stride": default_stride(block_size) if stride is None else stride}


def run(args: argparse.Namespace) -> int:
    from itertools import islice

    from zhllama.documents import read_documents

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.tasks is not None or args.preset is not None:
        if args.text_file is not None:
            raise ValueError(f"--text-file {args.text_file} and --tasks/--preset are two evaluations; "
                             "run them separately")
        return run_tasks(args)
    if args.text_file is None:
        raise ValueError("give --text-file (bits per character) or --tasks/--preset (lm-eval benchmarks)")
    check_window(args.block_size, default_stride(args.block_size) if args.stride is None else args.stride)
    docs = list(islice(read_documents([args.text_file], text_field=args.text_field, on_bad_line=args.on_bad_line),
                       args.max_documents))
    model, tokenizer = load_for_inference(args.model, args.lora, args.tokenizer, args.dtype, args.device,
                                          args.allow_mismatch)
    result = {"model": args.model, "lora": args.lora, "text_file": args.text_file,
              **evaluate(model, tokenizer, docs, args.block_size, args.stride)}
    text = json.dumps(result, indent=2, ensure_ascii=False)
    print(text)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    return 0

"""``zhllama eval``: loss, perplexity and bits per character on held-out text.

    zhllama eval --model chinese-llama-7b --text-file heldout.txt --output eval.json

Documents are read as every verb reads them (``zhllama.documents.read_documents``: a line
of a .txt, the 'text' field of a .jsonl[.gz|.zst], blank lines skipped, a bad line an error
naming file:line). Each is encoded with BOS by zhllama's
exact tokenizer and scored in windows of ``--block-size`` tokens, each window carrying the last
token of the previous one as context, so every token after BOS is predicted exactly once. A
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
    parser.add_argument("--block-size", type=int, default=512, help="Tokens scored per forward pass.")
    parser.add_argument("--max-documents", type=int, default=None, help="Score only the first N documents.")
    parser.add_argument("--output", default=None,
                        help="Also write the JSON result to this file (with --tasks: lm-eval's results JSON, default "
                        "lm_eval_results.json, and the markdown table beside it as .md).")
    add_task_arguments(parser)


def document_nll(model, ids: list[int], block_size: int) -> float:
    """Total NLL (nats) of ``ids[1:]`` given the prefix, in windows of ``block_size`` predictions."""
    import torch

    total = 0.0
    for start in range(0, len(ids) - 1, block_size):
        window = torch.tensor([ids[start: start + block_size + 1]], device=model.device)
        with torch.no_grad():
            logits = model(input_ids=window[:, :-1]).logits.float()
        total += torch.nn.functional.cross_entropy(logits[0], window[0, 1:], reduction="sum").item()
    return total


def evaluate(model, tokenizer, docs: list[str], block_size: int) -> dict:
    from tqdm import tqdm

    nll = 0.0
    tokens = chars = 0
    encoded = tokenizer.encode_batch(docs, add_bos=True)
    if tokenizer.bos_id is None and tokenizer.eos_id is not None:  # no BOS: the first token given end-of-text
        encoded = [[tokenizer.eos_id, *ids] for ids in encoded]
    for doc, ids in tqdm(list(zip(docs, encoded)), desc="eval", unit="doc", disable=len(docs) < 50, file=sys.stderr):
        if len(ids) < 2:
            continue
        nll += document_nll(model, ids, block_size)
        tokens += len(ids) - 1
        chars += len(doc)
    if tokens == 0:
        raise ValueError("no document with any token to score")
    loss = nll / tokens
    return {"loss": loss, "perplexity": math.exp(min(loss, 700.0)), "bits_per_char": nll / math.log(2) / chars,
            "tokens": tokens, "characters": chars, "documents": len(docs), "tokens_per_char": tokens / chars}


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
    if args.block_size < 1:
        raise ValueError(f"--block-size must be >= 1, got {args.block_size}")
    docs = list(islice(read_documents([args.text_file], text_field=args.text_field, on_bad_line=args.on_bad_line),
                       args.max_documents))
    model, tokenizer = load_for_inference(args.model, args.lora, args.tokenizer, args.dtype, args.device,
                                          args.allow_mismatch)
    result = {"model": args.model, "lora": args.lora, "text_file": args.text_file,
              **evaluate(model, tokenizer, docs, args.block_size)}
    text = json.dumps(result, indent=2, ensure_ascii=False)
    print(text)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    return 0

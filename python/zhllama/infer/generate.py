"""``zhllama generate``: sample from a model with the chat template it ships (else Alpaca's), streaming tokens.

    zhllama generate --model chinese-alpaca-7b --prompt "为什么要减少污染，保护环境？"
    zhllama generate --model chinese-llama-7b --template none --prompt "北京是" --max-new-tokens 64
    zhllama generate --model chinese-alpaca-7b --input-file questions.jsonl --output answers.jsonl
    zhllama generate --model chinese-alpaca-7b --interactive

Sampling defaults are the report's: temperature 0.2, top-k 40, top-p 0.9, repetition penalty 1.3.
Text is encoded and decoded with zhllama's exact tokenizer; streaming decodes the growing id list
and prints only the new, complete characters (a byte-fallback character arrives over several ids).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Callable, Optional

from zhllama.model.loading import add_model_arguments, load_for_inference
from zhllama.prompt import build_prompt

TEMPLATES = ("auto", "chat", "alpaca", "none")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser)
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--prompt", help="One prompt (an instruction with the Alpaca template).")
    src.add_argument("--input-file", help="Prompts: one a line, or JSONL with 'instruction' (+ 'input') or 'prompt'.")
    src.add_argument("--interactive", action="store_true",
                     help="Read prompts from the terminal until EOF or an empty line.")
    parser.add_argument("--template", choices=TEMPLATES, default="auto",
                        help="Prompt template: chat (the chat_template.jinja the model directory ships: what sft "
                             "trained on), alpaca (the report's prompt), none (raw text), or auto (default: chat "
                             "when the directory ships a template, else alpaca).")
    parser.add_argument("--temperature", type=float, default=0.2, help="Sampling temperature (0: greedy).")
    parser.add_argument("--top-k", type=int, default=40, help="Sample among the k most likely tokens.")
    parser.add_argument("--top-p", type=float, default=0.9, help="Nucleus sampling probability mass.")
    parser.add_argument("--repetition-penalty", type=float, default=1.3, help="Penalty for repeating tokens (1: none).")
    parser.add_argument("--max-new-tokens", type=int, default=512, help="Most tokens to generate per prompt.")
    parser.add_argument("--seed", type=int, default=None, help="Random seed for reproducible sampling.")
    parser.add_argument("--output", default=None, help="Write {prompt, response} JSONL here (with --input-file).")
    parser.add_argument("--no-stream", action="store_true",
                        help="Print each response when complete instead of streaming.")


def format_prompt(record: dict, template: str) -> str:
    if template == "none":
        return record.get("prompt") or record.get("instruction", "")
    if "instruction" in record:
        return build_prompt(record["instruction"], record.get("input", ""))
    return build_prompt(record["prompt"])


def shipped_template(args: argparse.Namespace) -> Optional[str]:
    """The chat template of the last adapter, the model directory or the tokenizer, first found: what
    sft trained on wins over a tokenizer directory's own (extend-vocab copies the base's, e.g. ChatML),
    the order merge-lora ships them in."""
    from zhllama.chat_template import read_chat_template

    for place in [*reversed(args.lora or []), args.model, args.tokenizer]:
        found = read_chat_template(place) if place else None
        if found is not None:
            return found
    return None


def record_ids(record: dict, template: str, tokenizer, chat_template: Optional[str]) -> list[int]:
    """The prompt's ids: the shipped chat template rendered for one user turn (generation prompt
    added) and encoded as a server encodes it; else ``format_prompt`` with the tokenizer's BOS."""
    from zhllama.chat_template import alpaca_user_content, encode_rendered, render, special_tokens

    if template == "chat":
        if chat_template is None:
            raise ValueError("--template chat: the model directory ships no chat_template.jinja; use --template alpaca")
        user = alpaca_user_content(record["instruction"], record.get("input", "")) if "instruction" in record \
            else record["prompt"]
        text = render(chat_template, [{"role": "user", "content": user}], add_generation_prompt=True,
                      special=special_tokens(tokenizer))
        return encode_rendered(tokenizer, text)
    return tokenizer.encode(format_prompt(record, template), add_bos=True)


def read_prompts(path: str) -> list[dict]:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"--input-file {p}: no such file")
    records = []
    for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        if p.suffix == ".jsonl":
            r = json.loads(line)
            if not isinstance(r, dict) or not isinstance(r.get("instruction", r.get("prompt")), str):
                raise ValueError(f"{p}:{n}: expected an object with 'instruction' or 'prompt'")
            records.append(r)
        else:
            records.append({"prompt": line})
    return records


class IncrementalDecoder:
    """Turns a growing id list into text deltas; holds back an incomplete UTF-8 character."""

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self.emitted = ""

    def push(self, ids) -> str:
        self.ids.extend(int(i) for i in ids)
        text = self.tokenizer.decode(self.ids)
        if text.endswith("\ufffd"):
            return ""
        delta, self.emitted = text[len(self.emitted):], text
        return delta

    def flush(self) -> str:
        text = self.tokenizer.decode(self.ids)
        delta, self.emitted = text[len(self.emitted):], text
        return delta


def make_streamer(tokenizer, write: Callable[[str], None], stop_ids: Sequence[int] = ()):
    from transformers.generation.streamers import BaseStreamer

    class Streamer(BaseStreamer):
        def __init__(self) -> None:
            self.decoder, self.prompt_seen = IncrementalDecoder(tokenizer), False

        def put(self, value) -> None:
            if not self.prompt_seen:  # generate() first hands over the prompt
                self.prompt_seen = True
                return
            write(self.decoder.push([i for i in value.reshape(-1).tolist() if i not in stop_ids]))

        def end(self) -> None:
            write(self.decoder.flush())

    return Streamer()


def eos_ids(model, tokenizer) -> list[int]:
    """Every id that ends a response: the tokenizer's EOS and each EOS id of the model's
    ``generation_config`` (LLaMA-3-Instruct stops on <|end_of_text|>, <|eom_id|> and <|eot_id|>)."""
    ids = [] if tokenizer.eos_id is None else [int(tokenizer.eos_id)]
    ids += [int(i) for i in getattr(tokenizer, "eos_ids", ()) if int(i) not in ids]  # its directory's own list
    config = getattr(model, "generation_config", None)
    extra = getattr(config, "eos_token_id", None)
    for i in extra if isinstance(extra, (list, tuple)) else ([] if extra is None else [extra]):
        if int(i) not in ids:
            ids.append(int(i))
    return ids


def generate(model, tokenizer, prompt: str, args: argparse.Namespace,
             write: Optional[Callable[[str], None]] = None, prompt_ids: Optional[list[int]] = None) -> str:
    """Sample a response to ``prompt`` (or to ``prompt_ids``, when given)."""
    import torch

    # add_bos follows the tokenizer's post-processor: LLaMA's <s>, LLaMA-3's <|begin_of_text|>;
    # nothing for tokenizers that add no BOS (Qwen, SmolLM2: their bos_id is None).
    ids = torch.tensor([tokenizer.encode(prompt, add_bos=True) if prompt_ids is None else prompt_ids],
                       device=model.device)
    sample = args.temperature > 0
    stops = eos_ids(model, tokenizer)
    kwargs = {"do_sample": sample, "max_new_tokens": args.max_new_tokens,
              "repetition_penalty": args.repetition_penalty, "eos_token_id": stops or None,
              "pad_token_id": tokenizer.pad_id if tokenizer.pad_id is not None else (stops[0] if stops else None),
              "bos_token_id": tokenizer.bos_id}
    if sample:
        kwargs.update(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p)
    streamer = make_streamer(tokenizer, write, stops) if write is not None else None
    with torch.no_grad():
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), streamer=streamer, **kwargs)
    new = out[0, ids.shape[1]:].tolist()
    end = next((k for k, i in enumerate(new) if i in stops), len(new))
    return tokenizer.decode(new[:end])


def _interactive_prompts() -> Iterator[dict]:
    while True:
        try:
            line = input("> ")
        except EOFError:
            return
        if not line.strip():
            return
        yield {"prompt": line}


def run(args: argparse.Namespace) -> int:
    if args.temperature < 0 or not 0 < args.top_p <= 1 or args.top_k < 0 or args.max_new_tokens < 1:
        raise ValueError(f"bad sampling settings: temperature {args.temperature} (>= 0), top-p {args.top_p} "
                         f"(0, 1], top-k {args.top_k} (>= 0), max-new-tokens {args.max_new_tokens} (>= 1)")
    if args.seed is not None:
        import torch

        torch.manual_seed(args.seed)
    model, tokenizer = load_for_inference(args.model, args.lora, args.tokenizer, args.dtype, args.device,
                                          args.allow_mismatch)
    if args.prompt is not None:
        records: Iterator[dict] | list[dict] = [{"prompt": args.prompt}]
    elif args.input_file is not None:
        records = read_prompts(args.input_file)
    else:
        records = _interactive_prompts()

    def write(s: str) -> None:
        sys.stdout.write(s)
        sys.stdout.flush()

    with contextlib.ExitStack() as stack:
        out = stack.enter_context(open(args.output, "w", encoding="utf-8")) if args.output else None
        chat_template = shipped_template(args)
        template = ("chat" if chat_template is not None else "alpaca") if args.template == "auto" else args.template
        for record in records:
            ids = record_ids(record, template, tokenizer, chat_template)
            response = generate(model, tokenizer, "", args, None if args.no_stream else write, prompt_ids=ids)
            if args.no_stream:
                write(response)
            write("\n")
            if out is not None:
                out.write(json.dumps({**record, "response": response}, ensure_ascii=False) + "\n")
                out.flush()
    return 0

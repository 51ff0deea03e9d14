"""GGUF export measured through llama.cpp (llama-cpp-python) on a real model: the table of
benches/GGUF.md and docs/deployment.md.

    python benches/gguf_bench.py --model DEMO/merge-sft --zh DEMO/corpus/heldout.txt \\
        --en DEMO/corpus/heldout_en.jsonl --out /tmp/gguf-bench

For a model directory (the demo's SmolLM2 + extend-vocab): ``zhllama export-gguf`` to f32, f16,
q8_0 and q4_k_m; bits per character of each file through llama.cpp on held-out Chinese and
English, scored exactly as ``zhllama eval`` scores (its ``evaluate``: the same documents, BOS or
end-of-text first, 256-token windows with stride 128), beside transformers' own float32 figure (the
f32 file serves greedy decoding only); f16 against transformers: top-1 agreement and the largest
logit difference over the first 2,000 positions of the held-out documents (``--agreement-only``
measures just that); greedy decoding: 32 tokens through llama.cpp (argmax of its logits, the
end-of-sequence ids suppressed as ``min_new_tokens`` suppresses them) against transformers'
``generate(do_sample=False, min_new_tokens=32)`` for the demo's two prompts and, when the directory
ships a chat template, one instruction rendered with it. The shipped chat template through llama.cpp
(``--chat-only`` measures just that): the ids llama-cpp-python's ``create_chat_completion`` sends
(its Jinja rendering of the GGUF's ``tokenizer.chat_template``: what an OpenAI-style llama-cpp-python
server sends) against ``zhllama generate``'s prompt for the same instruction, and whether llama.cpp's
built-in templates (``llama_chat_apply_template``: ``llama-cli``, ``llama-server`` without
``--jinja``) render it the same.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from itertools import islice
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from zhllama.chat_template import alpaca_user_content, read_chat_template, render, special_tokens
from zhllama.documents import read_documents
from zhllama.infer.evaluate import evaluate
from zhllama.infer.generate import record_ids
from zhllama.model.export_gguf import export_gguf
from zhllama.tokenizer import Tokenizer

TYPES = ("f32", "f16", "q8_0", "q4_k_m")
PROMPTS = ("北京是中国的首都，", "The capital of France is")
# Instructions for the chat template (the demo's SFT task first: continue a news paragraph).
INSTRUCTIONS = ({"instruction": "续写下面的新闻段落。", "input": "北京是中国的首都，"},
                {"instruction": "What is the capital of France?"}, {"instruction": "请用一句话介绍长城。"})


class LlamaCppModel:
    """llama.cpp behind the interface ``zhllama.infer.evaluate`` calls: ``model(input_ids=...).logits``."""

    device = torch.device("cpu")

    def __init__(self, path: Path, n_ctx: int, threads: int) -> None:
        from llama_cpp import Llama

        self.llm = Llama(str(path), n_ctx=n_ctx, n_batch=n_ctx, logits_all=True, n_threads=threads, verbose=False)

    def logits(self, ids: list[int]) -> np.ndarray:
        self.llm.reset()
        self.llm.eval(ids)
        return np.array(self.llm.scores[: len(ids)], dtype=np.float32)

    def __call__(self, input_ids: torch.Tensor) -> Any:
        out = torch.from_numpy(self.logits(input_ids[0].tolist()))[None]
        return type("Output", (), {"logits": out})()

    def greedy(self, prompt: list[int], n: int, banned: list[int]) -> list[int]:
        """``n`` tokens by argmax, never one of ``banned`` (the end-of-sequence ids that transformers'
        ``min_new_tokens`` suppresses on the other side: a model after SFT ends its answer early)."""
        self.llm.reset()
        self.llm.eval(prompt)
        out = []
        for _ in range(n):
            scores = np.array(self.llm.scores[self.llm.n_tokens - 1])
            scores[banned] = -np.inf
            out.append(int(np.argmax(scores)))
            self.llm.eval([out[-1]])
        return out


def agreement(hf: Any, f16: LlamaCppModel, tok: Tokenizer, docs: list[str], block: int) -> tuple[int, int, float]:
    """Top-1 agreement of llama.cpp (f16 file) with transformers over the first 2,000 positions of
    ``docs`` (each cut to one window), and the largest logit difference seen."""
    agree = total = 0
    worst = 0.0
    first = [tok.eos_id] if tok.bos_id is None else []
    for doc in docs:
        ids = (first + tok.encode(doc, add_bos=True))[:block]
        with torch.no_grad():
            want = hf(input_ids=torch.tensor([ids])).logits[0].numpy()
        got = f16.logits(ids)
        worst = max(worst, float(np.abs(got - want).max()))
        n = min(len(ids), 2000 - total)
        agree += int((got[:n].argmax(-1) == want[:n].argmax(-1)).sum())
        total += n
        if total >= 2000:
            break
    return agree, total, worst


def builtin_template_ids(llm: Any, template: str, user: str) -> Optional[list[int]]:
    """The ids llama.cpp's built-in template engine (``llama_chat_apply_template``, as ``llama-cli`` and
    ``llama-server`` without ``--jinja`` use it) gives one user turn with the generation prompt,
    tokenized as the server tokenizes it (BOS added, special tokens parsed); None when llama.cpp
    does not recognise the template."""
    import ctypes

    import llama_cpp

    chat = (llama_cpp.llama_chat_message * 1)(llama_cpp.llama_chat_message(b"user", user.encode("utf-8")))
    n = llama_cpp.llama_chat_apply_template(template.encode("utf-8"), chat, 1, True, None, 0)
    if n < 0:
        return None
    buf = ctypes.create_string_buffer(n + 1)
    llama_cpp.llama_chat_apply_template(template.encode("utf-8"), chat, 1, True, buf, n + 1)
    return list(llm.tokenize(buf.raw[:n], add_bos=True, special=True))


def chat_template_check(model_dir: str, gguf: Path, tok: Tokenizer, threads: int) -> dict[str, Any]:
    """The shipped chat template through llama.cpp, per instruction: llama-cpp-python's
    ``create_chat_completion`` prompt ids (the GGUF's ``tokenizer.chat_template`` rendered by its
    Jinja formatter) and llama.cpp's built-in engine's, each against ``zhllama generate``'s
    (``record_ids`` with the directory's template: ``generate --model DIR``)."""
    from llama_cpp import Llama

    template = read_chat_template(model_dir)
    if template is None:
        return {"template": None}
    llm = Llama(str(gguf), n_ctx=512, n_threads=threads, verbose=False)
    out: dict[str, Any] = {"template": template, "llama_cpp_python_format": llm.chat_format, "prompts": []}
    for record in INSTRUCTIONS:
        user = alpaca_user_content(record["instruction"], record.get("input", ""))
        ours = record_ids(record, "chat", tok, template)
        llm.reset()
        usage = llm.create_chat_completion([{"role": "user", "content": user}], max_tokens=1, temperature=0.0)["usage"]
        served = [int(i) for i in llm.input_ids[: usage["prompt_tokens"]]]
        builtin = builtin_template_ids(llm, template, user)
        out["prompts"].append({
            "user": user, "zhllama_ids": len(ours), "llama_cpp_python_equal": served == ours,
            "builtin": "unknown template" if builtin is None else ("equal" if builtin == ours else "differs"),
            "zhllama_text": render(template, [{"role": "user", "content": user}], add_generation_prompt=True,
                                   special=special_tokens(tok)),
            **({} if served == ours else {"llama_cpp_python_text": tok.decode(served)}),
            **({} if builtin in (None, ours) else {"builtin_text": tok.decode(builtin)})})
    return out


def print_chat(chat: dict[str, Any]) -> None:
    if chat["template"] is None:
        print("\nchat template: the directory ships none (nothing to compare)")
        return
    print(f"\nchat template (llama-cpp-python uses {chat['llama_cpp_python_format']!r}):")
    for p in chat["prompts"]:
        print(f"- {p['user']!r} ({p['zhllama_ids']} ids): llama-cpp-python create_chat_completion "
              f"{'equal' if p['llama_cpp_python_equal'] else 'DIFFERS'}; llama.cpp built-in template: {p['builtin']}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="Model directory (the demo's final merged model).")
    ap.add_argument("--zh", required=True, help="Held-out Chinese documents (the demo's corpus/heldout.txt).")
    ap.add_argument("--en", required=True, help="Held-out English documents (the demo's corpus/heldout_en.jsonl).")
    ap.add_argument("--out", required=True, help="Directory for the GGUF files.")
    ap.add_argument("--docs", type=int, default=60, help="Documents per language (default 60, the demo's).")
    ap.add_argument("--block-size", type=int, default=256, help="Scoring window (default 256, the demo's eval).")
    ap.add_argument("--threads", type=int, default=1, help="Threads for llama.cpp and torch (default 1).")
    ap.add_argument("--agreement-only", action="store_true",
                    help="Only the f16 top-1 agreement (exports the f16 file if --out lacks it).")
    ap.add_argument("--chat-only", action="store_true",
                    help="Only the chat template through llama.cpp (exports the f16 file if --out lacks it).")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer.from_pretrained(args.model)
    docs = {lang: list(islice(read_documents([path]), args.docs)) for lang, path in (("zh", args.zh), ("en", args.en))}
    # Positions for the agreement: every held-out document (Chinese, then English) until 2,000.
    all_docs = [*read_documents([args.zh]), *read_documents([args.en])]
    rows: dict[str, dict[str, Any]] = {}
    t0 = time.time()

    if args.chat_only:
        path = out / "model-f16.gguf"
        if not path.exists():
            export_gguf(args.model, path, "f16", modelfile=False)
        chat = chat_template_check(args.model, path, tok, args.threads)
        print_chat(chat)
        print(json.dumps(chat, ensure_ascii=False), file=sys.stderr)
        return

    from transformers import AutoModelForCausalLM

    hf = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32).eval()
    if args.agreement_only:
        path = out / "model-f16.gguf"
        if not path.exists():
            export_gguf(args.model, path, "f16", modelfile=False)
        agree, total, worst = agreement(hf, LlamaCppModel(path, args.block_size, args.threads), tok, all_docs,
                                        args.block_size)
        print(f"f16 (llama.cpp) vs transformers (f32): top-1 agreement {agree}/{total} = {agree / total:.4f}; "
              f"max |logit difference| {worst:.4f}; load average {os.getloadavg()[0]:.1f}")
        return
    rows["transformers f32"] = {lang: evaluate(hf, tok, d, args.block_size) for lang, d in docs.items()}
    files = {}
    for kind in TYPES:
        path = out / f"model-{kind}.gguf"
        files[kind] = export_gguf(args.model, path, kind, force=True, modelfile=kind == "q4_k_m", threads=args.threads,
                                  quiet=True).path
        if kind == "f32":  # for greedy decoding only (its bpc is transformers' float32 figure)
            continue
        model = LlamaCppModel(path, args.block_size, args.threads)
        rows[kind] = {lang: evaluate(model, tok, d, args.block_size) for lang, d in docs.items()}
        rows[kind]["size_mb"] = path.stat().st_size / 1e6
        print(f"{kind}: {json.dumps({k: v['bits_per_char'] for k, v in rows[kind].items() if k != 'size_mb'})}",
              file=sys.stderr)

    agree, total, worst = agreement(hf, LlamaCppModel(files["f16"], args.block_size, args.threads), tok,
                                    all_docs, args.block_size)

    chat = chat_template_check(args.model, files["f16"], tok, args.threads)
    greedy = {}
    first = [tok.eos_id] if tok.bos_id is None else []
    prompts = {prompt: first + tok.encode(prompt, add_bos=True) for prompt in PROMPTS}
    if chat["template"] is not None:  # the SFT task's instruction as the shipped template renders it
        prompts["chat: " + chat["prompts"][0]["user"]] = record_ids(INSTRUCTIONS[0], "chat", tok, chat["template"])
    eos = hf.generation_config.eos_token_id  # min_new_tokens=32 keeps transformers from ending early
    eos = [] if eos is None else [eos] if isinstance(eos, int) else list(eos)
    for kind in ("f32", "f16", "q8_0"):
        model = LlamaCppModel(files[kind], args.block_size, args.threads)
        for prompt, ids in prompts.items():
            with torch.no_grad():
                want = hf.generate(torch.tensor([ids]), max_new_tokens=32, min_new_tokens=32, do_sample=False,
                                   pad_token_id=tok.eos_id)[0, len(ids):].tolist()
            got = model.greedy(ids, 32, eos)
            same = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), 32)
            greedy[f"{kind} {prompt}"] = {"equal_prefix": same, "llama_cpp": tok.decode(got),
                                          "transformers": tok.decode(want)}

    load = os.getloadavg()
    print(f"\nmodel {args.model}; {args.docs} documents per language; load average {load[0]:.1f}; "
          f"{time.time() - t0:.0f} s\n")
    print("| weights | size (MB) | zh bpc | Δ vs f16 | en bpc | Δ vs f16 |")
    print("|---|---|---|---|---|---|")
    base = rows["f16"]
    for name, r in rows.items():
        size = f"{r['size_mb']:.1f}" if "size_mb" in r else "—"
        zh, en = r["zh"]["bits_per_char"], r["en"]["bits_per_char"]
        print(f"| {name} | {size} | {zh:.4f} | {zh - base['zh']['bits_per_char']:+.4f} | {en:.4f} | "
              f"{en - base['en']['bits_per_char']:+.4f} |")
    print(f"\nf16 (llama.cpp) vs transformers (f32): top-1 agreement {agree}/{total} = {agree / total:.4f}; "
          f"max |logit difference| {worst:.4f}")
    print("\ngreedy, 32 tokens (tokens equal before the first difference):")
    for k, v in greedy.items():
        print(f"- {k!r}: {v['equal_prefix']}/32" + ("" if v["equal_prefix"] == 32 else
                                                     f"  llama.cpp {v['llama_cpp']!r} / transformers "
                                                     f"{v['transformers']!r}"))
    print_chat(chat)
    print(json.dumps({"rows": rows, "agreement": [agree, total], "max_logit_diff": worst, "greedy": greedy,
                      "chat": chat}, ensure_ascii=False), file=sys.stderr)


if __name__ == "__main__":
    main()

"""``zhllama merge-lora``: fold LoRA adapters into full weights, a plain Hugging Face model.

    zhllama merge-lora --base llama-7b-hf --lora stage2 --lora sft --out chinese-alpaca-7b

Adapters apply in order (stage 2 pretraining, then SFT); before each, the base is resized to the
adapter's vocabulary (its saved ``embed_tokens`` rows, else its tokenizer) — the adapter's full
``embed_tokens``/``lm_head`` copies then replace every row. The result is written with safetensors
plus the tokenizer files, and loads with ``AutoModelForCausalLM.from_pretrained``.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any, Optional

from zhllama.chat_template import read_chat_template
from zhllama.model.identity import ALLOW_FLAG, ALLOW_HELP, check_adapter_base
from zhllama.tokenizer import Tokenizer
from zhllama.tokenizer.directory import CHAT_TEMPLATE_FILE, copy_tokenizer_files, tokenizer_file

DTYPES = ("auto", "float32", "float16", "bfloat16")
log = logging.getLogger("zhllama.merge_lora")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--base", required=True,
                        help="Base model directory (e.g. the original LLaMA in HF layout), or a .gguf file.")
    parser.add_argument("--lora", required=True, action="append",
                        help="LoRA adapter directory (pretrain --stage 2 or sft output); "
                             "repeat to apply several in order.")
    parser.add_argument("--out", required=True, help="Output directory for the merged model.")
    parser.add_argument("--dtype", choices=DTYPES, default="auto",
                        help="Weight dtype of the merged model (auto: the base's).")
    parser.add_argument("--tokenizer", default=None,
                        help="Tokenizer to copy into the output (default: the last adapter's, else the base's). The "
                             "chat template is the last adapter's that ships one (what sft trained on), else this "
                             "tokenizer's.")
    parser.add_argument(ALLOW_FLAG, action="store_true", help=ALLOW_HELP)


def adapter_vocab_size(lora_dir: Path) -> Optional[int]:
    """Rows of the adapter's saved ``embed_tokens``, else of its tokenizer, else None."""
    st = lora_dir / "adapter_model.safetensors"
    if st.is_file():
        from safetensors import safe_open

        with safe_open(str(st), framework="pt") as f:
            for key in f.keys():  # noqa: SIM118 - safe_open is not a mapping
                if "embed_tokens" in key:
                    return int(f.get_slice(key).get_shape()[0])
    if tokenizer_file(lora_dir) is not None:
        return len(Tokenizer.from_pretrained(lora_dir))
    return None


def check_adapter(lora_dir: Path) -> None:
    if not (lora_dir / "adapter_config.json").is_file():
        raise FileNotFoundError(f"--lora {lora_dir}: no adapter_config.json; pass the output directory of "
                                f"`zhllama pretrain --stage 2` or `zhllama sft`")
    if not any((lora_dir / n).is_file() for n in ("adapter_model.safetensors", "adapter_model.bin")):
        raise FileNotFoundError(f"--lora {lora_dir}: no adapter_model.safetensors")
    st = lora_dir / "adapter_model.safetensors"
    if st.is_file() and st.stat().st_size < 1024:
        raise ValueError(f"--lora {lora_dir}: adapter_model.safetensors is only {st.stat().st_size} bytes, an empty "
                         f"adapter (the known ZeRO-3 saving bug of the reference scripts); retrain or re-save it")


def merge_lora(base: str | Path, loras: list[str | Path], dtype: str = "auto"):
    """The base model with each adapter merged in order, every tensor in ``dtype`` (auto: the base's)."""
    import torch
    from transformers import AutoModelForCausalLM

    torch_dtype = "auto" if dtype == "auto" else getattr(torch, dtype)
    model: Any = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch_dtype)
    # Adapters are saved from fp32 masters (LoRA and the embed_tokens/lm_head copies), and peft keeps
    # adapter weights in fp32 over a half-precision base: cast at the end so the merged model is
    # one dtype throughout, the one asked for.
    out_dtype = model.get_input_embeddings().weight.dtype
    for lora in map(Path, loras):
        check_adapter(lora)
        rows = adapter_vocab_size(lora)
        current = model.get_input_embeddings().weight.shape[0]
        if rows is not None and rows != current:
            log.info("resizing %s from %d to %d rows for %s", base, current, rows, lora)
            model.resize_token_embeddings(rows, mean_resizing=False)
        log.info("merging %s", lora)
        before = [w.detach().clone() for w in embedding_weights(model)]
        model = merge_adapter(model, lora)
        kept = restore_untrained_rows(before, embedding_weights(model))
        if kept:
            log.info("%s: %d embedding rows training did not move are the base's exact rows, not their "
                     "16-bit rounding", lora, kept)
    return model.to(out_dtype)


def embedding_weights(model: Any) -> list:
    """The input embedding's weight and an untied output layer's (a tied one is the same tensor: once)."""
    found: list = []
    for module in (model.get_input_embeddings(), model.get_output_embeddings()):
        if module is not None and all(module.weight is not w for w in found):
            found.append(module.weight)
    return found


def restore_untrained_rows(before: list, after: list) -> int:
    """Give back the base's exact rows where the adapter holds only their 16-bit rounding; returns how many.

    Training in bf16/fp16 loads the base in that dtype, so the fp32 masters of the ``embed_tokens``
    and ``lm_head`` copies start from the base's rows rounded, and a row training never moved
    (``--new-rows-only``'s original rows; a token the data never held gets no gradient and no Adam
    update) is saved as that rounding. A row of the merged ``after`` that equals its ``before`` row,
    exactly or rounded to bf16 or fp16 in every element, is therefore the base's row and gets the
    exact values back: bit-identical, as ``--new-rows-only`` promises. A row training moved matches
    no rounding of its old self.
    """
    import torch

    restored = 0
    for old, new in zip(before, after):
        rows = min(old.shape[0], new.shape[0])
        base, got = old[:rows].float(), new.data[:rows].float()
        untouched = torch.zeros(rows, dtype=torch.bool, device=got.device)
        for dtype in (old.dtype, torch.bfloat16, torch.float16):
            untouched |= (got == base.to(dtype).float()).all(dim=1)
        with torch.no_grad():
            new.data[:rows][untouched] = old[:rows][untouched].to(new.dtype)
        restored += int(untouched.sum())
    return restored


def merge_adapter(model: Any, lora: Path) -> Any:
    """``model`` with the adapter ``lora`` merged in; tied embeddings stay tied when the adapter
    trained them as one matrix, and are untied on purpose (config and log say so) when it holds
    two copies (an adapter from before zhllama kept the tie): re-tying would drop one of them."""
    from peft import PeftModel

    from zhllama.model.tying import embeddings_tied, tie_output_to_saved_input

    tied = embeddings_tied(model)
    peft_model = PeftModel.from_pretrained(model, str(lora))
    tie_output_to_saved_input(peft_model)
    merged = peft_model.merge_and_unload()
    if tied:
        if merged.get_output_embeddings().weight is merged.get_input_embeddings().weight:
            merged.config.tie_word_embeddings = True  # peft may have unset it while unloading
        else:
            merged.config.tie_word_embeddings = False
            log.warning("%s trained separate copies of the tied input and output embeddings; the merged model "
                        "keeps both and is saved with tie_word_embeddings=false", lora)
    return merged


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from zhllama.model.convert_gguf import model_dir

    base, out = model_dir(args.base), Path(args.out)  # a .gguf is converted once, then cached
    if not (base / "config.json").is_file():
        raise FileNotFoundError(f"--base {base}: no config.json; pass a Hugging Face model directory")
    # The first adapter was trained on --base (the later ones on the merge before them, not on disk).
    check_adapter_base(args.lora[0], base, args.allow_mismatch)
    model = merge_lora(base, args.lora, args.dtype)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer = args.tokenizer
    if tokenizer is None:
        with_tok = [Path(p) for p in args.lora if tokenizer_file(p) is not None]
        tokenizer = with_tok[-1] if with_tok else (base if tokenizer_file(base) is not None else None)
    if tokenizer is not None:
        copy_tokenizer_files(tokenizer, out)
    else:
        log.warning("no tokenizer found to copy into %s; pass --tokenizer", out)
    # The prompt format the model was trained on last (sft writes it into its adapter) outranks a
    # --tokenizer directory's, which carries the base's (extend-vocab copies SmolLM2's ChatML).
    trained = next((t for p in reversed(args.lora) if (t := read_chat_template(p)) is not None), None)
    if trained is not None:
        (out / CHAT_TEMPLATE_FILE).write_text(trained, encoding="utf-8")
    record = {"base": str(base), "loras": [str(p) for p in args.lora]}
    (out / "merge_lora.json").write_text(json.dumps(record, indent=2) + "\n")
    log.info("wrote %s", out)
    return 0

"""The one model loader: for training (:func:`load_model`) and for inference (:func:`load_for_inference`,
optionally with a LoRA adapter on top), with one dtype vocabulary (:data:`DTYPE_NAMES`)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from zhllama.model.identity import ALLOW_FLAG, ALLOW_HELP, check_adapter_base, check_model_tokenizer
from zhllama.tokenizer import Tokenizer
from zhllama.tokenizer.directory import tokenizer_file

DTYPES = ("auto", "float32", "float16", "bfloat16")  # --dtype of the inference verbs
# Every spelling zhllama accepts (--precision's bf16/fp16/fp32, --dtype's torch names) -> the torch name.
DTYPE_NAMES = {"fp32": "float32", "float32": "float32", "bf16": "bfloat16", "bfloat16": "bfloat16",
               "fp16": "float16", "float16": "float16"}


def torch_dtype(name: str):
    """The torch dtype of a name in :data:`DTYPE_NAMES`."""
    import torch

    return getattr(torch, DTYPE_NAMES[name])


def load_model(model_dir: str, vocab_size: int, precision: str = "fp32", attn_implementation: str = "sdpa"):
    """The model to train, its weights in ``precision`` (bf16/fp16/fp32), checked against the tokenizer.

    Weights load straight into the training dtype: in stage 2 and SFT almost all of them stay
    frozen, and a 7B model then holds ~13 GB instead of ~26 GB. Call
    :func:`zhllama.train.trainable.upcast_trainable` once the trainable tensors are chosen.
    Under a ZeRO-3 DeepSpeed config registered before this call (``zhllama.train.trainer.start_run``
    makes the TrainingArguments first), transformers builds the model inside ``deepspeed.zero.Init``:
    each rank holds only its partition of every weight.
    """
    from transformers import AutoModelForCausalLM

    if attn_implementation == "flash_attention_2" and precision not in ("bf16", "fp16"):
        raise ValueError(f"--attn-implementation flash_attention_2 runs in bf16 or fp16, not {precision}: pass "
                         f"--precision bf16 (or fp16), or use --attn-implementation sdpa")
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch_dtype(precision),
                                                 attn_implementation=attn_implementation)
    rows = model.config.vocab_size  # the embedding's own shape is a stub of 0 rows under ZeRO-3
    if rows < vocab_size:
        raise ValueError(f"the tokenizer has {vocab_size:,} tokens but the model {model_dir} has {rows:,} embedding "
                         f"rows; run `zhllama resize --model {model_dir} --tokenizer TOKENIZER --out DIR` first")
    model.config.use_cache = False
    return model


def add_model_arguments(parser) -> None:
    parser.add_argument("--model", required=True, help="Model directory (a merged model, or the base for --lora).")
    parser.add_argument("--lora", default=None, help="LoRA adapter directory to apply on top of --model (unmerged).")
    parser.add_argument("--tokenizer", default=None,
                        help="Tokenizer directory or tokenizer.model (default: --lora's, else --model's).")
    parser.add_argument("--dtype", choices=DTYPES, default="auto",
                        help="Weight dtype (auto: float32 on CPU, as saved on GPU).")
    parser.add_argument("--device", default=None, help="Device to run on (default: cuda if available, else cpu).")
    parser.add_argument(ALLOW_FLAG, action="store_true", help=ALLOW_HELP)


def load_for_inference(model_dir: str, lora: Optional[str], tokenizer: Optional[str], dtype: str = "auto",
                       device: Optional[str] = None, allow_mismatch: bool = False):
    """(model in eval mode on ``device``, Tokenizer); the model is resized to the adapter if needed.

    A pairing the records contradict (``zhllama.model.identity``: an adapter on another base, a
    tokenizer other than the model's or adapter's) is refused unless ``allow_mismatch``.
    """
    import torch
    from transformers import AutoModelForCausalLM

    if not (Path(model_dir) / "config.json").is_file():
        raise FileNotFoundError(f"--model {model_dir}: no config.json; pass a Hugging Face model directory")
    if lora is not None:
        check_adapter_base(lora, model_dir, allow_mismatch)
    if tokenizer is not None:
        check_model_tokenizer(lora if lora is not None else model_dir, tokenizer, allow_mismatch,
                              "--lora" if lora is not None else "--model")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    # On CPU, half precision is slow and inexact: compute in float32 unless told otherwise.
    dtype_ = ("auto" if device != "cpu" else torch.float32) if dtype == "auto" else torch_dtype(dtype)
    if lora is not None:
        from zhllama.model.merge_lora import merge_lora

        model = merge_lora(model_dir, [lora], "float32" if dtype_ == torch.float32 else dtype)
    else:
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype_)
    if tokenizer is None:
        tokenizer = lora if lora is not None and tokenizer_file(lora) is not None else model_dir
    tok: Tokenizer = Tokenizer.from_pretrained(tokenizer)
    rows = model.get_input_embeddings().weight.shape[0]
    if rows < len(tok):
        raise ValueError(f"the tokenizer {tok.source} has {len(tok):,} tokens but the model has {rows:,} rows; "
                         f"pass the tokenizer the model was trained with")
    return model.to(device).eval(), tok

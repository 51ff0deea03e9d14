"""Loading a model (optionally with a LoRA adapter on top) and its tokenizer for inference."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from zhllama.tokenizer import Tokenizer

DTYPES = ("auto", "float32", "float16", "bfloat16")


def add_model_arguments(parser) -> None:
    parser.add_argument("--model", required=True, help="Model directory (a merged model, or the base for --lora).")
    parser.add_argument("--lora", default=None, help="LoRA adapter directory to apply on top of --model (unmerged).")
    parser.add_argument("--tokenizer", default=None,
                        help="Tokenizer directory or tokenizer.model (default: --lora's, else --model's).")
    parser.add_argument("--dtype", choices=DTYPES, default="auto",
                        help="Weight dtype (auto: float32 on CPU, as saved on GPU).")
    parser.add_argument("--device", default=None, help="Device to run on (default: cuda if available, else cpu).")


def load_for_inference(model_dir: str, lora: Optional[str], tokenizer: Optional[str], dtype: str = "auto",
                       device: Optional[str] = None):
    """(model in eval mode on ``device``, Tokenizer); the model is resized to the adapter if needed."""
    import torch
    from transformers import AutoModelForCausalLM

    if not (Path(model_dir) / "config.json").is_file():
        raise FileNotFoundError(f"--model {model_dir}: no config.json; pass a Hugging Face model directory")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    # On CPU, half precision is slow and inexact: compute in float32 unless told otherwise.
    torch_dtype = ("auto" if device != "cpu" else torch.float32) if dtype == "auto" else getattr(torch, dtype)
    if lora is not None:
        from zhllama.model.merge_lora import merge_lora

        model = merge_lora(model_dir, [lora], "float32" if torch_dtype == torch.float32 else dtype)
    else:
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch_dtype)
    if tokenizer is None:
        tokenizer = lora if lora is not None and (Path(lora) / "tokenizer.model").is_file() else model_dir
    tok: Tokenizer = Tokenizer.from_pretrained(tokenizer)
    rows = model.get_input_embeddings().weight.shape[0]
    if rows < len(tok):
        raise ValueError(f"the tokenizer {tok.source} has {len(tok):,} tokens but the model has {rows:,} rows; "
                         f"pass the tokenizer the model was trained with")
    return model.to(device).eval(), tok

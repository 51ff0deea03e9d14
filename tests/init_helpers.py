"""Shared builders for the new-row init tests: SmolLM2's tokenizer extended with a few merges on
People's Daily, and a tiny random LLaMA over its base vocabulary (built in code, cached per process)."""

from __future__ import annotations

import functools
import json
import shutil
from pathlib import Path

import train_helpers as h
from fixture_paths import smollm2_dir

MERGES = 40


@functools.cache
def peoples_daily_jsonl(n: int = 300) -> Path:
    from zhllama.samples import peoples_daily

    out = h._TMP / f"pd-{n}.jsonl"
    out.write_text("".join(json.dumps({"text": d}, ensure_ascii=False) + "\n" for d in peoples_daily(n)),
                   encoding="utf-8")
    return out


@functools.cache
def smollm2_extended() -> Path:
    """SmolLM2's tokenizer + MERGES extend-vocab merges (several cut a character: byte-level tokens)."""
    out = h._TMP / "smollm2-ext"
    assert h.cli("extend-vocab", "--base", smollm2_dir().path, "--out", out, "--input", peoples_daily_jsonl(),
                 "--merges", MERGES, "--quiet") == 0
    return out


def bytelevel_model_dir(tie: bool, hidden: int = 16, seed: int = 0) -> Path:
    """A tiny random LLaMA over SmolLM2's base vocabulary, saved with SmolLM2's tokenizer."""
    import torch
    from transformers import LlamaForCausalLM

    from zhllama.tokenizer import Tokenizer

    out = h._TMP / f"bl-model-{'tied' if tie else 'untied'}-{hidden}-{seed}"
    if not out.exists():
        base = smollm2_dir().path
        torch.manual_seed(seed)
        model = LlamaForCausalLM(h.tiny_config(len(Tokenizer.from_pretrained(base)), tie=tie, hidden=hidden))
        model.save_pretrained(out)
        for f in base.iterdir():
            if f.name.startswith("tokenizer"):
                shutil.copyfile(f, out / f.name)
    return out

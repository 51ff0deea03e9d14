"""Builders for the export-gguf tests: tiny random LLaMA directories that carry real tokenizers,
export to GGUF, llama.cpp (llama-cpp-python) loading, and the text sets tokenization is checked on."""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path
from typing import Any, Optional

import pytest

_TMP = Path(tempfile.mkdtemp(prefix="zhllama-gguf-tests-"))
atexit.register(shutil.rmtree, _TMP, True)


def llama_cpp() -> Any:
    """llama-cpp-python, or a skip naming the install (CI installs it through zhllama[gguf])."""
    return pytest.importorskip("llama_cpp", reason="needs llama-cpp-python (llama.cpp itself): pip install "
                                                   "'zhllama[gguf]'")


def tiny_llama(vocab: int, hidden: int = 64, layers: int = 2, heads: int = 4, kv_heads: int = 2, tie: bool = False,
               seed: int = 0, std: float = 0.02, rope: Optional[dict] = None) -> Any:
    """A random LLaMA with grouped-query attention (the key permutation uses the KV head count)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                         num_attention_heads=heads, num_key_value_heads=kv_heads, max_position_embeddings=512,
                         tie_word_embeddings=tie, initializer_range=std, rms_norm_eps=1e-5)
    if rope is not None:
        config.rope_parameters = rope
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).eval()
    with torch.no_grad():  # norms away from 1, so that a wrong norm mapping shows in the logits
        for p in model.parameters():
            if p.dim() == 1:
                p.uniform_(0.5, 1.5)
    return model


def model_dir(tokenizer: Path, name: str, **kw: Any) -> Path:
    """A tiny random LLaMA saved with ``tokenizer`` (a directory or a .model file), sized to it."""
    from zhllama.tokenizer import Tokenizer
    from zhllama.tokenizer.directory import copy_tokenizer_files, write_tokenizer_dir_from_model

    out = _TMP / name
    if out.exists():
        return out
    tok_dir = tokenizer
    if tokenizer.is_file():
        tok_dir = _TMP / f"{name}-tokenizer"
        write_tokenizer_dir_from_model(tok_dir, tokenizer)
    model = tiny_llama(len(Tokenizer.from_pretrained(tok_dir)), **kw)
    model.save_pretrained(out)
    copy_tokenizer_files(tok_dir, out)
    return out


def export(model: Path, kind: str = "f16", name: Optional[str] = None, **kw: Any) -> Path:
    from zhllama.model.export_gguf import export_gguf

    out = _TMP / f"{name or model.name}-{kind}.gguf"
    if not out.exists():
        export_gguf(model, out, kind, **kw)
    return out


@functools.lru_cache(maxsize=8)
def vocab_only(gguf: Path) -> Any:
    """llama.cpp's tokenizer of ``gguf`` (the vocabulary alone is loaded)."""
    return llama_cpp().Llama(str(gguf), vocab_only=True, verbose=False)


def llama_tokenize(llm: Any, text: str) -> list[int]:
    """llama.cpp's ids of ``text``: no BOS, special-token text as text (zhllama's encode)."""
    return list(llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))


def full_model(gguf: Path, n_ctx: int = 512) -> Any:
    return llama_cpp().Llama(str(gguf), n_ctx=n_ctx, n_batch=n_ctx, logits_all=True, n_threads=1, verbose=False)


def llama_logits(llm: Any, ids: list[int]) -> Any:
    """llama.cpp's next-token logits at every position of ``ids`` (float32, [len(ids), vocab])."""
    import numpy as np

    llm.reset()
    llm.eval(ids)
    return np.array(llm.scores[: len(ids)], dtype=np.float32)


def llama_greedy(llm: Any, prompt: list[int], n: int) -> list[int]:
    """Greedy decoding by argmax of llama.cpp's logits (no sampler settings involved)."""
    import numpy as np

    llm.reset()
    llm.eval(prompt)
    out: list[int] = []
    for _ in range(n):
        nxt = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        out.append(nxt)
        llm.eval([nxt])
    return out

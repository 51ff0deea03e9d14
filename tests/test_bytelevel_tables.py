"""The byte-level tables have one home, the Rust core (``_native.bytelevel_tables()``), and equal
their owners' own definitions: LLaMA-3's pattern and 256 special tokens (``llama_models``'
tokenizer), LLaMA-4's o200k pattern, Tekken's (``mistral_common``'s tekken json), GPT-2's byte
alphabet (``transformers``' ``bytes_to_unicode``); the Python loader reads the same tables."""

from __future__ import annotations

import json

import pytest

import fixture_paths as fp
from zhllama import _native
from zhllama.tokenizer import bytelevel_base

TABLES = _native.bytelevel_tables()


def test_llama3_pattern_and_specials_equal_metas():
    pytest.importorskip("tiktoken", reason="llama_models' tokenizer imports tiktoken")
    from llama_models.llama3.tokenizer import Tokenizer as Llama3

    meta = Llama3(fp.llama3_tiktoken().path)
    assert TABLES["patterns"]["llama3"] == meta.pat_str == bytelevel_base.LLAMA3_PATTERN
    ours = {t: TABLES["llama3_base_tokens"] + i for i, t in enumerate(TABLES["llama3_specials"])}
    assert ours == meta.special_tokens
    assert bytelevel_base.llama3_specials() == TABLES["llama3_specials"]
    assert fp.llama3_special_tokens() == ours


def test_o200k_and_tekken_patterns_equal_their_owners():
    from llama_models.llama4.tokenizer import Tokenizer as Llama4

    assert TABLES["patterns"]["o200k"] == Llama4.O200K_PATTERN
    tekken = fp._package_dir("mistral_common", "mistral-common", "Tekken") / "data" / "tekken_240911.json"
    assert TABLES["patterns"]["tekken"] == json.loads(tekken.read_text(encoding="utf-8"))["config"]["pattern"]


def test_byte_alphabet_equals_gpt2s():
    pytest.importorskip("transformers")
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    assert dict(enumerate(TABLES["byte_alphabet"])) == bytes_to_unicode() == bytelevel_base.byte_to_unicode()

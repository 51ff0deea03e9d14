"""Hypothesis-generated strings against sentencepiece: whitespace runs, leading and trailing
spaces, U+2581, fullwidth forms, emoji and ZWJ sequences, combining marks, astral CJK, control
characters, and long lines, on the LLaMA BPE, the Chinese Unigram and the reference merge."""

from __future__ import annotations

import pytest
import sentencepiece as spm
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zhllama import Tokenizer

ATOMS = [
    " ",
    "  ",
    "\t",
    "\n",
    "\r\n",
    "\u3000",
    "\u00a0",
    "\u2581",
    "\u200d",
    "\u200b",
    "\ufeff",
    "\u0301",
    "\u0308",
    "👩\u200d💻",
    "👍🏽",
    "🇨🇳",
    "\U00020000",
    "\U0002b740",
    "Ａ",
    "１",
    "％",
    "ｶ",
    "中",
    "国",
    "人民",
    "越来越",
    "意大利",
    "1949",
    "the",
    " the",
    "ing",
    "<s>",
    "<unk>",
    "\x00",
    "\x1f",
    "\x7f",
    "\ud7ff",
    "\ue000",
    "\U0010fffd",
]

pieces = st.one_of(
    st.sampled_from(ATOMS),
    st.text(min_size=1, max_size=6),
    st.text(st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF), min_size=1, max_size=8),
    st.text(st.characters(codec="ascii"), min_size=1, max_size=8),
)
texts = st.lists(pieces, max_size=40).map("".join)

MODELS = ["llama_model", "chinese_model", "reference_merge"]


@pytest.fixture(scope="module", params=MODELS)
def pair(request):
    path = request.getfixturevalue(request.param)
    return spm.SentencePieceProcessor(model_file=str(path)), Tokenizer.from_file(path)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=texts)
def test_encode_decode_match(pair, text):
    sp, tok = pair
    want = sp.encode(text)
    assert tok.encode(text) == want
    assert tok.decode(want) == sp.decode(want)
    assert tok.encode(text, add_bos=True, add_eos=True) == sp.encode(text, add_bos=True, add_eos=True)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ids=st.lists(st.integers(min_value=0, max_value=31999), max_size=30))
def test_decode_arbitrary_ids(pair, ids):
    # Any id sequence, not only the encoder's: byte pieces that do not form UTF-8, control
    # and unknown pieces in odd places, leading-space handling.
    sp, tok = pair
    ids = [i % tok.vocab_size for i in ids]
    assert tok.decode(ids) == sp.decode(ids)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(unit=texts, reps=st.integers(min_value=1000, max_value=4000))
def test_long_lines(pair, unit, reps):
    sp, tok = pair
    text = (unit or "中文 text ") * reps
    if len(text) < 100_000:
        text = text * (100_000 // max(1, len(text)) + 1)
    assert tok.encode(text) == sp.encode(text)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=64))
def test_invalid_utf8_bytes(pair, data):
    # sentencepiece's normalizer turns each malformed byte into U+FFFD.
    sp, tok = pair
    assert tok.encode_bytes(data) == sp.encode(data)

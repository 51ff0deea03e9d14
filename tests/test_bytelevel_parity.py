"""Byte-level BPE parity on real text: SmolLM2 (HF tokenizer.json) and LLaMA-3 (its tiktoken file,
and the same model as a HF tokenizer.json) against HF tokenizers / tiktoken on People's Daily,
English docstrings, Python source and the hand-picked edge cases; special-token text in both
modes. Zero encode and zero decode mismatches."""

from __future__ import annotations

import pytest

from bytelevel_oracles import NAMES, compare, oracle
from conftest import TRICKY

SPECIALS_AS_TEXT = [
    "<|begin_of_text|>hello<|end_of_text|>",
    "a <|eot_id|>\n<|start_header_id|>user<|end_header_id|>",
    "<|im_start|>system\nYou are<|im_end|>\n<|endoftext|>",
    "<|reserved_special_token_0|><|reserved_special_token_247|> <|im_end|>x",
    " <|endoftext|> <|begin_of_text|>  <|begin_of_text|",
]


@pytest.fixture(scope="module", params=NAMES)
def o(request):
    return oracle(request.param)


def test_peoples_daily(o, peoples_daily):
    compare(o, peoples_daily[:6000]).check()


def test_docstrings_and_code(o, stdlib_docs):
    from zhllama.samples import stdlib_sources

    compare(o, stdlib_docs[:2000] + stdlib_sources(limit=150)).check()


def test_tricky(o):
    extra = ["don't I'LL 'S 'ſ x'", "  \r\n\r\n  x\r\n", "x\u0301y ²³⁴⁵ 一二三 ①②", "1234567 12 1",
             "\u2581hello \u2581\u2581", "ＡＢＣ１２３，。", "\x00\x01\x1b[0m\x7f\x85", "\u00a0\u2028\u2029x",
             "a\rb \r\nc\n\rd .e'f 中ア・イ゛ー 1234年"]
    compare(o, TRICKY + extra + SPECIALS_AS_TEXT).check()


@pytest.mark.parametrize("parse_special", [False, True])
def test_special_text_both_modes(o, parse_special):
    r = compare(o, SPECIALS_AS_TEXT, parse_special=parse_special)
    r.check()


def test_default_treats_special_text_as_text(o):
    if o.name in ("llama4-json", "tekken-json"):
        pytest.skip("the converted LLaMA-4 and Tekken files carry no special tokens")
    text = "<|begin_of_text|><|im_start|><|endoftext|>"
    ids = o.tok.encode(text)
    assert not any(o.tok.piece_type(i).name == "CONTROL" for i in ids)
    assert o.tok.decode(ids) == text
    parsed = o.tok.encode(text, parse_special=True)
    assert len(parsed) < len(ids)


def test_decode_split_characters(o):
    """A character cut between ids decodes to U+FFFD in each half, as the oracle does; the
    exact bytes come back from decode_bytes."""
    ids = o.tok.encode("😀中文 x")
    for cut in range(1, len(ids)):
        for part in (ids[:cut], ids[cut:]):
            assert o.tok.decode(part) == o.decode(part)
    assert o.tok.decode_bytes(ids) == "😀中文 x".encode()

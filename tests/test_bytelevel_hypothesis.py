"""Hypothesis strings against the byte-level oracles (HF tokenizers, tiktoken): whitespace runs,
CRLF, apostrophes and contractions in both cases, digits of every script, emoji and ZWJ
sequences, combining marks, U+2581, fullwidth forms, controls, special-token text (both modes),
random ids for decode (characters cut between ids), and invalid UTF-8 as read from a file."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bytelevel_oracles import CASE_CLASS_NAMES, NAMES, compare, oracle

ATOMS = [
    " ", "  ", "\t", "\n", "\r", "\r\n", "\n\r", "\u3000", "\u00a0", "\u0085", "\u2028", "\u2581", "\u200d",
    "\u200b", "\ufeff", "\u0301", "\u0308", "👩\u200d💻", "👍🏽", "🇨🇳", "\U00020000", "Ａ", "１", "％", "ｶ",
    "中", "人民",
    "'", "'s", "'S", "'t", "'re", "'RE", "'ve", "'m", "'ll", "'LL", "'d", "'ſ", "ſ", "K", "1", "12", "1234",
    "٣", "²", "Ⅻ", "①", "the", " the", "Hello", "(", ")", "...", "!!", "-", "_", "\\", "\x00", "\x1f", "\x7f",
    "<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>", "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|",
    "|>", "\ue000", "\U0010fffd", "\U0001f600", "A", "AB", "Ab", "aB", "ǅ", "ʰ", "𝐀", "𝐚", "/", "//", "\u0301A", "'LL",
    "ア・イ", "゛", "ー", "\u3040", "\u9fa6", ".abc", "-x", "١",
]
pieces = st.one_of(
    st.sampled_from(ATOMS),
    st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=6),
    st.text(st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF), min_size=1, max_size=8),
    st.text(st.characters(codec="ascii"), min_size=1, max_size=8),
)
texts = st.lists(pieces, max_size=40).map("".join)
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


# The real LLaMA-4 and Tekken vocabularies are in the parity tests; their patterns are here on
# LLaMA-3's vocabulary (o200k-style, tekken-style), which keeps this file's time down.
@pytest.fixture(scope="module", params=[n for n in NAMES if n not in ("llama4-json", "tekken-json")])
def o(request):
    return oracle(request.param)


@SETTINGS
@given(text=texts, parse_special=st.booleans())
def test_strings(o, text, parse_special):
    compare(o, [text], parse_special=parse_special).check()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ids=st.lists(st.integers(min_value=0, max_value=49151), max_size=30))
def test_decode_random_ids(o, ids):
    assert o.tok.decode(ids) == o.decode(ids)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=64))
def test_invalid_utf8_as_read_from_a_file(o, data):
    """Bytes that are not UTF-8 encode as the text Python reads with errors="replace" (one U+FFFD
    per maximal invalid sequence): the ids the oracle gives for what a reader hands it."""
    text = data.decode("utf-8", "replace")
    assert o.tok.encode_bytes(data, add_bos=True) == o.encode([text], False)[0]


@pytest.mark.slow
def test_every_code_point(o):
    """Every code point (but surrogates) inside letters, after a space, before a digit and after an
    apostrophe: the character classes equal the oracle's Unicode version everywhere. The case-class
    patterns (o200k, Tekken) also after a lowercase and before an uppercase letter, and before an
    uppercase letter and a contraction (U and W membership apart); DeepSeek-V3's beside CJK and
    after ASCII punctuation."""
    extra = " a{0}B {0}B'{0}S" if o.name in CASE_CLASS_NAMES else ""
    if o.name == "deepseek3-style":  # beside CJK (its second stage), after ASCII punctuation (its first rule)
        extra = " 中{0}.{0}a"
    texts = [f"x{chr(c)}y {chr(c)}1'{chr(c)}" + extra.format(chr(c))
             for c in range(0x110000) if not 0xD800 <= c < 0xE000]
    want = o.encode(texts, False)
    got = o.tok.encode_batch(texts, add_bos=True)
    bad = [hex(ord(t[1])) for t, a, b in zip(texts, want, got) if a != b]
    assert not bad, f"{len(bad)} code points differ: {bad[:20]}"

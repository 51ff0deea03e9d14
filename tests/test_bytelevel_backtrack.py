"""Long pre-tokens against the byte-level oracles: the backtracking encoder
(``rust/core/src/bytelevel/backtrack.rs``) encodes every piece the pre-token cache does not hold,
and is longest on long pieces, where a mistake in its pair check or its dead-end marks would
show. Hypothesis texts of long Han runs (a clause of Chinese is one pre-token under every
pattern), one character or syllable repeated hundreds of times (many dead ends), long Latin
words in mixed case and long runs of spaces, on SmolLM2 (HF merges, not from ranks), LLaMA-3
(tiktoken file and tokenizer.json: its vocabulary has tokens built by merges of decreasing rank,
checked the slow way), Qwen2's pattern, and the real LLaMA-4 and Tekken vocabularies."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bytelevel_oracles import compare, oracle

COMMON = ("的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年得就那要下以生会自着去之过家学对可她里后小么"
          "心多天而能好都然没日于起还发成事只作当想看文无开手十用主行方又如前所本见经头面公同三已老从动两长知民样现")
han = st.one_of(
    st.text(st.sampled_from(COMMON), min_size=20, max_size=400),
    st.text(st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF), min_size=20, max_size=200),
)
repeated = st.builds(lambda unit, n: unit * n, st.sampled_from(["哈", "的的", "啊哈", "a", "ab", "Ab", " ", "ー", "é"]),
                     st.integers(20, 300))
latin = st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"), min_size=20, max_size=200)
runs = st.lists(st.one_of(han, han, repeated, latin), min_size=1, max_size=4)
texts = st.builds(lambda parts, sep: sep.join(parts), runs, st.sampled_from(["", "，", "。", " ", "\n"]))


@pytest.fixture(scope="module", params=["smollm2", "llama3-tiktoken", "llama3-json", "qwen2-style", "llama4-json",
                                        "tekken-json"])
def o(request):
    return oracle(request.param)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=texts)
def test_long_pieces(o, text):
    compare(o, [text], decode=False).check()


def test_long_runs_of_every_kind(o):
    """Fixed long cases, so a failure does not depend on the examples hypothesis draws."""
    cases = ["哈" * 1000, "的的" * 400, "人民" * 300 + "日报", " " * 500 + "x", "ab" * 600, "A" * 700 + "bc",
             COMMON * 3, "".join(COMMON[i::7] for i in range(7)) * 2, "ーー" * 200, "é" * 300]
    compare(o, cases, decode=False).check()

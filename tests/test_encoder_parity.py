"""Differential parity against sentencepiece on the fixtures, the reference 49,953 merge,
zhllama's default merge and real text (People's Daily, stdlib docstrings). Zero mismatches."""

from __future__ import annotations

import pytest

from conftest import TRICKY, assert_parity


def _long_line(docs: list[str], chars: int = 120_000) -> str:
    out, n = [], 0
    for d in docs:
        out.append(d)
        n += len(d)
        if n >= chars:
            break
    return "".join(out)


@pytest.mark.parametrize("name", ["llama_model", "chinese_model", "reference_merge", "default_merge"])
def test_peoples_daily(name, request, peoples_daily):
    model = request.getfixturevalue(name)
    r = assert_parity(model, peoples_daily)
    assert r.texts > 19_000


@pytest.mark.parametrize("name", ["llama_model", "chinese_model", "reference_merge", "default_merge"])
def test_english_code_and_edge_cases(name, request, stdlib_docs, peoples_daily):
    model = request.getfixturevalue(name)
    texts = TRICKY + stdlib_docs + [_long_line(peoples_daily), _long_line(stdlib_docs)]
    assert_parity(model, texts)


def test_mixed_lines_and_whitespace_runs(reference_merge, peoples_daily, stdlib_docs):
    # Chinese and English glued with assorted whitespace: the chunking at uncrossable
    # boundaries and whitespace-only pieces ("▁▁▁▁") both matter here.
    seps = [" ", "  ", "\n", "\t", " \u3000 ", "", "    "]
    texts = [
        seps[i % len(seps)].join([peoples_daily[i], stdlib_docs[i % len(stdlib_docs)][:200], " " * (i % 9)])
        for i in range(2000)
    ]
    assert_parity(reference_merge, texts, bos_eos=False)

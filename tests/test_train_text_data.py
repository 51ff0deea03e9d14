"""pretrain --train-file: streamed, compact (int32), same blocks as the whole-list packing, size guard."""

from __future__ import annotations

import tracemalloc

import pytest

from corpus_helpers import generated_docs, pd_docs
from fixture_paths import llama_tokenizer

torch = pytest.importorskip("torch")

from zhllama.corpus.packing import Packing  # noqa: E402
from zhllama.tokenizer import Tokenizer  # noqa: E402
from zhllama.train import text_data  # noqa: E402
from zhllama.train.text_data import PackedTextDataset  # noqa: E402

BLOCK = 64


@pytest.fixture(scope="module")
def tok():
    return Tokenizer.from_file(llama_tokenizer().path)


@pytest.fixture(scope="module")
def texts(tmp_path_factory):
    """Two files of real text (People's Daily), with blank lines and a long document mixed in."""
    d = tmp_path_factory.mktemp("text")
    docs = pd_docs(600)
    a = docs[:400] + ["", "   ", "".join(docs[400:450])] + generated_docs(50)
    (d / "a.txt").write_text("\n".join(a) + "\n", encoding="utf-8")
    (d / "b.txt").write_text("\n".join(docs[450:]), encoding="utf-8")
    return [d / "a.txt", d / "b.txt"], [x for x in a if x.strip()] + docs[450:]


def reference_blocks(tok, docs, packing):
    """What from_files built before streaming: every document's ids in one Python list."""
    ids = packing.encode(tok, docs)
    stream = torch.tensor([t for doc in ids for t in doc], dtype=torch.long)
    n = stream.numel() // BLOCK
    return stream[: n * BLOCK].view(n, BLOCK)


@pytest.mark.parametrize("packing", [Packing(), Packing(append_eos=False, add_bos=True)])
def test_streamed_blocks_equal_the_whole_list_packing(texts, tok, monkeypatch, packing):
    files, docs = texts
    monkeypatch.setattr(text_data, "_BATCH_DOCS", 37)  # many small batches, some split mid-file
    monkeypatch.setattr(text_data, "_BATCH_CHARS", 5000)
    ds = PackedTextDataset.from_files(files, tok, BLOCK, packing=packing)
    ref = reference_blocks(tok, docs, packing)
    assert len(ds) == ref.shape[0] > 100
    assert torch.equal(ds.blocks.long(), ref)
    item = ds[len(ds) // 2]
    assert item["input_ids"].dtype == torch.long and torch.equal(item["input_ids"], ref[len(ds) // 2])
    assert torch.equal(item["labels"], item["input_ids"]) and item["labels"] is not item["input_ids"]


def test_one_batch_and_many_batches_agree(texts, tok, monkeypatch):
    files, _ = texts
    whole = PackedTextDataset.from_files(files, tok, BLOCK)
    monkeypatch.setattr(text_data, "_BATCH_DOCS", 1)
    assert torch.equal(PackedTextDataset.from_files(files, tok, BLOCK).blocks, whole.blocks)


def test_progress_bar_follows_the_bytes_read(tmp_path, tok, monkeypatch):
    """The bar (a terminal, rank 0, a large input: all forced here) advances by the reader's
    on-disk bytes, never past the files' size, and ends at it; the blocks do not change."""
    import sys

    from tqdm import tqdm

    docs = pd_docs(3000)
    files = [tmp_path / "a.txt", tmp_path / "b.txt"]  # ~2.5 MB each: more than one read-ahead
    for f in files:
        f.write_text("\n".join(docs * 4) + "\n", encoding="utf-8")
    quiet = PackedTextDataset.from_files(files, tok, BLOCK)
    positions: list[int] = []
    real_update = tqdm.update

    def update(self, n=1):
        out = real_update(self, n)
        positions.append(self.n)
        return out

    monkeypatch.setattr(tqdm, "update", update)
    monkeypatch.setattr(text_data, "_PROGRESS_BYTES", 0)
    monkeypatch.setattr(text_data, "_BATCH_DOCS", 50)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    shown = PackedTextDataset.from_files(files, tok, BLOCK)
    total = sum(f.stat().st_size for f in files)
    assert torch.equal(shown.blocks, quiet.blocks)
    assert len(positions) > 5 and positions == sorted(positions) and positions[-1] == total
    assert 0 < positions[0] < total


def test_tokens_are_stored_as_int32(texts, tok, monkeypatch):
    """4 bytes a token: no Python int per token, no int64 copy of the stream."""
    files, _ = texts
    monkeypatch.setattr(text_data, "_BATCH_CHARS", 20_000)
    tracemalloc.start()
    try:
        ds = PackedTextDataset.from_files(files, tok, BLOCK)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    tokens = ds.blocks.numel()
    assert ds.blocks.dtype == torch.int32 and ds.blocks.is_contiguous()
    assert ds.blocks.untyped_storage().nbytes() < 4 * (tokens + BLOCK)
    # The whole-list packing peaked at ~21 traced bytes a token here (its lists of ints);
    # streaming at ~6 (the int32 stream and one batch of text).
    assert peak < 12 * tokens, f"{peak / tokens:.1f} traced bytes a token"


def test_an_input_over_the_limit_is_refused_before_reading(tmp_path, tok):
    big = tmp_path / "big.txt"
    big.write_text("一行中文。\n" * 100, encoding="utf-8")
    size = big.stat().st_size
    with pytest.raises(ValueError) as e:
        PackedTextDataset.from_files([big], tok, BLOCK, max_bytes=1000)
    msg = str(e.value)
    assert "\n" not in msg
    assert str(big) in msg and "1.56 KiB" in msg and "1000 B" in msg  # 1600 bytes
    assert "zhllama tokenize-corpus" in msg and "--dataset-dir" in msg and "--max-train-file-gib" in msg
    # a directory counts every file in it; under the limit (or with none) it trains
    with pytest.raises(ValueError, match=r"2 files \(largest .*big\.txt\)"):
        (tmp_path / "small.txt").write_text("好\n", encoding="utf-8")
        PackedTextDataset.from_files([tmp_path], tok, 1, max_bytes=size)
    assert len(PackedTextDataset.from_files([big], tok, 1, max_bytes=None)) > 0
    assert len(PackedTextDataset.from_files([big], tok, 1, max_bytes=size)) > 0


def test_pretrain_flag_sets_the_limit(tmp_path):
    from test_train_args import parsed
    from zhllama.train.pretrain import PretrainArguments

    (tmp_path / "m").mkdir()
    base = ("pretrain", "--stage", 2, "--model", tmp_path / "m", "--train-file", "t.txt", "--output-dir", "o")
    assert parsed(*base)[0].max_train_file_bytes == 2**30 == int(text_data.MAX_TRAIN_FILE_GIB * 2**30)
    assert parsed(*base, "--max-train-file-gib", "0.5")[0].max_train_file_bytes == 2**29
    assert parsed(*base, "--max-train-file-gib", "0")[0].max_train_file_bytes is None
    with pytest.raises(ValueError, match="max-train-file-gib"):
        PretrainArguments(stage=2, train_file="t.txt", max_train_file_gib=-1)

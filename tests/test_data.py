"""TokenizedCorpus and PackedDataset over a tokenize-corpus output."""

from __future__ import annotations

from itertools import chain

import numpy as np
import pytest
import sentencepiece as spm

from corpus_helpers import cli, pd_docs
from fixture_paths import llama_tokenizer
from zhllama.corpus.dataset import PackedDataset, TokenizedCorpus, to_hf_dataset

torch = pytest.importorskip("torch")
BLOCK = 64


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    model = llama_tokenizer().path
    d = tmp_path_factory.mktemp("data")
    docs = pd_docs(400)
    (d / "c.txt").write_text("\n".join(docs) + "\n", encoding="utf-8")
    assert cli("--tokenizer", str(model), "--input", str(d / "c.txt"), "--out", str(d / "o"),
               "--shard-size", "8KB", "--quiet") == 0
    sp = spm.SentencePieceProcessor(model_file=str(model))
    return d / "o", [ids + [sp.eos_id()] for ids in sp.encode(docs)]


def group_texts(docs: list[list[int]], block: int) -> list[list[int]]:
    """transformers' run_clm group_texts, applied to the whole corpus at once."""
    cat = list(chain(*docs))
    n = len(cat) // block * block
    return [cat[i : i + block] for i in range(0, n, block)]


def test_tokenized_corpus_docs_are_memmap_views(corpus):
    out, expected = corpus
    c = TokenizedCorpus(out)
    assert len(c) == len(expected) and c.num_tokens == sum(map(len, expected)) and c.num_shards > 3
    assert [c.doc(i).tolist() for i in range(len(c))] == expected
    assert isinstance(c.doc(5).base, np.memmap) or isinstance(c.doc(5), np.memmap)
    assert c.doc(-1).tolist() == expected[-1]
    with pytest.raises(IndexError):
        c.doc(len(c))


def test_blocks_equal_group_texts_over_the_whole_corpus(corpus):
    out, expected = corpus
    ds = PackedDataset(out, block_size=BLOCK)
    blocks = group_texts(expected, BLOCK)
    assert len(ds) == len(blocks)
    for i in (0, 1, len(ds) // 2, len(ds) - 1):
        item = ds[i]
        assert item["input_ids"].dtype == torch.long and item["input_ids"].tolist() == blocks[i]
        assert torch.equal(item["labels"], item["input_ids"])
    assert [ds.block(i).tolist() for i in range(len(ds))] == blocks


def test_shuffle_is_deterministic(corpus):
    out, expected = corpus
    blocks = group_texts(expected, BLOCK)
    a, b, c = (PackedDataset(out, block_size=BLOCK, seed=s) for s in (7, 7, 8))
    order_a = [a.block_id(i) for i in range(len(a))]
    assert order_a == [b.block_id(i) for i in range(len(b))]
    assert order_a != [c.block_id(i) for i in range(len(c))]
    assert sorted(order_a) == list(range(len(blocks))) and order_a != sorted(order_a)
    assert a[3]["input_ids"].tolist() == blocks[order_a[3]]


def test_dataloader_workers_and_distributed_sampler(corpus):
    from torch.utils.data import DataLoader, DistributedSampler

    out, _ = corpus
    ds = PackedDataset(out, block_size=BLOCK, seed=1)
    direct = torch.stack([ds[i]["input_ids"] for i in range(len(ds))])
    loaded = torch.cat([b["input_ids"] for b in DataLoader(ds, batch_size=8, num_workers=2)])
    assert torch.equal(direct, loaded)
    seen = []
    for rank in range(2):
        sampler = DistributedSampler(ds, num_replicas=2, rank=rank, shuffle=False)
        seen.extend(sampler)
    assert sorted(set(seen)) == list(range(len(ds)))


def test_to_hf_dataset(corpus, tmp_path, monkeypatch):
    pytest.importorskip("datasets")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path))
    out, expected = corpus
    hf = to_hf_dataset(out, block_size=BLOCK, seed=3)
    ds = PackedDataset(out, block_size=BLOCK, seed=3)
    assert len(hf) == len(ds)
    assert hf[0]["input_ids"] == ds[0]["input_ids"].tolist() == hf[0]["labels"]


def test_train_file_and_dataset_dir_pack_the_same_blocks(corpus, tmp_path):
    """--train-file (raw text) and tokenize-corpus + --dataset-dir: one packing (doc </s>)."""
    from zhllama.tokenizer import Tokenizer
    from zhllama.train.text_data import PackedTextDataset, load_tokenized_corpus

    out, _ = corpus
    text = out.parent / "c.txt"
    raw = PackedTextDataset.from_files([text], Tokenizer.from_file(llama_tokenizer().path), BLOCK)
    shards = PackedDataset(out, block_size=BLOCK)
    assert len(raw) == len(shards) > 10
    assert all(torch.equal(raw[i]["input_ids"], shards[i]["input_ids"]) for i in range(len(raw)))
    # pretrain --dataset-dir visits the same blocks in a seeded order.
    seeded = load_tokenized_corpus(out, BLOCK, seed=3)
    assert sorted(seeded[i]["input_ids"].tolist() for i in range(len(seeded))) == sorted(b.tolist() for b in raw.blocks)

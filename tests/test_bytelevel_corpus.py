"""tokenize-corpus with byte-level tokenizers: LLaMA-3 (128,256 ids) writes int32 shards (Megatron
dtype code 4), SmolLM2 (49,152) uint16 (code 8); every document's ids equal the oracle's
(tiktoken / HF tokenizers, the text as Python reads the file with errors="replace"), EOS is the
tokenizer's; megatron-core's IndexedDataset reads the shards."""

from __future__ import annotations

import json
import os

import pytest

import fixture_paths as fp
from bytelevel_oracles import oracle
from corpus_helpers import cli, invalid_utf8_lines, pd_docs
from zhllama.corpus.dataset import TokenizedCorpus


def _write_corpus(path):
    lines = [d.encode() for d in pd_docs(200)] + [b"<|begin_of_text|> special text stays text <|im_end|>",
                                                   b"  code:\tx = 1  \r", *invalid_utf8_lines()]
    path.write_bytes(b"\n".join(lines) + b"\n")
    return [line.rstrip(b"\r").decode("utf-8", "replace") for line in lines if line.strip()]


@pytest.mark.parametrize("name,code", [("llama3-tiktoken", 4), ("smollm2", 8)])
def test_shards_equal_the_oracle_and_megatron_reads_them(tmp_path, name, code):
    o = oracle(name)
    src = fp.llama3_tiktoken().path if name == "llama3-tiktoken" else fp.smollm2_dir().path
    texts = _write_corpus(tmp_path / "c.txt")
    assert cli("--tokenizer", str(src), "--input", str(tmp_path / "c.txt"), "--out", str(tmp_path / "o"),
               "--shard-size", "16KB", "--append-eos", "--no-add-bos", "--quiet") == 0
    manifest = json.loads((tmp_path / "o" / "manifest.json").read_text())
    assert manifest["megatron_dtype_code"] == code and manifest["vocab_size"] == o.tok.vocab_size
    c = TokenizedCorpus(tmp_path / "o")
    ours = [c.doc(i).tolist() for i in range(len(c))]
    eos = o.tok.eos_id
    skip = 0 if o.tok.bos_id is None else 1  # the oracle's ids without the BOS its post-processor adds
    want = [ids[skip:] + [eos] for ids in o.encode(texts, False)]
    assert len(ours) == len(want)
    bad = [i for i, (a, b) in enumerate(zip(ours, want)) if a != b]
    assert not bad, f"{len(bad)} documents differ, first {texts[bad[0]][:60]!r}"
    indexed = pytest.importorskip("megatron.core.datasets.indexed_dataset",
                                  reason="pip install --no-deps megatron-core==0.16.1")
    theirs = []
    for s in manifest["shards"]:
        ds = indexed.IndexedDataset(os.path.join(tmp_path, "o", s["name"]))
        theirs.extend(ds[i].tolist() for i in range(len(ds)))
    assert theirs == ours
    if code == 4:
        assert max(max(d) for d in ours) >= 1 << 16  # EOS 128001 only fits int32

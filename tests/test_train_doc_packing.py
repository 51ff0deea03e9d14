"""--packing doc: position_ids restart at each document, attention stays inside it. On CPU: the logits
of a packed block equal the logits of its documents run one by one (sdpa and eager)."""

from __future__ import annotations

import json

import pytest
import torch

import train_helpers as h

transformers = pytest.importorskip("transformers")

from zhllama.corpus.packing import Packing  # noqa: E402
from zhllama.train.doc_packing import DocumentCollator, restart_positions  # noqa: E402

EOS, BOS = 2, 1


def _docs():
    g = torch.Generator().manual_seed(0)
    return [torch.randint(3, 400, (n,), generator=g).tolist() + [EOS] for n in (7, 12, 5, 9)]


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
@pytest.mark.parametrize("flatten", [False, True])
def test_packed_block_logits_equal_each_document_alone(attn, flatten):
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(h.tiny_config(410)).eval()
    model.config._attn_implementation = attn
    docs = _docs()
    a = docs[0] + docs[1]  # two blocks of whole documents
    b = docs[2] + docs[3]
    n = max(len(a), len(b))
    a, b = a + [5] * (n - len(a)), b + [6] * (n - len(b))  # a tail of a next document, cut by the block end
    batch = DocumentCollator(Packing(), BOS, EOS, flatten=flatten)(
        [{"input_ids": a, "labels": a}, {"input_ids": b, "labels": b}])
    with torch.no_grad():
        # use_cache=False as in training (load_model): packing is read from position_ids only without a cache
        logits = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"],
                       use_cache=False).logits.reshape(2, n, -1)
        offsets = ((0, 0), (0, len(docs[0])), (1, 0), (1, len(docs[2])))
        for doc, (row, start) in zip(docs, offsets):
            alone = model(input_ids=torch.tensor([doc])).logits[0]
            assert torch.allclose(logits[row, start:start + len(doc)], alone, atol=1e-5), (attn, row, start)
    labels = batch["labels"].reshape(2, n)
    # Each document's first token is no target of the EOS before it.
    assert labels[0, len(docs[0])] == -100 and labels[1, len(docs[2])] == -100
    assert labels[0, 1:len(docs[0])].tolist() == docs[0][1:]


def test_positions_restart_at_each_start():
    starts = torch.tensor([[True, False, False, True, False, True, False]])
    assert restart_positions(starts).tolist() == [[0, 1, 2, 0, 1, 0, 1]]
    # With BOS-first packing, documents start at each BOS.
    ids = torch.tensor([[BOS, 9, 9, BOS, 9]])
    out = DocumentCollator(Packing(append_eos=False, add_bos=True), BOS, EOS)([{"input_ids": ids[0], "labels": ids[0]}])
    assert out["position_ids"].tolist() == [[0, 1, 2, 0, 1]]
    with pytest.raises(ValueError, match="--packing doc needs documents marked"):
        DocumentCollator(Packing(append_eos=False, add_bos=False), BOS, EOS)([{"input_ids": ids[0],
                                                                                 "labels": ids[0]}])


def test_pretrain_packing_doc(resized, text_file, tmp_path):
    pytest.importorskip("peft")
    out = tmp_path / "doc"
    assert h.cli("pretrain", "--stage", "2", "--model", resized, "--train-file", text_file, "--output-dir", out,
                 "--block-size", "64", "--max-steps", "2", "--save-steps", "5", "--report-to", "none",
                 "--packing", "doc", "--validation-split-percentage", "10") == 0
    fp = json.loads((out / "zhllama-run.json").read_text())
    assert fp["settings"]["packing"] == "doc"
    metrics = json.loads((out / "zhllama_metrics.json").read_text())
    assert "eval_loss" in metrics

"""Sizes under ZeRO-3, where every parameter is a 0-element placeholder: stage 1, --new-rows-only and
the logged trainable share and FLOPs across 2 CPU processes (torchrun, gloo), as on a cluster.

Each run is checked against the same figures computed on the model loaded whole in one process.
"""

from __future__ import annotations

import json
import math

import pytest

import train_helpers as h
from test_train_deepspeed import _torchrun

pytest.importorskip("deepspeed")
pytest.importorskip("peft")
torch = pytest.importorskip("torch")


def _run(resized, text_file, out, *extra):
    """The run's metrics and its log."""
    proc = _torchrun("pretrain", "--model", resized, "--train-file", text_file, "--output-dir", out,
                     "--block-size", "32", "--max-steps", "2", "--save-steps", "10", "--logging-steps", "1",
                     "--report-to", "none", "--per-device-train-batch-size", "1", "--validation-split-percentage",
                     "0", *extra, "--deepspeed", h.REPO / "configs" / "ds_zero3.json")
    return json.loads((out / "zhllama_metrics.json").read_text()), proc.stdout + proc.stderr


def _expected(resized, stage: str, new_rows_only: bool) -> tuple[float, int]:
    """(trainable %, FLOPs per token at block 32) of the model prepared as pretrain does, in one process."""
    from zhllama.model.loading import load_model
    from zhllama.train.args import LoraArguments
    from zhllama.train.throughput import model_flops_per_token
    from zhllama.train.trainable import apply_lora, count_parameters, train_embeddings_only, train_new_rows_only

    model = load_model(str(resized), 410)
    if stage == "1":
        train_embeddings_only(model, new_rows_only, 400)
    else:
        model = apply_lora(model, LoraArguments())
        if new_rows_only:
            train_new_rows_only(model, 400)
    trainable, total = count_parameters(model)
    return 100.0 * trainable / total, model_flops_per_token(model, 32)


def test_stage1_under_zero3(resized, text_file, tmp_path):
    """Stage 1 under ZeRO-3 (it divided by a total of 0 parameters): the embedding and the untied head's
    added rows train, the head's original rows stay bit-identical, the logged share and FLOPs are the
    whole model's."""
    metrics, _ = _run(resized, text_file, tmp_path / "s1", "--stage", "1", "--learning-rate", "1e-2")
    share, flops = _expected(resized, "1", False)
    assert metrics["trainable_percent"] == pytest.approx(share) and metrics["flops_per_token"] == flops
    assert math.isfinite(metrics["train_loss"])
    before, after = (h.safetensors_of(d / "model.safetensors") for d in (resized, tmp_path / "s1"))
    assert after["lm_head.weight"].shape == (410, 32)  # gathered on save, not a stub
    assert torch.equal(after["lm_head.weight"][:400], before["lm_head.weight"][:400])
    assert not torch.equal(after["lm_head.weight"][400:], before["lm_head.weight"][400:])
    assert not torch.equal(after["model.embed_tokens.weight"], before["model.embed_tokens.weight"])
    assert torch.equal(after["model.norm.weight"], before["model.norm.weight"])


def test_stage2_new_rows_only_under_zero3(resized, text_file, tmp_path):
    """--new-rows-only under ZeRO-3 (it saw 0 rows and refused): the base's rows of both saved copies
    stay bit-identical; the logged share, FLOPs and embedding group size are the whole model's."""
    out = tmp_path / "s2"
    metrics, log = _run(resized, text_file, out, "--stage", "2", "--new-rows-only", "--learning-rate", "1e-2",
                        "--embedding-learning-rate", "2e-2")
    assert "embedding learning rate 0.02 for 2 tensor(s) (26,240 values)" in log  # 2 x 410 x 32, not 0
    share, flops = _expected(resized, "2", True)
    assert metrics["trainable_percent"] == pytest.approx(share) and metrics["flops_per_token"] == flops
    before = h.safetensors_of(resized / "model.safetensors")
    tensors = h.safetensors_of(out / "adapter_model.safetensors")
    for key, name in (("embed_tokens", "model.embed_tokens.weight"), ("lm_head", "lm_head.weight")):
        new = next(t for n, t in tensors.items() if key in n)
        assert new.shape == (410, 32) and torch.equal(new[:400], before[name][:400]), key
    head = next(t for n, t in tensors.items() if "lm_head" in n)
    assert not torch.equal(head[400:], before["lm_head.weight"][400:])


def test_embedding_group_size_counts_zero3_placeholders(tmp_path, caplog):
    """The --embedding-learning-rate group's logged size is the tensors' whole size where they are
    ZeRO-3 placeholders (0 elements, ``ds_numel`` the real count), as under a model loaded in zero.Init."""
    from transformers import TrainingArguments

    from zhllama.train.trainer import _trainer_class

    model = torch.nn.Linear(4, 4)
    stub = torch.nn.Parameter(torch.empty(0))
    stub.ds_numel = 410 * 32
    model.register_parameter("stub", stub)
    trainer = _trainer_class()(model=model, args=TrainingArguments(output_dir=str(tmp_path), use_cpu=True,
                                                                  report_to=[]))
    trainer.embedding_lr = (2e-2, [stub])
    with caplog.at_level("INFO", logger="zhllama.train"):
        trainer.create_optimizer()
    assert "for 1 tensor(s) (13,120 values)" in caplog.text

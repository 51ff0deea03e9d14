"""Precision: frozen weights in the training dtype, trainable tensors as fp32 masters; merge-lora --dtype.

Tolerance of the bf16-vs-fp32 loss comparison: 0.02 absolute per logged step on a loss of ~6
(0.3 %). bf16 keeps 8 mantissa bits (relative rounding 2⁻⁹ ≈ 0.2 % per stored weight); the tiny
model's loss moved by < 0.005 in practice, a wrong dtype path (e.g. fp32 masters rounded to bf16
every step, or a frozen weight left untrained at the wrong scale) moves it far more.
"""

from __future__ import annotations

import json
import os
import sys

import pytest
import torch

import train_helpers as h

transformers = pytest.importorskip("transformers")
pytest.importorskip("peft")

from zhllama.model.loading import load_model, torch_dtype  # noqa: E402
from zhllama.train.args import LORA_SFT_TARGETS, LoraArguments  # noqa: E402
from zhllama.train.trainable import (  # noqa: E402
    apply_lora,
    train_embeddings_only,
    upcast_trainable,
)
from zhllama.train.trainer import expose_interpreter_bin, resolve_precision  # noqa: E402

LOSS_TOLERANCE = 0.02


def _prepare(model_dir, stage: str, precision: str):
    """The model as `pretrain`/`sft` prepare it for training."""
    model = load_model(str(model_dir), 410, precision)
    if stage == "1":
        train_embeddings_only(model)
    else:
        model = apply_lora(model, LoraArguments(lora_target=LORA_SFT_TARGETS) if stage == "sft" else LoraArguments())
    upcast_trainable(model)
    return model


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
@pytest.mark.parametrize("stage", ["1", "2", "sft"])
def test_frozen_in_training_dtype_trainable_fp32(resized, stage, precision):
    model = _prepare(resized, stage, precision)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable
    if stage == "1":  # no base_rows given: the untied head's added rows are unknown, so it stays frozen
        assert trainable == {"model.embed_tokens.weight"}
    else:
        assert (any("lora_A" in n for n in trainable)
                and any("modules_to_save" in n and "lm_head" in n for n in trainable))
        assert any("gate_proj.lora_A" in n for n in trainable) == (stage == "sft")
    for name, p in model.named_parameters():
        want = torch.float32 if p.requires_grad else torch_dtype(precision)
        assert p.dtype == want, (name, p.dtype)


def test_precision_choices_on_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_precision("bf16") == "bf16"  # CPU bf16 autocast
    assert resolve_precision("auto") == "fp32"
    with pytest.raises(ValueError, match="--precision fp16 needs a GPU"):
        resolve_precision("fp16")


@pytest.mark.parametrize(("capability", "emulated_bf16", "want"), [
    ((7, 0), True, "fp16"),  # V100: is_bf16_supported() says yes (emulation); real bf16 needs 8.0
    ((7, 5), True, "fp16"),  # T4
    ((8, 0), True, "bf16"),  # A100
    ((9, 0), True, "bf16"),  # H100/H200
])
def test_auto_precision_follows_compute_capability(monkeypatch, capability, emulated_bf16, want):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: emulated_bf16)
    assert resolve_precision("auto") == want
    assert resolve_precision("fp16") == "fp16"  # a GPU is there: fp16 (with loss scaling) is allowed


def _train(model, text, out, precision, *extra):
    assert h.cli("pretrain", "--model", model, "--train-file", text, "--output-dir", out, "--block-size", "32",
                 "--max-steps", "3", "--save-steps", "10", "--logging-steps", "1", "--report-to", "none",
                 "--per-device-train-batch-size", "2", "--validation-split-percentage", "0",
                 "--precision", precision, *extra) == 0
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    return [e["loss"] for e in history if "loss" in e]


def test_stage2_bf16_loss_close_to_fp32_and_adapter_saved_fp32(resized, text_file, tmp_path):
    ref = _train(resized, text_file, tmp_path / "fp32", "fp32", "--stage", "2")
    got = _train(resized, text_file, tmp_path / "bf16", "bf16", "--stage", "2")
    assert len(got) == len(ref) == 3
    for a, b in zip(got, ref):
        assert abs(a - b) < LOSS_TOLERANCE, (got, ref)
    tensors = h.safetensors_of(tmp_path / "bf16" / "adapter_model.safetensors")
    assert tensors and all(t.dtype == torch.float32 for t in tensors.values())  # the fp32 masters


def test_stage1_bf16_keeps_frozen_weights_bf16(resized, text_file, tmp_path):
    _train(resized, text_file, tmp_path / "s1", "bf16", "--stage", "1", "--learning-rate", "1e-2")
    before, after = (h.safetensors_of(resized / "model.safetensors"),
                     h.safetensors_of(tmp_path / "s1" / "model.safetensors"))
    emb, head = "model.embed_tokens.weight", "lm_head.weight"
    assert after[emb].dtype == torch.float32 and not torch.equal(after[emb], before[emb])
    # The untied head trains its added rows (an fp32 master); its original rows only saw the load's rounding.
    assert after[head].dtype == torch.float32 and not torch.equal(after[head][400:], before[head][400:])
    assert torch.equal(after[head][:400], before[head][:400].to(torch.bfloat16).float())
    for name, t in after.items():
        if name not in (emb, head):
            assert t.dtype == torch.bfloat16, name
            assert torch.equal(t, before[name].to(torch.bfloat16)), name  # frozen: only the load's rounding


@pytest.mark.parametrize("dtype", ["bfloat16", "float16", "auto"])
def test_merge_lora_writes_requested_dtype(resized, tmp_path, dtype):
    model = _prepare(resized, "2", "bf16")
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.01)
    model.save_pretrained(tmp_path / "adapter")
    assert h.cli("merge-lora", "--base", resized, "--lora", tmp_path / "adapter", "--out", tmp_path / "m",
                 "--dtype", dtype) == 0
    tensors = h.safetensors_of(tmp_path / "m" / "model.safetensors")
    want = torch.float32 if dtype == "auto" else getattr(torch, dtype)  # auto: the base's (saved fp32)
    assert {t.dtype for t in tensors.values()} == {want}


def test_attn_implementation(resized, text_file, tmp_path, capsys):
    model = load_model(str(resized), 410, "fp32", "eager")
    assert model.config._attn_implementation == "eager"
    assert load_model(str(resized), 410, "fp32").config._attn_implementation == "sdpa"
    base = ("pretrain", "--stage", "2", "--model", resized, "--train-file", text_file, "--output-dir", tmp_path / "x")
    assert h.cli(*base, "--attn-implementation", "flash_attention_2") == 2
    err = capsys.readouterr().err
    try:
        import flash_attn  # noqa: F401
    except ImportError:
        assert "needs the flash-attn package" in err and "--attn-implementation sdpa" in err
    else:
        assert "flash_attention_2 runs in bf16 or fp16" in err
    with pytest.raises(SystemExit):  # argparse refuses an unknown kernel
        h.cli(*base, "--attn-implementation", "xformers")


def test_interpreter_bin_put_on_path_for_ninja(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    expose_interpreter_bin()
    assert os.environ["PATH"].split(os.pathsep)[:2] == [os.path.dirname(sys.executable), "/nonexistent"]
    expose_interpreter_bin()  # idempotent
    assert os.environ["PATH"].count(os.path.dirname(sys.executable)) == 1

"""Throughput figures: the FLOPs formula by hand, and tokens/s, chars/s, MFU, peak memory in the logs."""

from __future__ import annotations

import json

import pytest

import train_helpers as h

transformers = pytest.importorskip("transformers")
pytest.importorskip("peft")

from zhllama.train.args import LoraArguments  # noqa: E402
from zhllama.train.throughput import (  # noqa: E402
    flops_per_token,
    matmul_params,
    model_flops_per_token,
    throughput_metrics,
)
from zhllama.train.trainable import apply_lora, train_embeddings_only  # noqa: E402


def _tiny():
    from transformers import LlamaForCausalLM

    return LlamaForCausalLM(h.tiny_config(410))  # h=32, I=64, 2 layers, 4 heads


def test_flops_formula_by_hand():
    # Per layer: q,k,v,o 32x32 = 1,024 each; gate, up, down 32x64 = 2,048 each -> 10,240; 2 layers 20,480.
    # lm_head 410x32 = 13,120. embed_tokens is a lookup and the norms are vectors: no matmul FLOPs.
    stage1 = _tiny()
    train_embeddings_only(stage1)
    assert matmul_params(stage1).trained == 0 and matmul_params(stage1).frozen == 20_480 + 13_120
    # forward 2 x 33,600 + backward 2 x 33,600 (input gradients only) + attention 12 x 2 layers x 32 x 32
    assert model_flops_per_token(stage1, 32) == 67_200 + 67_200 + 24_576

    # Stage 2: LoRA r=8 on q,k,v,o: (8x32 + 32x8) x 4 x 2 layers = 4,096 trained, and lm_head's trained copy
    # (peft's frozen original is replaced by it, not counted twice).
    stage2 = apply_lora(_tiny(), LoraArguments())
    assert matmul_params(stage2).trained == 4_096 + 13_120 and matmul_params(stage2).frozen == 20_480
    # forward 2 x 37,696 + backward 4 x 17,216 + 2 x 20,480 + attention 24,576
    assert model_flops_per_token(stage2, 32) == 75_392 + 68_864 + 40_960 + 24_576 == 209_792
    # Longer sequences only add attention: 12 x L x s x h.
    assert flops_per_token(matmul_params(stage2), 2, 32, 64) - 209_792 == 12 * 2 * 32 * 32


def test_throughput_metrics_arithmetic():
    m = throughput_metrics(tokens=8_000, seconds=2.0, world_size=2, flops_token=10**9, peak_tflops=4.0,
                           tok_per_char=0.5)
    assert m["tokens_per_second_per_device"] == 2_000
    assert m["tflops_per_device"] == 2.0 and m["mfu"] == 0.5 and m["chars_per_second_per_device"] == 4_000
    assert m["peak_memory_gb"] > 0
    assert "mfu" not in throughput_metrics(8_000, 2.0, 2, 10**9, None, None)  # unknown peak (CPU): no MFU


def test_figures_logged_each_step_in_tensorboard_and_metrics(tmp_path, caplog):
    import sentencepiece as spm
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    resized = tmp_path / "resized"
    assert h.cli("resize", "--model", h.tiny_model_dir("base"), "--tokenizer", h.tokenizer_dir("merged-pad"),
                 "--out", resized, "--init", "mean") == 0
    text = h.write_text(tmp_path / "zh.txt", h.corpus_lines(120, seed=3))
    out = tmp_path / "run"
    caplog.set_level("INFO", logger="zhllama.train")
    assert h.cli("pretrain", "--stage", "2", "--model", resized, "--train-file", text, "--output-dir", out,
                 "--block-size", "32", "--max-steps", "3", "--save-steps", "10", "--logging-steps", "1",
                 "--per-device-train-batch-size", "2", "--validation-split-percentage", "0",
                 "--peak-tflops", "0.5") == 0
    metrics = json.loads((out / "zhllama_metrics.json").read_text())
    assert metrics["flops_per_token"] == 209_792
    # Tokens per character of the training blocks, against sentencepiece's count over the whole file
    # (<s> and </s> included, as in the blocks).
    sp = spm.SentencePieceProcessor(model_file=str(resized / "tokenizer.model"))
    lines = [line for line in text.read_text(encoding="utf-8").splitlines() if line]
    expected = sum(len(ids) + 2 for ids in sp.encode(lines)) / sum(map(len, lines))
    assert metrics["tokens_per_char"] == pytest.approx(expected, rel=0.1)

    logged = [e for e in json.loads((out / "trainer_state.json").read_text())["log_history"] if "loss" in e]
    assert [e["step"] for e in logged] == [1, 2, 3]
    for e in logged:
        tps = e["tokens_per_second_per_device"]
        assert tps > 0 and e["peak_memory_gb"] > 0
        assert e["tflops_per_device"] == pytest.approx(209_792 * tps / 1e12)
        assert e["mfu"] == pytest.approx(e["tflops_per_device"] / 0.5)
        assert e["chars_per_second_per_device"] == pytest.approx(tps / metrics["tokens_per_char"])
    for key in ("tokens_per_second_per_device", "chars_per_second_per_device", "mfu", "peak_memory_gb"):
        assert metrics[f"train_{key}"] > 0, key
    assert sum("tokens/s/device" in r.getMessage() and "MFU" in r.getMessage() for r in caplog.records) == 3

    events = EventAccumulator(str(next((out / "runs").rglob("events.out.tfevents.*")).parent))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    for key in ("tokens_per_second_per_device", "chars_per_second_per_device", "mfu", "peak_memory_gb"):
        assert f"train/{key}" in tags, tags
        assert len(events.Scalars(f"train/{key}")) == 3

"""`zhllama plan`: the LLaMA-7B shape (49,953 rows) on the meta device against figures computed by hand.

Hand counts. LLaMA-7B with 32,000 rows has 6,738,415,616 parameters; 17,953 more rows in
embed_tokens and lm_head add 17,953 x 4096 x 2 = 147,070,976 -> 6,885,486,592.
- stage 1: embed_tokens trains, 49,953 x 4096 = 204,607,488 (2.97 %).
- stage 2: + LoRA r=8 on q,k,v,o: 8 x (4096 + 4096) x 4 x 32 = 8,388,608, and lm_head (204,607,488):
  trainable 417,603,584 of 6,893,875,200 (6.06 %); frozen 6,476,271,616.
- sft: LoRA also on gate, up, down: 8 x (4096 + 11008) x 3 x 32 = 11,599,872 more: trainable
  429,203,456 of 6,905,475,072 (6.22 %).
"""

from __future__ import annotations

import json

import pytest

import train_helpers as h

pytest.importorskip("transformers")
pytest.importorskip("peft")

from zhllama.sizes import parse_size  # noqa: E402
from zhllama.train.plan import (  # noqa: E402
    activation_bytes,
    largest_batch,
    lora_for,
    plan_memory,
    read_model_config,
)

T1, T2, TSFT = 204_607_488, 417_603_584, 429_203_456
F1, F2, FSFT = 6_680_879_104, 6_476_271_616, 6_476_271_616


@pytest.fixture(scope="module")
def llama7b(tmp_path_factory):
    """A model directory holding nothing but the LLaMA-7B config.json, resized to 49,953 rows."""
    out = tmp_path_factory.mktemp("llama7b")
    h.llama7b_config().save_pretrained(out)
    assert sorted(p.name for p in out.iterdir()) == ["config.json"]
    return read_model_config(out)


@pytest.mark.parametrize(("stage", "trainable", "frozen", "share"),
                         [("1", T1, F1, 2.97), ("2", T2, F2, 6.06), ("sft", TSFT, FSFT, 6.22)])
def test_counts_match_report(llama7b, stage, trainable, frozen, share):
    plan = plan_memory(llama7b, stage, 2, 1, "bf16", 1, 512)
    assert (plan.trainable, plan.frozen) == (trainable, frozen)
    assert round(100 * trainable / (trainable + frozen), 2) == share


def test_stage2_zero2_one_and_eight_gpus(llama7b):
    # ZeRO-2, bf16: frozen weights 2 bytes each on every GPU; DeepSpeed's 2t + 18t/G for the trainable t.
    one = plan_memory(llama7b, "2", 2, 1, "bf16", 1, 512)
    assert one.frozen_weights == 2 * F2 == 12_952_543_232
    assert (one.trainable_weights, one.gradients, one.optimizer_states) == (6 * T2, 6 * T2, 8 * T2)
    assert one.model_states == 12_952_543_232 + 20 * T2 == 21_304_614_912
    eight = plan_memory(llama7b, "2", 2, 8, "bf16", 1, 512)
    assert eight.frozen_weights == 12_952_543_232  # ZeRO-2 does not shard parameters
    assert (eight.trainable_weights, eight.gradients, eight.optimizer_states, eight.gathered_layer) == (
        2 * T2 + T2 // 2, 6 * T2 // 8, T2, 0)


def test_stage2_zero3_eight_gpus(llama7b):
    plan = plan_memory(llama7b, "2", 3, 8, "bf16", 1, 512)
    assert plan.frozen_weights == 2 * F2 // 8 == 1_619_067_904
    assert (plan.trainable_weights, plan.gradients, plan.optimizer_states) == (6 * T2 // 8, 4 * T2 // 8, T2)
    assert plan.gathered_layer == 4 * 49953 * 4096  # the largest layer (embed_tokens), fp32 as DeepSpeed counts


def test_stage1_without_deepspeed_fp32(llama7b):
    plan = plan_memory(llama7b, "1", 0, 1, "fp32", 1, 512)
    assert plan.frozen_weights == 4 * F1 == 26_723_516_416
    assert (plan.trainable_weights, plan.gradients, plan.optimizer_states) == (4 * T1, 4 * T1, 8 * T1)


def test_activations_by_hand(llama7b):
    # bf16, per token and layer: (8 x 4096 + 4 x 11008) x 2 = 153,600 bytes, plus each of the four LoRA
    # targets' dropout output and mask (4096 x 3) and A output (8 x 2): 49,216 -> 202,816.
    # Loss: 49,953 x (2 + 4 + 4) = 499,530; final norm 2 x 4096 x 2 = 16,384.
    # Checkpointing keeps each layer's input (32 x 4096 x 2 = 262,144) and one layer's activations.
    with_ckpt, without = activation_bytes(llama7b, lora_for("2"), 1, 512, "bf16")
    assert with_ckpt == 512 * (262_144 + 202_816 + 499_530 + 16_384) == 502_207_488
    assert without == 512 * (32 * 202_816 + 499_530 + 16_384) == 3_587_085_312
    eager, _ = activation_bytes(llama7b, lora_for("2"), 1, 512, "bf16", "eager")
    assert eager == with_ckpt + 512 * 32 * 512 * 6  # fp32 probabilities and their 16-bit copy
    four = plan_memory(llama7b, "2", 2, 1, "bf16", 4, 512)
    assert four.activations_checkpointing == 4 * with_ckpt


def test_largest_batch(llama7b):
    states = 21_304_614_912
    assert largest_batch(llama7b, "2", 2, 1, "bf16", 512, 80e9) == (80e9 - states) // 502_207_488 == 116
    assert largest_batch(llama7b, "2", 2, 1, "bf16", 512, 20e9) == 0
    # The kernel counts: eager keeps each layer's attention probabilities (fp32 and a 16-bit copy).
    eager = (80e9 - states) // (502_207_488 + 512 * 32 * 512 * 6)
    assert largest_batch(llama7b, "2", 2, 1, "bf16", 512, 80e9, attn_implementation="eager") == eager < 116


def test_plan_flags_are_the_training_flags():
    """plan's defaults and choices come from the training dataclasses, so they cannot drift apart."""
    import argparse

    from zhllama.train import plan
    from zhllama.train.args import ATTN_IMPLEMENTATIONS

    p = argparse.ArgumentParser()
    plan.add_arguments(p)
    actions = {a.dest: a for a in p._actions}
    assert tuple(actions["attn_implementation"].choices) == ATTN_IMPLEMENTATIONS
    assert actions["lora_rank"].default == 8 and actions["block_size"].default == 512
    assert actions["batch"].default == 1


def test_parse_size():
    assert parse_size("80GB", "--gpu-memory", "GB") == 80e9
    assert parse_size("141GiB", "--gpu-memory", "GB") == 141 * 2**30
    assert parse_size("24", "--gpu-memory", "GB") == 24e9
    with pytest.raises(ValueError, match="--gpu-memory 'lots': expected a positive size"):
        parse_size("lots", "--gpu-memory", "GB")


def test_cli_reads_only_config_json(tmp_path, capsys):
    h.llama7b_config().save_pretrained(tmp_path)
    assert h.cli("plan", "--model", tmp_path, "--stage", "2", "--zero", "2", "--gpus", "1", "--precision", "bf16",
                 "--batch", "32", "--block-size", "512", "--gpu-memory", "80GB") == 0
    out = capsys.readouterr().out
    assert "417,603,584 (6.06 %)" in out and "frozen weights (GB)" in out
    assert "fits 80.00 GB, checkpointing        yes" in out and "fits 80.00 GB, no checkpointing     no" in out
    assert h.cli("plan", "--model", tmp_path, "--stage", "sft", "--zero", "3", "--gpus", "8", "--json") == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["trainable"] == TSFT and figures["gathered_layer"] == 4 * 49953 * 4096
    assert h.cli("plan", "--model", tmp_path / "nope", "--stage", "1") == 2
    assert "no config.json" in capsys.readouterr().err


def test_stage1_counts_the_untied_heads_added_rows(tmp_path, capsys):
    """Stage 1 on a resized untied model trains lm_head's added rows (pretrain reads resize.json): the
    plan counts those rows as trainable and keeps gradients and Adam states for the whole head."""
    h.llama7b_config().save_pretrained(tmp_path)
    (tmp_path / "resize.json").write_text(json.dumps({"base_vocab_size": 32000, "base_rows": 32000}))
    assert h.cli("plan", "--model", tmp_path, "--stage", "1", "--zero", "2", "--gpus", "1", "--json") == 0
    figures = json.loads(capsys.readouterr().out)
    head = 49953 * 4096
    assert figures["trainable"] == T1 + 17953 * 4096 and figures["optimized"] == T1 + head
    assert figures["optimizer_states"] == 8 * (T1 + head) and figures["gradients"] == 6 * (T1 + head)
    total = T1 + F1
    assert figures["frozen_weights"] == 2 * (total - T1 - head)
    # --base-vocab-size as pretrain's, over resize.json
    assert h.cli("plan", "--model", tmp_path, "--stage", "1", "--base-vocab-size", "49000", "--json") == 0
    assert json.loads(capsys.readouterr().out)["trainable"] == T1 + 953 * 4096
    assert h.cli("plan", "--model", tmp_path, "--stage", "1", "--zero", "2") == 0
    assert "elements of the trainable tensors" in capsys.readouterr().out

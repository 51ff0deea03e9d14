"""Stage 2 (ZeRO-2 and ZeRO-3) and SFT (ZeRO-2) under DeepSpeed across 2 CPU processes (torchrun, gloo).

The same command a cluster runs with `torchrun --nproc_per_node 8`; here DS_ACCELERATOR=cpu.
"""

from __future__ import annotations

import json
import math
import socket
import subprocess
import sys

import pytest

import train_helpers as h
from fixture_paths import package_env

pytest.importorskip("deepspeed")
pytest.importorskip("peft")
torch = pytest.importorskip("torch")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(*argv, timeout=300):
    env = package_env(DS_ACCELERATOR="cpu", OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), "-m", "zhllama.cli", *map(str, argv)]
    proc = subprocess.run(cmd, env=env, cwd=h.REPO, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-8000:]
    return proc


def _stage2(resized, tmp_path, config, *extra, steps):
    """Stage 2 on two processes under configs/{config}.json for ``steps`` steps (a checkpoint at 2);
    returns the output directory."""
    text = h.write_text(tmp_path / "zh.txt", h.corpus_lines(120, seed=5))
    out = tmp_path / "stage2"
    _torchrun("pretrain", "--stage", "2", "--model", resized, "--train-file", text, "--output-dir", out,
              "--block-size", "32", "--max-steps", steps, "--save-steps", "2", "--logging-steps", "1",
              "--report-to", "none", *extra, "--deepspeed", h.REPO / "configs" / f"{config}.json")
    return out


def _check(out, lora_targets):
    metrics = json.loads((out / "zhllama_metrics.json").read_text())
    assert math.isfinite(metrics["train_loss"])
    ckpt = out / "checkpoint-2"
    assert (ckpt / "global_step2").is_dir()  # DeepSpeed's own checkpoint (ZeRO partitions)
    for d in (ckpt, out):
        tensors = h.safetensors_of(d / "adapter_model.safetensors")
        for proj in lora_targets:
            assert any(f"{proj}.lora_A" in n for n in tensors) and any(f"{proj}.lora_B" in n for n in tensors)
        embed = ([t for n, t in tensors.items() if "embed_tokens" in n]
                 + [t for n, t in tensors.items() if "lm_head" in n])
        assert len(embed) == 2 and all(t.shape == (410, 32) for t in embed)  # real tensors, not ZeRO-3 stubs


@pytest.fixture(scope="module")
def zero_runs(resized, tmp_path_factory):
    """Stage 2 for 3 steps on two processes under ZeRO-2 and under ZeRO-3: {config: output dir}."""
    return {config: _stage2(resized, tmp_path_factory.mktemp(config), config, steps=3)
            for config in ("ds_zero2", "ds_zero3")}


@pytest.mark.parametrize("config", ["ds_zero2", "ds_zero3"])
def test_stage2_zero_two_processes(zero_runs, config):
    _check(zero_runs[config], ("q_proj", "k_proj", "v_proj", "o_proj"))


def test_zero3_trains_as_zero2(zero_runs):
    """Partitioning the weights (ZeRO-3, loaded by zero.Init) changes where they live, not the training."""
    import torch

    a, b = (json.loads((zero_runs[c] / "trainer_state.json").read_text())["log_history"] for c in zero_runs)
    la, lb = ([e["loss"] for e in h if "loss" in e] for h in (a, b))
    assert len(la) == len(lb) == 3
    assert lb == pytest.approx(la, rel=1e-4, abs=1e-4)
    wa, wb = (h.safetensors_of(zero_runs[c] / "adapter_model.safetensors") for c in zero_runs)
    assert wa.keys() == wb.keys()
    for name in wa:
        assert torch.allclose(wa[name], wb[name], atol=1e-4), name


def test_zero3_partitions_at_load(resized, tmp_path):
    """Right after from_pretrained, as pretrain/sft load it under ZeRO-3, each of 2 ranks holds only its
    partition: every parameter an empty stub with a ds_tensor of about half its ds_numel."""
    env = package_env(DS_ACCELERATOR="cpu", OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), str(h.REPO / "benches" / "zero3_load.py"), str(resized), str(tmp_path)]
    proc = subprocess.run(cmd, env=env, cwd=h.REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    reports = [json.loads(p.read_text()) for p in sorted(tmp_path.glob("rank-*.json"))]
    assert sorted(r["rank"] for r in reports) == [0, 1]
    total = reports[0]["ds_numel"]
    assert total > 40_000  # the tiny model: 410 x 32 embeddings and head, 2 layers
    for r in reports:
        assert r["partitioned"] and r["in_stubs"] == 0
        assert r["ds_numel"] == total
        assert total / 2 <= r["held"] <= total / 2 + 2 * 64  # half, plus at most a little padding per tensor


def test_sft_zero2_two_processes(resized, tmp_path):
    data = h.write_alpaca(tmp_path / "a.json", 12)
    out = tmp_path / "sft"
    _torchrun("sft", "--model", resized, "--train-file", data, "--output-dir", out, "--max-seq-length", "200",
              "--max-steps", "3", "--save-steps", "2", "--logging-steps", "1", "--report-to", "none",
              "--deepspeed", h.REPO / "configs" / "ds_zero2.json")
    _check(out, ("q_proj", "gate_proj", "down_proj"))


@pytest.mark.parametrize("config", ["ds_zero2", "ds_zero3"])
def test_bf16_under_zero_keeps_fp32_masters(resized, tmp_path, config):
    """bf16 under ZeRO: the module computes in bf16, the optimizer updates fp32 masters of what trains."""
    import torch

    out = _stage2(resized, tmp_path, config, "--precision", "bf16", steps=2)
    metrics = json.loads((out / "zhllama_metrics.json").read_text())
    assert math.isfinite(metrics["train_loss"])
    # DeepSpeed's own optimizer checkpoint (written by this test's run, so trusted): fp32 master partitions.
    states = sorted((out / "checkpoint-2" / "global_step2").glob("*optim_states.pt"))
    assert len(states) == 2
    sd = torch.load(states[0], map_location="cpu", weights_only=False)["optimizer_state_dict"]
    masters = sd.get("single_partition_of_fp32_groups") or sd.get("fp32_flat_groups")
    assert masters and all(t.dtype == torch.float32 for t in masters)
    # LoRA (8 x 32 x 2 x 4 x 2 layers = 4,096) + embed_tokens and lm_head (410 x 32 x 2 = 26,240) train,
    # split over the 2 ranks; none of the frozen weights has a master.
    assert sum(t.numel() for t in masters) * 2 >= 4_096 + 26_240 - 64
    assert sum(t.numel() for t in masters) * 2 <= 4_096 + 26_240 + 64


def test_new_rows_and_embedding_rate_under_zero2(resized, tmp_path):
    """--new-rows-only and --embedding-learning-rate across 2 ZeRO-2 processes: DeepSpeed wraps the
    optimizer zhllama builds (its extra group) and reduces the masked gradients. The base's 400 rows
    of both saved copies stay bit-identical; the head's added rows move by more than LoRA's rate
    (1e-3) allows in 4 steps, so they trained at the embedding rate (1e-2)."""
    out = _stage2(resized, tmp_path, "ds_zero2", "--new-rows-only", "--embedding-learning-rate", "1e-2",
                  "--learning-rate", "1e-3", steps=4)
    before = h.safetensors_of(resized / "model.safetensors")
    tensors = h.safetensors_of(out / "adapter_model.safetensors")
    for key, name in (("embed_tokens", "model.embed_tokens.weight"), ("lm_head", "lm_head.weight")):
        new = next(t for n, t in tensors.items() if key in n)
        assert torch.equal(new[:400], before[name][:400]), key
    head = next(t for n, t in tensors.items() if "lm_head" in n)
    assert (head[400:] - before["lm_head.weight"][400:]).abs().max() > 5e-3


def test_batch_rows_only_under_zero2(resized, tmp_path):
    """--batch-rows-only across 2 ZeRO-2 processes: the gradient is masked before DeepSpeed reduces
    it, so every head row whose token the training text never holds stays bit-identical (without
    the flag the added ones move: the test above), while rows of tokens it holds train."""
    from zhllama.tokenizer import Tokenizer

    out = _stage2(resized, tmp_path, "ds_zero2", "--batch-rows-only", "--embedding-learning-rate", "1e-2",
                  "--learning-rate", "1e-3", steps=4)
    tok = Tokenizer.from_pretrained(resized)
    read = {i for line in (tmp_path / "zh.txt").read_text(encoding="utf-8").splitlines() for i in tok.encode(line)}
    read |= {i for i in (tok.bos_id, tok.eos_id) if i is not None}
    unread = torch.tensor(sorted(set(range(len(tok))) - read))
    before = h.safetensors_of(resized / "model.safetensors")["lm_head.weight"]
    head = next(t for n, t in h.safetensors_of(out / "adapter_model.safetensors").items() if "lm_head" in n)
    assert len(unread) > 10 and (unread >= 400).any()
    assert torch.equal(head[unread], before[unread])
    assert (head - before).abs().max() > 5e-3

"""Tied embeddings (SmolLM2, LLaMA-3.2-1B/3B, Qwen2.5-0.5B): resize keeps the tie, stage 2 trains
the one matrix once, merge-lora writes a tied model whose reload gives the trained PEFT model's
logits, and the throughput counts the tied head's matmul."""

from __future__ import annotations

import json

import pytest
import torch

import train_helpers as h

transformers = pytest.importorskip("transformers")
peft = pytest.importorskip("peft")

from zhllama.train.args import LoraArguments  # noqa: E402
from zhllama.train.throughput import matmul_params  # noqa: E402
from zhllama.train.trainable import apply_lora, train_embeddings_only  # noqa: E402

IDS = torch.tensor([[1, 5, 17, 300, 405, 409, 20, 2]])  # 405, 409: rows added by the resize


def _logits(model):
    model.eval()
    with torch.no_grad():
        return model(input_ids=IDS).logits


def _resized(tmp_path):
    out = tmp_path / "resized"
    assert h.cli("resize", "--model", h.tiny_model_dir("base", tie=True), "--tokenizer", h.tokenizer_dir("merged-pad"),
                 "--out", out) == 0
    return out


def _vocab_tensors(path):
    return {n: t.shape for n, t in h.safetensors_of(path).items() if t.shape[0] == 410}


def test_stage2_trains_one_matrix_and_merged_reload_gives_its_logits(tmp_path):
    resized = _resized(tmp_path)  # resize keeps the tie: one matrix saved, and shared on load
    assert json.loads((resized / "config.json").read_text())["tie_word_embeddings"] is True
    assert list(_vocab_tensors(resized / "model.safetensors")) == ["model.embed_tokens.weight"]
    model = transformers.AutoModelForCausalLM.from_pretrained(resized)
    assert model.lm_head.weight is model.model.embed_tokens.weight
    peft_model = apply_lora(model, LoraArguments())  # the defaults: --modules-to-save embed_tokens,lm_head
    vocab = [n for n, p in peft_model.named_parameters() if p.requires_grad and p.shape[0] == 410]
    assert len(vocab) == 1 and "embed_tokens" in vocab[0], vocab  # one matrix, not two copies
    base = peft_model.get_base_model()
    assert base.lm_head.weight is base.model.embed_tokens.modules_to_save["default"].weight

    # A few training steps, as the trainer takes them; the head moves with the embedding it is.
    torch.manual_seed(0)
    opt = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=3e-2)
    peft_model.train()
    for _ in range(3):
        batch = torch.randint(0, 410, (2, 16))
        peft_model(input_ids=batch, labels=batch).loss.backward()
        opt.step()
        opt.zero_grad()
    expected = _logits(peft_model)
    stage2 = tmp_path / "stage2"
    peft_model.save_pretrained(stage2)
    saved = h.safetensors_of(stage2 / "adapter_model.safetensors")
    assert [n for n in saved if "lm_head" in n] == []  # saved once, as embed_tokens

    out = tmp_path / "merged"
    assert h.cli("merge-lora", "--base", resized, "--lora", stage2, "--out", out) == 0
    assert json.loads((out / "config.json").read_text())["tie_word_embeddings"] is True
    assert list(_vocab_tensors(out / "model.safetensors")) == ["model.embed_tokens.weight"]
    reloaded = transformers.AutoModelForCausalLM.from_pretrained(out)
    torch.testing.assert_close(_logits(reloaded), expected, atol=1e-5, rtol=1e-5)
    # The head really trained: the base's logits differ.
    assert not torch.allclose(_logits(transformers.AutoModelForCausalLM.from_pretrained(resized)), expected,
                              atol=1e-3)


def test_pretrain_stage2_cli_on_a_tied_model(tmp_path):
    resized = _resized(tmp_path)
    text = h.write_text(tmp_path / "train.txt", h.corpus_lines(120))
    out = tmp_path / "stage2"
    assert h.cli("pretrain", "--stage", "2", "--model", resized, "--train-file", text, "--output-dir", out,
                 "--block-size", "32", "--max-steps", "3", "--learning-rate", "1e-2", "--report-to", "none",
                 "--per-device-train-batch-size", "2", "--validation-split-percentage", "0") == 0
    adapter = h.safetensors_of(out / "adapter_model.safetensors")
    assert [n for n in adapter if "embed_tokens" in n] and not [n for n in adapter if "lm_head" in n]
    merged = tmp_path / "merged"
    assert h.cli("merge-lora", "--base", resized, "--lora", out, "--out", merged) == 0
    ref = peft.PeftModel.from_pretrained(transformers.AutoModelForCausalLM.from_pretrained(resized), str(out))
    from zhllama.model.tying import tie_output_to_saved_input

    assert tie_output_to_saved_input(ref)
    torch.testing.assert_close(_logits(transformers.AutoModelForCausalLM.from_pretrained(merged)), _logits(ref),
                               atol=1e-5, rtol=1e-5)


def test_throughput_counts_the_tied_head():
    # h=32, 2 layers: 20,480 weights in q,k,v,o,gate,up,down; the tied head is 410 x 32 = 13,120.
    model = transformers.LlamaForCausalLM(h.tiny_config(410, tie=True))
    assert model.lm_head.weight is model.model.embed_tokens.weight
    assert matmul_params(model).frozen + matmul_params(model).trained == 20_480 + 13_120
    train_embeddings_only(model)  # stage 1 on a tied model trains the head's matrix too
    assert matmul_params(model) == type(matmul_params(model))(trained=13_120, frozen=20_480)
    stage2 = apply_lora(transformers.LlamaForCausalLM(h.tiny_config(410, tie=True)), LoraArguments())
    assert matmul_params(stage2).trained == 4_096 + 13_120 and matmul_params(stage2).frozen == 20_480


def test_tying_is_the_model_layers():
    """Tying belongs to the model, which training uses: merge-lora (model layer) imports nothing from
    zhllama.train, and the tie helpers have one home, zhllama.model.tying."""
    import ast

    from zhllama.model import tying
    from zhllama.train import trainable

    merge = h.REPO / "python" / "zhllama" / "model" / "merge_lora.py"
    imported = {node.module for node in ast.walk(ast.parse(merge.read_text(encoding="utf-8")))
                if isinstance(node, ast.ImportFrom) and node.module}
    assert not [m for m in imported if m.startswith("zhllama.train")], imported
    for name in ("embeddings_tied", "tie_output_to_saved_input"):
        assert getattr(trainable, name) is getattr(tying, name)
        assert getattr(tying, name).__module__ == "zhllama.model.tying"

"""`zhllama merge-lora`: merged logits equal the PEFT model's; output is a plain HF model."""

from __future__ import annotations

import pytest
import torch

import train_helpers as h

transformers = pytest.importorskip("transformers")
peft = pytest.importorskip("peft")

from zhllama.train.args import LORA_SFT_TARGETS, LoraArguments  # noqa: E402
from zhllama.train.trainable import apply_lora  # noqa: E402


def _adapter(base_dir, out, targets, seed):
    """A LoRA adapter with non-zero weights (as after training), saved like the trainer does."""
    model = transformers.AutoModelForCausalLM.from_pretrained(base_dir)
    peft_model = apply_lora(model, LoraArguments(lora_target=targets))
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in peft_model.parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn_like(p))
    peft_model.save_pretrained(out)
    from zhllama.tokenizer.directory import copy_tokenizer_files

    copy_tokenizer_files(h.tokenizer_dir("merged-pad"), out)
    return out


def _logits(model, ids):
    model.eval()
    with torch.no_grad():
        return model(input_ids=ids).logits


def test_merge_two_adapters_onto_smaller_base(tmp_path):
    resized = tmp_path / "resized"
    assert h.cli("resize", "--model", h.tiny_model_dir("base"), "--tokenizer", h.tokenizer_dir("merged-pad"),
                 "--out", resized, "--init", "mean") == 0
    stage2 = _adapter(resized, tmp_path / "stage2", "q_proj,k_proj,v_proj,o_proj", seed=1)
    ids = torch.tensor([[1, 5, 17, 300, 405, 409, 20, 2]])

    # Reference: PEFT applied to the resized model, adapters one after the other.
    ref = peft.PeftModel.from_pretrained(transformers.AutoModelForCausalLM.from_pretrained(resized), str(stage2))
    expected1 = _logits(ref, ids)
    merged1 = ref.merge_and_unload()
    merged1_dir = tmp_path / "merged1"
    merged1.save_pretrained(merged1_dir)
    sft = _adapter(merged1_dir, tmp_path / "sft", LORA_SFT_TARGETS, seed=2)
    ref2 = peft.PeftModel.from_pretrained(transformers.AutoModelForCausalLM.from_pretrained(merged1_dir), str(sft))
    expected2 = _logits(ref2, ids)

    out1, out2 = tmp_path / "out1", tmp_path / "out2"
    # The base is the original 400-row model: merge-lora resizes it to the adapter's 410 rows.
    assert h.cli("merge-lora", "--base", h.tiny_model_dir("base"), "--lora", stage2, "--out", out1) == 0
    got1 = _logits(transformers.AutoModelForCausalLM.from_pretrained(out1), ids)
    torch.testing.assert_close(got1, expected1, atol=1e-4, rtol=1e-4)
    assert h.cli("merge-lora", "--base", h.tiny_model_dir("base"), "--lora", stage2, "--lora", sft, "--out", out2) == 0
    merged = transformers.AutoModelForCausalLM.from_pretrained(out2)
    assert type(merged).__name__ == "LlamaForCausalLM"
    assert not any("lora" in n for n, _ in merged.named_parameters())
    torch.testing.assert_close(_logits(merged, ids), expected2, atol=1e-4, rtol=1e-4)
    assert (out2 / "model.safetensors").is_file() and (out2 / "tokenizer.model").is_file()
    assert (out2 / "tokenizer_config.json").is_file()


def test_refuses_empty_adapter(tmp_path, capsys):
    lora = tmp_path / "empty"
    lora.mkdir()
    (lora / "adapter_config.json").write_text("{}")
    (lora / "adapter_model.safetensors").write_bytes(b"\0" * 443)
    assert h.cli("merge-lora", "--base", h.tiny_model_dir("base"), "--lora", lora, "--out", tmp_path / "o") == 2
    assert "443 bytes" in capsys.readouterr().err


@pytest.mark.parametrize("tie", [False, True])
def test_merge_after_bf16_new_rows_only_keeps_base_rows_bit_identical(resized, text_file, tmp_path, tie):
    """bf16 training loads the base in bf16, so the adapter's embedding/head copies hold the base's rows
    rounded; merge-lora writes the base's exact rows back where training did not move them."""
    if tie:
        resized = tmp_path / "resized-tied"
        assert h.cli("resize", "--model", h.tiny_model_dir("base", tie=True), "--tokenizer",
                     h.tokenizer_dir("merged-pad"), "--out", resized, "--init", "mean") == 0
    out = tmp_path / "stage2"
    assert h.cli("pretrain", "--stage", "2", "--model", resized, "--train-file", text_file, "--output-dir", out,
                 "--block-size", "32", "--max-steps", "2", "--save-steps", "10", "--report-to", "none",
                 "--per-device-train-batch-size", "2", "--validation-split-percentage", "0", "--precision", "bf16",
                 "--new-rows-only", "--learning-rate", "1e-2") == 0
    adapter = h.safetensors_of(out / "adapter_model.safetensors")
    saved = next(t for n, t in adapter.items() if "embed_tokens" in n)
    base = h.safetensors_of(resized / "model.safetensors")
    assert base["model.embed_tokens.weight"].dtype == torch.float32
    assert not torch.equal(saved[:400], base["model.embed_tokens.weight"][:400])  # the bf16 rounding
    assert h.cli("merge-lora", "--base", resized, "--lora", out, "--out", tmp_path / "merged") == 0
    merged = h.safetensors_of(tmp_path / "merged" / "model.safetensors")
    names = ["model.embed_tokens.weight"] + ([] if tie else ["lm_head.weight"])
    assert ("lm_head.weight" in merged) == (not tie)
    for name in names:
        assert merged[name].dtype == torch.float32
        assert torch.equal(merged[name][:400], base[name][:400]), name
    assert not torch.equal(merged[names[-1]][400:], base[names[-1]][400:])  # the added rows trained


def test_merged_model_ships_the_template_sft_trained_on(tmp_path):
    """--tokenizer names extend-vocab's directory (SmolLM2's ChatML copied in) while the sft adapter ships
    the Alpaca template it trained on: the merged directory ships the adapter's, as the demo's merge-sft
    needs; with no adapter template the tokenizer's stays."""
    import shutil

    from zhllama.chat_template import read_chat_template

    tok = tmp_path / "tok-chatml"
    shutil.copytree(h.tokenizer_dir("merged-pad"), tok)
    (tok / "chat_template.jinja").write_text("{{ 'chatml' }}", encoding="utf-8")
    resized = tmp_path / "resized"
    assert h.cli("resize", "--model", h.tiny_model_dir("base"), "--tokenizer", tok, "--out", resized,
                 "--init", "mean") == 0
    stage2 = _adapter(resized, tmp_path / "stage2", "q_proj,v_proj", seed=1)
    sft = _adapter(resized, tmp_path / "sft", LORA_SFT_TARGETS, seed=2)
    (sft / "chat_template.jinja").write_text("{{ 'alpaca' }}", encoding="utf-8")
    for loras, want in (([stage2], "{{ 'chatml' }}"), ([stage2, sft], "{{ 'alpaca' }}")):
        out = tmp_path / f"merged-{len(loras)}"
        flags = [x for lora in loras for x in ("--lora", lora)]
        assert h.cli("merge-lora", "--base", resized, *flags, "--tokenizer", tok, "--out", out) == 0
        assert read_chat_template(out) == want

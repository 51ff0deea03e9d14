"""`zhllama pretrain`: what trains in each stage, trainable shares, saved adapters, resume."""

from __future__ import annotations

import shutil

import pytest
import torch

import train_helpers as h

transformers = pytest.importorskip("transformers")
pytest.importorskip("peft")


@pytest.fixture(scope="module")
def resized(tmp_path_factory):
    out = tmp_path_factory.mktemp("resized")
    assert h.cli("resize", "--model", h.tiny_model_dir("base"), "--tokenizer", h.tokenizer_dir("merged-pad"),
                 "--out", out, "--init", "mean") == 0
    return out


@pytest.fixture(scope="module")
def text_file(tmp_path_factory):
    return h.write_text(tmp_path_factory.mktemp("text") / "zh.txt", h.corpus_lines(120, seed=3))


def pretrain(model, text, out, *extra, steps=4):
    return h.cli("pretrain", "--model", model, "--train-file", text, "--output-dir", out, "--block-size", "32",
                 "--max-steps", str(steps), "--save-steps", "2", "--logging-steps", "1", "--report-to", "none",
                 "--per-device-train-batch-size", "2", "--validation-split-percentage", "10", *extra)


def _state(path):
    return h.safetensors_of(path / "model.safetensors")


@pytest.mark.parametrize("new_rows_only", [False, True])
def test_stage1_trains_embeddings_only(resized, text_file, tmp_path, new_rows_only):
    out = tmp_path / "stage1"
    extra = ("--new-rows-only",) if new_rows_only else ()
    assert pretrain(resized, text_file, out, "--stage", "1", "--learning-rate", "1e-2", *extra) == 0
    before, after = _state(resized), _state(out)
    assert before.keys() == after.keys()
    emb = "model.embed_tokens.weight"
    for name in before:
        if name != emb:
            assert torch.equal(before[name], after[name]), name
    assert not torch.equal(before[emb][400:], after[emb][400:])
    if new_rows_only:
        assert torch.equal(before[emb][:400], after[emb][:400])
    else:
        assert not torch.equal(before[emb][:400], after[emb][:400])
    assert (out / "tokenizer.model").is_file() and (out / "checkpoint-4").is_dir()
    assert any((out / "runs").iterdir()) if (out / "runs").exists() else True


def test_stage2_saves_lora_and_full_embeddings(resized, text_file, tmp_path):
    out = tmp_path / "stage2"
    assert pretrain(resized, text_file, out, "--stage", "2") == 0
    for d in (out, out / "checkpoint-2"):
        tensors = h.safetensors_of(d / "adapter_model.safetensors")
        names = list(tensors)
        for proj in ("q_proj", "k_proj", "v_proj", "o_proj"):
            assert any(f"{proj}.lora_A" in n for n in names), proj
            assert any(f"{proj}.lora_B" in n for n in names), proj
        assert not any("gate_proj" in n for n in names)
        embed = [n for n in names if "embed_tokens" in n]
        head = [n for n in names if "lm_head" in n]
        assert embed and head, names
        assert tensors[embed[0]].shape == (410, 32) and tensors[head[0]].shape == (410, 32)
        # B starts at zero; trained adapters are not.
        assert any(tensors[n].abs().sum() > 0 for n in names if "lora_B" in n)
    import json

    metrics = json.loads((out / "zhllama_metrics.json").read_text())
    assert "eval_loss" in metrics and torch.isfinite(torch.tensor(metrics["eval_loss"]))


def test_tensorboard_logs_written(resized, text_file, tmp_path):
    out = tmp_path / "tb"
    assert h.cli("pretrain", "--stage", "2", "--model", resized, "--train-file", text_file, "--output-dir", out,
                 "--block-size", "32", "--max-steps", "1", "--save-steps", "10", "--logging-steps", "1",
                 "--gradient-checkpointing") == 0
    assert list((out / "runs").rglob("events.out.tfevents.*"))


def test_resume_matches_straight_run(resized, text_file, tmp_path):
    straight = tmp_path / "straight"
    assert pretrain(resized, text_file, straight, "--stage", "2", "--learning-rate", "1e-2") == 0
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    # An interrupted run: only its first checkpoint exists.
    shutil.copytree(straight / "checkpoint-2", resumed / "checkpoint-2")
    assert pretrain(resized, text_file, resumed, "--stage", "2", "--learning-rate", "1e-2") == 2  # refuses to restart
    assert pretrain(resized, text_file, resumed, "--stage", "2", "--learning-rate", "1e-2", "--resume") == 0
    a = h.safetensors_of(straight / "adapter_model.safetensors")
    b = h.safetensors_of(resumed / "adapter_model.safetensors")
    c = h.safetensors_of(straight / "checkpoint-2" / "adapter_model.safetensors")
    assert a.keys() == b.keys()
    for name in a:
        assert torch.allclose(a[name], b[name], atol=1e-6, rtol=1e-5), name
    assert any(not torch.allclose(a[n], c[n]) for n in a)  # the second half did train
    # It resumed rather than restarting: the copied checkpoint-2 was not written again.
    ckpt = "checkpoint-2/adapter_model.safetensors"
    assert (resumed / ckpt).stat().st_mtime_ns == (straight / ckpt).stat().st_mtime_ns
    assert (resumed / "checkpoint-4").is_dir()


def test_config_file_and_validation_errors(resized, text_file, tmp_path, capsys):
    cfg = tmp_path / "stage.yaml"
    cfg.write_text(f"stage: 2\nmodel: {resized}\ntrain-file: {text_file}\nblock_size: 32\nmax_steps: 1\n"
                   f"save_steps: 5\nreport_to: none\nlora_rank: 4\n")
    out = tmp_path / "cfg"
    assert h.cli("pretrain", "--config", cfg, "--output-dir", out) == 0
    assert '"r": 4' in (out / "adapter_config.json").read_text()
    assert h.cli("pretrain", "--config", cfg, "--output-dir", tmp_path / "e", "--lora-dropout", "1.5") == 2
    assert "--lora-dropout must be in [0, 1), got 1.5" in capsys.readouterr().err
    # A model smaller than the tokenizer: resize first.
    assert h.cli("pretrain", "--stage", "1", "--model", h.tiny_model_dir("base"), "--tokenizer",
                 h.tokenizer_dir("merged-pad"), "--train-file", text_file, "--output-dir", tmp_path / "f",
                 "--block-size", "32") == 2
    assert "zhllama resize" in capsys.readouterr().err


def _meta_7b():
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=49953, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                      num_attention_heads=32, num_key_value_heads=32)
    with torch.device("meta"):
        return LlamaForCausalLM(cfg)


def test_trainable_fractions_match_report_on_meta_7b():
    from zhllama.train.args import LORA_SFT_TARGETS, LoraArguments
    from zhllama.train.trainable import apply_lora, count_parameters, train_embeddings_only

    model = _meta_7b()
    train_embeddings_only(model)
    t, n = count_parameters(model)
    assert round(100 * t / n, 2) == 2.97
    t, n = count_parameters(apply_lora(_meta_7b(), LoraArguments()))
    assert round(100 * t / n, 2) == 6.06
    t, n = count_parameters(apply_lora(_meta_7b(), LoraArguments(lora_target=LORA_SFT_TARGETS)))
    assert round(100 * t / n, 2) == 6.22


def test_shipped_configs_name_real_flags_and_open_with_their_command():
    import dataclasses
    import json

    import yaml

    from zhllama.train import pretrain, sft

    for name, classes in (("stage1", pretrain.CLASSES), ("stage2", pretrain.CLASSES), ("sft", sft.CLASSES)):
        path = h.REPO / "configs" / f"{name}.yaml"
        text = path.read_text()
        assert text.startswith("# Run: zhllama "), path
        known = {f.name for c in classes for f in dataclasses.fields(c)}
        assert set(yaml.safe_load(text)) <= known, path
    for name in ("ds_zero2", "ds_zero3"):
        cfg = json.loads((h.REPO / "configs" / f"{name}.json").read_text())
        assert cfg["_comment"].split(". Run: ")[1].startswith("torchrun")
        assert cfg["zero_optimization"]["stage"] == int(name[-1])


def test_dataset_dir_uses_packed_dataset(resized, tmp_path, monkeypatch, capsys):
    import sys
    import types

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    assert h.cli("pretrain", "--stage", "1", "--model", resized, "--dataset-dir", corpus, "--output-dir",
                 tmp_path / "x", "--block-size", "16", "--max-steps", "1") == 2
    err = capsys.readouterr().err
    assert "manifest.json" in err or "PackedDataset" in err
    (corpus / "manifest.json").write_text("{}")
    calls = []

    class FakePackedDataset(torch.utils.data.Dataset):
        def __init__(self, path, block_size=512, seed=0, start_index=0):
            calls.append((path, block_size))
            g = torch.Generator().manual_seed(seed)
            self.blocks = torch.randint(3, 410, (8, block_size), generator=g)

        def __len__(self):
            return len(self.blocks)

        def __getitem__(self, i):
            return {"input_ids": self.blocks[i], "labels": self.blocks[i]}

    fake = types.ModuleType("zhllama.corpus.dataset")
    fake.PackedDataset = FakePackedDataset
    monkeypatch.setitem(sys.modules, "zhllama.corpus.dataset", fake)
    assert h.cli("pretrain", "--stage", "1", "--model", resized, "--dataset-dir", corpus, "--output-dir",
                 tmp_path / "y", "--block-size", "16", "--max-steps", "1", "--report-to", "none") == 0
    assert calls == [(str(corpus), 16)]


def test_dataset_dir_from_another_tokenizer_is_refused(resized, tmp_path, capsys):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "manifest.json").write_text('{"tokenizer_sha256": "' + "0" * 64 + '"}')
    assert h.cli("pretrain", "--stage", "1", "--model", resized, "--dataset-dir", corpus, "--output-dir",
                 tmp_path / "x", "--block-size", "16", "--max-steps", "1", "--report-to", "none") == 2
    assert "re-run `zhllama tokenize-corpus`" in capsys.readouterr().err

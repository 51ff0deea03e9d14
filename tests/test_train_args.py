"""`pretrain` / `sft` arguments: --config values typed and checked like flags, the command line wins.

Parser level (no model, no training): the verb's own parser from `zhllama.cli` reads the command
line, then the verb's `parse` merges it with the --config file and builds the dataclasses.
"""

from __future__ import annotations

import pytest

import train_helpers as h

pytest.importorskip("transformers")

from zhllama.cli import build_parser  # noqa: E402
from zhllama.train import pretrain, sft  # noqa: E402
from zhllama.train.args import LORA_PRETRAIN_TARGETS, LORA_SFT_TARGETS  # noqa: E402

VERBS = {"pretrain": pretrain, "sft": sft}


def parsed(verb: str, *argv):
    args = build_parser(verb).parse_args([verb, *map(str, argv)])
    return VERBS[verb].parse(args)


@pytest.fixture
def config(tmp_path):
    """Write a stage-2 pretrain config with the given extra lines; returns its path."""
    (tmp_path / "model").mkdir()

    def write(extra: str = "", name: str = "c.yaml"):
        base = {"stage": "2", "model": str(tmp_path / "model"), "train_file": "t.txt", "output_dir": "out"}
        lines = [f"{k}: {v}" for k, v in base.items() if not extra.startswith(f"{k}:")]
        path = tmp_path / name
        path.write_text("\n".join(lines) + "\n" + extra)
        return path

    return write


def test_exponent_without_a_dot_is_a_float(config):
    # YAML 1.1 reads 2e-4 as a string; the flag's type makes it the float the command line would.
    _, _, lora, run = parsed("pretrain", "--config", config("learning_rate: 2e-4\nlora_alpha: 16\nmax_steps: '8'\n"))
    assert run.learning_rate == 2e-4 and isinstance(run.learning_rate, float)
    assert lora.lora_alpha == 16.0 and isinstance(lora.lora_alpha, float)
    assert run.max_steps == 8  # a quoted "8" converts as `--max-steps 8` does


def test_file_values_apply_when_no_flag_is_given(config):
    data, model, lora, run = parsed("pretrain", "--config",
                                    config("lora_rank: 4\nseed: 7\ngradient_checkpointing: true\n"))
    assert (data.stage, data.train_file, run.output_dir) == (2, "t.txt", "out")
    assert (lora.lora_rank, run.seed, model.gradient_checkpointing) == (4, 7, True)


def test_command_line_flag_equal_to_its_default_beats_the_file(config):
    cfg = config("lora_rank: 4\nseed: 7\nmax_steps: 50\nprecision: fp32\n")
    _, _, lora, run = parsed("pretrain", "--config", cfg, "--lora-rank", 8, "--seed", 42, "--max-steps", -1,
                             "--precision", "auto")
    assert (lora.lora_rank, run.seed, run.max_steps, run.precision) == (8, 42, -1, "auto")
    # The flag wins wherever it stands relative to --config.
    _, _, lora, _ = parsed("pretrain", "--lora-rank", 8, "--config", cfg)
    assert lora.lora_rank == 8


def test_file_true_is_switched_off_on_the_command_line(config, tmp_path):
    cfg = config("gradient_checkpointing: true\noverwrite_output_dir: yes\n")
    _, model, _, run = parsed("pretrain", "--config", cfg)
    assert model.gradient_checkpointing is True and run.overwrite_output_dir is True
    _, model, _, run = parsed("pretrain", "--config", cfg, "--no-gradient-checkpointing",
                              "--overwrite-output-dir", "false")
    assert model.gradient_checkpointing is False and run.overwrite_output_dir is False
    (tmp_path / "stage1.yaml").write_text(f"stage: 1\nmodel: {tmp_path / 'model'}\ntrain_file: t\noutput_dir: o\n"
                                          f"new_rows_only: true\n")
    data, *_ = parsed("pretrain", "--config", tmp_path / "stage1.yaml", "--new_rows_only", "no")
    assert data.new_rows_only is False


def test_unknown_key_lists_the_valid_ones(config):
    with pytest.raises(ValueError) as e:
        parsed("pretrain", "--config", config("learnig_rate: 1e-4\n"))
    msg = str(e.value)
    assert "unknown key 'learnig_rate'" in msg and "did you mean 'learning_rate'?" in msg
    for key in ("learning_rate", "lora_rank", "output_dir", "stage", "new_rows_only", "dataset_dir"):
        assert key in msg.split("valid keys")[1], key
    assert "c.yaml" in msg


@pytest.mark.parametrize("line, words", [
    ("max_steps: ten", ("max_steps", "'ten'", "an integer", "--max-steps")),
    ("max_steps: 2.5", ("max_steps", "2.5", "an integer")),  # `--max-steps 2.5` is refused too
    ("learning_rate: fast", ("learning_rate", "'fast'", "a number", "--learning-rate")),
    ("gradient_checkpointing: maybe", ("gradient_checkpointing", "'maybe'", "true or false")),
    ("stage: 3", ("stage", "3", "not one of 1, 2")),
    ("max_steps:", ("max_steps", "needs a value")),
    ("lora_target: [q_proj, v_proj]", ("lora_target", "a list", "a,b")),
])
def test_wrong_typed_value_names_key_value_and_type(config, line, words):
    with pytest.raises(ValueError) as e:
        parsed("pretrain", "--config", config(line + "\n"))
    for word in words:
        assert word in str(e.value), (word, str(e.value))


def test_null_unsets_an_optional_value(config):
    _, _, _, run = parsed("pretrain", "--config", config("save_total_limit: null\neval_steps: 3\n"))
    assert run.save_total_limit is None and run.eval_steps == 3


def test_validation_still_names_the_bad_value(config):
    with pytest.raises(ValueError, match=r"--lora-dropout must be in \[0, 1\), got 1.5"):
        parsed("pretrain", "--config", config("lora_dropout: 1.5\n"))
    with pytest.raises(ValueError, match=r"--learning-rate must be > 0, got -0.0002"):
        parsed("pretrain", "--config", config(), "--learning-rate=-2e-4")


def test_required_flags_may_come_from_either_place(tmp_path, config):
    with pytest.raises(ValueError,
                       match=r"--stage, --model, --output-dir required: pass them on the command line or in --config"):
        parsed("pretrain", "--train-file", "t.txt")
    (tmp_path / "m.yaml").write_text(f"model: {tmp_path / 'model'}\n")
    _, model, _, _ = parsed("pretrain", "--config", tmp_path / "m.yaml", "--stage", 1, "--train-file", "t",
                            "--output-dir", "o")
    assert model.model == str(tmp_path / "model") and model.tokenizer == model.model


def test_dash_and_underscore_spellings(config):
    cfg = config("per-device-train-batch-size: 4\n")
    _, _, _, run = parsed("pretrain", "--config", cfg, "--learning_rate", "3e-4", "--save-steps", 7)
    assert (run.per_device_train_batch_size, run.learning_rate, run.save_steps) == (4, 3e-4, 7)
    cfg.write_text(cfg.read_text() + "per_device_train_batch_size: 2\n")
    with pytest.raises(ValueError, match="given twice"):
        parsed("pretrain", "--config", cfg)


def test_sft_lora_default_and_override(tmp_path):
    (tmp_path / "m").mkdir()
    cfg = tmp_path / "sft.yaml"
    cfg.write_text(f"model: {tmp_path / 'm'}\ntrain_file: a.json\noutput_dir: o\n")
    _, _, lora, _ = parsed("sft", "--config", cfg)
    assert lora.lora_target == LORA_SFT_TARGETS
    cfg.write_text(cfg.read_text() + f"lora_target: {LORA_PRETRAIN_TARGETS}\n")
    assert parsed("sft", "--config", cfg)[2].lora_target == LORA_PRETRAIN_TARGETS
    # The verb's own default, given explicitly, still beats the file.
    assert parsed("sft", "--config", cfg, "--lora-target", LORA_SFT_TARGETS)[2].lora_target == LORA_SFT_TARGETS


def test_help_shows_every_flag_with_its_default(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "1000")  # no wrapping inside the long default
    with pytest.raises(SystemExit):
        build_parser("sft").parse_args(["sft", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--lora-target MODULES" in out and f"(default: {LORA_SFT_TARGETS})" in out
    assert "--max-seq-length INT" in out and "(default: 512)" in out
    assert "--no-gradient-checkpointing" in out and "--config FILE.yaml" in out
    assert "--model DIR" in out and "(required: here or in --config)" in out
    for flag in ("--learning-rate", "--warmup-ratio", "--resume", "--deepspeed", "--validation-file"):
        assert flag in out, flag


def test_shipped_configs_parse_to_their_values(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for d in ("llama-7b-zh-init", "stage1", "chinese-llama-7b"):
        (tmp_path / d).mkdir()
    for name, verb in (("stage1", "pretrain"), ("stage2", "pretrain"), ("sft", "sft")):
        first = (h.REPO / "configs" / f"{name}.yaml").read_text().splitlines()[0]
        assert first == f"# Run: zhllama {verb} --config configs/{name}.yaml", first

    data, model, lora, run = parsed("pretrain", "--config", h.REPO / "configs" / "stage1.yaml")
    assert (data.stage, model.model, data.dataset_dir, run.output_dir) == (
        1, "llama-7b-zh-init", "corpus_tok", "stage1"
    )
    assert (data.block_size, data.validation_split_percentage, data.new_rows_only) == (512, 0.1, False)
    assert (run.learning_rate, run.per_device_train_batch_size, run.num_train_epochs, run.precision) == (
        2e-4, 32, 1.0, "auto"
    )

    data, model, lora, run = parsed("pretrain", "--config", h.REPO / "configs" / "stage2.yaml")
    assert (data.stage, model.model, model.gradient_checkpointing, run.output_dir) == (2, "stage1", True, "stage2")
    assert (lora.lora_rank, lora.lora_alpha, lora.lora_dropout) == (8, 32.0, 0.05)
    assert lora.target_modules == ["q_proj", "k_proj", "v_proj", "o_proj"]
    assert lora.saved_modules == ["embed_tokens", "lm_head"] and run.learning_rate == 1e-4

    data, model, lora, run = parsed("sft", "--config", h.REPO / "configs" / "sft.yaml")
    assert (data.train_file, data.validation_split_percentage, data.max_seq_length) == ("alpaca_zh.json", 1.0, 512)
    assert (model.model, model.gradient_checkpointing, lora.lora_target) == ("chinese-llama-7b", True, LORA_SFT_TARGETS)
    assert (run.learning_rate, run.per_device_train_batch_size, run.gradient_accumulation_steps) == (1e-4, 8, 4)
    assert run.num_train_epochs == 2.0 and run.output_dir == "sft"

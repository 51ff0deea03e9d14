"""Pieces that do not belong together are refused, in one line naming both sides, unless --allow-mismatch:
a model and a tokenizer it was not resized for (pretrain, sft, eval, generate), an adapter and a base it
was not trained on (merge-lora, eval/generate --lora), and an adapter merged twice."""

from __future__ import annotations

import json

import pytest

import train_helpers as h

pytest.importorskip("transformers")
pytest.importorskip("peft")


@pytest.fixture(scope="module")
def adapter(resized, text_file, tmp_path_factory):
    """A stage-2 adapter trained on `resized` (2 steps)."""
    out = tmp_path_factory.mktemp("pairing") / "stage2"
    assert h.cli("pretrain", "--stage", "2", "--model", resized, "--train-file", text_file, "--output-dir", out,
                 "--block-size", "32", "--max-steps", "2", "--save-steps", "2", "--report-to", "none",
                 "--validation-split-percentage", "0") == 0
    return out


def test_records_are_written(resized, adapter):
    from zhllama.model.identity import tokenizer_sha256, weights_digest

    assert json.loads((resized / "resize.json").read_text())["tokenizer_sha256"] == tokenizer_sha256(
        h.tokenizer_dir("merged-pad"))
    for d in (adapter, adapter / "checkpoint-2"):
        record = json.loads((d / "zhllama-base.json").read_text())
        assert record["base_weights_digest"] == weights_digest(resized)


def test_model_and_tokenizer_it_was_not_resized_for(resized, text_file, tmp_path, capsys):
    base_tok = h.tokenizer_dir("base")
    assert h.cli("pretrain", "--stage", "2", "--model", resized, "--tokenizer", base_tok, "--train-file", text_file,
                 "--output-dir", tmp_path / "o", "--block-size", "32", "--max-steps", "1") == 2
    err = capsys.readouterr().err
    assert f"--tokenizer {base_tok}" in err and f"--model {resized}" in err and "resize.json" in err
    assert "--allow-mismatch" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()  # refused before anything was written
    text = h.write_text(tmp_path / "t.txt", h.corpus_lines(3))
    assert h.cli("eval", "--model", resized, "--tokenizer", base_tok, "--text-file", text) == 2
    assert f"--tokenizer {base_tok}" in capsys.readouterr().err
    assert h.cli("generate", "--model", resized, "--tokenizer", base_tok, "--prompt", "你好",
                 "--max-new-tokens", "2") == 2
    assert f"--tokenizer {base_tok}" in capsys.readouterr().err
    # A tokenizer that only appends to the model's (SFT's [PAD] after the merge) is no contradiction.
    from zhllama.model.identity import check_model_tokenizer

    check_model_tokenizer(h.tiny_model_dir("base"), h.tokenizer_dir("merged"))
    with pytest.raises(ValueError, match="is not the tokenizer"):
        check_model_tokenizer(h.tiny_model_dir("merged"), h.tokenizer_dir("base"))
        # Meant: the override runs it.
    assert h.cli("eval", "--model", resized, "--tokenizer", base_tok, "--text-file", text, "--allow-mismatch") == 0


def test_merge_lora_onto_another_base_or_twice(resized, adapter, tmp_path, capsys):
    other = h.tiny_model_dir("merged-pad")  # same shape as `resized`, other weights
    assert h.cli("merge-lora", "--base", other, "--lora", adapter, "--out", tmp_path / "wrong") == 2
    err = capsys.readouterr().err
    assert f"--model {other}" in err and f"the adapter {adapter}" in err and str(resized) in err
    merged = tmp_path / "merged"
    assert h.cli("merge-lora", "--base", resized, "--lora", adapter, "--out", merged) == 0
    # Merging it again into the model that already contains it.
    assert h.cli("merge-lora", "--base", merged, "--lora", adapter, "--out", tmp_path / "twice") == 2
    assert "already merged into" in capsys.readouterr().err
    assert h.cli("generate", "--model", other, "--lora", adapter, "--prompt", "你好", "--max-new-tokens", "2") == 2
    assert f"--model {other}" in capsys.readouterr().err
    assert h.cli("merge-lora", "--base", other, "--lora", adapter, "--out", tmp_path / "meant",
                 "--allow-mismatch") == 0

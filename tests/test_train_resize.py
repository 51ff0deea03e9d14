"""`zhllama resize`: base rows bit-identical, each init rule, tied embeddings, refusals."""

from __future__ import annotations

import json

import pytest
import sentencepiece as spm
import torch

import train_helpers as h

transformers = pytest.importorskip("transformers")


def _load(path):
    return transformers.AutoModelForCausalLM.from_pretrained(path)


def _resize(tmp_path, init="subword-mean", tie=False, tok="merged-pad", extra=()):
    out = tmp_path / f"resized-{init}-{tie}"
    rc = h.cli("resize", "--model", h.tiny_model_dir("base", tie=tie), "--tokenizer", h.tokenizer_dir(tok),
               "--out", out, "--init", init, *extra)
    assert rc == 0
    return out


@pytest.mark.parametrize("tie", [False, True])
def test_subword_mean_keeps_base_rows_and_averages_subwords(tmp_path, tie):
    base = _load(h.tiny_model_dir("base", tie=tie))
    out = _resize(tmp_path, tie=tie)
    model = _load(out)
    V = base.config.vocab_size
    assert V == 400 and model.config.vocab_size == 410
    e0, e1 = base.get_input_embeddings().weight, model.get_input_embeddings().weight
    assert torch.equal(e0, e1[:V])
    if tie:
        assert model.get_output_embeddings().weight.data_ptr() == e1.data_ptr()
    else:
        assert torch.equal(base.get_output_embeddings().weight, model.get_output_embeddings().weight[:V])
    # The reference: sentencepiece's own base encoding of each new piece's text.
    sp = spm.SentencePieceProcessor(model_file=str(h.base_sp_model()))
    merged = spm.SentencePieceProcessor(model_file=str(h.merged_sp_model()))
    for i in range(V, merged.get_piece_size()):
        piece = merged.id_to_piece(i)
        ids = sp.encode(piece.replace("▁", " ").lstrip(" "))
        if not piece.startswith("▁") and sp.id_to_piece(ids[0]) == "▁":
            ids = ids[1:]
        for W0, W1 in ((e0, e1), (base.get_output_embeddings().weight, model.get_output_embeddings().weight)):
            assert torch.allclose(W1[i], W0[ids].mean(0), atol=1e-6), piece
    # The added [PAD] has no text: mean of all base rows.
    assert torch.allclose(e1[409], e0.mean(0), atol=1e-6)
    assert (out / "tokenizer.model").is_file() and (out / "tokenizer_config.json").is_file()
    assert (out / "model.safetensors").is_file()
    assert json.loads((out / "resize.json").read_text())["base_vocab_size"] == V


def test_default_init_is_split(tmp_path):
    # benches/EFFICACY.md: split keeps English at the base's level, Chinese inside subword-mean's spread.
    out = tmp_path / "default"
    assert h.cli("resize", "--model", h.tiny_model_dir("base"), "--tokenizer", h.tokenizer_dir("merged-pad"),
                 "--out", out) == 0
    default, split = _load(out).state_dict(), _load(_resize(tmp_path, "split")).state_dict()
    assert default.keys() == split.keys()
    assert all(torch.equal(default[k], split[k]) for k in default)


def test_mean_and_hf_inits(tmp_path):
    base = _load(h.tiny_model_dir("base"))
    e0 = base.get_input_embeddings().weight
    mean_model = _load(_resize(tmp_path, "mean"))
    e1 = mean_model.get_input_embeddings().weight
    assert torch.equal(e0, e1[:400])
    assert torch.allclose(e1[400:], e0.mean(0).expand(10, -1), atol=1e-6)
    h0 = base.get_output_embeddings().weight
    assert torch.allclose(mean_model.get_output_embeddings().weight[400:], h0.mean(0).expand(10, -1), atol=1e-6)
    hf_model = _load(_resize(tmp_path, "hf"))
    assert torch.equal(e0, hf_model.get_input_embeddings().weight[:400])
    assert hf_model.get_input_embeddings().weight.shape[0] == 410


def test_pad_to_multiple_of(tmp_path):
    model = _load(_resize(tmp_path, "mean", extra=("--pad-to-multiple-of", "64")))
    assert model.config.vocab_size == 448
    assert model.get_output_embeddings().weight.shape[0] == 448


def test_refuses_non_extending_tokenizer(tmp_path, capsys):
    # A tokenizer with a different piece order (here: another trained model) is refused.
    other = tmp_path / "other"
    spm.SentencePieceTrainer.train(
        input=str(h.write_text(tmp_path / "c.txt", h.corpus_lines(300, seed=7))), model_prefix=str(tmp_path / "o"),
        vocab_size=420, model_type="bpe", byte_fallback=True, minloglevel=2)
    from zhllama.tokenizer.directory import write_tokenizer_dir_from_model as write_tokenizer_dir

    write_tokenizer_dir(other, tmp_path / "o.model")
    rc = h.cli("resize", "--model", h.tiny_model_dir("base"), "--tokenizer", other, "--out", tmp_path / "x")
    assert rc == 2
    err = capsys.readouterr().err
    assert "does not extend" in err and "merge-vocab" in err


def test_refuses_size_mismatch(tmp_path, capsys):
    # Model already resized to 410 (the "49,954" one); the 409-token tokenizer (the "49,953") is refused.
    resized = _resize(tmp_path, "mean")
    rc = h.cli("resize", "--model", resized, "--tokenizer", h.tokenizer_dir("merged"), "--out", tmp_path / "x")
    assert rc == 2
    err = capsys.readouterr().err
    assert "409" in err and "410" in err
    # Base tokenizer that does not match the model's rows (32,000 tokenizer on a 49,953 model).
    rc = h.cli("resize", "--model", resized, "--tokenizer", h.tokenizer_dir("merged-pad"), "--out", tmp_path / "y",
               "--base-tokenizer", h.tokenizer_dir("base"))
    assert rc == 2
    assert "--base-tokenizer" in capsys.readouterr().err


@pytest.mark.parametrize("tie", [False, True])
def test_split_init_subword_mean_inputs_mean_outputs(tmp_path, tie):
    # split: embed_tokens rows as subword-mean, lm_head rows as the plain mean of the old head rows.
    base = _load(h.tiny_model_dir("base", tie=tie))
    V = base.config.vocab_size
    subword = _load(_resize(tmp_path, "subword-mean", tie=tie))
    split = _load(_resize(tmp_path, "split", tie=tie))
    e_sub, e_split = subword.get_input_embeddings().weight, split.get_input_embeddings().weight
    assert torch.equal(e_split, e_sub)
    if tie:  # one matrix: split is subword-mean
        assert split.get_output_embeddings().weight.data_ptr() == e_split.data_ptr()
        return
    h0, h1 = base.get_output_embeddings().weight, split.get_output_embeddings().weight
    assert torch.equal(h0, h1[:V])
    assert torch.allclose(h1[V:], h0.mean(0).expand(h1.shape[0] - V, -1), atol=1e-6)
    # ...and not the subword-mean head rows (the test would pass vacuously if they coincided)
    assert not torch.allclose(h1[V:409], subword.get_output_embeddings().weight[V:409], atol=1e-4)


def test_split_init_needs_base_tokenizer(tmp_path, capsys):
    from zhllama.model.resize import resize_model
    from zhllama.tokenizer import Tokenizer

    with pytest.raises(ValueError, match="--init split needs"):
        new = Tokenizer.from_pretrained(h.tokenizer_dir("merged-pad"))
        resize_model(_load(h.tiny_model_dir("base")), new, None, "split")


@pytest.mark.parametrize("tie", [False, True])
def test_rows_are_the_models_not_the_tokenizers(tmp_path, tie):
    # Qwen2.5 pads its embedding to 151,936 rows for 151,665 tokens. Here: a 400-token base in a
    # 416-row model. The new tokens (ids 400-409) take padding rows; no row is appended; the
    # padding rows no token uses (410-415) keep their values.
    from transformers import LlamaForCausalLM

    from zhllama.tokenizer.directory import copy_tokenizer_files

    padded = tmp_path / "padded"
    torch.manual_seed(3)
    LlamaForCausalLM(h.tiny_config(416, tie)).save_pretrained(padded)
    copy_tokenizer_files(h.tokenizer_dir("base"), padded)
    out = tmp_path / "out"
    assert h.cli("resize", "--model", padded, "--tokenizer", h.tokenizer_dir("merged-pad"), "--out", out,
                 "--init", "subword-mean") == 0
    base, model = _load(padded), _load(out)
    assert model.config.vocab_size == 416 and model.get_input_embeddings().weight.shape[0] == 416
    for get in (lambda m: m.get_input_embeddings().weight, lambda m: m.get_output_embeddings().weight):
        w0, w1 = get(base), get(model)
        assert torch.equal(w0[:400], w1[:400]) and torch.equal(w0[410:], w1[410:])
        sp = spm.SentencePieceProcessor(model_file=str(h.base_sp_model()))
        for i, piece in enumerate(h.NEW_PIECES, start=400):
            ids = sp.encode(piece.replace("▁", " ").lstrip(" "))
            if not piece.startswith("▁") and sp.id_to_piece(ids[0]) == "▁":
                ids = ids[1:]
            assert torch.allclose(w1[i], w0[ids].mean(0), atol=1e-6), piece
        # [PAD] (409): the mean of the 400 real tokens' rows, not of the padding rows.
        assert torch.allclose(w1[409], w0[:400].mean(0), atol=1e-6)
    record = json.loads((out / "resize.json").read_text())
    assert record["base_vocab_size"] == 400 and record["base_rows"] == 416 and record["vocab_size"] == 416

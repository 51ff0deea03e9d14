"""One tokenizer loader: every kind of tokenizer directory gives the same ids, sizes and pad id
through every path that loads one.

Training (pretrain, sft), generation, eval, resize, merge-lora and the demo all load with
``zhllama.Tokenizer.from_pretrained``; the transformers adapter reads the same directory with
transformers' own loader around zhllama's encoder. Both must agree with sentencepiece and with
each other on: ids, ``vocab_size`` (the SentencePiece piece count), ``len()`` (the rows an
embedding needs: pieces + added tokens) and the pad id.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sentencepiece as spm
from sentencepiece import sentencepiece_model_pb2 as pb

from fixture_paths import llama_tokenizer
from zhllama import Tokenizer
from zhllama.model.loading import load_for_inference
from zhllama.tokenizer.directory import write_tokenizer_dir_from_model

TEXTS = ["中华人民共和国成立了", "Hello, world! 1998年", "  two  spaces\tand a tab", "<s> and [PAD] as text"]


def _older_transformers_dir(out: Path, model: Path, pad: str) -> Path:
    """The layout older transformers versions wrote: ``added_tokens.json`` and no
    ``added_tokens_decoder`` in ``tokenizer_config.json``."""
    out.mkdir()
    (out / "tokenizer.model").write_bytes(model.read_bytes())
    n = spm.SentencePieceProcessor(model_file=str(model)).get_piece_size()
    (out / "added_tokens.json").write_text(json.dumps({pad: n}))
    (out / "special_tokens_map.json").write_text(json.dumps({"bos_token": "<s>", "eos_token": "</s>",
                                                             "unk_token": "<unk>", "pad_token": pad}))
    (out / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "LlamaTokenizer",
                                                           "add_bos_token": True, "add_eos_token": False}))
    return out


@pytest.fixture(scope="module")
def kinds(tmp_path_factory) -> dict[str, tuple[Path, int, int | None]]:
    """name -> (path, expected len(), expected pad id)."""
    model = llama_tokenizer().path
    n = spm.SentencePieceProcessor(model_file=str(model)).get_piece_size()
    d = tmp_path_factory.mktemp("dirs")
    return {
        "model file": (model, n, None),
        "merge-vocab dir": (write_tokenizer_dir_from_model(d / "plain", model), n, None),
        "merge-vocab dir + [PAD]": (write_tokenizer_dir_from_model(d / "pad", model, pad_token="[PAD]"), n + 1, n),
        "added_tokens.json dir": (_older_transformers_dir(d / "older", model, "[PAD]"), n + 1, n),
    }


@pytest.mark.parametrize("kind", ["model file", "merge-vocab dir", "merge-vocab dir + [PAD]", "added_tokens.json dir"])
def test_every_directory_kind_loads_the_same(kinds, kind):
    path, rows, pad = kinds[kind]
    sp = spm.SentencePieceProcessor(model_file=str(kinds["model file"][0]))
    tok = Tokenizer.from_pretrained(path)
    assert tok.vocab_size == sp.get_piece_size()
    assert len(tok) == tok.num_tokens == rows
    assert tok.pad_id == pad
    for text in TEXTS:
        assert tok.encode(text, add_bos=True) == sp.encode(text, add_bos=True)
    if pad is not None:
        assert tok.id_to_piece(pad) == "[PAD]" and tok.decode([pad]) == "[PAD]"
    if path.is_dir():
        from zhllama.hf import ZhllamaLlamaTokenizer

        hf = ZhllamaLlamaTokenizer.from_pretrained(str(path))
        assert len(hf) == rows
        assert hf.pad_token_id == pad
        # transformers splits special and added tokens out of the text first (sentencepiece, and so
        # zhllama.Tokenizer.encode, never produce them); elsewhere the ids are the encoder's.
        for text in TEXTS[:3]:
            assert hf(text)["input_ids"] == tok.encode(text, add_bos=True)


def test_inference_loader_takes_the_same_tokenizer(kinds, tmp_path):
    """generate / eval load through model.loading, which must hand back the one loader's tokenizer."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    path, rows, pad = kinds["merge-vocab dir + [PAD]"]
    config = transformers.LlamaConfig(vocab_size=rows, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                      num_attention_heads=2, num_key_value_heads=2)
    torch.manual_seed(0)
    transformers.LlamaForCausalLM(config).save_pretrained(tmp_path / "m")
    _, tok = load_for_inference(str(tmp_path / "m"), None, str(path), "float32", "cpu")
    assert type(tok) is Tokenizer
    assert (len(tok), tok.pad_id, tok.vocab_size) == (rows, pad, rows - 1)


def test_pad_id_without_an_unknown_piece(tmp_path):
    """A byte-fallback model may lack ``<unk>`` (sentencepiece loads it). The old training loader
    compared the pad piece with ``unk_id`` (None there) and took ``piece_to_id``'s -1 for a pad
    token that is no piece: a pad id of -1. The pad is an added token, a piece, or absent."""
    m = pb.ModelProto()
    m.ParseFromString(llama_tokenizer().path.read_bytes())
    assert m.pieces[0].type == pb.ModelProto.SentencePiece.UNKNOWN
    m.pieces[0].type = pb.ModelProto.SentencePiece.NORMAL
    model = tmp_path / "no-unk.model"
    model.write_bytes(m.SerializeToString())
    n = len(m.pieces)

    added = Tokenizer.from_pretrained(write_tokenizer_dir_from_model(tmp_path / "added", model, pad_token="[PAD]"))
    assert added.unk_id is None and added.pad_id == n and len(added) == n + 1

    piece_dir = write_tokenizer_dir_from_model(tmp_path / "piece", model)
    config = json.loads((piece_dir / "tokenizer_config.json").read_text())
    config["pad_token"] = "</s>"
    (piece_dir / "tokenizer_config.json").write_text(json.dumps(config))
    eos = [p.piece for p in m.pieces].index("</s>")
    assert Tokenizer.from_pretrained(piece_dir).pad_id == eos

    config["pad_token"] = "<pad>"  # neither a piece nor an added token: no pad id
    (piece_dir / "tokenizer_config.json").write_text(json.dumps(config))
    assert Tokenizer.from_pretrained(piece_dir).pad_id is None


@pytest.mark.parametrize("kind", ["smollm2", "llama3-tiktoken"])
def test_copied_byte_level_tokenizer_loads_the_same(kind, tmp_path):
    """resize, merge-lora, pretrain and the demo copy the tokenizer into their output with
    copy_tokenizer_files: a byte-level tokenizer.json directory (with its chat template) and a
    bare tiktoken file must come out loadable, with the same ids and special ids."""
    from fixture_paths import llama3_tiktoken, smollm2_dir
    from zhllama.tokenizer.directory import copy_tokenizer_files

    src = (smollm2_dir() if kind == "smollm2" else llama3_tiktoken()).path
    copied = copy_tokenizer_files(src, tmp_path / "out")
    if kind == "smollm2":
        assert "tokenizer.json" in copied
    a, b = Tokenizer.from_pretrained(src), Tokenizer.from_pretrained(tmp_path / "out")
    text = "中华人民共和国成立了 Hello, world! 1998年\r\n  <|endoftext|>"
    assert a.encode(text) == b.encode(text) and len(a) == len(b)
    assert (a.bos_id, a.eos_id, a.pad_id) == (b.bos_id, b.eos_id, b.pad_id)

"""The HF adapter: ids equal the sentencepiece-backed HF tokenizer's (and [bos] + sentencepiece),
on Chinese text, special and added tokens, legacy on and off."""

from __future__ import annotations

import pytest
import sentencepiece as spm

from conftest import TRICKY

pytest.importorskip("transformers")

from transformers.tokenization_utils_sentencepiece import SentencePieceBackend  # noqa: E402

from zhllama import _native  # noqa: E402
from zhllama.tokenizer.directory import write_tokenizer_dir  # noqa: E402
from zhllama.tokenizer.hf import ZhllamaLlamaTokenizer, special_tokens_pattern  # noqa: E402


@pytest.fixture(scope="module")
def tok_dir(reference_merge, tmp_path_factory):
    model = reference_merge.read_bytes()
    pieces = _native.SentencePieceModel.from_bytes(model).pieces()
    return write_tokenizer_dir(tmp_path_factory.mktemp("hf") / "tok", model, pieces, pad_token="[PAD]")


@pytest.mark.parametrize("legacy", [True, False])
def test_ids_equal_sentencepiece_backend(tok_dir, reference_merge, reference_size, peoples_daily, stdlib_docs, legacy):
    ours = ZhllamaLlamaTokenizer.from_pretrained(tok_dir, legacy=legacy)
    ref = SentencePieceBackend.from_pretrained(
        tok_dir, legacy=legacy, special_tokens_pattern=special_tokens_pattern(True, False)
    )
    texts = (
        TRICKY
        + peoples_daily[:1500]
        + stdlib_docs[:300]
        + ["你好<s>世界</s> [PAD]尾", " 前导空格", "▁下划线", "<unk>未知", "a [PAD][PAD] b"]
    )
    bad = [t for t in texts if ours(t)["input_ids"] != ref(t)["input_ids"]]
    assert not bad, f"{len(bad)} of {len(texts)} differ, e.g. {bad[0][:80]!r}"
    batch = ours(texts[:200], padding=True)["input_ids"]
    assert batch == ref(texts[:200], padding=True)["input_ids"]
    assert ours.pad_token_id == ref.pad_token_id == reference_size and len(ours) == len(ref) == reference_size + 1
    for t in texts[:300]:
        ids = ours(t)["input_ids"]
        assert ours.decode(ids) == ref.decode(ids)


def test_plain_text_is_bos_plus_sentencepiece(tok_dir, reference_merge, peoples_daily):
    # Training and evaluation text (no special-token strings): [bos] + sentencepiece ids.
    sp = spm.SentencePieceProcessor(model_file=str(reference_merge))
    ours = ZhllamaLlamaTokenizer.from_pretrained(tok_dir)
    for t in peoples_daily[2000:3000]:
        assert ours(t)["input_ids"] == sp.encode(t, add_bos=True)


def test_unigram_piece_sharing_a_reserved_text(chinese_model, tmp_path):
    # A Unigram model may hold "<ctl>" both as CONTROL and as an ordinary piece. The HF backend
    # turns the encoder's pieces into ids with PieceToId, which answers the CONTROL one; the
    # adapter must do the same to give the same ids.
    from sentencepiece import sentencepiece_model_pb2 as pb

    m = pb.ModelProto()
    m.ParseFromString(chinese_model.read_bytes())
    for s, kind in (("<ctl>", pb.ModelProto.SentencePiece.CONTROL), ("<ctl>", pb.ModelProto.SentencePiece.NORMAL)):
        p = m.pieces.add()
        p.piece, p.score, p.type = s, -1.0, kind
    model = m.SerializeToString()
    sp = spm.SentencePieceProcessor(model_proto=model)
    n = len(m.pieces)
    assert sp.encode("a<ctl>b", out_type=str).count("<ctl>") == 1 and n - 1 in sp.encode("a<ctl>b")
    pieces = _native.SentencePieceModel.from_bytes(model).pieces()
    d = write_tokenizer_dir(tmp_path / "tok", model, pieces)
    ours = ZhllamaLlamaTokenizer.from_pretrained(d)
    ref = SentencePieceBackend.from_pretrained(d, special_tokens_pattern=special_tokens_pattern(True, False))
    assert ours.convert_tokens_to_ids("<ctl>") == ref.convert_tokens_to_ids("<ctl>") == sp.piece_to_id("<ctl>") == n - 2
    for t in ["你好<ctl>世界", "a<ctl>b <ctl>", "中文 text"] + TRICKY:
        assert ours(t)["input_ids"] == ref(t)["input_ids"], t

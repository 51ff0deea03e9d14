"""The HF adapter: ids equal the sentencepiece-backed HF tokenizer's (and [bos] + sentencepiece),
on Chinese text, special and added tokens, legacy on and off."""

from __future__ import annotations

import pytest
import sentencepiece as spm

from conftest import TRICKY

pytest.importorskip("transformers")

from transformers.tokenization_utils_sentencepiece import SentencePieceBackend  # noqa: E402

from zhllama import _native  # noqa: E402
from zhllama.hf import ZhllamaLlamaTokenizer, special_tokens_pattern  # noqa: E402
from zhllama.tokenizer_dir import write_tokenizer_dir  # noqa: E402


@pytest.fixture(scope="module")
def tok_dir(reference_merge, tmp_path_factory):
    model = reference_merge.read_bytes()
    pieces = _native.SentencePieceModel.from_bytes(model).pieces()
    return write_tokenizer_dir(tmp_path_factory.mktemp("hf") / "tok", model, pieces, pad_token="[PAD]")


@pytest.mark.parametrize("legacy", [True, False])
def test_ids_equal_sentencepiece_backend(tok_dir, reference_merge, peoples_daily, stdlib_docs, legacy):
    ours = ZhllamaLlamaTokenizer.from_pretrained(tok_dir, legacy=legacy)
    ref = SentencePieceBackend.from_pretrained(tok_dir, legacy=legacy, special_tokens_pattern=special_tokens_pattern(True, False))
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
    assert ours.pad_token_id == ref.pad_token_id == 49953 and len(ours) == len(ref) == 49954
    for t in texts[:300]:
        ids = ours(t)["input_ids"]
        assert ours.decode(ids) == ref.decode(ids)


def test_plain_text_is_bos_plus_sentencepiece(tok_dir, reference_merge, peoples_daily):
    # Training and evaluation text (no special-token strings): [bos] + sentencepiece ids.
    sp = spm.SentencePieceProcessor(model_file=str(reference_merge))
    ours = ZhllamaLlamaTokenizer.from_pretrained(tok_dir)
    for t in peoples_daily[2000:3000]:
        assert ours(t)["input_ids"] == sp.encode(t, add_bos=True)

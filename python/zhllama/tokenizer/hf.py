"""Hugging Face adapter: a ``transformers`` tokenizer whose ids come from zhllama's exact encoder.

    from zhllama.tokenizer.hf import ZhllamaLlamaTokenizer
    tok = ZhllamaLlamaTokenizer.from_pretrained("out/tokenizer")   # a merge-vocab directory
    tok("你好，世界")["input_ids"]   # == [bos] + sentencepiece.encode("你好，世界")

transformers 5's ``LlamaTokenizer`` converts ``tokenizer.model`` to HF tokenizers, which breaks
score-0 ties differently from sentencepiece (~40 % of Chinese documents differ on the reference
merge). The sentencepiece-backed behaviour lives on in ``SentencePieceBackend``; this class is
that class with the encoding of each text segment done by ``zhllama.Tokenizer``: added and
special tokens are split out exactly as HF does, ``legacy`` is honoured, BOS/EOS follow
``add_bos_token``/``add_eos_token`` (LLaMA: BOS only), and decoding is HF's. So ids equal the
sentencepiece-backed HF tokenizer's, which tests/test_hf_adapter.py checks.
"""

from __future__ import annotations

from typing import Any, Optional

from transformers.tokenization_utils_sentencepiece import SPIECE_UNDERLINE, SentencePieceBackend

from zhllama.tokenizer.tokenizer import Tokenizer

_PATTERNS = {(True, False): "bos", (False, True): "eos", (True, True): "bos_eos", (False, False): None}


def special_tokens_pattern(add_bos_token: bool, add_eos_token: bool) -> Optional[str]:
    """HF's ``special_tokens_pattern`` for LLaMA-style BOS/EOS flags."""
    return _PATTERNS[(bool(add_bos_token), bool(add_eos_token))]


class ZhllamaLlamaTokenizer(SentencePieceBackend):
    """``SentencePieceBackend`` (the sentencepiece LLaMA tokenizer) with zhllama's encoder."""

    model_input_names = ["input_ids", "attention_mask"]

    def __init__(self, vocab_file: str, add_bos_token: bool = True, add_eos_token: bool = False, **kwargs: Any) -> None:
        kwargs.setdefault("special_tokens_pattern", special_tokens_pattern(add_bos_token, add_eos_token))
        super().__init__(vocab_file=vocab_file, add_bos_token=add_bos_token, add_eos_token=add_eos_token, **kwargs)
        # The model sentencepiece was loaded with, after SentencePieceBackend's edits (for
        # legacy=False it turns add_dummy_prefix off): encode with exactly that model.
        self._zh = Tokenizer.from_bytes(self.sp_model.serialized_model_proto())
        self._pieces = [self._zh.id_to_piece(i) for i in range(self._zh.vocab_size)]
        self._piece_ids = {p: i for i, p in enumerate(self._pieces)}
        if len(self._piece_ids) != len(self._pieces):
            # A Unigram model may give a reserved piece and an ordinary one the same text;
            # PieceToId answers the reserved one.
            self._piece_ids = {p: self._zh.piece_to_id(p) for p in self._piece_ids}

    def _pieces_of(self, text: str) -> list[str]:
        pieces = self._pieces
        return [pieces[i] for i in self._zh.encode(text)]

    def _tokenize(self, text: str, **kwargs: Any) -> list[str]:
        # Mirrors SentencePieceBackend._tokenize, with zhllama in place of sp_model.encode.
        if self.legacy or not text.startswith((SPIECE_UNDERLINE, " ")):
            return self._pieces_of(text)
        tokens = self._pieces_of(self.unk_token + text)
        unk_token_length = len(self._zh.encode(str(self.unk_token)))
        return tokens[unk_token_length:] if len(tokens) >= unk_token_length else tokens

    def _convert_token_to_id(self, token: str) -> int:
        i = self._piece_ids.get(token)
        return i if i is not None else self._zh.piece_to_id(token)  # the unk id, or -1 without one

    @property
    def zhllama(self) -> Tokenizer:
        """The exact encoder underneath (for ``encode_batch`` on corpora)."""
        return self._zh

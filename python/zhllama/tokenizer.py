"""``zhllama.Tokenizer``: the exact SentencePiece encoder.

TEMPORARY: backed by the ``sentencepiece`` package while the Rust encoder is being written
(the encoder task replaces the internals with ``zhllama._native.Tokenizer``; the API below is
fixed and used by the rest of the package).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Optional


class Tokenizer:
    """A SentencePiece model, encoding exactly as ``sentencepiece.SentencePieceProcessor``."""

    def __init__(self, model_bytes: bytes) -> None:
        import sentencepiece as spm

        self._bytes = bytes(model_bytes)
        self._sp = spm.SentencePieceProcessor(model_proto=self._bytes)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Tokenizer:
        with open(path, "rb") as f:
            return cls(f.read())

    @classmethod
    def from_bytes(cls, data: bytes) -> Tokenizer:
        return cls(data)

    def encode(self, text: str, add_bos: bool = False, add_eos: bool = False) -> list[int]:
        return self._sp.encode(text, add_bos=add_bos, add_eos=add_eos)

    def encode_batch(
        self,
        texts: Sequence[str],
        add_bos: bool = False,
        add_eos: bool = False,
        num_threads: Optional[int] = None,
    ) -> list[list[int]]:
        return self._sp.encode(list(texts), add_bos=add_bos, add_eos=add_eos, num_threads=num_threads or -1)

    def decode(self, ids: Sequence[int]) -> str:
        return self._sp.decode(list(ids))

    @property
    def vocab_size(self) -> int:
        return self._sp.get_piece_size()

    def id_to_piece(self, i: int) -> str:
        return self._sp.id_to_piece(i)

    def piece_to_id(self, s: str) -> int:
        return self._sp.piece_to_id(s)

    @property
    def bos_id(self) -> Optional[int]:
        v = self._sp.bos_id()
        return None if v < 0 else v

    @property
    def eos_id(self) -> Optional[int]:
        v = self._sp.eos_id()
        return None if v < 0 else v

    @property
    def pad_id(self) -> Optional[int]:
        v = self._sp.pad_id()
        return None if v < 0 else v

    @property
    def unk_id(self) -> int:
        return self._sp.unk_id()

    def __reduce__(self):
        return (Tokenizer.from_bytes, (self._bytes,))

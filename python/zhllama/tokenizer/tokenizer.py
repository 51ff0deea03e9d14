"""``zhllama.Tokenizer``: the exact SentencePiece encoder (Rust, ``zhllama._native``).

``encode`` returns exactly what ``sentencepiece.SentencePieceProcessor(model_file=p).encode``
returns (BPE and Unigram, every normalizer sentencepiece supports), and ``decode`` exactly
what its ``decode`` returns; ``encode_batch`` does the same on a thread pool with the GIL
released.

Added tokens (``Tokenizer.from_pretrained`` on a directory whose ``tokenizer_config.json``
lists tokens after the SentencePiece vocabulary, such as the ``[PAD]`` that merge-vocab and
the Alpaca scripts append): ``vocab_size`` stays the SentencePiece piece count (what
``sentencepiece`` reports), ``len(tok)`` / ``num_tokens`` count the added tokens too (what an
embedding matrix needs), and ``pad_id`` is the added pad token's id when the model has none.
``encode`` never produces added tokens (sentencepiece does not know them); ``decode`` writes
their text.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

from zhllama import _native
from zhllama.tokenizer.directory import (
    ADDED_TOKENS_FILE,
    CONFIG_FILE,
    MODEL_FILE,
    SPECIAL_TOKENS_FILE,
    read_json_object,
    token_content,
)


class Tokenizer(_native.Tokenizer):
    """A SentencePiece model, encoding exactly as ``sentencepiece.SentencePieceProcessor``.

    ``encode(text, add_bos=False, add_eos=False) -> list[int]``,
    ``encode_batch(texts, add_bos=False, add_eos=False, num_threads=None) -> list[list[int]]``
    and ``encode_batch_flat(...) -> (ids, offsets)`` are the native methods themselves (this
    class subclasses ``zhllama._native.Tokenizer``: no Python frame per call); see
    ``_native.pyi`` for their contracts. ``add_bos``/``add_eos`` on a model without that
    control piece raise ``ValueError`` as sentencepiece 0.2 does; ``num_threads`` must be a
    positive int or None (all cores).
    """

    def __init__(
        self, model_bytes: bytes, added_tokens: Optional[dict[int, str]] = None, source: Optional[str] = None
    ) -> None:
        # The native __new__ has parsed model_bytes already (its errors name ``source``).
        self._bytes = bytes(model_bytes)
        self._added: dict[int, str] = dict(added_tokens or {})
        n = super().vocab_size
        for i, content in self._added.items():
            if i < n:
                raise ValueError(f"added token {content!r} has id {i}, "
                                 f"inside the SentencePiece vocabulary (0..{n - 1})")
        self._added_ids = {c: i for i, c in self._added.items()}
        self._pad_added: Optional[int] = None
        self.source = source or "<bytes>"  # where it was loaded from, for error messages

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Tokenizer:
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"{p}: no such SentencePiece model file")
        return cls(p.read_bytes(), source=str(p))

    @classmethod
    def from_bytes(cls, data: bytes) -> Tokenizer:
        return cls(data)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike[str]) -> Tokenizer:
        """The one loader of a tokenizer directory (``zhllama merge-vocab`` output, or any HF
        LLaMA tokenizer directory) or of a bare ``.model`` file.

        A directory gives ``DIR/tokenizer.model`` plus the tokens it declares after the
        SentencePiece vocabulary (``added_tokens_decoder`` of ``tokenizer_config.json`` and
        ``added_tokens.json``; entries below the piece count describe pieces such as ``<s>``
        again and are not added tokens). The pad token is read from ``special_tokens_map.json``,
        then ``tokenizer_config.json``: an added token, or a piece of the model.
        """
        p = Path(path)
        if p.is_file():
            return cls.from_file(p)
        model = p / MODEL_FILE
        if not p.is_dir():
            raise FileNotFoundError(f"{p}: no such tokenizer directory or SentencePiece model file")
        if not model.is_file():
            raise FileNotFoundError(f"{p}: no {MODEL_FILE} in this directory; pass the output directory of "
                                    "`zhllama merge-vocab` or a .model file")
        config = read_json_object(p / CONFIG_FILE)
        data = model.read_bytes()
        n = _native.Tokenizer(data, source=str(model)).vocab_size
        added: dict[int, str] = {}
        for key, spec in (config.get("added_tokens_decoder") or {}).items():
            content = token_content(spec)
            if content is None:
                raise ValueError(f"{p / CONFIG_FILE}: added token {key!r} has no 'content'")
            added[int(key)] = content
        for content, i in read_json_object(p / ADDED_TOKENS_FILE).items():
            added[int(i)] = content
        tok = cls(data, {i: c for i, c in added.items() if i >= n}, source=str(model))
        tok.source = str(p)  # the directory the user named
        pad = token_content(read_json_object(p / SPECIAL_TOKENS_FILE).get("pad_token"))
        pad = pad or token_content(config.get("pad_token"))
        if pad is not None and super(Tokenizer, tok).pad_id is None:
            tok._pad_added = tok._added_ids.get(pad, super(Tokenizer, tok).piece_to_id(pad))
        return tok

    def decode(self, ids: Sequence[int]) -> str:
        """``sentencepiece.decode``; added tokens (``from_pretrained``) decode to their text."""
        ids = [int(i) for i in ids]
        if not self._added or not any(i in self._added for i in ids):
            return super().decode(ids)
        parts: list[str] = []
        run: list[int] = []
        for i in ids:
            if i in self._added:
                parts.append(super().decode(run) if run else "")
                parts.append(self._added[i])
                run = []
            else:
                run.append(i)
        if run:
            parts.append(super().decode(run))
        return "".join(parts)

    @property
    def num_tokens(self) -> int:
        """Pieces plus added tokens: the rows an embedding matrix needs."""
        return max([self.vocab_size, *(i + 1 for i in self._added)])

    def __len__(self) -> int:
        return self.num_tokens

    @property
    def added_tokens(self) -> dict[int, str]:
        return dict(self._added)

    def id_to_piece(self, i: int) -> str:
        if i in self._added:
            return self._added[i]
        return super().id_to_piece(i)

    def piece_to_id(self, s: str) -> int:
        """The piece's id; the unknown id for a string that is no piece (as sentencepiece)."""
        i = super().piece_to_id(s)
        if i is not None:
            return i
        unk = self.model_unk_id
        return self._added_ids.get(s, -1 if unk is None else unk)  # -1: no UNKNOWN piece, as sentencepiece

    @property
    def pad_id(self) -> Optional[int]:
        v = super().pad_id
        return v if v is not None else self._pad_added

    @property
    def model_bytes(self) -> bytes:
        return self._bytes

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (self._bytes, self._added, self._pad_added, self.source))

    def __repr__(self) -> str:
        return f"Tokenizer(vocab_size={self.vocab_size}, added_tokens={len(self._added)})"


def _rebuild(model_bytes: bytes, added: dict[int, str], pad_added: Optional[int], source: str) -> Tokenizer:
    tok = Tokenizer(model_bytes, added, source=source)
    tok._pad_added = pad_added
    return tok


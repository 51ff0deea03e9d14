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

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

import numpy as np

from zhllama import _native


class Tokenizer:
    """A SentencePiece model, encoding exactly as ``sentencepiece.SentencePieceProcessor``."""

    def __init__(self, model_bytes: bytes, added_tokens: Optional[dict[int, str]] = None) -> None:
        self._bytes = bytes(model_bytes)
        self._tok = _native.Tokenizer.from_bytes(self._bytes)
        self._added: dict[int, str] = dict(added_tokens or {})
        n = self._tok.vocab_size
        for i, content in self._added.items():
            if i < n:
                raise ValueError(f"added token {content!r} has id {i}, inside the SentencePiece vocabulary (0..{n - 1})")
        self._added_ids = {c: i for i, c in self._added.items()}
        self._pad_added: Optional[int] = None

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Tokenizer:
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"{p}: no such SentencePiece model file")
        return cls(p.read_bytes())

    @classmethod
    def from_bytes(cls, data: bytes) -> Tokenizer:
        return cls(data)

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike[str]) -> Tokenizer:
        """Load ``DIR/tokenizer.model`` plus the added tokens of ``DIR/tokenizer_config.json``
        (``added_tokens_decoder``) and the pad token of ``special_tokens_map.json``."""
        d = Path(directory)
        model = d / "tokenizer.model"
        if not model.is_file():
            raise FileNotFoundError(f"{d}: no tokenizer.model in this directory")
        config = _read_json(d / "tokenizer_config.json")
        special = _read_json(d / "special_tokens_map.json")
        tok = cls(model.read_bytes())
        added: dict[int, str] = {}
        for key, spec in (config.get("added_tokens_decoder") or {}).items():
            content = spec.get("content") if isinstance(spec, dict) else None
            if content is None:
                raise ValueError(f"{d / 'tokenizer_config.json'}: added token {key!r} has no 'content'")
            i = int(key)
            if i < tok.vocab_size:
                continue  # a SentencePiece piece described again (<s>, </s>, <unk>)
            added[i] = content
        if added:
            tok = cls(tok._bytes, added)
        pad = _token_content(special.get("pad_token")) or _token_content(config.get("pad_token"))
        if pad is not None and tok._tok.pad_id is None:
            tok._pad_added = tok._added_ids.get(pad)
            if tok._pad_added is None:
                pid = tok._tok.piece_to_id(pad)
                tok._pad_added = pid if pid is not None and tok._tok.piece_type(pid) == 3 else None
        return tok

    def encode(self, text: str, add_bos: bool = False, add_eos: bool = False) -> list[int]:
        ids = self._tok.encode(text, add_bos, add_eos)
        return self._sp_missing_specials(ids, add_bos, add_eos)

    def encode_batch(
        self,
        texts: Sequence[str],
        add_bos: bool = False,
        add_eos: bool = False,
        num_threads: Optional[int] = None,
    ) -> list[list[int]]:
        """Encode every text on ``num_threads`` threads (None: all cores), GIL released;
        results in input order, identical for any thread count."""
        _check_threads(num_threads)
        out = self._tok.encode_batch(_as_list(texts), add_bos, add_eos, num_threads)
        if (add_bos and self._tok.bos_id is None) or (add_eos and self._tok.eos_id is None):
            out = [self._sp_missing_specials(ids, add_bos, add_eos) for ids in out]
        return out

    def encode_batch_flat(
        self,
        texts: Sequence[str],
        add_bos: bool = False,
        add_eos: bool = False,
        num_threads: Optional[int] = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, offsets)``: uint32 ids of all texts back to back, int64 offsets of length
        ``len(texts) + 1``; text ``i`` is ``ids[offsets[i]:offsets[i + 1]]``. A BOS/EOS the
        model lacks is left out (there is no uint32 for sentencepiece's -1)."""
        _check_threads(num_threads)
        return self._tok.encode_batch_flat(_as_list(texts), add_bos, add_eos, num_threads)

    def decode(self, ids: Sequence[int]) -> str:
        ids = [int(i) for i in ids]
        if not self._added or not any(i in self._added for i in ids):
            return self._tok.decode(ids)
        parts: list[str] = []
        run: list[int] = []
        for i in ids:
            if i in self._added:
                parts.append(self._tok.decode(run) if run else "")
                parts.append(self._added[i])
                run = []
            else:
                run.append(i)
        if run:
            parts.append(self._tok.decode(run))
        return "".join(parts)

    @property
    def vocab_size(self) -> int:
        """SentencePiece piece count (``sp.get_piece_size()``), without added tokens."""
        return self._tok.vocab_size

    @property
    def num_tokens(self) -> int:
        """Pieces plus added tokens: the rows an embedding matrix needs."""
        return max([self._tok.vocab_size, *(i + 1 for i in self._added)])

    def __len__(self) -> int:
        return self.num_tokens

    @property
    def added_tokens(self) -> dict[int, str]:
        return dict(self._added)

    def id_to_piece(self, i: int) -> str:
        if i in self._added:
            return self._added[i]
        return self._tok.id_to_piece(i)

    def piece_to_id(self, s: str) -> int:
        """The piece's id; the unknown id for a string that is no piece (as sentencepiece)."""
        i = self._tok.piece_to_id(s)
        if i is not None:
            return i
        return self._added_ids.get(s, self._tok.model_unk_id)

    @property
    def bos_id(self) -> Optional[int]:
        return self._tok.bos_id

    @property
    def eos_id(self) -> Optional[int]:
        return self._tok.eos_id

    @property
    def pad_id(self) -> Optional[int]:
        v = self._tok.pad_id
        return v if v is not None else self._pad_added

    @property
    def unk_id(self) -> Optional[int]:
        return self._tok.unk_id

    @property
    def model_bytes(self) -> bytes:
        return self._bytes

    def _sp_missing_specials(self, ids: list[int], add_bos: bool, add_eos: bool) -> list[int]:
        # sentencepiece's Python wrapper inserts bos_id()/eos_id() even when they are -1.
        if add_bos and self._tok.bos_id is None:
            ids.insert(0, -1)
        if add_eos and self._tok.eos_id is None:
            ids.append(-1)
        return ids

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (self._bytes, self._added, self._pad_added))

    def __repr__(self) -> str:
        return f"Tokenizer(vocab_size={self.vocab_size}, added_tokens={len(self._added)})"


def _rebuild(model_bytes: bytes, added: dict[int, str], pad_added: Optional[int]) -> Tokenizer:
    tok = Tokenizer(model_bytes, added)
    tok._pad_added = pad_added
    return tok


def _as_list(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise TypeError("encode_batch takes a sequence of strings, not one string (use encode)")
    return texts if isinstance(texts, list) else list(texts)


def _check_threads(num_threads: Optional[int]) -> None:
    if num_threads is not None and (not isinstance(num_threads, int) or num_threads < 1):
        raise ValueError(f"num_threads must be a positive int or None (all cores), got {num_threads!r}")


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object")
    return data


def _token_content(tok: Any) -> Optional[str]:
    if isinstance(tok, dict):
        tok = tok.get("content")
    return tok if isinstance(tok, str) and tok else None

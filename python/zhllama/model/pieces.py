"""The base tokens a new token stands for: the one home of "which base rows spell this new token".

A byte-level extension (``zhllama extend-vocab``) appends merges after every base merge, so a new
token is exactly the join of its merge's two parents, each a base token or an earlier new token:
following the parents down to base tokens gives the base segmentation of that token's bytes
wherever the extended tokenizer produces it. This never goes through decoded text, which is lossy
for a token that cuts a character (``decode`` writes U+FFFD for the partial character; 184 of
SmolLM2's 8,000 new tokens are such character starts).

A SentencePiece extension (``zhllama merge-vocab``) appends whole pieces; a piece's text is exact
(``▁`` read as a space), and the base tokenizer's encoding of that text is its base pieces.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from zhllama._native import PieceType
from zhllama.tokenizer import Tokenizer

_NO_TEXT = (int(PieceType.CONTROL), int(PieceType.UNKNOWN))


def dummy_prefix(base: Tokenizer) -> bool:
    """Whether ``base`` is a SentencePiece model that prepends "▁" to the text (LLaMA-1/2)."""
    probe = base.encode("a")
    return bool(probe) and base.id_to_piece(probe[0]).startswith("\u2581")


def spm_piece_ids(base: Tokenizer, piece: str) -> list[int]:
    """The base ids of a SentencePiece piece's text (``▁`` read as a space). With a dummy prefix,
    a leading space is the one sentencepiece adds, and a word-internal piece drops the lone "▁"
    the dummy prefix produced."""
    prefix = dummy_prefix(base)
    text = piece.replace("\u2581", " ")
    if prefix and text.startswith(" "):
        text = text[1:]  # the dummy prefix sentencepiece adds restores this space
    ids = base.encode(text) if text else []
    if prefix and not piece.startswith("\u2581") and ids and base.id_to_piece(ids[0]) == "\u2581":
        ids = ids[1:]
    return ids


def merge_parents(new: Tokenizer) -> dict[int, tuple[int, int]]:
    """Byte-level: each token's id -> its first merge's two parents' ids, read from the
    ``tokenizer.json`` the tokenizer was loaded from ({} when it has no merge list)."""
    path = Path(new.source)
    if path.is_dir():
        path = path / "tokenizer.json"
    if path.name != "tokenizer.json" or not path.is_file():
        return {}
    model = json.loads(path.read_text(encoding="utf-8")).get("model", {})
    vocab: dict[str, int] = model.get("vocab", {})
    parents: dict[int, tuple[int, int]] = {}
    for m in model.get("merges", []):
        a, b = m.split(" ", 1) if isinstance(m, str) else m
        t = vocab.get(a + b)
        if t is not None and t not in parents and a in vocab and b in vocab:
            parents[t] = (vocab[a], vocab[b])
    return parents


class BasePieces:
    """``ids(i)``: the base-tokenizer ids that new token ``i`` joins, exactly."""

    def __init__(self, base: Tokenizer, new: Tokenizer):
        self.base, self.new = base, new
        self.n_base = len(base)
        self.byte_level = new.is_byte_level
        self.parents = merge_parents(new) if self.byte_level else {}

    def ids(self, i: int) -> list[int]:
        """[] for a token with no text (an added [PAD]); [i] for a base token."""
        if i < self.n_base:
            return [i]
        if i >= self.new.vocab_size:
            return []
        if not self.byte_level:
            return spm_piece_ids(self.base, self.new.id_to_piece(i))
        if i in self.parents:
            a, b = self.parents[i]
            return self.ids(a) + self.ids(b)
        return self._from_bytes(self.new.decode_bytes([i]))

    def _from_bytes(self, data: bytes) -> list[int]:
        """A token no merge yields (an added token, or a tokenizer without a merge list): the base
        encoding of its text when that is whole characters, else one base token per byte."""
        try:
            return self.base.encode(data.decode("utf-8")) if data else []
        except UnicodeDecodeError:
            from zhllama.tokenizer.bytelevel_base import to_bytelevel

            out: list[Optional[int]] = [self.base.piece_to_id(to_bytelevel(bytes([b]))) for b in data]
            return [t for t in out if t is not None and t >= 0]


def token_byte_lengths(tok: Tokenizer) -> list[int]:
    """How many bytes of text each id stands for (0 for control and added tokens): cumulative sums
    give the byte offset of every token boundary, which is how two tokenizations of one text are
    aligned. SentencePiece: the piece with ``▁`` as a space (a byte-fallback piece is one byte);
    byte-level: ``decode_bytes``."""
    out = []
    for i in range(len(tok)):
        kind = int(tok.piece_type(i)) if i < tok.vocab_size else None
        if kind is None or kind in _NO_TEXT:  # an added token past the pieces ([PAD]), a control piece
            out.append(0)
        elif tok.is_byte_level:
            out.append(len(tok.decode_bytes([i])))
        elif kind == int(PieceType.BYTE):
            out.append(1)
        else:
            out.append(len(tok.id_to_piece(i).replace("\u2581", " ").encode("utf-8")))
    return out

"""``zhllama.Tokenizer``: the exact encoder (Rust, ``zhllama._native``) of SentencePiece models and
byte-level BPE tokenizers (LLaMA-3, Qwen2, SmolLM2, GPT-2).

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

Byte-level BPE (``from_pretrained`` on a directory with a ``tokenizer.json`` and no SentencePiece
``tokenizer.model``, or on a tiktoken file such as LLaMA-3's ``tokenizer.model``): ids equal
``tokenizers.Tokenizer.from_file(p).encode(text)`` (tokenizer.json) and tiktoken's
``encode_ordinary`` (tiktoken files, read with LLaMA-3's pattern and its 256 specials at
128000-128255), for every str. Special-token text inside the text is encoded **as text** by
default (safe for corpora; HF's ``encode_special_tokens = True``; tiktoken's ``encode_ordinary``);
``parse_special=True`` turns it into the special ids (HF ``encode``'s default; tiktoken's
``allowed_special="all"``). Long runs without a split point cost O(n log n), and are not cut
(tiktoken's ``encode_ordinary`` does not cut them either; Meta's wrapper cuts at 25,000 chars).

Special ids (both families): ``bos_id`` is what ``add_bos=True`` prepends: the token the
tokenizer's post-processor puts first (LLaMA-3 ``<|begin_of_text|>``; ``None`` for SmolLM2 and
Qwen2, whose post-processor adds none: ``add_bos=True`` then adds nothing). ``eos_id`` is what
``add_eos=True`` appends: the post-processor's end token, else ``tokenizer_config.json``'s
``eos_token`` (LLaMA-3 tiktoken: ``<|end_of_text|>``); it is the document separator of
``tokenize-corpus --append-eos``. ``eos_ids`` lists every id generation should stop on:
``eos_id``, then ``generation_config.json``'s ``eos_token_id`` entries in the directory (LLaMA-3
tiktoken: ``<|end_of_text|>``, ``<|eom_id|>``, ``<|eot_id|>`` as Meta's ``stop_tokens``).
``pad_id``: ``tokenizer_config.json``'s ``pad_token`` (LLaMA-3 tiktoken:
``<|finetune_right_pad_id|>``).
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
    JSON_FILE,
    MODEL_FILE,
    SPECIAL_TOKENS_FILE,
    read_json_object,
    token_content,
    tokenizer_file,
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
        self,
        model_bytes: bytes,
        added_tokens: Optional[dict[int, str]] = None,
        source: Optional[str] = None,
        path: Optional[str] = None,
    ) -> None:
        # The native __new__ has parsed model_bytes (or read ``path``) already; its errors name
        # ``source``/``path``.
        self._bytes = bytes(model_bytes)
        self._path = path
        self._added: dict[int, str] = dict(added_tokens or {})
        self._eos_ids: list[int] = []
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
        """A SentencePiece ``.model``, a tiktoken rank file or a ``tokenizer.json`` (by content)."""
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"{p}: no such tokenizer file (a SentencePiece .model, a tiktoken file "
                                    "or a tokenizer.json)")
        data = p.read_bytes()
        if not _is_sentencepiece(data):
            return cls._byte_level(p)
        return cls(data, source=str(p))

    @classmethod
    def _byte_level(cls, p: Path) -> Tokenizer:
        tok = cls(b"", source=str(p), path=str(p))
        tok.source = str(p)
        eos = [] if tok.eos_id is None else [tok.eos_id]
        if tok.format == "tiktoken":
            # Meta's llama3 Tokenizer.stop_tokens: end of text, end of message, end of turn.
            eos += [tok.piece_to_id(t) for t in ("<|eom_id|>", "<|eot_id|>")]
        gen = read_json_object((p if p.is_dir() else p.parent) / "generation_config.json").get("eos_token_id")
        eos += gen if isinstance(gen, list) else [] if gen is None else [gen]
        tok._eos_ids = list(dict.fromkeys(int(i) for i in eos if i is not None and i >= 0))
        return tok

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
        if not p.is_dir():
            raise FileNotFoundError(f"{p}: no such tokenizer directory or tokenizer file")
        model = tokenizer_file(p)  # the one rule: tokenizer.model, else tokenizer.json
        if model is None:
            raise FileNotFoundError(f"{p}: no {MODEL_FILE} or {JSON_FILE} in this directory; pass the output "
                                    "directory of `zhllama merge-vocab`, a HF tokenizer directory or a .model file")
        with open(model, "rb") as f:
            if not _is_sentencepiece(f.read(1)):
                return cls._byte_level(model)
        data = model.read_bytes()
        config = read_json_object(p / CONFIG_FILE)
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
        """``sentencepiece.decode``; added tokens (``from_pretrained``) decode to their text.
        Byte-level: the bytes the ids spell (special tokens: their text, as tiktoken and HF's
        ``decode(ids, skip_special_tokens=False)``), each invalid UTF-8 sequence (a character
        cut between ids) one U+FFFD; ``decode_bytes`` gives the exact bytes."""
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
    def eos_ids(self) -> list[int]:
        """Every id generation stops on (see the module docstring); ``[eos_id]`` for SentencePiece."""
        if self._eos_ids:
            return list(self._eos_ids)
        return [] if self.eos_id is None else [self.eos_id]

    @property
    def model_bytes(self) -> bytes:
        return self._bytes

    def __reduce__(self) -> tuple[Any, ...]:
        if self._path is not None:
            return (_rebuild_path, (self._path,))
        return (_rebuild, (self._bytes, self._added, self._pad_added, self.source))

    def __repr__(self) -> str:
        return f"Tokenizer(vocab_size={self.vocab_size}, added_tokens={len(self._added)})"


def _is_sentencepiece(data: bytes) -> bool:
    """A SentencePiece ModelProto starts with its first piece (field 1, wire type 2: 0x0A);
    a tokenizer.json with ``{`` and a tiktoken file with a base64 token."""
    return data[:1] == b"\x0a"


def _rebuild_path(path: str) -> Tokenizer:
    return Tokenizer.from_pretrained(path)


def _rebuild(model_bytes: bytes, added: dict[int, str], pad_added: Optional[int], source: str) -> Tokenizer:
    tok = Tokenizer(model_bytes, added, source=source)
    tok._pad_added = pad_added
    return tok


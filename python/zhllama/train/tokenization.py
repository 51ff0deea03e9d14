"""Load a tokenizer directory for training, generation and evaluation.

Every place the training side tokenizes goes through ``zhllama.Tokenizer`` (sentencepiece-exact),
never ``transformers.AutoTokenizer``: transformers 5 converts ``tokenizer.model`` to a
``tokenizers`` BPE that breaks score-0 ties differently from sentencepiece and disagrees on ~41 %
of Chinese documents with the merged 49,953 vocabulary.

A tokenizer directory (``zhllama merge-vocab`` output) holds ``tokenizer.model`` plus HF JSON
files; the 49,954 variant adds ``[PAD]`` as an *added token* beyond the SentencePiece vocabulary
(id 49,953), declared in ``tokenizer_config.json`` (``added_tokens_decoder``) or
``added_tokens.json``. :class:`TrainingTokenizer` reads both so the pad id and the full
vocabulary size (what the embedding matrix must match) are known.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Optional, Union

from zhllama import Tokenizer

TOKENIZER_FILES = ("tokenizer.model", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
                   "merge_report.json")


def _read_json(path: Path) -> dict:
    if not path.is_file():
        return {}
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object")
    return data


def _token_content(value: object) -> Optional[str]:
    # HF writes special tokens either as plain strings or as AddedToken dicts.
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("content"), str):
        return value["content"]
    return None


class TrainingTokenizer:
    """``zhllama.Tokenizer`` plus the added tokens (``[PAD]``) of a tokenizer directory."""

    def __init__(self, sp: Tokenizer, added: Optional[dict[str, int]] = None, pad_token: Optional[str] = None,
                 source: str = "") -> None:
        self.sp = sp
        self.source = source
        self.added = dict(added or {})
        base = sp.vocab_size
        for piece, i in self.added.items():
            if i < base:
                raise ValueError(f"{source}: added token {piece!r} has id {i}, inside the SentencePiece "
                                 f"vocabulary (size {base}); added tokens must come after it")
        self.vocab_size = max([base, *[i + 1 for i in self.added.values()]])
        self.pad_id: Optional[int] = None
        if pad_token is not None:
            if pad_token in self.added:
                self.pad_id = self.added[pad_token]
            elif sp.piece_to_id(pad_token) != sp.unk_id or pad_token == sp.id_to_piece(sp.unk_id):
                self.pad_id = sp.piece_to_id(pad_token)
        if self.pad_id is None:
            self.pad_id = sp.pad_id

    @classmethod
    def load(cls, path: Union[str, os.PathLike[str]]) -> TrainingTokenizer:
        """Load ``DIR`` (tokenizer.model + JSON files) or a bare ``tokenizer.model`` file."""
        p = Path(path)
        if p.is_dir():
            model = p / "tokenizer.model"
            if not model.is_file():
                raise FileNotFoundError(f"{p}: no tokenizer.model in this directory; pass the output "
                                        f"directory of `zhllama merge-vocab` or a tokenizer.model file")
            config = _read_json(p / "tokenizer_config.json")
            special = _read_json(p / "special_tokens_map.json")
            added: dict[str, int] = {}
            for key, value in (config.get("added_tokens_decoder") or {}).items():
                content = _token_content(value)
                if content is not None:
                    added[content] = int(key)
            for content, i in _read_json(p / "added_tokens.json").items():
                added[content] = int(i)
            pad = _token_content(config.get("pad_token")) or _token_content(special.get("pad_token"))
            sp = Tokenizer.from_file(model)
            # Added tokens that are really SentencePiece pieces (e.g. <s>) are not "added".
            added = {k: v for k, v in added.items() if v >= sp.vocab_size}
            return cls(sp, added, pad, source=str(p))
        if not p.is_file():
            raise FileNotFoundError(f"tokenizer not found: {p}")
        return cls(Tokenizer.from_file(p), source=str(p))

    # -- the zhllama.Tokenizer API, extended to added tokens -------------------------------------
    def encode(self, text: str, add_bos: bool = False, add_eos: bool = False) -> list[int]:
        return self.sp.encode(text, add_bos=add_bos, add_eos=add_eos)

    def encode_batch(self, texts: Sequence[str], add_bos: bool = False, add_eos: bool = False,
                     num_threads: Optional[int] = None) -> list[list[int]]:
        return self.sp.encode_batch(texts, add_bos=add_bos, add_eos=add_eos, num_threads=num_threads)

    def decode(self, ids: Sequence[int]) -> str:
        base = self.sp.vocab_size
        return self.sp.decode([int(i) for i in ids if 0 <= int(i) < base])

    @property
    def bos_id(self) -> Optional[int]:
        return self.sp.bos_id

    @property
    def eos_id(self) -> Optional[int]:
        return self.sp.eos_id

    @property
    def sp_vocab_size(self) -> int:
        return self.sp.vocab_size

    def id_to_piece(self, i: int) -> str:
        for piece, j in self.added.items():
            if j == i:
                return piece
        return self.sp.id_to_piece(i)

    def __len__(self) -> int:
        return self.vocab_size


def load_tokenizer(path: Union[str, os.PathLike[str]]) -> TrainingTokenizer:
    return TrainingTokenizer.load(path)


def copy_tokenizer_files(src: Union[str, os.PathLike[str]], out: Union[str, os.PathLike[str]]) -> list[str]:
    """Copy the tokenizer files of ``src`` (a directory or a tokenizer.model) into ``out``."""
    src, out = Path(src), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if src.is_file():
        shutil.copyfile(src, out / "tokenizer.model")
        return ["tokenizer.model"]
    copied = []
    for name in TOKENIZER_FILES:
        if (src / name).is_file():
            shutil.copyfile(src / name, out / name)
            copied.append(name)
    return copied

"""Type stub for ``zhllama._native``, the compiled Rust extension (rust/python/src/).

tests/test_native_stub.py checks that every name here exists in the compiled module and that
every public name of the module is declared here.
"""

from collections.abc import Sequence
from os import PathLike
from typing import Optional, Union

import numpy as np
import numpy.typing as npt

__version__: str

# ---- exceptions (error.rs) -------------------------------------------------------------

class ZhllamaError(Exception):
    """Base class of zhllama's native errors."""

class ModelError(ZhllamaError):
    """A SentencePiece model file is unreadable or invalid."""

class MergeError(ZhllamaError):
    """Vocabulary merge refused its inputs."""

class CorpusError(ZhllamaError):
    """Corpus input or output failed (names the file and line)."""

class InternalError(ZhllamaError):
    """A bug in zhllama's native code (a caught Rust panic). Please report it."""

# ---- model I/O (model.rs) ----------------------------------------------------------------

class SentencePieceModel:
    """A parsed SentencePiece ``ModelProto``."""

    @staticmethod
    def from_bytes(data: bytes) -> SentencePieceModel: ...
    @staticmethod
    def from_file(path: Union[str, PathLike[str]]) -> SentencePieceModel: ...
    def to_bytes(self) -> bytes: ...
    def __len__(self) -> int: ...
    def pieces(self) -> list[tuple[str, float, int]]:
        """``(piece, score, type)``; type is sentencepiece's enum value (1 = NORMAL)."""
    @property
    def model_type(self) -> str:
        """``"bpe"``, ``"unigram"``, ``"word"`` or ``"char"``."""
    @property
    def byte_fallback(self) -> bool: ...
    @property
    def normalizer_name(self) -> str: ...

# ---- merge (merge.rs) --------------------------------------------------------------------

def merge_vocab(base: SentencePieceModel, add: SentencePieceModel, mode: str = "default") -> tuple[SentencePieceModel, str]:
    """Merge ``add`` into the BPE model ``base``; returns ``(merged_model, report_json)``."""

def unreachable_pieces(model: SentencePieceModel) -> list[int]:
    """Indices of NORMAL pieces no chain of BPE merges can reach."""

# ---- tokenizer (tokenizer.rs) ------------------------------------------------------------

class Tokenizer:
    """A SentencePiece model that encodes and decodes exactly as sentencepiece does.
    (``zhllama.Tokenizer`` wraps this with added tokens and pickling.)"""

    @staticmethod
    def from_bytes(data: bytes) -> Tokenizer: ...
    @staticmethod
    def from_file(path: Union[str, PathLike[str]]) -> Tokenizer: ...
    def encode(self, text: str, add_bos: bool = False, add_eos: bool = False) -> list[int]:
        """Ids as ``sentencepiece.encode``; a BOS/EOS the model lacks is left out."""
    def encode_bytes(self, data: bytes, add_bos: bool = False, add_eos: bool = False) -> list[int]:
        """Raw bytes, possibly invalid UTF-8 (each malformed byte normalizes to U+FFFD)."""
    def encode_batch(
        self,
        texts: Sequence[str],
        add_bos: bool = False,
        add_eos: bool = False,
        num_threads: Optional[int] = None,
    ) -> list[list[int]]:
        """GIL released; ``num_threads`` None or <= 0: all cores."""
    def encode_batch_flat(
        self,
        texts: Sequence[str],
        add_bos: bool = False,
        add_eos: bool = False,
        num_threads: Optional[int] = None,
    ) -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.int64]]:
        """``(ids, offsets)``; text ``i`` is ``ids[offsets[i]:offsets[i + 1]]``."""
    def decode(self, ids: Sequence[int]) -> str:
        """As ``sentencepiece.decode``; IndexError for ids outside the vocabulary."""
    @property
    def vocab_size(self) -> int: ...
    def id_to_piece(self, id: int) -> str:
        """IndexError when out of range."""
    def piece_to_id(self, piece: str) -> Optional[int]:
        """The id of exactly this piece, or None (sentencepiece would answer unk_id)."""
    @property
    def bos_id(self) -> Optional[int]: ...
    @property
    def eos_id(self) -> Optional[int]: ...
    @property
    def pad_id(self) -> Optional[int]: ...
    @property
    def unk_id(self) -> Optional[int]:
        """``SentencePieceProcessor.unk_id()``; None where it reports -1."""
    @property
    def model_unk_id(self) -> Optional[int]:
        """The model's UNKNOWN piece id (what unknown text encodes to without byte fallback).

        None for a byte-fallback model with no UNKNOWN piece (sentencepiece loads those)."""
    def piece_type(self, id: int) -> int:
        """1 NORMAL, 2 UNKNOWN, 3 CONTROL, 4 USER_DEFINED, 5 UNUSED, 6 BYTE."""
    def __len__(self) -> int: ...

# ---- corpus (corpus.rs) ------------------------------------------------------------------

class CorpusJob:
    """A running ``tokenize-corpus`` (a Rust thread); poll it, never block the GIL on it.

    Use it as a context manager: leaving the block (by an exception or not) cancels the run
    and joins its thread, as does dropping the last reference; the lock on ``out_dir`` goes
    with it."""

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds (GIL released); True once the run has ended.

        Signals are checked every 20 ms: Ctrl-C raises ``KeyboardInterrupt`` here promptly."""
    def progress(self) -> tuple[int, int, int, int]:
        """``(bytes_read, total_bytes, docs, tokens)`` so far."""
    def cancel(self) -> None:
        """Stop at the next chunk; completed shards stay and a rerun resumes."""
    def result(self) -> tuple[str, bool, int]:
        """``(manifest_json, already_done, resumed_shards)``, or raise the run's error."""
    def __enter__(self) -> CorpusJob: ...
    def __exit__(self, *exc: object) -> bool:
        """Cancel (a no-op once the run has ended) and join; never swallows the exception."""

def tokenize_corpus_start(
    tokenizer_path: str,
    inputs: Sequence[str],
    out_dir: str,
    *,
    threads: int,
    text_field: str,
    append_eos: bool,
    add_bos: bool,
    shard_size: int,
    on_bad_line: str,
    tokenizer_sha256: str,
    extra_json: str,
    table_reader: Optional[object] = None,
) -> CorpusJob:
    """Start tokenizing ``inputs`` (expanded, ordered) into Megatron shards under ``out_dir``.
    ``table_reader(path, column, skip_rows)`` yields lists of bytes-or-None (Parquet).

    The run locks ``out_dir`` (``.zhllama-lock``, holding pid, host and command) before it
    reads or cleans anything there; a second run on it fails with ``CorpusError``."""

def corpus_merge_parts(parts: Sequence[str], out: str) -> str:
    """``--merge-manifests``: join finished corpora ``parts`` (in order) into ``out``.

    Returns the merged manifest as JSON. Refuses, before touching ``out``, an ``out`` that is
    one of the parts, a part given twice, an unfinished part, parts from different commands
    and a manifest field this schema lacks (it would be dropped); locks ``out``."""

def corpus_input_format(path: Union[str, PathLike[str]]) -> Optional[str]:
    """``"txt"``, ``"jsonl"`` or ``"parquet"`` for a file name tokenize-corpus reads, else None."""

# ---- stats (stats.rs) --------------------------------------------------------------------

def stats_collect(
    tokenizer_paths: Sequence[str],
    inputs: Sequence[str],
    *,
    text_field: str,
    sample: Optional[int] = None,
    threads: int = 1,
    table_reader: Optional[object] = None,
) -> dict[str, object]:
    """Raw counts of each tokenizer over the first ``sample`` documents: corpus totals and
    ``"tokenizers"``, a list of dicts with ``tokens``, ``byte_tokens``, ``unk_tokens``,
    ``lengths`` (uint32 array), ``piece_counts`` (uint64 array), ``fallback_chars``."""

"""Type stub for ``zhllama._native``, the compiled Rust extension (rust/python/src/).

tests/test_native_stub.py checks that every name here exists in the compiled module, that
every public name of the module is declared here, and that every function and method here has
the compiled one's parameters (names, kinds, defaults).
"""

from collections.abc import Callable, Sequence
from enum import IntEnum
from os import PathLike
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import numpy.typing as npt

__version__: str

# ---- exceptions (error.rs) -------------------------------------------------------------

# Each class is also the builtin a caller would catch without knowing zhllama. A missing
# file raises the builtin FileNotFoundError. `zhllama VERB` reports all of them in one line
# (exit status 2; InternalError 70).

class ZhllamaError(Exception):
    """Base class of zhllama's native errors."""

class ModelError(ZhllamaError, ValueError):
    """A SentencePiece model file is unreadable or invalid; names the file it came from."""

class MergeError(ZhllamaError, ValueError):
    """Vocabulary merge refused its inputs."""

class CorpusError(ZhllamaError, ValueError):
    """Corpus input or output failed (names the file and line)."""

class InternalError(ZhllamaError, RuntimeError):
    """A bug in zhllama's native code (a caught Rust panic, with where it happened). Please report it."""

# ---- model I/O (model.rs) ----------------------------------------------------------------

class PieceType(IntEnum):
    """sentencepiece's ``ModelProto.SentencePiece.Type`` (an int: 1 is NORMAL)."""

    NORMAL = 1
    UNKNOWN = 2
    CONTROL = 3
    USER_DEFINED = 4
    UNUSED = 5
    BYTE = 6

class SentencePieceModel:
    """A parsed SentencePiece ``ModelProto``."""

    @staticmethod
    def from_bytes(data: bytes) -> SentencePieceModel: ...
    @staticmethod
    def from_file(path: Union[str, PathLike[str]]) -> SentencePieceModel: ...
    def to_bytes(self) -> bytes: ...
    def __len__(self) -> int: ...
    def pieces(self) -> list[tuple[str, float, PieceType]]:
        """``(piece, score, type)`` of every piece."""
    @property
    def model_type(self) -> str:
        """``"bpe"``, ``"unigram"``, ``"word"`` or ``"char"``."""
    @property
    def byte_fallback(self) -> bool: ...
    @property
    def normalizer_name(self) -> str: ...

# ---- merge (merge.rs) --------------------------------------------------------------------

def merge_vocab(
    base: SentencePieceModel, add: SentencePieceModel, mode: str = "default"
) -> tuple[SentencePieceModel, str]:
    """Merge ``add`` into the BPE model ``base``; returns ``(merged_model, report_json)``."""

def unreachable_pieces(model: SentencePieceModel) -> list[int]:
    """Indices of NORMAL pieces no chain of BPE merges can reach."""

# ---- tokenizer (tokenizer.rs) ------------------------------------------------------------

class Tokenizer:
    """A SentencePiece model (ids equal sentencepiece's) or a byte-level BPE tokenizer (ids equal HF
    tokenizers' ``encode`` for a tokenizer.json, tiktoken's ``encode_ordinary`` for a tiktoken
    file). (``zhllama.Tokenizer`` wraps this with added tokens, ``eos_ids`` and pickling.)

    Special ids: ``bos_id`` is what ``add_bos=True`` prepends (byte-level: the token the
    post-processor puts first, LLaMA-3 ``<|begin_of_text|>``; None for SmolLM2/Qwen2, where
    ``add_bos=True`` adds nothing instead of raising); ``eos_id`` is what ``add_eos=True``
    appends and tokenize-corpus's document separator (byte-level: the post-processor's end
    token, else tokenizer_config.json's ``eos_token``); ``pad_id`` from tokenizer_config.json.
    ``parse_special`` (byte-level only): False (default) encodes special-token text as text
    (HF ``encode_special_tokens=True``, tiktoken ``encode_ordinary``); True turns it into the
    special ids (HF's default ``encode``, tiktoken ``allowed_special="all"``)."""

    def __new__(
        cls,
        model_bytes: bytes,
        *_args: object,
        source: Optional[str] = None,
        path: Optional[str] = None,
        **_kwargs: object,
    ) -> Tokenizer:
        """Parse ``model_bytes`` (a SentencePiece model, a tiktoken file or a tokenizer.json, by
        content), or read ``path`` (a file or directory; a tokenizer.json also reads the
        tokenizer_config.json beside it). Errors name ``source``/``path`` in one line. Other
        arguments are left to a subclass's ``__init__``."""
    @staticmethod
    def from_bytes(data: bytes) -> Tokenizer: ...
    @staticmethod
    def from_file(path: Union[str, PathLike[str]]) -> Tokenizer: ...
    def encode(self, text: str, add_bos: bool = False, add_eos: bool = False, parse_special: bool = False) -> list[int]:
        """Ids as ``sentencepiece.encode`` / HF / tiktoken; a BOS/EOS the model lacks is left out."""
    def encode_bytes(
        self, data: bytes, add_bos: bool = False, add_eos: bool = False, parse_special: bool = False
    ) -> list[int]:
        """Raw bytes, possibly invalid UTF-8 (SentencePiece: each malformed byte normalizes to
        U+FFFD; byte-level: as ``data.decode("utf-8", "replace")``)."""
    def encode_batch(
        self,
        texts: Sequence[str],
        add_bos: bool = False,
        add_eos: bool = False,
        num_threads: Optional[int] = None,
        parse_special: bool = False,
    ) -> list[list[int]]:
        """Encoded on a pool of ``num_threads`` threads (1 to 1024; None: all cores; anything
        else is a ValueError), GIL released. Ctrl-C raises KeyboardInterrupt within ~20 ms."""
    def encode_batch_flat(
        self,
        texts: Sequence[str],
        add_bos: bool = False,
        add_eos: bool = False,
        num_threads: Optional[int] = None,
        parse_special: bool = False,
    ) -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.int64]]:
        """``(ids, offsets)``; text ``i`` is ``ids[offsets[i]:offsets[i + 1]]``. Threads and
        Ctrl-C as ``encode_batch``."""
    def decode(self, ids: Sequence[int]) -> str:
        """As ``sentencepiece.decode`` (byte-level: the bytes the ids spell, specials as their text,
        each invalid UTF-8 sequence one U+FFFD, as HF and tiktoken); IndexError for ids outside
        the vocabulary."""
    def decode_bytes(self, ids: Sequence[int]) -> bytes:
        """The exact bytes (byte-level), including characters cut between ids."""
    @property
    def vocab_size(self) -> int:
        """Byte-level: every id, added tokens included (LLaMA-3: 128,256)."""
    @property
    def format(self) -> str:
        """``"sentencepiece"``, ``"tokenizer.json"`` or ``"tiktoken"``."""
    @property
    def is_byte_level(self) -> bool: ...
    @property
    def special_tokens(self) -> list[tuple[str, int, bool]]:
        """Byte-level: ``(content, id, special)`` of every added token; ``[]`` for SentencePiece."""
    def id_to_piece(self, id: int) -> str:
        """The piece (byte-level: HF's token string, or an added token's text); IndexError naming
        the id and the vocabulary size when out of range."""
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
        """``SentencePieceProcessor.unk_id()``; None where it reports -1 (the spec's unk_piece
        is not the UNKNOWN piece) and for byte-level BPE. Core: ``Tokenizer::unk_id``."""
    @property
    def model_unk_id(self) -> Optional[int]:
        """The model's UNKNOWN piece id (what unknown text encodes to without byte fallback).

        None for a byte-fallback model with no UNKNOWN piece (sentencepiece loads those), and
        for byte-level BPE. Core: ``Tokenizer::model_unk_id``."""
    def piece_type(self, id: int) -> PieceType:
        """The type of piece ``id`` (byte-level: CONTROL for special tokens, USER_DEFINED for
        other added tokens, NORMAL otherwise); IndexError as ``id_to_piece`` when out of range."""
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
    ``on_bad_line`` is one of ``ON_BAD_LINE`` (else ``ValueError``).

    The run locks ``out_dir`` (``.zhllama-lock``, holding pid, host and command) before it
    reads or cleans anything there; a second run on it fails with ``CorpusError``."""

def corpus_merge_parts(parts: Sequence[str], out: str) -> str:
    """``--merge-manifests``: join finished corpora ``parts`` (in order) into ``out``.

    Returns the merged manifest as JSON. Refuses, before touching ``out``, an ``out`` that is
    one of the parts, a part given twice, an unfinished part, parts from different commands
    and a manifest field this schema lacks (it would be dropped); locks ``out``."""

def corpus_input_format(path: Union[str, PathLike[str]]) -> Optional[str]:
    """``"txt"``, ``"jsonl"`` or ``"parquet"`` for a file name tokenize-corpus reads, else None."""

# ---- one writer per output directory (lock.rs) ------------------------------------------

LOCK_FILE: str
"""The lock's file name inside the directory (``.zhllama-lock``)."""

class OutputLock:
    """The advisory lock on ``directory`` (created if missing) that ``tokenize-corpus`` holds on
    ``--out``; a second holder raises ``CorpusError`` naming the first (pid, host, command) and
    ``flag``. Released by :meth:`release`, leaving a ``with`` block, or the process's death."""

    def __init__(self, directory: Union[str, PathLike[str]], flag: str = "--output-dir") -> None: ...
    @property
    def held(self) -> bool: ...
    def release(self) -> None:
        """Remove the lock file and release the lock; idempotent."""
    def __enter__(self) -> OutputLock: ...
    def __exit__(self, *exc: object) -> bool: ...

# ---- shards from ids encoded elsewhere (shard_writer.rs) ---------------------------------

def write_shard_set(
    tokenizer_path: Union[str, PathLike[str]],
    out_dir: Union[str, PathLike[str]],
    batches: Callable[[int], Any],
    *,
    text_field: str,
    append_eos: bool,
    add_bos: bool,
    shard_size: int,
    on_bad_line: str,
    tokenizer_sha256: str,
    extra_json: str,
) -> tuple[str, bool]:
    """Write the documents of ``batches(skip)`` into ``out_dir`` as ``tokenize-corpus`` does (its
    writer: shards, counts, bad-line policy, manifest); returns ``(manifest_json, already_done)``.

    ``batches(skip)`` yields ``(texts, ids, offsets, sources, lines, reasons)``: per document its
    text (blank ones are counted as empty), its ids ``ids[offsets[i]:offsets[i + 1]]`` (uint32,
    BOS/EOS included), its source name, 1-based line and ``None`` or why it is malformed. ``skip``
    is how many leading documents an interrupted run in ``out_dir`` wrote (its ``progress.json``):
    they come again with no ids, are checked against that run's record and dropped. A directory
    that already holds a finished corpus with this tokenizer and these options is kept and
    ``batches`` not called. Locks ``out_dir`` while it writes."""

# ---- byte-level tables (bytelevel.rs; zhllama_core::bytelevel::tables) ------------------------

def bytelevel_tables() -> dict[str, Any]:
    """``{"patterns": {name: regex}, "llama3_specials": [256 names in id order],
    "llama3_base_tokens": 128000, "byte_alphabet": str}``: the pre-tokenizer patterns with a
    hand-written splitter (gpt2, llama3, qwen2, o200k, tekken), LLaMA-3's special tokens, and
    GPT-2's byte alphabet (character ``i`` stands for byte ``i``)."""

# ---- documents (reader.rs) ---------------------------------------------------------------

ON_BAD_LINE: list[str]

# Which characters are Chinese (zhllama_core::chinese): inclusive (first, last) code points.
CHINESE_RANGES: list[tuple[int, int]]
HAN_RANGES: list[tuple[int, int]]

# ---- extend-vocab's pre-token counts (pretoken_counts.rs) ----------------------------------------

class PretokenCounter:
    """The Chinese pre-tokens of documents, as the base's normalizer and pre-tokenizer split them
    (``zhllama_core::pretoken_counts``), counted in parallel with the GIL released; at most
    ``max_entries`` distinct ones held (past it the rarest are pruned, word2vec's rule)."""

    def __init__(self, tokenizer_json: bytes, max_entries: int) -> None: ...
    def add(self, documents: list[str]) -> None: ...
    def items(self, min_count: int = 1) -> list[tuple[bytes, int]]:
        """``(pre-token UTF-8 bytes, count)``, most frequent first, ties by bytes."""
    @property
    def stats(self) -> dict[str, int]:
        """documents, characters, occurrences, dropped_occurrences, dropped_entries, floor."""
    def __len__(self) -> int: ...
"""The values of ``on_bad_line``: ``["fail", "skip"]``."""

class DocumentReader:
    """The documents of ``paths`` (expanded, ordered), as ``str``, read in Rust as
    ``tokenize-corpus`` reads them: blank lines skipped (``empty_docs``), each invalid UTF-8
    byte one U+FFFD, a bad line a ``CorpusError`` naming ``file:line`` (``on_bad_line="fail"``)
    or skipped and counted (``"skip"``; anything else is a ``ValueError``). Chunks are read
    with the GIL released; documents before a bad line are yielded before the error."""

    def __init__(
        self,
        paths: Sequence[Union[str, PathLike[str]]],
        *,
        text_field: str = "text",
        on_bad_line: str = "fail",
        table_reader: Optional[object] = None,
    ) -> None: ...
    def __iter__(self) -> DocumentReader: ...
    def __next__(self) -> str: ...
    @property
    def files(self) -> list[Path]:
        """The input files, in reading order."""
    @property
    def documents(self) -> int:
        """Documents read so far."""
    @property
    def lines(self) -> int:
        """Lines (Parquet rows) read so far."""
    @property
    def bad_lines(self) -> int:
        """Lines skipped under ``on_bad_line="skip"``."""
    @property
    def empty_docs(self) -> int:
        """Lines skipped because they are empty or only whitespace."""
    @property
    def invalid_utf8_docs(self) -> int:
        """Documents with invalid UTF-8."""
    @property
    def invalid_utf8_bytes(self) -> int:
        """Bytes turned into U+FFFD."""
    @property
    def bytes_read(self) -> int:
        """On-disk bytes read so far (compressed bytes of a compressed file; a Parquet file once
        read whole): a progress bar's measure against the files' size."""

# ---- stats (stats.rs) --------------------------------------------------------------------

def stats_collect(
    tokenizer_paths: Sequence[str],
    inputs: Sequence[str],
    *,
    text_field: str,
    on_bad_line: str = "fail",
    sample: Optional[int] = None,
    threads: int = 1,
    table_reader: Optional[object] = None,
) -> dict[str, Any]:
    """Raw counts of each tokenizer over the first ``sample`` documents (read by the document
    reader, with its ``on_bad_line`` policy): corpus totals and
    ``"tokenizers"``, a list of dicts with ``tokens``, ``byte_tokens``, ``unk_tokens``,
    ``lengths`` (uint32 array), ``piece_counts`` (uint64 array), ``fallback_chars``."""

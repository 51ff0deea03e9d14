"""Alpaca-format instruction data as training examples: masked labels, truncation, padding.

Records and the prompt template are :mod:`zhllama.prompt`'s. The response is followed by EOS.
Prompt tokens get label -100 so only the response is learned. Tokenization is zhllama's exact
encoder: the prompt with BOS, the response separately (as the reference does). An example longer
than ``max_seq_length`` loses the end of its response but keeps the EOS (cut before it): a
truncated answer still teaches the model to stop. Those are counted and logged.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from torch.utils.data import Dataset

from zhllama.chat_template import chat_segments, conversation, encode_rendered, special_tokens
from zhllama.prompt import build_prompt, iter_prompt_batches
from zhllama.records import iter_items
from zhllama.tokenizer import Tokenizer

log = logging.getLogger("zhllama.train")

IGNORE_INDEX = -100


BATCH = 4096  # records tokenized at a time (one parallel encode_batch_flat call per batch)


@dataclass
class Example:
    """A training example before tokenization: text segments, each learned (loss) or not; ``bos``
    puts the tokenizer's BOS first, ``eos`` its EOS after the last segment (learned with it)."""

    segments: list[tuple[str | list[int], bool]]  # text to encode, or ids already encoded
    bos: bool = False
    eos: bool = False


def alpaca_example(record: dict[str, str]) -> Example:
    """The report's Alpaca example: BOS + prompt (masked), response + EOS (learned)."""
    return Example([(build_prompt(record["instruction"], record["input"]), False), (record["output"], True)],
                   bos=True, eos=True)


def chat_examples(template: str, tokenizer: Tokenizer, path: str | Path) -> Iterator[Example]:
    """Multi-turn records rendered with ``template`` (the base tokenizer's): context masked, each
    assistant turn through its end-of-turn token learned; BOS/EOS come from the template's text.

    The whole conversation is encoded at once, as a server encodes the rendered template; a
    learned turn starts at the first token that the text before it does not also produce (its
    boundary, when the boundary falls between tokens) and ends likewise."""
    special = special_tokens(tokenizer)
    for where, item in iter_items(path):
        segments = chat_segments(template, conversation(where, item), where, special)
        whole = "".join(text for text, _ in segments)
        ids = encode_rendered(tokenizer, whole)

        cuts: list[tuple[int, bool]] = []  # (token end, learned) of each piece
        pos = 0
        for text, learned in segments:
            pos += len(text)
            if learned:
                start = _common_prefix(encode_rendered(tokenizer, whole[:pos - len(text)]), ids)
                end = _common_prefix(encode_rendered(tokenizer, whole[:pos]), ids)
                cuts += [(start, False), (max(start, end), True)]
        cuts.append((len(ids), False))
        pieces: list[tuple[str | list[int], bool]] = []
        at = 0
        for end, learned in cuts:
            pieces.append((ids[at:end], learned))
            at = end
        yield Example(pieces)


def _common_prefix(a: list[int], b: list[int]) -> int:
    return next((k for k, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


Range = tuple[int, int, bool]  # (start in the batch's token source, length, learned)


def _truncate(ranges: list[Range], total: int, max_seq_length: int) -> Optional[list[Range]]:
    """An example longer than ``max_seq_length`` ends with the learned span the cut falls into (or
    the last one before it), content cut, its last token (the EOS or end-of-turn) kept; None when
    no learned token and its end token fit. ``ranges`` unchanged when it fits."""
    spans: list[tuple[int, int, int]] = []  # learned spans: token start, token end, range index of the end
    pos = 0
    for k, (_, n, learned) in enumerate(ranges):
        if learned and n:
            if spans and spans[-1][1] == pos:
                spans[-1] = (spans[-1][0], pos + n, k)
            else:
                spans.append((pos, pos + n, k))
        pos += n
    if not spans:
        return None
    if total <= max_seq_length:
        return ranges
    keep = [sp for sp in spans if sp[0] <= max_seq_length - 2]
    if not keep:
        return None
    _, end, k = keep[-1]
    last = (ranges[k][0] + ranges[k][1] - 1, 1, True)
    cut = min(max_seq_length - 1, end - 1)
    out: list[Range] = []
    pos = 0
    for start, n, learned in ranges:
        if pos >= cut:
            break
        out.append((start, min(n, cut - pos), learned))
        pos += n
    return out + [last]


@dataclass
class EncodedBatch:
    """Examples as flat arrays: example ``i`` is ``ids[offsets[i]:offsets[i + 1]]``, ``learned`` the
    same slice of 0/1 (1: in the loss), or of bits (``np.packbits``) when ``packed``."""

    ids: np.ndarray
    learned: np.ndarray
    offsets: np.ndarray
    dropped: int
    truncated: int
    packed: bool = False

    def compact(self, dtype: type) -> EncodedBatch:
        """Ids in ``dtype``, the mask one bit a token: what a dataset keeps (2 1/8 bytes a token)."""
        return EncodedBatch(self.ids.astype(dtype), np.packbits(self.learned), self.offsets, self.dropped,
                            self.truncated, packed=True)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def example(self, i: int) -> dict:
        s, e = int(self.offsets[i]), int(self.offsets[i + 1])
        learned = (np.unpackbits(self.learned[s // 8:(e + 7) // 8])[s % 8:s % 8 + e - s] if self.packed
                   else self.learned[s:e])
        labels = np.where(learned != 0, self.ids[s:e].astype(np.int64), IGNORE_INDEX)
        return {"input_ids": self.ids[s:e].tolist(), "labels": labels.tolist()}


def encode_examples(tokenizer: Tokenizer, examples: Sequence[Example], max_seq_length: int,
                    parse_special: bool = False) -> EncodedBatch:
    """Tokenized with zhllama's exact encoder, every segment on its own, in one parallel call;
    truncated (``_truncate``) and gathered without a Python list per token."""
    texts = [t for ex in examples for t, _ in ex.segments if isinstance(t, str)]
    flat, offsets = tokenizer.encode_batch_flat(texts, parse_special=parse_special)
    given = [t for ex in examples for t, _ in ex.segments if not isinstance(t, str)]
    n, m = len(flat), sum(map(len, given))
    source = np.concatenate([flat, np.fromiter((i for g in given for i in g), dtype=flat.dtype, count=m),
                             np.array([tokenizer.bos_id or 0, tokenizer.eos_id or 0], dtype=flat.dtype)])
    bos = (n + m, 1, False) if tokenizer.bos_id is not None else None
    eos = (n + m + 1, 1, True) if tokenizer.eos_id is not None else None
    table = _uniform_table(examples, offsets, bos, eos)
    if table is None:
        table = _table(examples, offsets, n, bos, eos)
    return _layout(source, table, max_seq_length)


def encode_alpaca(tokenizer: Tokenizer, prompts: Sequence[str], outputs: Sequence[str],
                  max_seq_length: int) -> EncodedBatch:
    """``encode_examples`` of ``alpaca_example`` of each (prompt, output) pair, without the examples."""
    texts: list[str] = [""] * (2 * len(prompts))
    texts[0::2], texts[1::2] = prompts, outputs
    flat, offsets = tokenizer.encode_batch_flat(texts)
    n = len(flat)
    source = np.concatenate([flat, np.array([tokenizer.bos_id or 0, tokenizer.eos_id or 0], dtype=flat.dtype)])
    bos = (n, 1, False) if tokenizer.bos_id is not None else None
    eos = (n + 1, 1, True) if tokenizer.eos_id is not None else None
    return _layout(source, _columns(len(prompts), [False, True], True, True, offsets, bos, eos), max_seq_length)


def _layout(source: np.ndarray, table: Table, max_seq_length: int) -> EncodedBatch:
    """The examples of ``table`` (rows of ranges of ``source``), each cut or dropped by ``_truncate``."""
    starts, lens, learn = table
    dropped = truncated = 0
    keep = np.ones(len(starts), dtype=bool)
    totals = lens.sum(axis=1)
    has_learned = (lens * learn).sum(axis=1) > 0
    for r in np.flatnonzero((totals > max_seq_length) | ~has_learned).tolist():  # the per-example rule
        kept = _truncate(list(zip(starts[r].tolist(), lens[r].tolist(), learn[r].astype(bool).tolist())),
                         int(totals[r]), max_seq_length)
        if kept is None:
            keep[r] = False
            dropped += 1
            continue
        truncated += 1
        starts[r], lens[r], learn[r] = 0, 0, 0
        for c, (a, k, learned) in enumerate(kept):
            starts[r, c], lens[r, c], learn[r, c] = a, k, learned
    lengths = lens[keep].sum(axis=1)
    starts, lens, learn = starts[keep].ravel(), lens[keep].ravel(), learn[keep].ravel()
    ends = np.cumsum(lens)
    index = np.repeat(starts - (ends - lens), lens) + np.arange(int(ends[-1]) if len(ends) else 0)
    return EncodedBatch(source[index], np.repeat(learn.astype(np.uint8), lens),
                        np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)]), dropped, truncated)


Table = tuple[np.ndarray, np.ndarray, np.ndarray]  # (examples, ranges) starts, lengths, learned (0/1)


def _uniform_table(examples: Sequence[Example], offsets: np.ndarray, bos: Optional[Range],
                   eos: Optional[Range]) -> Optional[Table]:
    """The ranges of a batch whose examples share one shape (Alpaca's: BOS, prompt, response, EOS),
    built without a Python step per example; None for any other batch."""
    if not examples:
        return None
    first = examples[0]
    shape = (first.bos, first.eos, [learned for _, learned in first.segments])
    if any((ex.bos, ex.eos, [learned for _, learned in ex.segments]) != shape or
           not all(isinstance(t, str) for t, _ in ex.segments) for ex in examples):
        return None
    return _columns(len(examples), shape[2], first.bos, first.eos, offsets, bos, eos)


def _columns(n: int, learned: list[bool], with_bos: bool, with_eos: bool, offsets: np.ndarray,
             bos: Optional[Range], eos: Optional[Range]) -> Table:
    """The ranges of ``n`` examples of one shape: BOS if ``with_bos``, a segment a flag of
    ``learned`` (encoded in that order, ``offsets`` of all), EOS if ``with_eos``; one spare column for a cut."""
    k = len(learned)
    cols: list[tuple[np.ndarray, np.ndarray, int]] = []
    if with_bos and bos:
        cols.append((np.full(n, bos[0]), np.ones(n, np.int64), 0))
    seg_starts, seg_lens = offsets[:-1].reshape(n, k), np.diff(offsets).reshape(n, k)
    cols += [(seg_starts[:, c], seg_lens[:, c], int(learned[c])) for c in range(k)]
    if with_eos and eos:
        cols.append((np.full(n, eos[0]), np.ones(n, np.int64), 1))
    cols.append((np.zeros(n, np.int64), np.zeros(n, np.int64), 0))
    return (np.stack([c[0] for c in cols], axis=1).astype(np.int64), np.stack([c[1] for c in cols], axis=1),
            np.tile(np.array([c[2] for c in cols], dtype=np.int64), (n, 1)))


def _table(examples: Sequence[Example], offsets: np.ndarray, given_start: int, bos: Optional[Range],
           eos: Optional[Range]) -> Table:
    """The ranges of any batch, one example at a time (already-encoded segments follow the
    encoded texts in the source from ``given_start``); one spare column for a cut."""
    off = offsets.tolist()
    rows: list[list[Range]] = []
    g, j = given_start, 0
    for ex in examples:
        rs: list[Range] = [bos] if ex.bos and bos else []
        for seg, learned in ex.segments:
            if isinstance(seg, str):
                a, b = off[j], off[j + 1]
                j += 1
            else:
                a, b = g, g + len(seg)
                g = b
            rs.append((a, b - a, learned))
        if ex.eos and eos:
            rs.append(eos)
        rows.append(rs)
    width = max(map(len, rows), default=0) + 1
    table = np.zeros((3, len(rows), width), dtype=np.int64)
    for r, rs in enumerate(rows):
        for c, (a, k, learned) in enumerate(rs):
            table[:, r, c] = a, k, learned
    return table[0], table[1], table[2]


def encode_record(tokenizer: Tokenizer, record: dict[str, str], max_seq_length: int) -> Optional[dict]:
    """input_ids / labels for one Alpaca record, or None when the prompt leaves no room for a
    response token and its EOS. A response cut to fit keeps its EOS; ``"truncated"`` says whether it was cut."""
    batch = encode_examples(tokenizer, [alpaca_example(record)], max_seq_length)
    return None if batch.dropped else {**batch.example(0), "truncated": bool(batch.truncated)}


class InstructionDataset(Dataset):
    """Encoded instruction records, stored flat (``EncodedBatch``: compact arrays, not a Python list
    per example); ``dropped`` counts those whose prompt leaves no room for a response, ``truncated``
    those whose response was cut (before its EOS) to fit ``max_seq_length``. Records are streamed
    and tokenized ``BATCH`` at a time."""

    def __init__(self, files: Sequence[str | Path], tokenizer: Tokenizer, max_seq_length: int,
                 chat_template: Optional[str] = None) -> None:
        dtype = np.uint16 if len(tokenizer) <= 1 << 16 else np.uint32
        parts: list[EncodedBatch] = []

        def add(done: EncodedBatch) -> None:
            done = done.compact(dtype)
            if len(done) or not parts:
                parts.append(done)
            else:  # keep its counts only
                parts[-1].dropped, parts[-1].truncated = parts[-1].dropped + done.dropped, \
                    parts[-1].truncated + done.truncated

        def batches(f: str | Path) -> Iterator[Callable[[], EncodedBatch]]:
            """Each batch's encoding, to run on the pool."""
            if chat_template is None:
                for prompts, outputs in iter_prompt_batches(f, BATCH):
                    yield partial(encode_alpaca, tokenizer, prompts, outputs, max_seq_length)
                return
            batch: list[Example] = []
            for ex in chat_examples(chat_template, tokenizer, f):
                batch.append(ex)
                if len(batch) == BATCH:
                    yield partial(encode_examples, tokenizer, batch, max_seq_length)
                    batch = []
            yield partial(encode_examples, tokenizer, batch, max_seq_length)

        # Tokenizing one batch (GIL released, all cores) overlaps reading the next; two in flight at most.
        with ThreadPoolExecutor(1) as pool:
            pending: deque[Future] = deque()
            for f in files:
                for encode in batches(f):
                    pending.append(pool.submit(lambda e: add(e()), encode))
                    if len(pending) > 1:
                        pending.popleft().result()
            while pending:
                pending.popleft().result()
        # The batches stay as they are (no concatenation, which would double the peak memory).
        self.parts = parts
        self.firsts = np.cumsum([0] + [len(p) for p in parts])  # the first example of each batch
        self.dropped, self.truncated = sum(p.dropped for p in parts), sum(p.truncated for p in parts)
        n = len(self)
        if self.dropped:
            log.warning("dropped %d records whose prompt fills --max-seq-length %d (no room for a response token "
                        "and its EOS)", self.dropped, max_seq_length)
        if self.truncated:
            log.warning("truncated %d of %d records to --max-seq-length %d (the end of the response cut, its EOS "
                        "kept); raise --max-seq-length to train on them whole", self.truncated, n, max_seq_length)
        if not n:
            raise ValueError(f"{', '.join(map(str, files))}: no usable record (dropped {self.dropped} whose prompt "
                             f"fills --max-seq-length {max_seq_length})")
        log.info("%d instruction examples from %s", n, ", ".join(map(str, files)))

    def __len__(self) -> int:
        return int(self.firsts[-1])

    def __getitem__(self, i: int) -> dict:
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        i %= len(self)
        part = int(np.searchsorted(self.firsts, i, side="right")) - 1
        return self.parts[part].example(i - int(self.firsts[part]))


@dataclass
class PaddingCollator:
    """Right-pads a batch with the pad id; padded labels are -100 and masked out of attention."""

    pad_id: int

    def __call__(self, batch: list[dict]) -> dict[str, torch.Tensor]:
        n = max(len(ex["input_ids"]) for ex in batch)
        ids = torch.full((len(batch), n), self.pad_id, dtype=torch.long)
        labels = torch.full((len(batch), n), IGNORE_INDEX, dtype=torch.long)
        mask = torch.zeros((len(batch), n), dtype=torch.long)
        for row, ex in enumerate(batch):
            k = len(ex["input_ids"])
            ids[row, :k] = torch.as_tensor(ex["input_ids"])
            labels[row, :k] = torch.as_tensor(ex["labels"])
            mask[row, :k] = 1
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}

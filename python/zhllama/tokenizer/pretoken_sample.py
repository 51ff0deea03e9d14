"""What ``extend-vocab`` learns from: a reproducible sample of the corpus, its Chinese pre-tokens
counted in the Rust core (``_native.PretokenCounter``), the rarest pruned to bound memory.

Sampling (``--sample-bytes``, ``--seed``): each document is kept with probability
``--sample-bytes / the inputs' total size on disk`` (1 when they are smaller), drawn in order
with ``random.Random(seed)``, so the same inputs and seed give the same sample in any process. A
compressed input counts by its size on disk, so it gives about its compression ratio more text
than the budget. The whole input is read (documents are skipped, not files), so a sample is
spread over every file.

Pruning (``--max-pretokens``): the count table holds at most that many distinct pre-tokens; past
it, every pre-token seen at most ``floor`` times is dropped, ``floor`` rising by one until the
table fits (word2vec's rule; see ``rust/core/src/pretoken_counts.rs``). Counts are exact until the
table first overflows, and the report states the floor and what was dropped.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Optional

from zhllama import _native
from zhllama.tokenizer.bytelevel_base import to_bytelevel

DEFAULT_SAMPLE_BYTES = 1 << 30
DEFAULT_MAX_PRETOKENS = 1_000_000
BATCH_DOCS = 4096


@dataclass(frozen=True)
class Sample:
    """How much of the corpus is counted: ``rate`` of its documents, drawn with ``seed``."""

    rate: float
    seed: int
    input_bytes: Optional[int]  # on disk; None for the built-in corpus
    sample_bytes: int


def sample_rate(inputs: Optional[Sequence[str]], sample_bytes: int) -> tuple[float, Optional[int]]:
    """(the share of documents to keep, the inputs' size on disk)."""
    if sample_bytes < 1:
        raise ValueError(f"--sample-bytes {sample_bytes}: must be at least 1")
    if not inputs:
        return 1.0, None
    from zhllama.documents import expand_inputs

    total = sum(os.path.getsize(f) for f in expand_inputs(list(inputs)))
    return (1.0 if total <= sample_bytes else sample_bytes / total), total


def sampled(docs: Iterable[str], rate: float, seed: int) -> Iterable[str]:
    if rate >= 1.0:
        yield from docs
        return
    draw = random.Random(seed).random
    for doc in docs:
        if draw() < rate:
            yield doc


def count_pretokens(tokenizer_json: dict[str, Any], docs: Iterable[str], sample: Sample, max_pretokens: int,
                    quiet: bool) -> tuple[dict[str, int], dict[str, Any]]:
    """The Chinese pre-tokens of the sampled documents (in the byte alphabet, as HF's
    ``pre_tokenize_str`` writes them) with their counts, most frequent first; and the
    counter's figures (documents, characters, occurrences, pruning)."""
    from tqdm import tqdm

    if max_pretokens < 1:
        raise ValueError(f"--max-pretokens {max_pretokens}: must be at least 1")
    counter = _native.PretokenCounter(json.dumps(tokenizer_json).encode(), max_pretokens)
    batch: list[str] = []
    for doc in tqdm(sampled(docs, sample.rate, sample.seed), desc="counting pre-tokens", unit=" docs",
                    disable=quiet, mininterval=0.5):
        batch.append(doc)
        if len(batch) >= BATCH_DOCS:
            counter.add(batch)
            batch = []
    if batch:
        counter.add(batch)
    counts = {to_bytelevel(k): c for k, c in counter.items()}
    return counts, {**counter.stats, "distinct": len(counts), "max_pretokens": max_pretokens}

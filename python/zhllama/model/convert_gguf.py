"""``zhllama convert-gguf``: a GGUF file in, a plain Hugging Face model directory out.

    zhllama convert-gguf SmolLM2-135M-Instruct.Q4_1.gguf smollm2-135m/

transformers reads a GGUF (``from_pretrained(dir, gguf_file=...)``, with the ``gguf`` package)
by de-quantizing every tensor, but refuses to ``save_pretrained`` the result ("quantized with
gguf and not serializable"). The weights it holds are ordinary tensors by then; what marks the
model as quantized is the ``quantization_config`` on its config and the quantizer object on the
model. This module drops both and saves: ``model.safetensors`` (float32 by default, so the
de-quantized values are kept exactly and the logits equal transformers' GGUF-loaded model's),
``config.json`` without ``quantization_config``, ``generation_config.json``, and the tokenizer
that transformers' GGUF reader builds (``tokenizer.json``, ``tokenizer_config.json``, the chat
template). A model with tied embeddings (SmolLM2: no ``output.weight`` in the file) stays tied.

Every verb that takes a base model (``resize --model``, ``merge-lora --base``, ``generate`` and
``eval --model``, the demo's ``--base``) also accepts a ``.gguf`` file: :func:`model_dir`
converts it once into ``$ZHLLAMA_CACHE/gguf/`` (default ``~/.cache/zhllama/gguf/``), keyed by
the file's sha256, and hands back that directory.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Optional

from zhllama.tokenizer.directory import sha256_file

DTYPES = ("float32", "bfloat16", "float16")
RECORD = "convert_gguf.json"
log = logging.getLogger("zhllama.convert_gguf")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("gguf", metavar="FILE.gguf", help="The GGUF model file (e.g. SmolLM2-135M-Instruct.Q4_1.gguf).")
    parser.add_argument("out", metavar="OUT_DIR", help="Output directory (Hugging Face layout; created).")
    parser.add_argument("--dtype", choices=DTYPES, default="float32",
                        help="Dtype of the saved weights. float32 (default) keeps the de-quantized values exactly; "
                             "bfloat16/float16 halve the size and round them.")


def check_gguf(path: str | os.PathLike[str]) -> Path:
    """``path`` as a Path if it is a readable GGUF file, else a one-line error saying what to pass."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such file; pass a .gguf model file")
    with open(p, "rb") as f:
        magic = f.read(4)
    if magic != b"GGUF":
        raise ValueError(f"{p}: not a GGUF file (starts with {magic!r}, not b'GGUF')")
    return p


def _require_gguf_package() -> None:
    try:
        import gguf  # noqa: F401
    except ImportError as e:
        raise ImportError("reading a .gguf file needs the gguf package: pip install 'gguf>=0.10'") from e


def gguf_pre_tokenizer(path: str | os.PathLike[str]) -> Optional[str]:
    """The file's ``tokenizer.ggml.pre`` (llama.cpp's name for the pre-tokenizer), or None."""
    import gguf

    field = gguf.GGUFReader(str(path)).fields.get("tokenizer.ggml.pre")
    return None if field is None else str(field.contents())


def write_gguf_tokenizer(path: str | os.PathLike[str], out: str | os.PathLike[str]) -> str:
    """Write the GGUF's tokenizer as a Hugging Face tokenizer directory (``tokenizer.json``,
    ``tokenizer_config.json``, chat template) into ``out``; returns ``tokenizer.ggml.pre``.

    transformers' GGUF reader gives every byte-level ("gpt2") GGUF a bare ByteLevel
    pre-tokenizer. llama.cpp's ``smollm`` pre-tokenizer first splits off every digit, then applies
    GPT-2's pattern: the published SmolLM2 tokenizer.json's ``Sequence[Digits(individual_digits),
    ByteLevel]``, which is written back here (without it "2024" is one token instead of four).
    Other pre-tokenizer names are kept as transformers writes them, with a warning.
    """
    from transformers import AutoTokenizer

    p = check_gguf(path)
    _require_gguf_package()
    out = Path(out)
    AutoTokenizer.from_pretrained(str(p.parent), gguf_file=p.name).save_pretrained(str(out))
    pre = gguf_pre_tokenizer(p) or "default"
    tj = out / "tokenizer.json"
    data = json.loads(tj.read_text(encoding="utf-8"))
    current = data.get("pre_tokenizer") or {}
    if pre == "smollm" and current.get("type") == "ByteLevel":
        data["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": True}, current]}
        tj.write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    elif pre not in ("smollm", "default"):
        log.warning("%s: tokenizer.ggml.pre is %r; the tokenizer.json keeps transformers' pre-tokenizer %s: compare "
                    "it with the model's published tokenizer.json", p, pre, current.get("type"))
    return pre


def load_gguf_model(path: str | os.PathLike[str]) -> Any:
    """The model in float32 as transformers reads ``path``, with its quantizer marks removed."""
    import torch
    from transformers import AutoModelForCausalLM

    p = check_gguf(path)
    _require_gguf_package()
    model: Any = AutoModelForCausalLM.from_pretrained(str(p.parent), gguf_file=p.name, dtype=torch.float32)
    # The tensors are de-quantized already; these two marks are all that stops save_pretrained.
    with contextlib.suppress(AttributeError):
        del model.config.quantization_config
    model.hf_quantizer = None
    if hasattr(model, "is_quantized"):
        with contextlib.suppress(AttributeError):
            model.is_quantized = False
    return model


def convert_gguf(path: str | os.PathLike[str], out: str | os.PathLike[str], dtype: str = "float32") -> Path:
    """Write ``path`` (a GGUF file) as a plain Hugging Face model directory ``out``; returns ``out``.

    The directory is written under a temporary name beside ``out`` and renamed into place, so an
    interrupted conversion never leaves a directory that looks complete.
    """
    import torch

    if dtype not in DTYPES:
        raise ValueError(f"--dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    src, out = check_gguf(path), Path(out)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out}: exists and is not empty; pass a new output directory")
    model = load_gguf_model(src).to(getattr(torch, dtype))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        model.save_pretrained(tmp)
        model.generation_config.save_pretrained(tmp)
        pre = write_gguf_tokenizer(src, tmp)
        config = json.loads((tmp / "config.json").read_text())
        if "quantization_config" in config:  # never expected: load_gguf removed it
            raise RuntimeError(f"{tmp / 'config.json'} still has a quantization_config")
        record = {"gguf": str(src.resolve()), "gguf_sha256": sha256_file(src), "dtype": dtype, "pre_tokenizer": pre,
                  "tie_word_embeddings": bool(getattr(model.config, "tie_word_embeddings", False)),
                  "vocab_size": int(model.get_input_embeddings().weight.shape[0])}
        (tmp / RECORD).write_text(json.dumps(record, indent=2) + "\n")
        if out.exists():
            out.rmdir()  # empty, checked above
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def cache_root() -> Path:
    return Path(os.environ.get("ZHLLAMA_CACHE", Path.home() / ".cache" / "zhllama")) / "gguf"


def model_dir(path: str | os.PathLike[str]) -> Path:
    """A Hugging Face model directory for ``path``: the path itself, or for a ``.gguf`` file its
    conversion, made once and cached by the file's sha256 (a rerun, or a parallel one, reuses it)."""
    p = Path(path)
    if p.suffix.lower() != ".gguf":
        return p
    src = check_gguf(p)
    digest = sha256_file(src)
    dest = cache_root() / f"{src.stem}-{digest[:16]}"
    if (dest / RECORD).is_file():
        return dest
    log.info("converting %s to a Hugging Face model in %s (once)", src, dest)
    try:
        convert_gguf(src, dest)
    except OSError:  # a parallel run renamed its finished conversion into place first
        if not (dest / RECORD).is_file():
            raise
    return dest


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    out = convert_gguf(args.gguf, args.out, args.dtype)
    record = json.loads((out / RECORD).read_text())
    log.info("wrote %s (%s rows, %s, tied embeddings: %s)", out, f"{record['vocab_size']:,}", record["dtype"],
             record["tie_word_embeddings"])
    return 0

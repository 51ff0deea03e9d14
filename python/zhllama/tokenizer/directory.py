"""Write and read the tokenizer directory that every later step takes.

Layout: ``tokenizer.model`` (SentencePiece ModelProto),
``tokenizer_config.json`` and ``special_tokens_map.json`` (so that
``transformers.LlamaTokenizer.from_pretrained(DIR)`` loads it), ``merge_report.json``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

from zhllama._native import PieceType
from zhllama.tokenizer.spm_json import write_tokenizer_json

MODEL_FILE = "tokenizer.model"
JSON_FILE = "tokenizer.json"  # HF tokenizers: byte-level BPE bases (LLaMA-3, Qwen2, SmolLM2)
CONFIG_FILE = "tokenizer_config.json"
SPECIAL_TOKENS_FILE = "special_tokens_map.json"
REPORT_FILE = "merge_report.json"
ADDED_TOKENS_FILE = "added_tokens.json"  # written by older transformers versions
CHAT_TEMPLATE_FILE = "chat_template.jinja"  # transformers 5 writes the chat template beside the tokenizer
TOKENIZER_FILES = (MODEL_FILE, JSON_FILE, CONFIG_FILE, SPECIAL_TOKENS_FILE, ADDED_TOKENS_FILE, REPORT_FILE,
                   CHAT_TEMPLATE_FILE)


def read_json_object(path: Path) -> dict[str, Any]:
    """A JSON object file of the tokenizer directory; ``{}`` when the file is absent."""
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object, found {type(data).__name__}")
    return data


def token_content(value: object) -> Optional[str]:
    """A special token as HF writes it: a plain string or an ``AddedToken`` dict."""
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) and value else None


def copy_tokenizer_files(src: str | os.PathLike[str], out: str | os.PathLike[str]) -> list[str]:
    """Copy the tokenizer files of ``src`` (a directory or a ``.model`` file) into ``out``."""
    src, out = Path(src), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if src.is_file():
        # A bare tokenizer.json keeps its name; a .model file (SentencePiece or tiktoken) becomes
        # tokenizer.model, which the loader reads either way.
        name = JSON_FILE if src.suffix == ".json" else MODEL_FILE
        shutil.copyfile(src, out / name)
        return [name]
    copied = []
    for name in TOKENIZER_FILES:
        if (src / name).is_file():
            shutil.copyfile(src / name, out / name)
            copied.append(name)
    if MODEL_FILE in copied and JSON_FILE not in copied:
        # A SentencePiece BPE directory written before tokenizer.json was: add the exact one.
        config = read_json_object(out / CONFIG_FILE)
        if write_tokenizer_json(out / JSON_FILE, (out / MODEL_FILE).read_bytes(),
                                token_content(config.get("pad_token"))) is not None:
            copied.append(JSON_FILE)
            if config.get("tokenizer_class") == "LlamaTokenizer":
                config["tokenizer_class"] = "PreTrainedTokenizerFast"
                (out / CONFIG_FILE).write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n",
                                               encoding="utf-8")
    return copied


def sha256_file(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def tokenizer_file(path: str | os.PathLike[str]) -> Optional[Path]:
    """The one rule for "which file is this tokenizer": a file as given; in a directory
    ``tokenizer.model`` (SentencePiece, or tiktoken for LLaMA-3's original layout), else
    ``tokenizer.json`` (byte-level BPE; its ``tokenizer_config.json`` is read beside it); None when
    there is neither (a directory without a tokenizer, such as an adapter saved without one)."""
    p = Path(path)
    if p.is_dir():
        return next((p / name for name in (MODEL_FILE, JSON_FILE) if (p / name).is_file()), None)
    return p if p.is_file() else None


def resolve_model_file(path: str | os.PathLike[str]) -> Path:
    """:func:`tokenizer_file`, refusing a path that holds no tokenizer."""
    found = tokenizer_file(path)
    if found is None:
        raise FileNotFoundError(f"{path}: no such tokenizer (give a .model or tokenizer.json file, or a directory "
                                f"with {MODEL_FILE} or {JSON_FILE})")
    return found


def _added(content: str) -> dict[str, Any]:
    return {"content": content, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False,
            "special": True}


def write_tokenizer_dir(
    out: str | os.PathLike[str],
    model_bytes: bytes,
    pieces: Sequence[tuple[str, float, int]],
    pad_token: Optional[str] = None,
    report: Optional[dict[str, Any]] = None,
) -> Path:
    """Write a HF-loadable LLaMA tokenizer directory around a SentencePiece model.

    ``pad_token``: added *after* the SentencePiece vocabulary (id = piece count), as the
    Alpaca scripts' ``add_special_tokens({"pad_token": "[PAD]"})`` does: 49,953 → 49,954.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / (MODEL_FILE + ".tmp")
    tmp.write_bytes(model_bytes)
    os.replace(tmp, out / MODEL_FILE)

    def special(kind: PieceType, default: str) -> str:
        for p, _, t in pieces:
            if t == kind and p == default:
                return p
        return default

    bos, eos = special(PieceType.CONTROL, "<s>"), special(PieceType.CONTROL, "</s>")
    unk = special(PieceType.UNKNOWN, "<unk>")
    added: dict[str, Any] = {}
    for i, (p, _, t) in enumerate(pieces):
        if p in (bos, eos, unk) and t in (PieceType.UNKNOWN, PieceType.CONTROL):
            added[str(i)] = _added(p)
    special_map: dict[str, Any] = {"bos_token": bos, "eos_token": eos, "unk_token": unk}
    config: dict[str, Any] = {
        "tokenizer_class": "LlamaTokenizer",
        "add_bos_token": True,
        "add_eos_token": False,
        "bos_token": bos,
        "eos_token": eos,
        "unk_token": unk,
        "pad_token": None,
        "clean_up_tokenization_spaces": False,
        "legacy": True,
        "model_max_length": 1000000000000000019884624838656,
        "sp_model_kwargs": {},
        "added_tokens_decoder": added,
    }
    if pad_token:
        if any(p == pad_token for p, _, _ in pieces):
            raise ValueError(f"pad token {pad_token!r} is already a piece of the model; choose another (e.g. [PAD])")
        added[str(len(pieces))] = _added(pad_token)
        config["pad_token"] = pad_token
        special_map["pad_token"] = pad_token
    exact_json = write_tokenizer_json(out / JSON_FILE, model_bytes, pad_token)
    if exact_json is not None:
        # AutoTokenizer (vLLM, SGLang) then takes tokenizer.json as written; "LlamaTokenizer" would
        # replace its normalizer with a Metaspace pre-tokenizer (docs/serving-tokenizer.md).
        config["tokenizer_class"] = "PreTrainedTokenizerFast"
        if report is not None:
            report["tokenizer_json"] = exact_json
    (out / CONFIG_FILE).write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (out / SPECIAL_TOKENS_FILE).write_text(json.dumps(special_map, indent=2, ensure_ascii=False) + "\n",
                                           encoding="utf-8")
    if report is not None:
        (out / REPORT_FILE).write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return out


def write_tokenizer_dir_from_model(
    out: str | os.PathLike[str], model_file: str | os.PathLike[str], pad_token: Optional[str] = None
) -> Path:
    """``write_tokenizer_dir`` around an existing ``.model`` file."""
    from zhllama import _native

    data = Path(model_file).read_bytes()
    return write_tokenizer_dir(out, data, _native.SentencePieceModel.from_bytes(data).pieces(), pad_token=pad_token)


"""Which pieces belong together: a model and the tokenizer it was sized for, an adapter and its base.

Records, written where the pieces are made:

- a resized model's ``resize.json`` holds ``tokenizer_sha256`` (the tokenizer ``zhllama resize``
  sized its rows for); any model directory zhllama writes also holds that tokenizer's files;
- a trained adapter's directory (and each of its checkpoints) holds ``zhllama-base.json``: the
  base model's weights digest and path, and the tokenizer it was trained with.

:func:`check_model_tokenizer` and :func:`check_adapter_base` compare a pairing about to be used
with those records and refuse a contradiction in one line naming both sides (a tokenizer that
only appends pieces to the recorded one, as SFT's ``[PAD]`` does, is no contradiction); ``--allow-mismatch``
(:data:`ALLOW_FLAG`) skips them for users who mean it. A directory without records (a model
downloaded as is) is not checked.

The weights digest is a sha256 of each weight file's name, size and content; files over
:data:`_FULL_HASH_BYTES` are hashed through their header and 16 evenly spaced 64 KiB windows
instead of in full (a 65B model's 130 GB would take minutes at every start). Training, merging
and resizing change tensors all through a file, so a window lands on a change.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Optional

BASE_RECORD = "zhllama-base.json"
RESIZE_RECORD = "resize.json"  # zhllama.model.resize.RESIZE_RECORD
ALLOW_FLAG = "--allow-mismatch"
ALLOW_HELP = ("Use the given model, tokenizer and adapter together even where their records (resize.json, "
              "zhllama-base.json) say they were made for other ones.")

_FULL_HASH_BYTES = 256 << 20
_WINDOWS = 16
_WINDOW = 64 << 10
_WEIGHTS = (".safetensors", ".bin", ".pt", ".pth")


def _weight_files(model_dir: Path) -> list[Path]:
    return sorted(p for p in model_dir.iterdir()
                  if p.is_file() and p.name.endswith(_WEIGHTS) and not p.name.startswith(("optimizer", "rng_state",
                                                                                           "scheduler", "training_")))


def weights_digest(model_dir: str | os.PathLike[str]) -> Optional[str]:
    """The digest of a model directory's weight files (None when it holds none)."""
    files = _weight_files(Path(model_dir))
    if not files:
        return None
    h = hashlib.sha256()
    for path in files:
        size = path.stat().st_size
        h.update(f"{path.name}\0{size}\0".encode())
        with open(path, "rb") as f:
            if size <= _FULL_HASH_BYTES:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
                continue
            header = int.from_bytes(f.read(8), "little") if path.suffix == ".safetensors" else 0
            f.seek(0)
            h.update(f.read(8 + min(header, 100 << 20)))
            for k in range(_WINDOWS):
                f.seek((size - _WINDOW) * k // (_WINDOWS - 1))
                h.update(f.read(_WINDOW))
    return h.hexdigest()


def tokenizer_sha256(path: str | os.PathLike[str]) -> Optional[str]:
    """sha256 of a tokenizer's file (``zhllama.tokenizer.directory.tokenizer_file``), None without one."""
    from zhllama.tokenizer.directory import sha256_file, tokenizer_file

    p = tokenizer_file(path)
    return sha256_file(p) if p is not None else None


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def model_tokenizer_record(model_dir: str | os.PathLike[str]) -> Optional[tuple[str, str]]:
    """``(sha256, where it is recorded)`` of the tokenizer a model directory was sized for, if recorded."""
    d = Path(model_dir)
    want = _read(d / RESIZE_RECORD).get("tokenizer_sha256")
    if want:
        return str(want), str(d / RESIZE_RECORD)
    have = tokenizer_sha256(d)
    return (have, f"the tokenizer saved in {d}") if have else None


def check_model_tokenizer(model_dir: str | os.PathLike[str], tokenizer: str | os.PathLike[str],
                          allow: bool = False, model_flag: str = "--model") -> None:
    """Refuse ``tokenizer`` for ``model_dir`` when the model's records name another tokenizer."""
    if allow or Path(tokenizer).resolve() == Path(model_dir).resolve():
        return
    record = model_tokenizer_record(model_dir)
    have = tokenizer_sha256(tokenizer)
    if record is None or have is None or record[0] == have or _extends(tokenizer, model_dir, record[0]):
        return
    raise ValueError(f"--tokenizer {tokenizer} (sha256 {have[:12]}…) is not the tokenizer {model_flag} {model_dir} was "
                     f"made for ({record[1]}: sha256 {record[0][:12]}…); pass that tokenizer (or leave --tokenizer "
                     f"out to use the model's own), or {ALLOW_FLAG} if this pairing is meant")


def _extends(tokenizer: str | os.PathLike[str], model_dir: str | os.PathLike[str], recorded: str) -> bool:
    """Whether ``tokenizer`` keeps the model's recorded tokenizer as its first pieces and only adds
    after them (49,954 = the 49,953 merge + SFT's [PAD]): the same ids for every piece it had."""
    from zhllama.tokenizer import Tokenizer

    if tokenizer_sha256(model_dir) != recorded:
        return False  # the model directory's own copy is not the recorded tokenizer: nothing to compare
    try:
        own, given = Tokenizer.from_pretrained(model_dir), Tokenizer.from_pretrained(tokenizer)
    except (OSError, ValueError):
        return False
    return len(given) > len(own) and all(given.id_to_piece(i) == own.id_to_piece(i) for i in range(len(own)))


def base_record(model_dir: str | os.PathLike[str], tokenizer: str | os.PathLike[str]) -> dict[str, Any]:
    """What an adapter trained on ``model_dir`` records about its base (:data:`BASE_RECORD`)."""
    return {"base_model": str(Path(model_dir).resolve()), "base_weights_digest": weights_digest(model_dir),
            "tokenizer_sha256": tokenizer_sha256(tokenizer)}


def write_base_record(adapter_dir: str | os.PathLike[str], record: dict[str, Any]) -> None:
    (Path(adapter_dir) / BASE_RECORD).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


def check_adapter_base(adapter_dir: str | os.PathLike[str], model_dir: str | os.PathLike[str],
                       allow: bool = False) -> None:
    """Refuse merging/applying the adapter onto a base other than the one it was trained on
    (which includes a model the adapter was already merged into)."""
    if allow:
        return
    record = _read(Path(adapter_dir) / BASE_RECORD)
    want = record.get("base_weights_digest")
    if not want:
        return
    have = weights_digest(model_dir)
    if have is not None and have != want:
        raise ValueError(f"--model {model_dir} (weights digest {have[:12]}…) is not the base the adapter {adapter_dir} "
                         f"was trained on ({record.get('base_model')}, digest {want[:12]}…; a model the adapter is "
                         f"already merged into differs too); pass that base, or {ALLOW_FLAG} if this pairing is meant")

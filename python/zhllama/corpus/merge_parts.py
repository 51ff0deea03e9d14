"""``tokenize-corpus --merge-manifests``: join the outputs of ``--num-shards`` workers.

Shards are hard-linked (copied across file systems) into the merged directory and renumbered
in part order; ``manifest.json`` is written last, so the merged directory is either complete
or has no manifest. Parts are checked to share tokenizer, dtype and output options.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

# Options that must agree between parts (the worker split itself differs by design).
_SAME = ("text_field", "append_eos", "add_bos", "on_bad_line")
_COUNTS = ("lines", "docs", "tokens", "bad_lines", "empty_docs", "invalid_utf8_docs", "invalid_utf8_bytes")


def _link(src: Path, dst: Path) -> None:
    if dst.exists():
        dst.unlink()
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def read_manifest(directory: Path) -> dict[str, Any]:
    path = directory / "manifest.json"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no manifest; is the tokenize-corpus run for {directory} finished?")
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def merge_manifests(parts: list[Path], out: Path) -> dict[str, Any]:
    manifests = [read_manifest(p) for p in parts]
    first = manifests[0]
    for p, m in zip(parts, manifests):
        for key in ("format_version", "tokenizer_sha256", "dtype"):
            if m[key] != first[key]:
                raise ValueError(f"{p}: {key} {m[key]!r} differs from {parts[0]}'s {first[key]!r}; parts must come from one command")
        for key in _SAME:
            if m["options"][key] != first["options"][key]:
                raise ValueError(f"{p}: option {key}={m['options'][key]!r} differs from {parts[0]}'s {first['options'][key]!r}")
    out.mkdir(parents=True, exist_ok=True)
    if (out / "manifest.json").exists():
        (out / "manifest.json").unlink()
    shards, sources, examples = [], [], []
    for p, m in zip(parts, manifests):
        for s in m["shards"]:
            name = f"shard-{len(shards):05d}"
            for ext in (".bin", ".idx"):
                _link(p / (s["name"] + ext), out / (name + ext))
            shards.append({"name": name, "docs": s["docs"], "tokens": s["tokens"], "from": str(p / s["name"])})
        sources.extend(m["sources"])
        examples.extend(m["bad_line_examples"])
    merged = dict(first)
    merged.update(
        complete=True,
        options={**first["options"], "extra": {"merged_from": [str(p) for p in parts]}},
        num_docs=sum(m["num_docs"] for m in manifests),
        num_tokens=sum(m["num_tokens"] for m in manifests),
        shards=shards,
        sources=sources,
        totals={k: sum(m["totals"][k] for m in manifests) for k in _COUNTS},
        bad_line_examples=examples[:20],
    )
    tmp = out / "manifest.json.tmp"
    tmp.write_text(json.dumps(merged, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, out / "manifest.json")
    return merged

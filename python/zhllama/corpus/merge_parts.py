"""``tokenize-corpus --merge-manifests``: join the outputs of ``--num-shards`` workers.

The merge lives in Rust beside the manifest schema (``corpus/merge_parts.rs``), so every
counter and field a part's manifest holds is carried into the merged one, and a part with a
field this version does not know is refused rather than silently dropped. Shards are
hard-linked (copied across file systems) into the merged directory and renumbered in part
order; ``manifest.json`` is written last. An ``--out`` that is one of the parts is refused
before anything is touched, and ``--out`` is locked against a concurrent writer.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def merge_manifests(parts: list[Path], out: Path) -> dict[str, Any]:
    """Merge finished corpora ``parts`` (in order) into ``out``; returns the merged manifest."""
    from zhllama import _native

    merged: dict[str, Any] = json.loads(_native.corpus_merge_parts([str(p) for p in parts], str(out)))
    return merged

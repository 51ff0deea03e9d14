"""The ceval-local task's splits, from the JSON files beside this file (no download, no cache)."""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent


def load(**_metadata):
    """DatasetDict {'dev', 'val'} of C-Eval records (id, question, A-D, answer, explanation)."""
    from datasets import Dataset, DatasetDict

    return DatasetDict({split: Dataset.from_list(json.loads((HERE / f"{split}.json").read_text(encoding="utf-8")))
                        for split in ("dev", "val")})

"""The Alpaca prompt and Alpaca-format records: what ``sft`` trains on and ``generate`` prompts with.

Free of torch, so that reading the template or the records does not import it. A record is
``{"instruction", "input", "output"}``; the prompt is the Stanford Alpaca template the
Chinese-Alpaca report uses (a non-empty input joined to the instruction by a newline).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from zhllama.records import iter_items

PROMPT = ("Below is an instruction that describes a task. Write a response that appropriately completes the "
          "request.\n\n### Instruction:\n{instruction}\n\n### Response: ")
FIELDS = ("instruction", "input", "output")


def build_prompt(instruction: str, input: str = "") -> str:
    if input:
        instruction = instruction + "\n" + input
    return PROMPT.format(instruction=instruction)


def alpaca_record(where: str, r: object) -> dict[str, str]:
    """An Alpaca record checked: string ``instruction``, ``output`` and ``input`` (absent: empty)."""
    if not isinstance(r, dict):
        raise ValueError(f"{where}: the record is a {type(r).__name__}, not an object with instruction, input, "
                         f"output")
    record: dict[str, str] = {}
    for key in FIELDS:
        value = r.get(key, "" if key == "input" else None)
        if not isinstance(value, str):
            raise ValueError(f"{where}: the record has no string field {key!r} (Alpaca records need "
                             f"instruction, input, output)")
        record[key] = value
    record["where"] = where
    return record


def iter_records(path: str | Path) -> Iterator[dict[str, str]]:
    """Records of an Alpaca ``.json`` (a list) or ``.jsonl`` file, streamed. Each gets ``"where"``:
    ``file:line`` of its start, which a bad record's error names, as the corpus verbs do."""
    for where, item in iter_items(path):
        yield alpaca_record(where, item)


def read_records(path: str | Path) -> list[dict[str, str]]:
    """``iter_records`` as a list."""
    return list(iter_records(path))

"""The Alpaca prompt and Alpaca-format records: what ``sft`` trains on and ``generate`` prompts with.

Free of torch, so that reading the template or the records does not import it. A record is
``{"instruction", "input", "output"}``; the prompt is the Stanford Alpaca template the
Chinese-Alpaca report uses (a non-empty input joined to the instruction by a newline).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from zhllama.records import iter_item_batches, iter_items

PROMPT = ("Below is an instruction that describes a task. Write a response that appropriately completes the "
          "request.\n\n### Instruction:\n{instruction}\n\n### Response: ")
FIELDS = ("instruction", "input", "output")
_HEAD, _TAIL = PROMPT.split("{instruction}")


def build_prompt(instruction: str, input: str = "") -> str:
    return _HEAD + instruction + "\n" + input + _TAIL if input else _HEAD + instruction + _TAIL


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


def iter_prompt_batches(path: str | Path, size: int) -> Iterator[tuple[list[str], list[str]]]:
    """``(prompts, outputs)`` of up to ``size`` Alpaca records at a time, each record checked as
    ``alpaca_record`` checks it (its error names ``file:line``): what ``sft`` tokenizes, without a
    dict or a frame per record."""
    for lines, items in iter_item_batches(path, size):
        prompts: list[str] = []
        outputs: list[str] = []
        for line, r in zip(lines, items):
            if type(r) is dict:
                ins, inp, out = r.get("instruction"), r.get("input", ""), r.get("output")
                if type(ins) is str and type(inp) is str and type(out) is str:
                    prompts.append(_HEAD + ins + "\n" + inp + _TAIL if inp else _HEAD + ins + _TAIL)
                    outputs.append(out)
                    continue
            record = alpaca_record(f"{path}:{line}", r)  # the error, or a record of str subclasses
            prompts.append(build_prompt(record["instruction"], record["input"]))
            outputs.append(record["output"])
        yield prompts, outputs


def read_records(path: str | Path) -> list[dict[str, str]]:
    """``iter_records`` as a list."""
    return list(iter_records(path))

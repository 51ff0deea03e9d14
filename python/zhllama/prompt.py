"""The Alpaca prompt and Alpaca-format records: what ``sft`` trains on and ``generate`` prompts with.

Free of torch, so that reading the template or the records does not import it. A record is
``{"instruction", "input", "output"}``; the prompt is the Stanford Alpaca template the
Chinese-Alpaca report uses (a non-empty input joined to the instruction by a newline).
"""

from __future__ import annotations

import json
from pathlib import Path

PROMPT = ("Below is an instruction that describes a task. Write a response that appropriately completes the "
          "request.\n\n### Instruction:\n{instruction}\n\n### Response: ")
FIELDS = ("instruction", "input", "output")


def build_prompt(instruction: str, input: str = "") -> str:
    if input:
        instruction = instruction + "\n" + input
    return PROMPT.format(instruction=instruction)


def _json_list(path: Path, text: str) -> list[tuple[int, object]]:
    """The items of a JSON list with the line each starts on (``json.loads`` keeps no positions)."""
    decoder = json.JSONDecoder()

    def fail(msg: str, pos: int) -> ValueError:
        return ValueError(f"{path}:{text.count(chr(10), 0, pos) + 1}: {msg}; an Alpaca .json file is a list of "
                          f"{{instruction, input, output}} records (JSONL files need a .jsonl suffix)")

    ws = " \t\r\n"
    pos = len(text) - len(text.lstrip(ws + "\ufeff"))
    if not text.startswith("[", pos):
        raise fail("expected a JSON list", pos)
    items: list[tuple[int, object]] = []
    pos += 1
    while True:
        while pos < len(text) and text[pos] in ws:
            pos += 1
        if text.startswith("]", pos) and not items:
            pos += 1
            break
        try:
            item, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as e:
            raise fail(f"not valid JSON ({e.msg})", e.pos) from None
        items.append((text.count("\n", 0, pos) + 1, item))
        pos = end
        while pos < len(text) and text[pos] in ws:
            pos += 1
        if text.startswith(",", pos):
            pos += 1
            continue
        if text.startswith("]", pos):
            pos += 1
            break
        raise fail("expected ',' or ']' after a record", pos)
    if text[pos:].strip(ws):
        raise fail("text after the list", pos)
    return items


def read_records(path: str | Path) -> list[dict]:
    """Records of an Alpaca ``.json`` (a list) or ``.jsonl`` file. Each gets ``"where"``:
    ``file:line`` of its start, which a bad record's error names, as the corpus verbs do."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    text = path.read_text(encoding="utf-8")
    items: list[tuple[int, object]] = []
    if path.suffix == ".jsonl":
        for n, row in enumerate(text.splitlines(), 1):
            if row.strip():
                try:
                    items.append((n, json.loads(row)))
                except json.JSONDecodeError as e:
                    raise ValueError(f"{path}:{n}: not valid JSON ({e.msg})") from None
    else:
        items = _json_list(path, text)
    records = []
    for start, r in items:
        where = f"{path}:{start}"
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
        records.append(record)
    return records

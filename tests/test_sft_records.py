"""Instruction records streamed from .json lists and .jsonl files (issue 28 item 1): values and the
line numbers that errors name stay right when records straddle the reader's chunks."""

from __future__ import annotations

import json

import pytest

import zhllama.records as records
from zhllama.prompt import read_records


def alpaca(n: int) -> list[dict]:
    return [{"instruction": f"第{i}题\n", "input": "x" * (i % 7), "output": "答" * (i % 13) + "\u2028"}
            for i in range(n)]


@pytest.mark.parametrize("chunk", [1, 3, 17, 1 << 20])
def test_json_list_values_and_lines_across_chunks(tmp_path, monkeypatch, chunk):
    monkeypatch.setattr(records, "CHUNK", chunk)
    data = alpaca(40)
    path = tmp_path / "a.json"
    path.write_text("\ufeff" + json.dumps(data, ensure_ascii=False, indent=2), encoding="utf-8")
    got = read_records(path)
    assert [{k: r[k] for k in ("instruction", "input", "output")} for r in got] == data
    # indent=2: "[" on line 1, each record 5 lines from line 2.
    assert [r["where"] for r in got] == [f"{path}:{2 + 5 * i}" for i in range(40)]
    # An error deep in the file names its line, whatever the chunking.
    lines = path.read_text(encoding="utf-8").split("\n")
    bad = 2 + 5 * 33 + 3  # the "output" line of record 33
    lines[bad - 1] = '    "output": 7'
    path.write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(ValueError, match=rf"a.json:{2 + 5 * 33}: the record has no string field 'output'"):
        read_records(path)
    lines[bad - 1] = '    "output" 7'
    path.write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(ValueError, match=rf"a.json:{bad}: not valid JSON \(Expecting ':' delimiter\)"):
        read_records(path)
    for text, error in [
            (json.dumps(data[:3], indent=2) + "\n\n  x", r"a.json:19: text after the list"),
            ('[{"instruction": "a", "output": "b"}, 12345678]', r"a.json:1: the record is a int"),
            ('[\n{"instruction": "a", "output": "b"}\n{"instruction": "a", "output": "b"}]',
             r"a.json:3: expected ',' or ']' after a record"),
            ('[\n{"instruction": "a",\n "output": "unterminated', r"a.json:3: not valid JSON \(Unterminated string")]:
        path.write_text(text, encoding="utf-8")
        with pytest.raises(ValueError, match=error):
            read_records(path)
    path.write_text(" \n[ ]\n", encoding="utf-8")
    assert read_records(path) == []


def test_jsonl_lines_and_a_line_separator_inside_a_string(tmp_path):
    path = tmp_path / "a.jsonl"
    data = alpaca(5)
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in data[:3]) + "\n\n"
                    + "\n".join(json.dumps(r, ensure_ascii=False) for r in data[3:]) + "\n", encoding="utf-8")
    got = read_records(path)
    assert [r["output"] for r in got] == [r["output"] for r in data]  # U+2028 is not a line break in JSONL
    assert [r["where"].rsplit(":", 1)[1] for r in got] == ["1", "2", "3", "5", "6"]


def test_jsonl_reads_what_json_reads_and_names_bad_bytes(tmp_path):
    """Lines the fast parser (orjson) refuses are read by ``json``: NaN, a lone surrogate escape,
    blank and CRLF lines as before, a byte order mark on the first line as a .json list allows it;
    bytes that are not UTF-8 are one error naming their line."""
    path = tmp_path / "a.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"instruction": "a", "output": "b", "score": NaN}\r\n  \n'
                     b'{"instruction": "\\ud800", "output": "c"}\n{"instruction": "d", "output": "e"}')
    got = read_records(path)
    assert [(r["instruction"], r["where"].rsplit(":", 1)[1]) for r in got] == [("a", "1"), ("\ud800", "3"), ("d", "4")]
    path.write_bytes(b'{"instruction": "a", "output": "b"}\n{"instruction": "\xe4\xb8", "output": "c"}\n')
    with pytest.raises(ValueError, match=r"a.jsonl:2: not UTF-8"):
        read_records(path)
    path.write_bytes(b'{"instruction": "a", "output": "b"}\n{"instruction": "a" "output": "b"}\n')
    with pytest.raises(ValueError, match=r"a.jsonl:2: not valid JSON \(Expecting ',' delimiter\)"):
        read_records(path)


@pytest.mark.parametrize("chunk", [1, 2, 1 << 20])
def test_json_list_names_the_line_of_bytes_that_are_not_utf8(tmp_path, monkeypatch, chunk):
    monkeypatch.setattr(records, "CHUNK", chunk)
    path = tmp_path / "a.json"
    path.write_bytes('[\n{"instruction": "第一", "output": "b"},\n{"instruction": "'.encode() + b"\xe4\xb8"
                     + b'", "output": "c"}\n]\n')
    with pytest.raises(ValueError, match=r"a.json:3: not UTF-8"):
        read_records(path)


@pytest.mark.parametrize("chunk", [1, 2, 5, 64, 1 << 20])
def test_json_list_items_and_lines_equal_json_on_random_layouts(tmp_path, monkeypatch, chunk):
    """Any item (nested, numbers, escapes, ',' and ']' inside strings, multi-byte characters cut by
    the window) with any whitespace between: the items are json's and each line is where it starts."""
    import random

    monkeypatch.setattr(records, "CHUNK", chunk)
    rng = random.Random(chunk)
    atoms = [12345, -0.5, 1e21, True, None, "a,b]c", 'q"uo\\te', "中文，。", "\U0001f600x", "\u2028", ""]

    def item(depth: int = 0):
        k = rng.randrange(4 if depth < 2 else 2)
        if k == 2:
            return [item(depth + 1) for _ in range(rng.randrange(3))]
        if k == 3:
            return {rng.choice(["instruction", "输入", "o,]"]): item(depth + 1) for _ in range(rng.randrange(3))}
        return rng.choice(atoms)

    space = [" ", "\n", "\r\n", "\t", "  \n\n ", ""]
    for _ in range(20):
        items = [item() for _ in range(rng.randrange(12))]
        text, starts = "[" + rng.choice(space), []
        for i, x in enumerate(items):
            starts.append(text.count("\n") + 1)
            text += json.dumps(x, ensure_ascii=rng.random() < 0.3, indent=rng.choice([None, 1]))
            text += rng.choice(space) + ("," + rng.choice(space) if i + 1 < len(items) else "")
        text += "]" + rng.choice(space)
        path = tmp_path / "r.json"
        path.write_bytes(text.encode("utf-8"))
        got = list(records.iter_items(path))
        assert [x for _, x in got] == json.loads(text)
        assert [int(where.rsplit(":", 1)[1]) for where, _ in got] == starts

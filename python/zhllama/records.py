"""Instruction records streamed from a ``.json`` list or a ``.jsonl`` file, each with the line it starts on.

Free of torch. A ``.json`` file is parsed in chunks (``JSONDecoder.raw_decode`` on a sliding
window, newlines counted once each), so a 1 GB Alpaca release is read in linear time and bounded
memory; a ``.jsonl`` file line by line. Which fields a record needs is the caller's (see
:mod:`zhllama.prompt`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

CHUNK = 1 << 20  # characters read at a time from a .json list
_WS = re.compile(r"[ \t\r\n]*")
_TRUNCATED = ("Unterminated string", "Invalid \\uXXXX escape", "Invalid \\escape")


class _Window:
    """A sliding window over a text file: ``buf[pos:]`` is unread, ``line`` the line of ``buf[counted]``."""

    def __init__(self, f) -> None:
        self.f, self.buf, self.pos, self.line, self.counted, self.eof = f, "", 0, 1, 0, False

    def more(self, at_least: int = CHUNK) -> bool:
        """Drop what was read, append at least ``at_least`` characters; False at the end of the file."""
        if self.eof:
            return False
        self.line += self.buf.count("\n", self.counted, self.pos)
        chunk = self.f.read(at_least)
        self.buf, self.pos, self.counted = self.buf[self.pos:] + chunk, 0, 0
        self.eof = not chunk
        return not self.eof

    def line_at(self, p: int) -> int:
        """The line of ``buf[p]`` (``p`` >= ``counted``); advances the count to ``p``."""
        self.line += self.buf.count("\n", self.counted, p)
        self.counted = p
        return self.line

    def skip_ws(self) -> None:
        while True:
            self.pos = _WS.match(self.buf, self.pos).end()  # type: ignore[union-attr]
            if self.pos < len(self.buf) or not self.more():
                return


def _json_list(path: Path) -> Iterator[tuple[int, object]]:
    """The items of a JSON list with the line each starts on (``json.loads`` keeps no positions)."""
    decoder = json.JSONDecoder()
    with open(path, encoding="utf-8") as f:
        w = _Window(f)

        def fail(msg: str, p: int) -> ValueError:
            line = w.line + w.buf.count("\n", w.counted, max(p, w.counted))
            return ValueError(f"{path}:{line}: {msg}; an Alpaca .json file is a list of {{instruction, input, "
                              f"output}} records (JSONL files need a .jsonl suffix)")

        w.more()
        if w.buf.startswith("\ufeff"):
            w.pos = 1
        w.skip_ws()
        if not w.buf.startswith("[", w.pos):
            raise fail("expected a JSON list", w.pos)
        w.pos += 1
        first = True
        while True:
            w.skip_ws()
            if first and w.buf.startswith("]", w.pos):
                w.pos += 1
                break
            first = False
            while True:
                try:
                    item, end = decoder.raw_decode(w.buf, w.pos)
                except json.JSONDecodeError as e:
                    # Truncated by the window (an error at its end, or a string running off it): read
                    # more, doubling the window so that a long record costs linear time.
                    near_end = e.pos >= len(w.buf) - 8 or e.msg.startswith(_TRUNCATED)
                    error = fail(f"not valid JSON ({e.msg})", e.pos)  # before more() moves the window
                    if near_end and w.more(max(CHUNK, len(w.buf) - w.pos)):
                        continue
                    raise error from None
                if end == len(w.buf) and w.more():  # a number may go on past the window
                    continue
                break
            yield w.line_at(w.pos), item
            w.pos = end
            w.skip_ws()
            if w.buf.startswith(",", w.pos):
                w.pos += 1
                continue
            if w.buf.startswith("]", w.pos):
                w.pos += 1
                break
            raise fail("expected ',' or ']' after a record", w.pos)
        w.skip_ws()
        if w.pos < len(w.buf):
            raise fail("text after the list", w.pos)


def _jsonl(path: Path) -> Iterator[tuple[int, object]]:
    with open(path, encoding="utf-8") as f:
        for n, row in enumerate(f, 1):
            if row.strip():
                try:
                    yield n, json.loads(row)
                except json.JSONDecodeError as e:
                    raise ValueError(f"{path}:{n}: not valid JSON ({e.msg})") from None


def iter_items(path: str | Path) -> Iterator[tuple[str, object]]:
    """``(where, item)`` for each record of a ``.json`` list or ``.jsonl`` file; ``where`` is
    ``file:line`` of the record's start (1-based), which a bad record's error names."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    items = _jsonl(path) if path.suffix == ".jsonl" else _json_list(path)
    for line, item in items:
        yield f"{path}:{line}", item

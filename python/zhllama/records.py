"""Instruction records streamed from a ``.json`` list or a ``.jsonl`` file, each with the line it starts on.

Free of torch. A ``.json`` file is parsed in chunks (the C scanner of ``json`` on a sliding window of
decoded bytes, newlines counted once each), so a 1 GB Alpaca release is read in linear time and bounded memory;
a ``.jsonl`` file line by line (as bytes, by ``orjson`` where it is installed, else ``json``; a
line ``orjson`` refuses is read again by ``json``, so what is accepted and every error are
``json``'s). Records come in batches (``iter_item_batches``): one Python step a record and no
generator between. Which fields a record needs is the caller's (see :mod:`zhllama.prompt`).
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path

CHUNK = 1 << 20  # bytes read at a time from a .json list
BATCH = 4096  # records a batch
_WS = re.compile(r"[ \t\r\n]*")
_COMMA = re.compile(r"[ \t\r\n]*,")
_TRUNCATED = ("Unterminated string", "Invalid \\uXXXX escape", "Invalid \\escape")

Batch = tuple[list[int], list[object]]  # the line each record starts on, the records


class _Window:
    """A sliding window over a UTF-8 file: ``buf[pos:]`` is unread, ``line`` the line of ``buf[counted]``.

    Bytes decoded here (a text-mode read costs twice as much a character); a line ends at a line feed."""

    def __init__(self, f, path: Path) -> None:
        self.f, self.path, self.buf, self.pos, self.line, self.counted, self.eof = f, path, "", 0, 1, 0, False
        self.decode = codecs.getincrementaldecoder("utf-8")().decode

    def more(self, at_least: int = 0) -> bool:
        """Drop what was read, append at least ``at_least`` (default ``CHUNK``) bytes' text; False at
        the end of the file."""
        if self.eof:
            return False
        at_least = at_least or CHUNK  # read now: tests set CHUNK small
        self.line += self.buf.count("\n", self.counted, self.pos)
        self.buf, self.pos, self.counted = self.buf[self.pos:], 0, 0
        while True:
            data = self.f.read(at_least)
            try:
                chunk = self.decode(data, final=not data)
            except UnicodeDecodeError as e:
                line = self.line + self.buf.count("\n") + e.object[:e.start].count(b"\n")
                raise ValueError(f"{self.path}:{line}: not UTF-8 ({e.reason}); save the file as UTF-8") from None
            if chunk or not data:
                break
        self.buf += chunk
        self.eof = not data
        return bool(chunk)

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


def _json_list(path: Path, size: int) -> Iterator[Batch]:
    """The items of a JSON list with the line each starts on (``json.loads`` keeps no positions)."""
    decoder = json.JSONDecoder()
    scan, comma = decoder.raw_decode, _COMMA.match
    lines: list[int] = []
    items: list[object] = []
    with open(path, "rb") as f:
        w = _Window(f, path)

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
        w.skip_ws()
        if w.buf.startswith("]", w.pos):
            w.pos += 1
        else:
            while True:
                # The records that lie whole in the window, each followed by a comma there: one step each.
                buf, pos, line, counted = w.buf, w.pos, w.line, w.counted
                while True:
                    try:
                        item, end = scan(buf, pos)
                    except json.JSONDecodeError:
                        break
                    m = comma(buf, end)
                    if m is None:
                        break
                    line += buf.count("\n", counted, pos)
                    counted = pos
                    lines.append(line)
                    items.append(item)
                    if len(items) == size:
                        yield lines, items
                        lines, items = [], []
                    pos = _WS.match(buf, m.end()).end()  # type: ignore[union-attr]
                w.pos, w.line, w.counted = pos, line, counted
                # The next record with care: it may run past the window, end the list or be bad.
                w.skip_ws()
                while True:
                    try:
                        item, end = scan(w.buf, w.pos)
                    except json.JSONDecodeError as e:
                        # Truncated by the window (an error at its end, or a string running off it): read
                        # more, doubling the window so that a long record costs linear time.
                        near_end = e.pos >= len(w.buf) - 8 or e.msg.startswith(_TRUNCATED)
                        error = fail(f"not valid JSON ({e.msg})", e.pos)  # before more() moves the window
                        if near_end and w.more(max(CHUNK, len(w.buf) - w.pos)):
                            continue
                        raise error from None
                    if len(w.buf) - end <= 2 and not w.eof:  # a number cut by the window ("12|3", "-0.|5")
                        w.more()  # then scan again: the window moved, even at the end of the file
                        continue
                    break
                lines.append(w.line_at(w.pos))
                items.append(item)
                if len(items) == size:
                    yield lines, items
                    lines, items = [], []
                w.pos = end
                w.skip_ws()
                if w.buf.startswith(",", w.pos):
                    w.pos += 1
                    w.skip_ws()
                    continue
                if w.buf.startswith("]", w.pos):
                    w.pos += 1
                    break
                raise fail("expected ',' or ']' after a record", w.pos)
        w.skip_ws()
        if w.pos < len(w.buf):
            raise fail("text after the list", w.pos)
    if items:
        yield lines, items


def _fast_loads() -> Callable[[bytes], object]:
    try:
        import orjson
    except ImportError:
        return json.loads
    return orjson.loads


def _slow_line(path: Path, n: int, row: bytes) -> tuple[bool, object]:
    """``(False, None)`` for a blank line, else ``(True, record)`` as ``json`` reads it, or its error in one line."""
    try:
        text = row.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}:{n}: not UTF-8 (byte {e.start + 1} of the line); save the file as UTF-8") from None
    if not text.strip():
        return False, None
    if n == 1:
        text = text.removeprefix("\ufeff")  # a byte order mark, as a .json list allows it
    try:
        return True, json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}:{n}: not valid JSON ({e.msg})") from None


def _jsonl(path: Path, size: int) -> Iterator[Batch]:
    loads = _fast_loads()
    lines: list[int] = []
    items: list[object] = []
    with open(path, "rb") as f:
        for n, row in enumerate(f, 1):
            try:
                item = loads(row)
            except ValueError:  # a blank line, or one the fast parser refuses
                found, item = _slow_line(path, n, row)
                if not found:
                    continue
            lines.append(n)
            items.append(item)
            if len(items) == size:
                yield lines, items
                lines, items = [], []
    if items:
        yield lines, items


def iter_item_batches(path: str | Path, size: int = BATCH) -> Iterator[Batch]:
    """``(lines, items)`` of up to ``size`` records of a ``.json`` list or ``.jsonl`` file at a
    time; ``lines[i]`` is the (1-based) line where ``items[i]`` starts, which a bad record's
    error names as ``file:line``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    return _jsonl(path, size) if path.suffix == ".jsonl" else _json_list(path, size)


def iter_items(path: str | Path) -> Iterator[tuple[str, object]]:
    """``(where, item)`` for each record; ``where`` is ``file:line`` of the record's start."""
    for lines, items in iter_item_batches(path):
        for line, item in zip(lines, items):
            yield f"{path}:{line}", item

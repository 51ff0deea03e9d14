"""Checks that make an extension's guarantees hold, on the built tokenizer: dead rows found and
dropped (with what builds on them), and the held-out tokens/char after each merge.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from typing import Any

from zhllama.tokenizer import bytelevel_checks as checks
from zhllama.tokenizer.bytelevel_base import ByteLevelBase, extended_json
from zhllama.tokenizer.continued_bpe import ContinuedBpe, NewMerge


def drop_tokens(merges: Sequence[NewMerge], token_bytes: dict[int, bytes], dead: set[int],
                first_id: int) -> tuple[list[NewMerge], dict[int, bytes]]:
    """``merges`` without those yielding a dead token or built on one (transitively), the new
    ids renumbered from ``first_id`` so that no row is left empty."""
    gone = set(dead)
    kept = []
    for m in merges:
        if m.result in gone or m.left in gone or m.right in gone:
            if m.is_new_token:
                gone.add(m.result)
            continue
        kept.append(m)
    renumber: dict[int, int] = {}
    for m in kept:
        if m.is_new_token:
            renumber[m.result] = first_id + len(renumber)
    new_bytes = {i: b for i, b in token_bytes.items() if i < first_id}
    new_bytes.update({renumber[i]: token_bytes[i] for i in renumber})
    return [NewMerge(renumber.get(m.left, m.left), renumber.get(m.right, m.right), renumber.get(m.result, m.result),
                     m.count, m.is_new_token) for m in kept], new_bytes


def completions(prefix: bytes) -> list[str]:
    """Every character that starts with ``prefix`` (a lead byte and some continuation bytes)."""
    lead = prefix[0]
    length = 2 if lead < 0xE0 else 3 if lead < 0xF0 else 4
    out = [prefix]
    for _ in range(length - len(prefix)):
        out = [p + bytes([b]) for p in out for b in range(0x80, 0xC0)]
    return [p.decode("utf-8") for p in out if _decodes(p)]


def _decodes(data: bytes) -> bool:
    try:
        data.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def dead_tokens(ext: Any, merges: Sequence[NewMerge], token_bytes: dict[int, bytes]) -> set[int]:
    """New tokens no text produces. A whole-character token must come out of its own text. A
    character-start token (an intermediate step) is alive when some character it starts is
    left as it plus a byte; when every one is merged further, its last such merge is given up
    instead (that character falls back to the intermediate), so the intermediate stays used."""
    new = [m for m in merges if m.is_new_token]
    whole = {m.result: token_bytes[m.result].decode("utf-8") for m in new
             if checks.whole_chinese(token_bytes[m.result])}
    dead = set(checks.dead_rows(ext, whole))
    for m in new:
        if m.result in whole:
            continue
        chars = completions(token_bytes[m.result])
        if not any(m.result in ids for ids in checks.encode_ids(ext, chars)):
            last = max((k for k, n in enumerate(merges) if n.left == m.result), default=None)
            dead.add(m.result if last is None else merges[last].result)
    return dead


def verified(base: ByteLevelBase, merges: list[NewMerge], token_bytes: dict[int, bytes],
             ) -> tuple[list[NewMerge], dict[int, bytes], dict[str, Any], Any, list[str]]:
    """Build the extended tokenizer, drop dead rows until there are none (each drop can change
    what later merges see, so it is checked again); returns what is left and what was dropped."""
    from tokenizers import Tokenizer

    dropped: list[str] = []
    for _ in range(10):
        doc = extended_json(base, merges, token_bytes)
        ext = Tokenizer.from_str(json.dumps(doc))
        dead = dead_tokens(ext, merges, token_bytes)
        if not dead:
            return merges, token_bytes, doc, ext, dropped
        dropped += [token_bytes[i].decode("utf-8", errors="backslashreplace") for i in sorted(dead)]
        merges, token_bytes = drop_tokens(merges, token_bytes, dead, base.next_id())
    raise RuntimeError("dead rows remain after 10 rounds of dropping them (a bug; please report it)")


def held_out_curve(base: ByteLevelBase, hf: Any, docs: Sequence[str], merges: Sequence[NewMerge],
                   token_bytes: dict[int, bytes]) -> list[tuple[int, float]]:
    """Tokens per character on ``docs`` after each number of merges, by replaying the merges
    on the docs' own pre-tokens (exactly what the encoder does; checked against HF at the end)."""
    counts: Counter[str] = Counter()
    for doc in docs:
        if hf.normalizer is not None:
            doc = hf.normalizer.normalize_str(doc)
        counts.update(s for s, _ in hf.pre_tokenizer.pre_tokenize_str(doc))
    words = [[t.id for t in hf.model.tokenize(s)] for s in counts]
    first = base.next_id()
    replay = ContinuedBpe(words, list(counts.values()), {i: b for i, b in token_bytes.items() if i < first},
                          first, checks.mergeable, base.ignore_merges)
    chars = max(1, sum(map(len, docs)))
    curve = [(0, replay.total_tokens / chars)]
    for k, m in enumerate(merges, 1):
        replay.apply(m)
        curve.append((k, replay.total_tokens / chars))
    return curve

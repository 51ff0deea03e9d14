"""A ``tokenizer.json`` that HF ``tokenizers`` encodes as sentencepiece does, for a SentencePiece BPE model.

transformers, vLLM, SGLang and TGI tokenize with HF ``tokenizers``. transformers' own conversion
of a LLaMA ``tokenizer.model`` is not sentencepiece (docs/serving-tokenizer.md): it orders
merges by piece id, so LLaMA's whitespace pieces (score -1e9, ids 259, 268, …) merge first, and
it splits text at U+2581. sentencepiece (src/bpe_model.cc) merges the adjacent pair whose
concatenation is a piece with the highest *score*, leftmost first among equal scores, over the
whole normalized text. Written here:

- normalizer: ``Prepend("▁")`` (add_dummy_prefix) and ``Replace(" ", "▁")``; no pre-tokenizer
  (sentencepiece does not split at whitespace when it encodes);
- model: BPE with every pair ``(left, right)`` whose concatenation is a piece and whose halves
  are pieces, ranked by the merged piece's score (higher first), ``byte_fallback`` and
  ``fuse_unk`` as the model, ``ignore_merges`` off;
- CONTROL / UNKNOWN pieces (and a pad token) as special added tokens; USER_DEFINED pieces as
  normalized added tokens (sentencepiece matches them whole in the normalized text);
- decoder: ``▁`` back to spaces, byte fallback, the dummy prefix stripped; BOS added by the
  post-processor.

What ranks cannot express: equal scores. sentencepiece breaks a tie by position (leftmost
pair), HF BPE by rank. Ties within one piece's splits never compete (the halves overlap), but
two *different* pieces of equal score do when both pairs are present at once: the reference
merge appends 20,000 Chinese pieces all at score 0. Their order here (``tie_order``) is the one
measured best; the residual is counted in docs/serving-tokenizer.md.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Sequence
from typing import Any, Optional

from zhllama._native import PieceType, SentencePieceModel

SPACE = "\u2581"


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, pos


def _fields(buf: bytes) -> dict[int, Any]:
    """The last value of each field of a protobuf message (varints as ints, others as bytes)."""
    out: dict[int, Any] = {}
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            out[number], pos = _varint(buf, pos)
        elif wire == 1:
            out[number], pos = buf[pos:pos + 8], pos + 8
        elif wire == 5:
            out[number], pos = buf[pos:pos + 4], pos + 4
        elif wire == 2:
            n, pos = _varint(buf, pos)
            out[number], pos = buf[pos:pos + n], pos + n
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
    return out


def model_spec(model_bytes: bytes) -> dict[str, Any]:
    """The ``ModelProto`` settings the encoding depends on (sentencepiece_model.proto defaults)."""
    top = _fields(model_bytes)
    trainer, norm = _fields(top.get(2, b"")), _fields(top.get(3, b""))
    return {
        "normalizer": norm.get(1, b"nmt_nfkc").decode("utf-8"),
        "precompiled_charsmap": norm.get(2, b""),
        "add_dummy_prefix": bool(norm.get(3, 1)),
        "remove_extra_whitespaces": bool(norm.get(4, 1)),
        "escape_whitespaces": bool(norm.get(5, 1)),
        "treat_whitespace_as_suffix": bool(trainer.get(24, 0)),
    }


def merges(pieces: Sequence[tuple[str, float, PieceType]]) -> list[tuple[str, str]]:
    """Every pair that sentencepiece can merge, ranked as it merges them: by the merged piece's
    score, higher first; equal scores by piece id, and one piece's splits left to right."""
    mergeable = (PieceType.NORMAL, PieceType.USER_DEFINED, PieceType.UNUSED)
    vocab = {p for p, _, t in pieces if t in mergeable}
    ranked = []
    for i, (p, score, t) in enumerate(pieces):
        if t not in mergeable or len(p) < 2:
            continue
        for k in range(1, len(p)):
            left, right = p[:k], p[k:]
            if left in vocab and right in vocab:
                ranked.append((-score, i, k, left, right))
    ranked.sort()
    return [(left, right) for *_, left, right in ranked]


def _added(i: int, content: str, special: bool) -> dict[str, Any]:
    return {"id": i, "content": content, "single_word": False, "lstrip": False, "rstrip": False,
            "normalized": not special, "special": special}


def tokenizer_json(model_bytes: bytes, pad_token: Optional[str] = None, add_bos: bool = True) -> dict[str, Any]:
    """The ``tokenizer.json`` document for a SentencePiece BPE model (see the module docstring).
    Refuses (ValueError) a model it cannot express exactly: Unigram, a normalizer other than
    identity, whitespace kept as a suffix or not escaped, extra whitespace removed."""
    model = SentencePieceModel.from_bytes(model_bytes)  # ModelError (a ValueError) for a tiktoken file
    spec = model_spec(model_bytes)
    if model.model_type != "bpe":
        raise ValueError(f"an exact tokenizer.json is written for SentencePiece BPE models only; this one is "
                         f"{model.model_type} (a Unigram model keeps its tokenizer.model; serve it with the "
                         f"sentencepiece-backed tokenizer)")
    problems = [name for name, bad in (
        (f"normalizer {spec['normalizer']!r} (only 'identity')", spec["normalizer"] != "identity"),
        ("remove_extra_whitespaces", spec["remove_extra_whitespaces"]),
        ("escape_whitespaces off", not spec["escape_whitespaces"]),
        ("treat_whitespace_as_suffix", spec["treat_whitespace_as_suffix"])) if bad]
    if problems:
        raise ValueError(f"no exact tokenizer.json for this model's settings: {', '.join(problems)}; LLaMA's "
                         f"spec (identity normalizer, dummy prefix, whitespace escaped) is supported")
    pieces = model.pieces()
    unk = next((p for p, _, t in pieces if t == PieceType.UNKNOWN), None)
    added = [_added(i, p, t != PieceType.USER_DEFINED) for i, (p, _, t) in enumerate(pieces)
             if t in (PieceType.CONTROL, PieceType.UNKNOWN, PieceType.USER_DEFINED)]
    if pad_token:
        added.append(_added(len(pieces), pad_token, True))
    normalizers: list[dict[str, Any]] = [{"type": "Replace", "pattern": {"String": " "}, "content": SPACE}]
    decoders: list[dict[str, Any]] = [{"type": "Replace", "pattern": {"String": SPACE}, "content": " "},
                                      {"type": "ByteFallback"}, {"type": "Fuse"}]
    if spec["add_dummy_prefix"]:
        normalizers.insert(0, {"type": "Prepend", "prepend": SPACE})
        decoders.append({"type": "Strip", "content": " ", "start": 1, "stop": 0})
    bos = next((p for p, _, t in pieces if t == PieceType.CONTROL and p == "<s>"), None)
    post = None
    if add_bos and bos is not None:
        bos_id = [i for i, (p, _, _) in enumerate(pieces) if p == bos][0]
        post = {"type": "TemplateProcessing",
                "single": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                "pair": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                         {"SpecialToken": {"id": bos, "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
                "special_tokens": {bos: {"id": bos, "ids": [bos_id], "tokens": [bos]}}}
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": {"type": "Sequence", "normalizers": normalizers},
        "pre_tokenizer": None,
        "post_processor": post,
        "decoder": {"type": "Sequence", "decoders": decoders},
        "model": {"type": "BPE", "dropout": None, "unk_token": unk, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": model.byte_fallback,
                  "ignore_merges": False, "vocab": {p: i for i, (p, _, _) in enumerate(pieces)},
                  "merges": [list(m) for m in merges(pieces)]},
    }


def tied_pieces(pieces: Sequence[tuple[str, float, PieceType]]) -> int:
    """Pieces built by a merge whose score another such piece shares (runs of U+2581 left out:
    whitespace runs merge as sentencepiece does whatever their order, checked on runs up to 80).
    Where two of them compete in one text, HF tokenizers' rank order can differ from
    sentencepiece's leftmost pair."""
    built = {left + right for left, right in merges(pieces)}
    scores = Counter(s for p, s, _ in pieces if p in built and p.strip(SPACE))
    return sum(n for n in scores.values() if n > 1)


def write_tokenizer_json(path: Any, model_bytes: bytes, pad_token: Optional[str] = None) -> Optional[dict[str, Any]]:
    """Write :func:`tokenizer_json` to ``path`` (atomically); returns ``{"file", "tied_pieces"}``,
    or None, writing nothing, for a model it cannot express (Unigram, another normalizer)."""
    try:
        doc = tokenizer_json(model_bytes, pad_token)
    except ValueError:
        return None
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False)
    os.replace(tmp, path)
    pieces = SentencePieceModel.from_bytes(model_bytes).pieces()
    return {"file": os.path.basename(str(path)), "tied_pieces": tied_pieces(pieces)}

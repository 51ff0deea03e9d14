"""The base of a byte-level BPE extension: a Hugging Face ``tokenizer.json`` (SmolLM2, GPT-2,
LLaMA-3 and Qwen as published) or LLaMA-3's original tiktoken ``tokenizer.model``, read as
one HF ``tokenizer.json`` document plus the ``tokenizer_config.json`` beside it.

A tiktoken file has no merge list: its ranks imply one. A token of rank r is formed from two
parts whose ranks are both below r, so every split of a token into two tokens of the file is
a merge that yields it, ranked by the token's rank (ties by the parts' ranks). This is the
conversion that the published LLaMA-3 ``tokenizer.json`` was made with, with
``ignore_merges`` on: a whole pre-token found in the vocabulary is one token, as tiktoken looks
it up first. The pattern and the 256 special tokens are LLaMA-3's (the file does not carry
them), so a tiktoken file of another size is refused.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Optional

from zhllama import _native
from zhllama.tokenizer.continued_bpe import NewMerge
from zhllama.tokenizer.directory import CONFIG_FILE, SPECIAL_TOKENS_FILE, read_json_object, resolve_model_file

HF_TOKENIZER_FILE = "tokenizer.json"
CHAT_TEMPLATE_FILE = "chat_template.jinja"

# LLaMA-3's pre-tokenizer pattern and special tokens (Meta's llama_models/llama3/tokenizer.py) and
# GPT-2's byte alphabet: one home, the Rust core's tables (zhllama_core::bytelevel::tables).
_TABLES = _native.bytelevel_tables()
LLAMA3_PATTERN: str = _TABLES["patterns"]["llama3"]
LLAMA3_BASE_TOKENS: int = _TABLES["llama3_base_tokens"]
LLAMA3_NUM_SPECIALS = len(_TABLES["llama3_specials"])


def llama3_specials() -> list[str]:
    """LLaMA-3's 256 special tokens in id order (ids from ``LLAMA3_BASE_TOKENS`` on)."""
    return list(_TABLES["llama3_specials"])


@lru_cache(maxsize=1)
def byte_to_unicode() -> dict[int, str]:
    """GPT-2's byte alphabet: printable bytes stand for themselves, the others are shifted
    to U+0100 and up, so that every byte is one visible character of the vocabulary."""
    return dict(enumerate(_TABLES["byte_alphabet"]))


@lru_cache(maxsize=1)
def unicode_to_byte() -> dict[str, int]:
    return {c: b for b, c in byte_to_unicode().items()}


def to_bytelevel(data: bytes) -> str:
    # Latin-1 turns byte b into chr(b), which translate maps to its alphabet character, in C
    # (extend-vocab maps every counted pre-token: a Python loop per byte was most of the count).
    return data.decode("latin-1").translate(byte_to_unicode())


def from_bytelevel(token: str) -> bytes:
    """The bytes of a vocabulary string; ``KeyError`` for a character outside the alphabet."""
    table = unicode_to_byte()
    return bytes(table[c] for c in token)


@dataclass
class ByteLevelBase:
    """A byte-level BPE tokenizer to extend: its ``tokenizer.json`` document and config."""

    tokenizer_json: dict[str, Any]
    source: Path  # the file read (tokenizer.json or the tiktoken file)
    kind: str  # "tokenizer.json" | "tiktoken"
    config: dict[str, Any] = field(default_factory=dict)  # tokenizer_config.json, {} if none
    special_tokens_map: dict[str, Any] = field(default_factory=dict)
    chat_template: Optional[str] = None

    @property
    def model(self) -> dict[str, Any]:
        return self.tokenizer_json["model"]

    @property
    def ignore_merges(self) -> bool:
        return bool(self.model.get("ignore_merges", False))

    def specials(self) -> dict[str, int]:
        """Added tokens (specials and others) by content: they must keep their ids."""
        return {t["content"]: int(t["id"]) for t in self.tokenizer_json.get("added_tokens", [])}

    def next_id(self) -> int:
        """The first id after every existing one (LLaMA-3: 128,256, after its 256 specials)."""
        ids = [*self.model["vocab"].values(), *self.specials().values()]
        return max(ids) + 1


def sniff_kind(path: Path) -> str:
    """``"tokenizer.json"``, ``"tiktoken"`` or ``"sentencepiece"`` for a tokenizer file."""
    with open(path, "rb") as f:
        head = f.read(4096)
    stripped = head.lstrip()
    if stripped.startswith(b"{"):
        return "tokenizer.json"
    first = head.split(b"\n", 1)[0].split()
    if len(first) == 2 and first[1].isdigit():
        try:
            base64.b64decode(first[0], validate=True)
            return "tiktoken"
        except (binascii.Error, ValueError):
            pass
    return "sentencepiece"


def load_base(path: str | os.PathLike[str]) -> ByteLevelBase:
    """Read a byte-level BPE base; one-line ``ValueError`` for any other kind of tokenizer."""
    p = resolve_model_file(path)  # a directory's tokenizer.model decides, as for every verb
    kind = sniff_kind(p)
    if kind == "sentencepiece":
        raise ValueError(f"{p}: a SentencePiece model, not a byte-level BPE tokenizer; merge Chinese pieces into it "
                         f"with `zhllama merge-vocab --base {path} --add CHINESE.model`")
    if kind == "tiktoken":
        base = ByteLevelBase(tiktoken_to_tokenizer_json(p), p, kind)
        base.config = llama3_config()
    else:
        base = ByteLevelBase(read_tokenizer_json(p), p, kind)
        base.config = read_json_object(p.parent / CONFIG_FILE)
        if (p.parent / CHAT_TEMPLATE_FILE).is_file():
            base.chat_template = (p.parent / CHAT_TEMPLATE_FILE).read_text(encoding="utf-8")
        base.special_tokens_map = read_json_object(p.parent / SPECIAL_TOKENS_FILE)
    if not base.special_tokens_map:
        base.special_tokens_map = {k: base.config[k] for k in ("bos_token", "eos_token", "unk_token", "pad_token")
                                   if base.config.get(k)}
    check_merges(base.model, p)
    return base


def _has_bytelevel(component: Optional[dict[str, Any]]) -> bool:
    if not component:
        return False
    if component.get("type") == "ByteLevel":
        return True
    return any(_has_bytelevel(c) for c in component.get("pretokenizers", []))


def read_tokenizer_json(p: Path) -> dict[str, Any]:
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{p}:{e.lineno}: not valid JSON ({e.msg})") from None
    except UnicodeDecodeError as e:
        raise ValueError(f"{p}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    model = doc.get("model") if isinstance(doc, dict) else None
    if not isinstance(model, dict):
        raise ValueError(f"{p}: not a tokenizers tokenizer.json (no \"model\" object)")
    mtype = model.get("type") or ("BPE" if "merges" in model else "unknown")
    if mtype != "BPE":
        raise ValueError(f"{p}: model type {mtype} is not supported; extend-vocab grows byte-level BPE "
                         f"tokenizers (GPT-2, LLaMA-3, Qwen, SmolLM2)")
    if not _has_bytelevel(doc.get("pre_tokenizer")):
        pre = (doc.get("pre_tokenizer") or {}).get("type")
        raise ValueError(f"{p}: pre-tokenizer {pre} is not byte-level; extend-vocab grows byte-level BPE "
                         f"tokenizers (a ByteLevel pre-tokenizer, alone or after a Split)")
    if model.get("byte_fallback") or model.get("continuing_subword_prefix") or model.get("end_of_word_suffix"):
        raise ValueError(f"{p}: a BPE with byte_fallback, a continuing-subword prefix or an end-of-word suffix "
                         f"is not byte-level BPE; extend-vocab does not support it")
    return doc


def check_merges(model: dict[str, Any], source: Path) -> None:
    """Every merge's parts and result are in the vocabulary (HF refuses the file otherwise,
    with a message that names neither the file nor the merge)."""
    vocab = model["vocab"]
    for i, m in enumerate(model["merges"]):
        a, b = m if isinstance(m, list) else m.split(" ", 1)
        for part in (a, b, a + b):
            if part not in vocab:
                raise ValueError(f"{source}: merge {i} ({a!r} {b!r}): {part!r} is not in the vocabulary; "
                                 f"the tokenizer file is inconsistent")


def read_tiktoken(p: Path) -> dict[bytes, int]:
    ranks: dict[bytes, int] = {}
    with open(p, "rb") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            parts = line.split()
            try:
                token, rank = base64.b64decode(parts[0], validate=True), int(parts[1])
                if len(parts) != 2:
                    raise ValueError
            except (IndexError, ValueError, binascii.Error):
                raise ValueError(f"{p}:{lineno}: expected 'BASE64TOKEN RANK', found {line[:60]!r}") from None
            if rank != len(ranks) or token in ranks:
                raise ValueError(f"{p}:{lineno}: rank {rank} out of order (expected {len(ranks)}, one token a rank)")
            ranks[token] = rank
    return ranks


def tiktoken_to_tokenizer_json(p: Path) -> dict[str, Any]:
    ranks = read_tiktoken(p)
    if len(ranks) != LLAMA3_BASE_TOKENS:
        raise ValueError(f"{p}: {len(ranks):,} tokens, but the only tiktoken file zhllama knows the pattern and "
                         f"special tokens of is LLaMA-3's ({LLAMA3_BASE_TOKENS:,}: the file may be truncated); "
                         f"convert it to a tokenizer.json first")
    if any(bytes([b]) not in ranks for b in range(256)):
        raise ValueError(f"{p}: not a byte-level vocabulary (some single bytes have no token)")
    merges: list[tuple[int, int, int]] = []
    for token, rank in ranks.items():
        for i in range(1, len(token)):
            left, right = ranks.get(token[:i]), ranks.get(token[i:])
            if left is not None and right is not None:
                merges.append((rank, left, right))
    merges.sort()
    strings = {r: to_bytelevel(t) for t, r in ranks.items()}
    specials = llama3_specials()
    bos = specials[0]
    added = [{"id": LLAMA3_BASE_TOKENS + i, "content": s, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for i, s in enumerate(specials)]
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": LLAMA3_PATTERN}, "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False},
        ]},
        # LLaMA-3 starts every sequence with <|begin_of_text|> (Meta's encode(bos=True)).
        "post_processor": {"type": "Sequence", "processors": [
            {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
            {"type": "TemplateProcessing",
             "single": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
             "pair": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                      {"SpecialToken": {"id": bos, "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
             "special_tokens": {bos: {"id": bos, "ids": [LLAMA3_BASE_TOKENS], "tokens": [bos]}}},
        ]},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": True,
                  "vocab": {strings[r]: r for r in range(len(strings))},
                  "merges": [[strings[a], strings[b]] for _, a, b in merges]},
    }


def llama3_config() -> dict[str, Any]:
    """``tokenizer_config.json`` of LLaMA-3 (the base model's: EOS is ``<|end_of_text|>``)."""
    specials = llama3_specials()
    return {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": specials[0],
        "eos_token": specials[1],
        "pad_token": "<|finetune_right_pad_id|>",  # Meta's pad_id (llama_models' tokenizer.py)
        "clean_up_tokenization_spaces": True,
        "model_input_names": ["input_ids", "attention_mask"],
        "model_max_length": 131072,
        "added_tokens_decoder": {str(LLAMA3_BASE_TOKENS + i): {
            "content": s, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False, "special": True}
            for i, s in enumerate(specials)},
    }


def extended_json(base: ByteLevelBase, merges: Sequence[NewMerge], token_bytes: dict[int, bytes]) -> dict[str, Any]:
    """The base's tokenizer.json with ``merges`` appended (and their new tokens in the vocabulary)."""
    doc = copy.copy(base.tokenizer_json)
    model = doc["model"] = copy.copy(base.model)
    vocab = model["vocab"] = dict(base.model["vocab"])
    # HF tokenizers gives an added token that the model's vocabulary lacks the id "model size +
    # position", not its stored id (tokenizers 0.23: LLaMA-3's <|begin_of_text|> became 128,100
    # after 100 new tokens). In the vocabulary at their own ids (as SmolLM2's are) they keep them;
    # no merge yields them and the pre-tokenizer splits their text, so BPE never produces them.
    for content, i in base.specials().items():
        vocab.setdefault(content, i)
    string_pairs = isinstance(base.model["merges"][0], str) if base.model["merges"] else False
    new_merges = []
    for m in merges:
        if m.is_new_token:
            vocab[to_bytelevel(token_bytes[m.result])] = m.result
        a, b = to_bytelevel(token_bytes[m.left]), to_bytelevel(token_bytes[m.right])
        new_merges.append(f"{a} {b}" if string_pairs else [a, b])
    model["merges"] = [*base.model["merges"], *new_merges]
    return doc

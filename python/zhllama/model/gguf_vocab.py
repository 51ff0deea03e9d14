"""The tokenizer of a zhllama model directory as llama.cpp's GGUF tokenizer keys.

Two families, as llama.cpp's own ``convert_hf_to_gguf.py`` writes them:

- **SentencePiece** (LLaMA's ``tokenizer.model``, ``merge-vocab``'s merges, ``[PAD]`` variants):
  ``tokenizer.ggml.model = "llama"`` with every piece, its score and its type (normal, unknown,
  control, user-defined, unused, byte: sentencepiece's type numbers are GGUF's). Tokens the
  directory adds after the pieces (``[PAD]`` in ``tokenizer_config.json``) follow with score
  -1000, control when marked special, user-defined otherwise. llama.cpp's ``llama`` tokenizer
  merges adjacent symbols by the score of the piece they form, the highest first and the
  leftmost among equal scores: sentencepiece's BPE. It applies no normalizer, so a model whose
  normalizer is not the identity (LLaMA's, and every ``merge-vocab`` output's) is refused.
- **byte-level BPE** (SmolLM2, LLaMA-3, Qwen2, each + ``extend-vocab``): ``"gpt2"`` with every
  token string, every merge (the base's and the appended ones, in order) and the base's
  pre-tokenizer by llama.cpp's name (``tokenizer.ggml.pre``), recognised from the
  ``tokenizer.json`` pre-tokenizer itself: llama.cpp names pre-tokenizers by a hash of the
  tokenization of a test string, which new merges change.

Rows of the embedding beyond the tokenizer's tokens (a vocabulary padded to a multiple of 64)
become ``[PAD{id}]`` tokens of type unused, as in ``convert_hf_to_gguf.py``; a model with fewer
rows than tokens is refused (``zhllama resize`` grows it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from zhllama.chat_template import read_chat_template
from zhllama.tokenizer.directory import (
    CONFIG_FILE,
    JSON_FILE,
    MODEL_FILE,
    read_json_object,
    token_content,
)

# GGUF / sentencepiece token types.
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6
ADDED_SCORE = -1000.0  # convert_hf_to_gguf.py's score of added and padding tokens

# llama.cpp's pre-tokenizer names (llama-vocab.cpp) for the tokenizer.json pre-tokenizers of
# the byte-level bases zhllama extends.
LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                  r"|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                 r"|\s*[\r\n]+|\s+(?!\S)|\s+")
SPLIT_PATTERNS = {LLAMA3_PATTERN: "llama-bpe", QWEN2_PATTERN: "qwen2"}


@dataclass
class GGUFVocab:
    """What the GGUF's ``tokenizer.*`` keys hold."""

    model: str  # "llama" (SentencePiece) or "gpt2" (byte-level BPE)
    pre: str  # tokenizer.ggml.pre
    tokens: list[str]
    types: list[int]
    scores: Optional[list[float]] = None  # "llama" only
    merges: Optional[list[str]] = None  # "gpt2" only: "left right" in rank order
    bos_id: Optional[int] = None
    eos_id: Optional[int] = None
    unk_id: Optional[int] = None
    pad_id: Optional[int] = None
    add_bos: bool = False
    add_eos: bool = False
    add_space_prefix: Optional[bool] = None  # "llama" only: sentencepiece's add_dummy_prefix
    remove_extra_whitespaces: Optional[bool] = None
    chat_template: Optional[str] = None
    stop_ids: list[int] = field(default_factory=list)  # every id generation stops on (EOS first)
    padded_rows: int = 0  # [PAD{i}] rows added for embedding rows the tokenizer does not use

    def token_text(self, i: int) -> str:
        return self.tokens[i]


def is_sentencepiece_dir(directory: Path) -> bool:
    from zhllama.tokenizer.bytelevel_base import sniff_kind

    return (directory / MODEL_FILE).is_file() and sniff_kind(directory / MODEL_FILE) == "sentencepiece"


def check_tokenizer_present(directory: Path) -> None:
    if not (directory / MODEL_FILE).is_file() and not (directory / JSON_FILE).is_file():
        raise FileNotFoundError(f"{directory}: no tokenizer ({MODEL_FILE} or {JSON_FILE}) beside the weights; copy the "
                                f"tokenizer directory the model was trained with into it")


def read_vocab(directory: Path, n_rows: int) -> GGUFVocab:
    """The tokenizer of the model directory ``directory`` for a model with ``n_rows`` embedding rows."""
    from zhllama.tokenizer import Tokenizer

    check_tokenizer_present(directory)
    vocab = _sentencepiece(directory) if is_sentencepiece_dir(directory) else _byte_level(directory)
    n = len(vocab.tokens)
    if n > n_rows:
        raise ValueError(f"{directory}: the tokenizer has {n:,} tokens but the model only {n_rows:,} embedding rows; "
                         f"grow the model first: zhllama resize --model BASE --tokenizer {directory} --out NEW_DIR")
    vocab.padded_rows = n_rows - n
    for i in range(n, n_rows):
        vocab.tokens.append(f"[PAD{i}]")
        vocab.types.append(UNUSED)
        if vocab.scores is not None:
            vocab.scores.append(ADDED_SCORE)
    tok = Tokenizer.from_pretrained(directory)
    vocab.stop_ids = [i for i in dict.fromkeys(tok.eos_ids) if i is not None and i < n_rows]
    vocab.chat_template = read_chat_template(directory)
    return vocab


def _sentencepiece(directory: Path) -> GGUFVocab:
    import importlib

    from zhllama.tokenizer import Tokenizer

    pb: Any = importlib.import_module("sentencepiece.sentencepiece_model_pb2")  # protobuf module: untyped
    path = directory / MODEL_FILE
    proto = pb.ModelProto()
    proto.ParseFromString(path.read_bytes())
    kind = pb.TrainerSpec.ModelType.Name(proto.trainer_spec.model_type).lower()
    if kind != "bpe":
        raise ValueError(f"{path}: a SentencePiece {kind} model; llama.cpp's 'llama' tokenizer is score-ordered BPE "
                         f"(LLaMA's tokenizer and every merge-vocab output are BPE)")
    norm = proto.normalizer_spec
    if norm.precompiled_charsmap:
        raise ValueError(f"{path}: normalizer {norm.name!r} rewrites the text, and llama.cpp's 'llama' tokenizer "
                         f"applies no normalizer; merge into LLaMA's tokenizer (identity normalizer) instead")
    if norm.remove_extra_whitespaces:
        raise ValueError(f"{path}: the model collapses runs of whitespace (remove_extra_whitespaces), which "
                         f"llama.cpp's 'llama' tokenizer does not do; LLaMA's tokenizer keeps them")
    tokens = [p.piece for p in proto.pieces]
    scores = [float(p.score) for p in proto.pieces]
    types = [int(p.type) for p in proto.pieces]
    tok = Tokenizer.from_pretrained(directory)
    config = read_json_object(directory / CONFIG_FILE)
    decoder = config.get("added_tokens_decoder") or {}
    for i, content in sorted(tok.added_tokens.items()):
        if i < len(tokens):
            continue
        while len(tokens) < i:  # a gap before an added token: an unused row
            tokens.append(f"[PAD{len(tokens)}]")
            scores.append(ADDED_SCORE)
            types.append(UNUSED)
        spec = decoder.get(str(i))
        special = bool(spec.get("special", True)) if isinstance(spec, dict) else True
        tokens.append(content)
        scores.append(ADDED_SCORE)
        types.append(CONTROL if special or _looks_special(content) else USER_DEFINED)
    unk = next((i for i, t in enumerate(types) if t == UNKNOWN), None)
    bos, eos = tok.bos_id, tok.eos_id
    add_bos = bool(config.get("add_bos_token", bos is not None)) and bos is not None
    add_eos = bool(config.get("add_eos_token", False)) and eos is not None
    return GGUFVocab("llama", "default", tokens, types, scores=scores, bos_id=bos, eos_id=eos, unk_id=unk,
                     pad_id=tok.pad_id, add_bos=add_bos, add_eos=add_eos, add_space_prefix=norm.add_dummy_prefix,
                     remove_extra_whitespaces=norm.remove_extra_whitespaces)


def _looks_special(text: str) -> bool:
    """convert_hf_to_gguf.py's rule for added tokens not marked special that act as control tokens."""
    return (text.startswith("<|") and text.endswith("|>")) or text in ("<pad>", "<mask>")


def pre_tokenizer_name(pre: Any, source: Path) -> str:
    """llama.cpp's name for a byte-level ``tokenizer.json`` pre-tokenizer; a one-line error for one
    llama.cpp would split differently."""
    steps = pre.get("pretokenizers", []) if isinstance(pre, dict) and pre.get("type") == "Sequence" else [pre]
    kinds = [s.get("type") if isinstance(s, dict) else None for s in steps]
    if kinds == ["ByteLevel"] and steps[0].get("use_regex", True):
        return "gpt-2"
    if kinds == ["Digits", "ByteLevel"] and steps[0].get("individual_digits") and steps[1].get("use_regex", True):
        return "smollm"
    if kinds == ["Split", "ByteLevel"] and not steps[1].get("use_regex", True):
        pattern = (steps[0].get("pattern") or {}).get("Regex")
        if pattern in SPLIT_PATTERNS and steps[0].get("behavior") == "Isolated" and not steps[0].get("invert"):
            return SPLIT_PATTERNS[pattern]
    raise ValueError(f"{source}: pre-tokenizer {json.dumps(pre)[:160]} is not one llama.cpp implements under a name "
                     f"zhllama knows (GPT-2's ByteLevel: gpt-2; Digits + ByteLevel: smollm; LLaMA-3's Split: "
                     f"llama-bpe; Qwen2's Split: qwen2)")


def _byte_level(directory: Path) -> GGUFVocab:
    from zhllama.tokenizer import Tokenizer
    from zhllama.tokenizer.bytelevel_base import load_base

    base = load_base(directory)
    doc, model = base.tokenizer_json, base.model
    pre = pre_tokenizer_name(doc.get("pre_tokenizer"), base.source)
    normalizer = doc.get("normalizer")
    if normalizer and not (pre == "qwen2" and normalizer.get("type") == "NFC"):
        raise ValueError(f"{base.source}: normalizer {normalizer.get('type')} is not what llama.cpp's {pre!r} "
                         f"pre-tokenizer applies; the GGUF would tokenize differently")
    by_id: dict[int, str] = {int(i): t for t, i in model["vocab"].items()}
    added = {int(t["id"]): t for t in doc.get("added_tokens", [])}
    for i, t in added.items():
        by_id[i] = t["content"]
    n = max(by_id) + 1
    tokens = [by_id.get(i, f"[PAD{i}]") for i in range(n)]
    types = []
    for i in range(n):
        if i in added:
            special = added[i].get("special") or _looks_special(added[i]["content"])
            types.append(CONTROL if special else USER_DEFINED)
        else:
            types.append(NORMAL if i in by_id else UNUSED)
    merges = [m if isinstance(m, str) else f"{m[0]} {m[1]}" for m in model["merges"]]
    tok = Tokenizer.from_pretrained(directory)
    ids = {t: i for i, t in enumerate(tokens)}
    config = base.config

    def config_id(key: str) -> Optional[int]:
        content = token_content(config.get(key))
        return ids.get(content) if content else None

    bos = tok.bos_id if tok.bos_id is not None else config_id("bos_token")
    unk = config_id("unk_token")
    return GGUFVocab("gpt2", pre, tokens, types, merges=merges, bos_id=bos, eos_id=tok.eos_id, unk_id=unk,
                     pad_id=tok.pad_id, add_bos=tok.bos_id is not None, add_eos=False)


def add_to_writer(writer: Any, vocab: GGUFVocab) -> None:
    """Write ``vocab`` into a ``gguf.GGUFWriter``."""
    writer.add_tokenizer_model(vocab.model)
    writer.add_tokenizer_pre(vocab.pre)
    writer.add_token_list(vocab.tokens)
    if vocab.scores is not None:
        writer.add_token_scores(vocab.scores)
    writer.add_token_types(vocab.types)
    if vocab.merges is not None:
        writer.add_token_merges(vocab.merges)
    for value, add in ((vocab.bos_id, writer.add_bos_token_id), (vocab.eos_id, writer.add_eos_token_id),
                       (vocab.unk_id, writer.add_unk_token_id), (vocab.pad_id, writer.add_pad_token_id)):
        if value is not None:
            add(value)
    writer.add_add_bos_token(vocab.add_bos)
    writer.add_add_eos_token(vocab.add_eos)
    if vocab.add_space_prefix is not None:
        writer.add_add_space_prefix(vocab.add_space_prefix)
    if vocab.remove_extra_whitespaces is not None:
        writer.add_remove_extra_whitespaces(vocab.remove_extra_whitespaces)
    if vocab.chat_template is not None:
        writer.add_chat_template(vocab.chat_template)

"""Shared builders for the training tests: tiny SentencePiece models and tiny LLaMA models.

Everything is built in code (no weights can be downloaded); results are cached per process so
that each test module pays for a tokenizer once.
"""

from __future__ import annotations

import atexit
import functools
import json
import random
import shutil
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

ZH_WORDS = ["中国", "人民", "经济", "发展", "我们", "今天", "天气", "学习", "语言", "模型", "北京", "上海",
            "工作", "社会", "文化", "历史", "科学", "技术", "世界", "和平", "问题", "国家", "生活", "时间"]
EN_WORDS = ["the", "model", "learns", "chinese", "text", "quickly", "and", "well", "with", "data", "tokens",
            "training", "is", "fast", "on", "cpu", "small", "example"]
# Pieces appended by the "merged" tokenizer: multi-character words the base model splits.
NEW_PIECES = ["▁中国人民", "经济发展", "▁今天天气", "学习语言", "北京上海", "科学技术", "世界和平",
              "问题国家", "▁生活文化"]

_TMP = Path(tempfile.mkdtemp(prefix="zhllama-train-tests-"))
atexit.register(shutil.rmtree, _TMP, True)


def corpus_lines(n: int = 400, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    lines = []
    for _ in range(n):
        if rng.random() < 0.6:
            lines.append("".join(rng.choice(ZH_WORDS) for _ in range(rng.randint(4, 12))) + "。")
        else:
            lines.append(" ".join(rng.choice(EN_WORDS) for _ in range(rng.randint(4, 12))) + ".")
    return lines


@functools.cache
def base_sp_model() -> Path:
    """A LLaMA-like BPE tokenizer (byte fallback, bos=1, eos=2, no pad), ~400 pieces."""
    import sentencepiece as spm

    out = _TMP / "base_sp"
    out.mkdir(exist_ok=True)
    text = out / "corpus.txt"
    text.write_text("\n".join(corpus_lines()) + "\n", encoding="utf-8")
    spm.SentencePieceTrainer.train(
        input=str(text), model_prefix=str(out / "sp"), vocab_size=400, model_type="bpe",
        byte_fallback=True, character_coverage=1.0, split_digits=True, add_dummy_prefix=True,
        remove_extra_whitespaces=False, normalization_rule_name="identity",
        unk_id=0, bos_id=1, eos_id=2, pad_id=-1, minloglevel=2)
    return out / "sp.model"


@functools.cache
def merged_sp_model() -> Path:
    """The base model with NEW_PIECES appended (score 0), as merge-vocab does."""
    from sentencepiece import sentencepiece_model_pb2 as pb

    proto = pb.ModelProto()
    proto.ParseFromString(base_sp_model().read_bytes())
    have = {p.piece for p in proto.pieces}
    for piece in NEW_PIECES:
        assert piece not in have, piece
        p = proto.pieces.add()
        p.piece, p.score, p.type = piece, 0.0, pb.ModelProto.SentencePiece.NORMAL
    out = _TMP / "merged_sp.model"
    out.write_bytes(proto.SerializeToString())
    return out


def tokenizer_dir(kind: str) -> Path:
    """'base' (no pad), 'merged' (no pad) or 'merged-pad' (the 49,954 layout: [PAD] added)."""
    from zhllama.tokenizer.directory import write_tokenizer_dir_from_model as write_tokenizer_dir

    out = _TMP / f"tok-{kind}"
    if not out.exists():
        model = base_sp_model() if kind == "base" else merged_sp_model()
        write_tokenizer_dir(out, model, pad_token="[PAD]" if kind.endswith("pad") else None)
    return out


def llama7b_config(vocab_size: int = 49953):
    """LLaMA-7B's shape (32 layers, hidden 4096, MLP 11008, 32 heads), resized to ``vocab_size`` rows."""
    from transformers import LlamaConfig

    return LlamaConfig(vocab_size=vocab_size, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                       num_attention_heads=32, num_key_value_heads=32)


def tiny_config(vocab_size: int, tie: bool = False, hidden: int = 32):
    """The tests' model: the demo's config at 2 layers, 4 heads, an MLP of twice ``hidden``."""
    from zhllama.demo.model import tiny_config as config

    return config(vocab_size, hidden, layers=2, heads=4, intermediate=2 * hidden, max_positions=256, tie=tie)


def tiny_model_dir(kind: str = "base", tie: bool = False, seed: int = 0) -> Path:
    """A random tiny LLaMA saved with tokenizer `kind`, sized to that tokenizer."""
    import torch
    from transformers import LlamaForCausalLM

    from zhllama.tokenizer import Tokenizer
    from zhllama.tokenizer.directory import copy_tokenizer_files

    out = _TMP / f"model-{kind}-{'tied' if tie else 'untied'}-{seed}"
    if not out.exists():
        tok = tokenizer_dir(kind)
        torch.manual_seed(seed)
        model = LlamaForCausalLM(tiny_config(len(Tokenizer.from_pretrained(tok)), tie))
        model.save_pretrained(out)
        copy_tokenizer_files(tok, out)
    return out


def write_text(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_alpaca(path: Path, n: int = 24, seed: int = 0) -> Path:
    rng = random.Random(seed)
    records = []
    for i in range(n):
        records.append({"instruction": "请把下面的句子写完：" + "".join(rng.choice(ZH_WORDS) for _ in range(3)),
                        "input": "" if i % 2 else "".join(rng.choice(ZH_WORDS) for _ in range(2)),
                        "output": "".join(rng.choice(ZH_WORDS) for _ in range(rng.randint(2, 6))) + "。"})
    path.write_text(json.dumps(records, ensure_ascii=False, indent=1), encoding="utf-8")
    return path


def cli(*argv: str) -> int:
    from zhllama.cli import main

    return main([str(a) for a in argv])


def safetensors_of(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path))

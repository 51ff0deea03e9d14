"""`zhllama stats` on byte-level tokenizers: the byte-fallback column becomes the share of Chinese
characters that no single token covers, counted here independently from the oracle's tokens."""

from __future__ import annotations

import json

import fixture_paths as fp
from bytelevel_oracles import oracle
from corpus_helpers import pd_docs
from zhllama._native import HAN_RANGES
from zhllama.cli import main as cli_main


def _split_han(tok_bytes: list[bytes]) -> tuple[int, int]:
    """(Chinese characters, those whose bytes span more than one token)."""
    text = b"".join(tok_bytes)
    starts, at = [], 0
    for b in tok_bytes:
        starts.append((at, at + len(b)))
        at += len(b)
    han = split = 0
    pos = 0
    for c in text.decode("utf-8", "replace"):
        n = len(c.encode())
        if any(lo <= ord(c) <= hi for lo, hi in HAN_RANGES):
            han += 1
            split += not any(s <= pos and pos + n <= e for s, e in starts)
        pos += n
    return han, split


def test_split_han_share(tmp_path):
    docs = pd_docs(120)
    (tmp_path / "c.txt").write_text("\n".join(docs) + "\n", encoding="utf-8")
    tik = str(fp.llama3_tiktoken().path)
    smol = str(fp.smollm2_dir().path)
    assert cli_main(["stats", "--tokenizer", tik, "--tokenizer", smol, "--input", str(tmp_path / "c.txt"),
                     "--out", str(tmp_path / "s"), "--threads", "2"]) == 0
    report = json.loads((tmp_path / "s" / "stats.json").read_text())
    for t, name in zip(report["tokenizers"], ["llama3-tiktoken", "smollm2"]):
        o = oracle(name)
        han = split = 0
        for d in docs:
            ids = o.encode([d], False)[0]
            ids = ids[1:] if o.tok.bos_id is not None else ids
            h, s = _split_han([o.tok.decode_bytes([i]) for i in ids])
            han, split = han + h, split + s
        assert t["byte_level"] and t["han_chars"] == han
        assert abs(t["split_han_share"] - split / han) < 1e-12
        assert t["vocab_size"] == o.tok.vocab_size
    # SmolLM2 has few whole-character Chinese tokens; LLaMA-3 many.
    smol_share, llama_share = report["tokenizers"][1]["split_han_share"], report["tokenizers"][0]["split_han_share"]
    assert smol_share > llama_share > 0
    assert "split" in (tmp_path / "s" / "stats.md").read_text()

"""zhllama stats: the three files, counts against sentencepiece, both tokenizers in the plot."""

from __future__ import annotations

import json

import pytest
import sentencepiece as spm

from corpus_helpers import generated_docs, pd_docs
from fixture_paths import chinese_sp, llama_tokenizer
from zhllama.cli import main


def test_stats_files_and_counts(tmp_path):
    (llama, real), (chinese, real_zh) = ((m.path, m.is_real) for m in (llama_tokenizer(), chinese_sp()))
    docs = pd_docs(500) + generated_docs(100)
    (tmp_path / "c.txt").write_text("\n".join(docs) + "\n", encoding="utf-8")
    out = tmp_path / "s"
    args = ["stats", "--tokenizer", str(llama), "--tokenizer", str(chinese), "--input", str(tmp_path / "c.txt"),
            "--out", str(out)]
    assert main(args) == 0
    report = json.loads((out / "stats.json").read_text(encoding="utf-8"))
    assert report["corpus"]["docs"] == len(docs) and report["corpus"]["chars"] == sum(map(len, docs))
    a, b = report["tokenizers"]
    for t, model in ((a, llama), (b, chinese)):
        sp = spm.SentencePieceProcessor(model_file=str(model))
        ids = [i for d in sp.encode(docs) for i in d]
        assert t["tokens"] == len(ids)
        assert t["byte_fallback_tokens"] == sum(sp.is_byte(i) for i in ids)
        assert t["unk_tokens"] == sum(sp.is_unknown(i) for i in ids)
        used = set(ids)
        text = [i for i in range(sp.get_piece_size())
                if not (sp.is_byte(i) or sp.is_control(i) or sp.is_unknown(i) or sp.is_unused(i))]
        assert t["unused_pieces"] == sum(i not in used for i in text)
    # LLaMA spells fullwidth digits and rarer hanzi with bytes; the Chinese model does not.
    assert a["byte_fallback_share"] > 0.2 and a["top_fallback_chars"] and b["byte_fallback_share"] == 0
    # Over 2x on the real pair; mistral-common's 32K has more hanzi than LLaMA's (1.8x here).
    assert a["tokens_per_char"] > (2 if real and real_zh else 1.5) * b["tokens_per_char"]
    assert a["added_pieces"] == 0 and b["added_token_share"] == 0  # base = the first tokenizer
    md = (out / "stats.md").read_text(encoding="utf-8")
    assert "llama_tokenizer" in md and "chinese_sp" in md and "tokens/char" in md

    from PIL import Image

    with Image.open(out / "lengths.png") as png:
        assert png.size[0] > 400 and png.text["Description"] == "series: llama_tokenizer; chinese_sp"


def test_stats_sample_and_added_share(tmp_path):
    llama = llama_tokenizer().path
    (tmp_path / "c.jsonl").write_text("".join(json.dumps({"text": d}) + "\n" for d in pd_docs(300)), encoding="utf-8")
    out = tmp_path / "s"
    # A smaller "base" makes LLaMA's ids >= 1000 count as added pieces.
    base = chinese_sp().path
    assert main(["stats", "--tokenizer", str(llama), "--input", str(tmp_path / "c.jsonl"), "--out", str(out),
                 "--sample", "50", "--base", str(base)]) == 0
    report = json.loads((out / "stats.json").read_text(encoding="utf-8"))
    assert report["corpus"]["docs"] == 50
    t = report["tokenizers"][0]
    size = lambda m: spm.SentencePieceProcessor(model_file=str(m)).get_piece_size()  # noqa: E731
    assert t["added_pieces"] == size(llama) - size(base) and 0 < t["added_token_share"] < 1
    with pytest.raises(SystemExit):
        main(["stats", "--input", "x", "--out", str(out)])


def test_stats_applies_the_bad_line_policy(tmp_path, capsys):
    # stats used to skip bad lines silently ("1 docs") where tokenize-corpus stops at file:line.
    llama = llama_tokenizer().path
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "好"}\n{"text": \n{"content": "x"}\n', encoding="utf-8")
    args = ["stats", "--tokenizer", str(llama), "--input", str(bad), "--out", str(tmp_path / "s")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"{bad}:2: malformed JSON" in err and "--on-bad-line skip" in err
    assert main([*args, "--on-bad-line", "skip"]) == 0
    corpus = json.loads((tmp_path / "s" / "stats.json").read_text(encoding="utf-8"))["corpus"]
    assert (corpus["docs"], corpus["bad_lines"]) == (1, 2)

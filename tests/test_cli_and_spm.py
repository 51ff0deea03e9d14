"""The CLI surface and train-spm."""

from __future__ import annotations

import subprocess
import sys

import pytest
import sentencepiece as spm

from zhllama.cli import available_verbs, build_parser
from zhllama.cli import main as cli
from zhllama.corpora import peoples_daily


@pytest.mark.parametrize("verb", sorted(available_verbs()))
def test_every_flag_has_help(verb):
    parser = build_parser(only=verb)
    sub = next(a for a in parser._actions if a.dest == "verb").choices[verb]
    for action in sub._actions:
        if action.dest != "help":
            assert action.help and len(action.help) > 10, f"{verb} {action.option_strings} has no help"


def test_console_help_runs():
    out = subprocess.run([sys.executable, "-m", "zhllama.cli", "--help"], capture_output=True, text=True, check=True)
    for verb in available_verbs():
        assert verb in out.stdout


def test_train_spm_and_merge(tmp_path):
    corpus = tmp_path / "zh.jsonl"
    import json

    with open(corpus, "w", encoding="utf-8") as f:
        for t in peoples_daily(3000):
            f.write(json.dumps({"text": t}, ensure_ascii=False) + "\n")
    prefix = tmp_path / "zh"
    assert cli(["train-spm", "--input", str(corpus), "--model-prefix", str(prefix), "--vocab-size", "5000", "--quiet"]) == 0
    sp = spm.SentencePieceProcessor(model_file=str(prefix) + ".model")
    assert sp.get_piece_size() == 5000
    from sentencepiece import sentencepiece_model_pb2 as pb

    m = pb.ModelProto()
    m.ParseFromString((tmp_path / "zh.model").read_bytes())
    assert m.trainer_spec.model_type == pb.TrainerSpec.BPE
    assert m.normalizer_spec.name == "identity"


def test_train_spm_bad_json_names_line(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "好"}\n{"text": \n', encoding="utf-8")
    assert cli(["train-spm", "--input", str(bad), "--model-prefix", str(tmp_path / "x"), "--vocab-size", "50"]) == 1
    assert "bad.jsonl:2" in capsys.readouterr().err

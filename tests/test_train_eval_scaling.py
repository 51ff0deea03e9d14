"""Evaluation that scales: the held-out split is index arrays capped by --max-eval-blocks, the eval batch
follows the train batch, --train-file is encoded once (rank 0; a resumed run reads the cache); and
pretrain --train-file / eval --text-file take --text-field and --on-bad-line as the README says."""

from __future__ import annotations

import json

import pytest

import train_helpers as h

pytest.importorskip("transformers")
pytest.importorskip("peft")


class _Blocks:
    """A dataset of 10^9 blocks that holds none of them."""

    def __len__(self):
        return 10**9

    def __getitem__(self, i):
        return int(i)


def test_split_is_index_arrays_capped_by_max_eval_blocks():
    from zhllama.train.text_data import split_validation

    train, held = split_validation(_Blocks(), 1.0, 0, max_eval=1000)
    assert len(held) == 1000 and len(train) == 10**9 - 1000
    assert held.indices.nbytes <= 8 * 1000  # an array of the held-out indices, not 10^7 Python ints
    # The two splits partition the blocks, in order.
    small = list(range(50))
    train, held = split_validation(small, 20, 3)
    got = [train[i] for i in range(len(train))] + [held[i] for i in range(len(held))]
    assert sorted(got) == small and len(held) == 10
    assert [train[i] for i in range(len(train))] == sorted(set(small) - {held[i] for i in range(len(held))})
    assert train[-1] == train[len(train) - 1]
    with pytest.raises(IndexError):
        train[len(train)]


def test_eval_batch_follows_the_train_batch(resized, text_file, tmp_path):
    out = tmp_path / "run"
    assert h.cli("pretrain", "--stage", "2", "--model", resized, "--train-file", text_file, "--output-dir", out,
                 "--block-size", "32", "--max-steps", "1", "--save-steps", "5", "--report-to", "none",
                 "--per-device-train-batch-size", "4", "--max-eval-blocks", "3") == 0
    args = json.loads((out / "zhllama-run.json").read_text())["settings"]
    assert args["max_eval_blocks"] == 3
    import torch

    training = torch.load(out / "training_args.bin", weights_only=False)
    assert training.per_device_eval_batch_size == 4


def test_train_file_is_encoded_once_and_reused_on_resume(resized, text_file, tmp_path, monkeypatch):
    from zhllama.train import text_data

    out = tmp_path / "run"
    args = ("pretrain", "--stage", "2", "--model", resized, "--train-file", text_file, "--output-dir", out,
            "--block-size", "32", "--save-steps", "2", "--report-to", "none", "--validation-split-percentage", "0")
    assert h.cli(*args, "--max-steps", "2") == 0
    assert len(list((out / ".zhllama-cache").glob("train-*.npy"))) == 1

    def no_encoding(*_a, **_k):
        raise AssertionError("--train-file encoded again")

    monkeypatch.setattr(text_data, "encode_files", no_encoding)
    assert h.cli(*args, "--max-steps", "4", "--resume", "--reschedule") == 0


def test_text_field_and_on_bad_line_for_pretrain_and_eval(resized, tmp_path, capsys):
    lines = h.corpus_lines(80, seed=4)
    data = tmp_path / "docs.jsonl"
    rows = [json.dumps({"content": line}, ensure_ascii=False) for line in lines]
    rows.insert(5, "{not json")
    data.write_text("\n".join(rows) + "\n", encoding="utf-8")
    base = ("pretrain", "--stage", "2", "--model", resized, "--train-file", data, "--block-size", "32",
            "--max-steps", "1", "--save-steps", "5", "--report-to", "none", "--validation-split-percentage", "0")
    assert h.cli(*base, "--output-dir", tmp_path / "a", "--text-field", "content") == 2
    assert f"{data}:6" in capsys.readouterr().err  # the bad line, named
    assert h.cli(*base, "--output-dir", tmp_path / "b", "--text-field", "content", "--on-bad-line", "skip") == 0
    assert h.cli("eval", "--model", resized, "--text-file", data, "--text-field", "content", "--on-bad-line",
                 "skip", "--output", tmp_path / "e.json") == 0
    assert json.loads((tmp_path / "e.json").read_text())["characters"] == sum(len(line) for line in lines)

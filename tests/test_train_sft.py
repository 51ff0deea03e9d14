"""`zhllama sft`: the report's prompt, masked labels, dropped truncations, errors, saved adapter."""

from __future__ import annotations

import json

import pytest
import sentencepiece as spm

import train_helpers as h
from fixture_paths import llama_tokenizer

pytest.importorskip("transformers")
pytest.importorskip("peft")

from zhllama.prompt import build_prompt, read_records  # noqa: E402
from zhllama.tokenizer import Tokenizer  # noqa: E402
from zhllama.tokenizer.directory import write_tokenizer_dir_from_model as write_tokenizer_dir  # noqa: E402
from zhllama.train.sft_data import IGNORE_INDEX, InstructionDataset, PaddingCollator, encode_record  # noqa: E402

EXPECTED_PROMPT = ("Below is an instruction that describes a task. Write a response that appropriately completes "
                   "the request.\n\n### Instruction:\n写一首诗\n关于春天\n\n### Response: ")


def test_prompt_is_the_reports():
    assert build_prompt("写一首诗", "关于春天") == EXPECTED_PROMPT
    assert build_prompt("写一首诗", "") == EXPECTED_PROMPT.replace("\n关于春天", "")


def test_labels_mask_prompt_and_end_with_eos():
    tok = Tokenizer.from_pretrained(h.tokenizer_dir("merged-pad"))
    ex = encode_record(tok, {"instruction": "学习语言", "input": "", "output": "经济发展。"}, 512)
    sp = spm.SentencePieceProcessor(model_file=str(h.merged_sp_model()))
    prompt = sp.encode(build_prompt("学习语言"), add_bos=True)
    response = sp.encode("经济发展。") + [sp.eos_id()]
    assert ex["input_ids"] == prompt + response
    assert ex["labels"] == [IGNORE_INDEX] * len(prompt) + response
    # Truncation that leaves no response token drops the sample.
    assert encode_record(tok, {"instruction": "学习语言", "input": "", "output": "好"}, len(prompt)) is None
    batch = PaddingCollator(tok.pad_id)([ex, {"input_ids": [1, 5], "labels": [-100, 5]}])
    assert batch["input_ids"][1, 2:].eq(tok.pad_id).all() and batch["labels"][1, 2:].eq(IGNORE_INDEX).all()
    assert batch["attention_mask"][1].tolist() == [1, 1] + [0] * (len(prompt) + len(response) - 2)


def test_tokenization_equals_sentencepiece_on_chinese_with_llama_fixture():
    model = llama_tokenizer().path
    tok = Tokenizer.from_pretrained(model)
    sp = spm.SentencePieceProcessor(model_file=str(model))
    texts = ["人民日报评论员文章：坚定不移推进改革开放，２０２４年经济增长５％。",
             "今天天气很好，我们去北京的公园散步吧！",
             "The model learns 中文 quickly — 越来越好, 意大利面。"]
    for text in texts:
        ex = encode_record(tok, {"instruction": text, "input": text[:5], "output": text}, 4096)
        assert ex["input_ids"] == (
            sp.encode(build_prompt(text, text[:5]), add_bos=True) + sp.encode(text) + [sp.eos_id()]
        )
    # eval and raw-text pretraining encode documents with BOS (and EOS) through the same loader.
    assert tok.encode_batch(texts, add_bos=True, add_eos=True) == sp.encode(texts, add_bos=True, add_eos=True)


def test_missing_field_names_the_record(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"instruction": "a", "input": "", "output": "b"}\n{"instruction": "a", "input": ""}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2: the record has no string field 'output'"):
        read_records(path)
    # In a .json list too, the error names the line the record starts on (1-based), as tokenize-corpus does.
    path = tmp_path / "bad.json"
    path.write_text('[\n  {"instruction": "a", "output": "b"},\n  {"instruction": "a",\n   "output": 3}\n]\n')
    with pytest.raises(ValueError, match=r"bad.json:3: the record has no string field 'output'"):
        read_records(path)
    path.write_text('[\n  {"instruction": "a", "output": "b"},\n  {"instruction": "a" "output": 3}\n]\n')
    with pytest.raises(ValueError, match=r"bad.json:3: not valid JSON"):
        read_records(path)
    # input may be absent (treated as empty)
    path = tmp_path / "ok.json"
    path.write_text(json.dumps([{"instruction": "a", "output": "b"}]))
    assert read_records(path)[0]["input"] == ""


def test_truncation_keeps_the_eos_and_is_counted(tmp_path, caplog):
    """A response longer than the room left is cut before its EOS: every example ends in EOS."""
    tok = Tokenizer.from_pretrained(h.tokenizer_dir("merged-pad"))
    data = h.write_alpaca(tmp_path / "a.json", 12)
    records = json.loads(data.read_text(encoding="utf-8"))
    for r in records[:5]:
        r["output"] = "经济发展" * 200  # far over 160 tokens
    data.write_text(json.dumps(records, ensure_ascii=False), encoding="utf-8")
    with caplog.at_level("WARNING", logger="zhllama.train"):
        ds = InstructionDataset([data], tok, 160)
    assert len(ds) == 12 and ds.truncated == 5 and ds.dropped == 0
    for ex in (ds[i] for i in range(len(ds))):
        assert ex["input_ids"][-1] == tok.eos_id and ex["labels"][-1] == tok.eos_id
        assert len(ex["input_ids"]) <= 160
    assert sum(len(ds[i]["input_ids"]) == 160 for i in range(len(ds))) == 5
    assert "truncated 5 of 12 records" in caplog.text


def test_sft_requires_pad_token(tmp_path, capsys):
    data = h.write_alpaca(tmp_path / "a.json", 4)
    nopad = write_tokenizer_dir(tmp_path / "tok", h.merged_sp_model())
    rc = h.cli("sft", "--model", h.tiny_model_dir("merged-pad"), "--tokenizer", nopad, "--train-file", data,
               "--output-dir", tmp_path / "o")
    assert rc == 2
    err = capsys.readouterr().err
    assert "no pad token" in err and "49,954" in err and "--pad-token" in err


def test_sft_trains_and_saves_full_adapter(tmp_path):
    data = h.write_alpaca(tmp_path / "a.json", 16)
    with open(data, encoding="utf-8") as f:
        records = json.load(f)
    # One record whose prompt alone exceeds --max-seq-length: dropped and counted.
    records.append({"instruction": "很长" * 300, "input": "", "output": "好"})
    data.write_text(json.dumps(records, ensure_ascii=False))
    out = tmp_path / "sft"
    rc = h.cli("sft", "--model", h.tiny_model_dir("merged-pad"), "--train-file", data, "--output-dir", out,
               "--max-seq-length", "200", "--max-steps", "3", "--save-steps", "2", "--per-device-train-batch-size", "2",
               "--validation-split-percentage", "20", "--report-to", "none", "--logging-steps", "1")
    assert rc == 0
    metrics = json.loads((out / "zhllama_metrics.json").read_text())
    assert metrics["dropped_truncated_records"] == 1 and "eval_loss" in metrics
    tensors = h.safetensors_of(out / "adapter_model.safetensors")
    for proj in ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"):
        assert any(f"{proj}.lora_A" in n for n in tensors) and any(f"{proj}.lora_B" in n for n in tensors), proj
    assert any("embed_tokens" in n for n in tensors) and any("lm_head" in n for n in tensors)
    assert (out / "adapter_model.safetensors").stat().st_size > 10_000
    assert (out / "tokenizer.model").is_file()


def test_dataset_in_batches_equals_records_one_at_a_time(tmp_path, monkeypatch):
    """Batched tokenization, the vectorized layout, bit-packed masks and batch lookup give each
    record's example exactly (kept, cut and dropped records mixed across batch boundaries)."""
    import zhllama.train.sft_data as sft_data

    monkeypatch.setattr(sft_data, "BATCH", 3)
    tok = Tokenizer.from_pretrained(h.tokenizer_dir("merged-pad"))
    records = json.loads(h.write_alpaca(tmp_path / "a.json", 13).read_text(encoding="utf-8"))
    records[2]["output"] = "经济发展。" * 100  # cut
    records[7]["instruction"] = "很长" * 300  # dropped: the prompt fills 200 tokens
    records[9]["output"] = ""  # only the EOS is learned
    data = tmp_path / "b.jsonl"
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    ds = InstructionDataset([data], tok, 200)
    want = [ex for ex in (encode_record(tok, r, 200) for r in read_records(data)) if ex is not None]
    assert (ds.dropped, ds.truncated, len(ds)) == (1, 1, 12) and want[2]["truncated"]
    assert [ds[i] for i in range(len(ds))] == [{k: ex[k] for k in ("input_ids", "labels")} for ex in want]
    assert ds[-1] == ds[len(ds) - 1]

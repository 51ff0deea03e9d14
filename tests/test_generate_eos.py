"""`zhllama generate` stops on every EOS id of the model's generation_config, not only the tokenizer's."""

from __future__ import annotations

import pytest
import torch

import train_helpers as h

transformers = pytest.importorskip("transformers")


def test_generate_stops_on_every_generation_config_eos(tmp_path, capsys):
    # A model whose final norm is zero has all-zero logits: greedy decoding emits id 0 forever.
    # Its generation_config lists 0 as a second EOS (as LLaMA-3-Instruct lists <|eot_id|>).
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(h.tiny_config(400))
    with torch.no_grad():
        model.model.norm.weight.zero_()
    model.generation_config.eos_token_id = [2, 0]
    out = tmp_path / "model"
    model.save_pretrained(out)
    from zhllama.tokenizer.directory import copy_tokenizer_files

    copy_tokenizer_files(h.tokenizer_dir("base"), out)
    for stream in ((), ("--no-stream",)):
        capsys.readouterr()
        assert h.cli("generate", "--model", out, "--prompt", "中国人民", "--template", "none", "--temperature", "0",
                     "--max-new-tokens", "6", "--device", "cpu", *stream) == 0
        assert capsys.readouterr().out == "\n"  # stopped at the first token: an empty response

    from zhllama.infer.generate import eos_ids
    from zhllama.tokenizer import Tokenizer

    assert eos_ids(model, Tokenizer.from_pretrained(out)) == [2, 0]

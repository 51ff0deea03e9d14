"""`zhllama convert-gguf`: SmolLM2's GGUF becomes a plain Hugging Face model whose logits equal
transformers' GGUF-loaded model's, with its tokenizer, generation config and chat template."""

from __future__ import annotations

import json

import pytest

from fixture_paths import smollm2_gguf, smollm2_model_dir

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

PROMPT = "What is the capital of France? The year 2024 had 366 days. 北京是中国的首都。"


@pytest.mark.slow
def test_converted_smollm2_equals_the_gguf_loaded_model():
    from zhllama.model.convert_gguf import RECORD

    gguf = smollm2_gguf()
    out = smollm2_model_dir().path
    config = json.loads((out / "config.json").read_text())
    assert "quantization_config" not in config and config["tie_word_embeddings"] is True
    assert config["architectures"] == ["LlamaForCausalLM"] and config["vocab_size"] == 49152
    assert json.loads((out / RECORD).read_text())["pre_tokenizer"] == "smollm"
    generation = json.loads((out / "generation_config.json").read_text())
    assert generation["eos_token_id"] == 2 and generation["bos_token_id"] == 1

    tok = transformers.AutoTokenizer.from_pretrained(out)
    ids = tok(PROMPT, return_tensors="pt").input_ids
    # llama.cpp's "smollm" pre-tokenizer splits every digit (the published tokenizer.json's Digits step).
    assert tok.tokenize("2024") == ["2", "0", "2", "4"]
    chat = tok.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True)
    assert chat.startswith("<|im_start|>") and chat.endswith("<|im_start|>assistant\n")

    converted = transformers.AutoModelForCausalLM.from_pretrained(out)
    assert converted.lm_head.weight is converted.model.embed_tokens.weight
    reference = transformers.AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name,
                                                                  dtype=torch.float32)
    with torch.no_grad():
        got, want = converted(input_ids=ids).logits, reference(input_ids=ids).logits
    assert torch.equal(got, want)
    # Greedy decoding knows the answer, as the issue measured on the GGUF.
    q = tok.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                add_generation_prompt=True, return_tensors="pt", return_dict=True)
    answer = converted.generate(**q, max_new_tokens=12, do_sample=False)
    assert "Paris" in tok.decode(answer[0, q["input_ids"].shape[1]:])


def test_bad_gguf_input_is_one_line(tmp_path, capsys):
    from zhllama.cli import main

    bad = tmp_path / "model.gguf"
    bad.write_bytes(b"PK\x03\x04 not a gguf")
    assert main(["convert-gguf", str(bad), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(bad) in err and "not a GGUF file" in err
    assert main(["convert-gguf", str(tmp_path / "missing.gguf"), str(tmp_path / "out")]) == 2
    assert "no such file" in capsys.readouterr().err

"""One prompt format from SFT to server (issue 27 item 3): the chat_template.jinja an sft output ships
renders, through transformers' apply_chat_template on the saved tokenizer, exactly the prompt sft
trained on; --template chat trains multi-turn records with the base's own template."""

from __future__ import annotations

import json
import shutil

import pytest

import train_helpers as h

pytest.importorskip("transformers")
pytest.importorskip("peft")

from transformers import AutoTokenizer  # noqa: E402

from zhllama.chat_template import alpaca_user_content, chat_segments, conversation, render  # noqa: E402
from zhllama.prompt import build_prompt  # noqa: E402
from zhllama.tokenizer import Tokenizer  # noqa: E402
from zhllama.train.sft_data import IGNORE_INDEX, InstructionDataset, encode_record  # noqa: E402

CHATML = ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + "
          "'<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
# LLaMA-2 chat's shape: BOS before each user turn, EOS after each answer.
INST = ("{% for m in messages %}{% if m['role'] == 'user' %}{{ bos_token + '[INST] ' + m['content'] + ' [/INST]' }}"
        "{% elif m['role'] == 'assistant' %}{{ ' ' + m['content'] + ' ' + eos_token }}{% endif %}{% endfor %}")


def tokenizer_with_template(tmp_path, template: str):
    tok = tmp_path / "tok"
    shutil.copytree(h.tokenizer_dir("merged-pad"), tok)
    (tok / "chat_template.jinja").write_text(template, encoding="utf-8")  # as extend-vocab copies SmolLM2's
    return tok


def sft(tmp_path, tok, data, template: str):
    out = tmp_path / f"sft-{template}"
    flag = [] if template == "alpaca" else ["--template", template]  # alpaca: the default
    rc = h.cli("sft", "--model", h.tiny_model_dir("merged-pad"), "--tokenizer", tok, "--train-file", data,
               "--output-dir", out, *flag, "--max-seq-length", "400", "--max-steps", "1",
               "--per-device-train-batch-size", "2", "--report-to", "none")
    assert rc == 0
    return out


def test_alpaca_sft_ships_the_alpaca_prompt(tmp_path):
    """The base tokenizer ships ChatML (what extend-vocab copies from SmolLM2); sft trains Alpaca. The
    output's template must render the Alpaca prompt, byte for byte and id for id."""
    tok_dir = tokenizer_with_template(tmp_path, CHATML)
    out = sft(tmp_path, tok_dir, h.write_alpaca(tmp_path / "a.json", 4), "alpaca")
    hf = AutoTokenizer.from_pretrained(out)
    tok = Tokenizer.from_pretrained(out)
    for instruction, inp in [("write the model a text", ""), ("翻译成英文", "今天天气很好"), ("  two  spaces", "x")]:
        messages = [{"role": "user", "content": alpaca_user_content(instruction, inp)}]
        text = hf.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        assert text == "<s>" + build_prompt(instruction, inp)
        record = {"instruction": instruction, "input": inp, "output": "the answer"}
        trained = encode_record(tok, record, 512)
        prompt = [i for i, lab in zip(trained["input_ids"], trained["labels"]) if lab == IGNORE_INDEX]
        if instruction.isascii():  # Chinese text meets the merged test model's score-0 ties in HF tokenizers
            assert hf.apply_chat_template(messages, add_generation_prompt=True, return_dict=False) == prompt
        whole = hf.apply_chat_template(messages + [{"role": "assistant", "content": "the answer"}], tokenize=False)
        assert whole == "<s>" + build_prompt(instruction, inp) + "the answer</s>"


def test_chat_sft_trains_assistant_turns_with_the_bases_template(tmp_path):
    tok_dir = tokenizer_with_template(tmp_path, INST)
    records = [{"messages": [{"role": "user", "content": "the model learns"},
                             {"role": "assistant", "content": "quickly and well"},
                             {"role": "user", "content": "with data"},
                             {"role": "assistant", "content": "on cpu"}]},
               {"conversations": [{"from": "human", "value": "small example"}, {"from": "gpt", "value": "is fast"}]}]
    data = tmp_path / "chat.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in records * 2), encoding="utf-8")
    tok = Tokenizer.from_pretrained(tok_dir)
    ds = InstructionDataset([data], tok, 128, INST)
    ex = ds[0]
    learned = tok.decode([i for i, lab in zip(ex["input_ids"], ex["labels"]) if lab != IGNORE_INDEX])
    assert learned.split() == ["quickly", "and", "well", "on", "cpu"]
    assert ex["input_ids"].count(tok.eos_id) == 2
    assert [lab for i, lab in zip(ex["input_ids"], ex["labels"]) if i == tok.eos_id] == [tok.eos_id] * 2
    assert ex["input_ids"].count(tok.bos_id) == 2 and ex["labels"][0] == IGNORE_INDEX
    # Truncated inside the second answer: the example still ends on the end-of-turn token (learned).
    short = InstructionDataset([data], tok, len(ex["input_ids"]) - 2, INST)
    assert short.truncated == 2 and short[0]["input_ids"][-1] == tok.eos_id == short[0]["labels"][-1]
    out = sft(tmp_path, tok_dir, data, "chat")
    assert (out / "chat_template.jinja").read_text(encoding="utf-8") == INST
    hf = AutoTokenizer.from_pretrained(out)
    messages = conversation("x", records[0])
    # What a server sends for the first turn is the training example's prefix, id for id.
    first = hf.apply_chat_template(messages[:1], add_generation_prompt=True, return_dict=False)
    assert ex["input_ids"][:len(first)] == first and all(lab == IGNORE_INDEX for lab in ex["labels"][:len(first)])
    assert hf.apply_chat_template(messages, return_dict=False) == ex["input_ids"]
    assert "".join(t for t, _ in chat_segments(INST, messages, special={"bos_token": "<s>", "eos_token": "</s>"})) \
        == render(INST, messages, special={"bos_token": "<s>", "eos_token": "</s>"})


def test_chat_needs_a_template_and_messages(tmp_path, capsys):
    data = tmp_path / "a.jsonl"
    data.write_text(json.dumps({"instruction": "a", "output": "b"}) + "\n", encoding="utf-8")
    rc = h.cli("sft", "--model", h.tiny_model_dir("merged-pad"), "--train-file", data, "--output-dir",
               tmp_path / "o", "--template", "chat")
    assert rc == 2 and "has no chat template" in capsys.readouterr().err
    tok = Tokenizer.from_pretrained(tokenizer_with_template(tmp_path, INST))
    with pytest.raises(ValueError, match=r"a.jsonl:1: no 'messages'"):
        InstructionDataset([data], tok, 128, INST)


def test_generate_prompts_with_the_shipped_template(tmp_path):
    from zhllama.infer.generate import record_ids
    from zhllama.train.sft import sft_template

    tok = Tokenizer.from_pretrained(h.tokenizer_dir("merged-pad"))
    shipped = sft_template("alpaca", tok, str(h.tokenizer_dir("merged-pad")))
    record = {"instruction": "the model learns", "input": "with data"}
    want = tok.encode(build_prompt("the model learns", "with data"), add_bos=True)
    assert record_ids(record, "chat", tok, shipped) == want == record_ids(record, "alpaca", tok, None)
    chatml = record_ids({"prompt": "hi"}, "chat", tok, CHATML)
    assert tok.decode(chatml) == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"


def test_generate_takes_the_trained_template_over_the_tokenizer_directory(tmp_path):
    """`generate --model final --tokenizer TOKDIR`: the template sft trained on (shipped with the
    adapter or the merged model) wins over the tokenizer directory's own, as merge-lora ships it."""
    import argparse

    from zhllama.infer.generate import shipped_template

    def ship(name, template):
        d = tmp_path / name
        d.mkdir()
        if template is not None:
            (d / "chat_template.jinja").write_text(template, encoding="utf-8")
        return str(d)

    tok, model, lora = ship("tok", CHATML), ship("model", "{{ 'model' }}"), ship("lora", "{{ 'lora' }}")
    assert shipped_template(argparse.Namespace(tokenizer=tok, lora=[lora], model=model)) == "{{ 'lora' }}"
    assert shipped_template(argparse.Namespace(tokenizer=tok, lora=None, model=model)) == "{{ 'model' }}"
    bare = ship("bare", None)
    assert shipped_template(argparse.Namespace(tokenizer=tok, lora=None, model=bare)) == CHATML


def test_read_chat_template_names_a_bad_config(tmp_path):
    """One reader (sft, generate, export-gguf): a broken tokenizer_config.json is one error naming the
    file and line, not a bare JSONDecodeError or an AttributeError on a non-object."""
    from zhllama.chat_template import read_chat_template

    config = tmp_path / "tokenizer_config.json"
    assert read_chat_template(tmp_path) is None
    config.write_text('{"chat_template": [{"name": "default", "template": "{{ x }}"}]}')
    assert read_chat_template(config) == "{{ x }}"
    for text, error in [('{\n"chat_template": }', r"tokenizer_config.json:2: not valid JSON"),
                        ("[]", r"tokenizer_config.json: expected a JSON object, found list")]:
        config.write_text(text)
        with pytest.raises(ValueError, match=error):
            read_chat_template(tmp_path)

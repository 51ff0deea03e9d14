"""`zhllama export-gguf` without llama.cpp: the file's tokenizer keys against the tokenizer
directory, the weights through transformers' GGUF reader (`convert-gguf` round trip: f32 gives the
same logits exactly, f16/bf16 those of the model rounded to that type), the Ollama Modelfile's
template against the Jinja chat template, and the one-line errors. llama.cpp itself:
tests/test_export_gguf_llamacpp.py."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

import export_gguf_helpers as g
import train_helpers as h
from fixture_paths import llama3_hf_dir, smollm2_dir

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
gguf = pytest.importorskip("gguf")


def fields(path: Path) -> dict:
    reader = gguf.GGUFReader(str(path))
    return {k: f.contents() for k, f in reader.fields.items() if not k.startswith("GGUF.")}


def test_sentencepiece_tokenizer_keys(tmp_path):
    """Pieces, scores and types as sentencepiece has them; [PAD] a control token after them; the
    model's extra rows unused [PAD{id}] tokens; BOS/EOS/PAD ids and add-BOS from the directory."""
    import sentencepiece as spm

    tok = h.tokenizer_dir("merged-pad")
    sp = spm.SentencePieceProcessor(model_file=str(tok / "tokenizer.model"))
    n = sp.get_piece_size()
    model = g.tiny_llama(n + 1 + 3)  # + [PAD] + 3 rows the tokenizer does not use
    model.save_pretrained(tmp_path / "m")
    for f in tok.iterdir():
        shutil.copyfile(f, tmp_path / "m" / f.name)
    out = tmp_path / "m.gguf"
    assert h.cli("export-gguf", tmp_path / "m", out, "--type", "f32", "--quiet") == 0
    kv = fields(out)
    assert kv["tokenizer.ggml.model"] == "llama" and kv["general.architecture"] == "llama"
    tokens, scores, types = kv["tokenizer.ggml.tokens"], kv["tokenizer.ggml.scores"], kv["tokenizer.ggml.token_type"]
    assert tokens[:n] == [sp.id_to_piece(i) for i in range(n)]
    assert scores[:n] == pytest.approx([sp.get_score(i) for i in range(n)])
    want = [2 if sp.is_unknown(i) else 3 if sp.is_control(i) else 6 if sp.is_byte(i) else 1 for i in range(n)]
    assert types[:n] == want and 6 in want and 2 in want
    assert tokens[n:] == ["[PAD]", f"[PAD{n + 1}]", f"[PAD{n + 2}]", f"[PAD{n + 3}]"]
    assert types[n:] == [3, 5, 5, 5]
    assert (kv["tokenizer.ggml.bos_token_id"], kv["tokenizer.ggml.eos_token_id"]) == (1, 2)
    assert kv["tokenizer.ggml.unknown_token_id"] == 0 and kv["tokenizer.ggml.padding_token_id"] == n
    assert kv["tokenizer.ggml.add_bos_token"] is True and kv["tokenizer.ggml.add_space_prefix"] is True
    assert kv["llama.vocab_size"] == n + 4 and kv["general.file_type"] == 0


@pytest.mark.slow
@pytest.mark.parametrize("which", ["smollm2", "llama3"])
def test_bytelevel_tokenizer_keys(which, tmp_path):
    """Every token and merge of the tokenizer.json in order, the pre-tokenizer by llama.cpp's name,
    specials as control tokens, add-BOS as the post-processor does it, the chat template."""
    from zhllama.tokenizer import Tokenizer

    tok = (smollm2_dir() if which == "smollm2" else llama3_hf_dir()).path
    doc = json.loads((tok / "tokenizer.json").read_text(encoding="utf-8"))
    directory = g.model_dir(tok, f"keys-{which}", hidden=16, layers=1, heads=2, kv_heads=1)
    out = g.export(directory, "f16")
    kv = fields(out)
    assert kv["tokenizer.ggml.model"] == "gpt2"
    assert kv["tokenizer.ggml.pre"] == {"smollm2": "smollm", "llama3": "llama-bpe"}[which]
    assert kv["tokenizer.ggml.merges"] == [m if isinstance(m, str) else " ".join(m) for m in doc["model"]["merges"]]
    tokens, types = kv["tokenizer.ggml.tokens"], kv["tokenizer.ggml.token_type"]
    for t, i in doc["model"]["vocab"].items():
        assert tokens[i] == t
    for a in doc["added_tokens"]:
        assert tokens[a["id"]] == a["content"] and types[a["id"]] == 3
    t = Tokenizer.from_pretrained(tok)
    assert kv["tokenizer.ggml.add_bos_token"] is (t.bos_id is not None)
    assert kv["tokenizer.ggml.eos_token_id"] == t.eos_id
    if which == "llama3":
        assert kv["tokenizer.ggml.bos_token_id"] == 128000
    else:
        assert kv["tokenizer.chat_template"] == (tok / "chat_template.jinja").read_text(encoding="utf-8")


def _logits(model, ids):
    with torch.no_grad():
        return model(input_ids=torch.tensor([ids])).logits[0]


def _rounded(model, dtype):
    """``model`` with every matrix rounded to ``dtype`` (the 1-D norms stay float32, as in the GGUF)."""
    import copy

    m = copy.deepcopy(model)
    with torch.no_grad():
        for p in m.parameters():
            if p.dim() > 1:
                p.copy_(p.to(dtype).float())
    return m


@pytest.mark.parametrize("tie", [False, True])
def test_convert_gguf_round_trip_gives_the_same_logits(tie, tmp_path):
    """export-gguf then convert-gguf (transformers' GGUF reader undoes llama.cpp's q/k permutation):
    f32 gives the model's logits exactly; f16 and bf16 those of the model rounded to that type."""
    from zhllama.model.convert_gguf import convert_gguf

    directory = g.model_dir(h.tokenizer_dir("merged-pad"), f"rt-{tie}", tie=tie)
    model = transformers.AutoModelForCausalLM.from_pretrained(directory).eval()
    ids = [1, *range(5, 120, 3)]
    for kind, dtype in (("f32", None), ("f16", torch.float16), ("bf16", torch.bfloat16)):
        back = convert_gguf(g.export(directory, kind), tmp_path / kind)
        converted = transformers.AutoModelForCausalLM.from_pretrained(back).eval()
        assert (converted.lm_head.weight is converted.model.embed_tokens.weight) is tie
        want = _logits(model if dtype is None else _rounded(model, dtype), ids)
        assert torch.equal(_logits(converted, ids), want), kind


def test_llama3_rope_and_untied_head_are_written(tmp_path):
    """LLaMA-3.1's RoPE scaling becomes llama.cpp's rope_freqs tensor (one factor per frequency)."""
    rope = {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
            "high_freq_factor": 4.0, "original_max_position_embeddings": 64}
    from zhllama.tokenizer import Tokenizer

    tok = h.tokenizer_dir("merged")
    g.tiny_llama(len(Tokenizer.from_pretrained(tok)), hidden=64, heads=2, kv_heads=1, rope=rope).save_pretrained(
        tmp_path / "m")
    for f in tok.iterdir():
        shutil.copyfile(f, tmp_path / "m" / f.name)
    assert h.cli("export-gguf", tmp_path / "m", tmp_path / "m.gguf", "--quiet") == 0
    reader = gguf.GGUFReader(str(tmp_path / "m.gguf"))
    freqs = next(t for t in reader.tensors if t.name == "rope_freqs")
    assert len(freqs.data) == 32 // 2 and freqs.data[0] == 1.0 and freqs.data[-1] == 8.0
    names = {t.name for t in reader.tensors}
    assert "output.weight" in names and "blk.1.attn_k.weight" in names
    assert fields(tmp_path / "m.gguf")["llama.rope.freq_base"] == 500000.0


# --- the Ollama Modelfile --------------------------------------------------------------------------------

_ACTION = re.compile(r"\{\{(.*?)\}\}", re.S)


def go_render(template: str, system: str, prompt: str) -> str:
    """Go text/template, the subset the Modelfile uses: {{ .System }}, {{ .Prompt }},
    {{ if .System }}..{{ else }}..{{ end }}, {{ "{{" }}; the prompt of the turn being generated
    ends at {{ .Response }}, where Ollama cuts a template with no .Messages."""
    out, stack, pos = [], [True], 0
    values = {".System": system, ".Prompt": prompt}
    for m in _ACTION.finditer(template):
        if all(stack):
            out.append(template[pos:m.start()])
        action = m.group(1).strip()
        if action == ".Response" and all(stack):
            return "".join(out)
        if action.startswith("if "):
            stack.append(bool(values[action[3:].strip()]))
        elif action == "else":
            stack[-1] = not stack[-1]
        elif action == "end":
            stack.pop()
        elif all(stack):
            out.append(json.loads(action) if action.startswith('"') else values[action])
        pos = m.end()
    out.append(template[pos:])
    return "".join(out)


def modelfile_template(path: Path) -> str:
    text = path.read_text(encoding="utf-8")
    m = re.search(r'^TEMPLATE """(.*?)"""$', text, re.S | re.M)
    assert m is not None, text
    return m.group(1)


ALPACA = ("{% for message in messages %}{% if message['role'] == 'system' %}{{ message['content'] + '\\n\\n' }}"
          "{% elif message['role'] == 'user' %}"
          "{{ '### Instruction:\\n' + message['content'] + '\\n\\n### Response:\\n' }}"
          "{% else %}{{ message['content'] + eos_token }}{% endif %}{% endfor %}")
LLAMA3 = ("{{ bos_token }}{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + "
          "'<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}{% endfor %}"
          "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}")


@pytest.mark.parametrize("which", ["smollm2", "alpaca", "llama3"])
def test_modelfile_template_renders_as_the_chat_template(which, tmp_path):
    """The Go template, rendered as Ollama renders it, equals transformers' apply_chat_template of
    the saved tokenizer (less the BOS llama.cpp adds), with and without a system message."""
    tok = llama3_hf_dir().path if which == "llama3" else smollm2_dir().path
    directory = g.model_dir(tok, f"mf-{which}", hidden=16, layers=1, heads=2, kv_heads=1)
    if which != "smollm2":
        directory = Path(shutil.copytree(directory, tmp_path / which))
        (directory / "chat_template.jinja").write_text(ALPACA if which == "alpaca" else LLAMA3, encoding="utf-8")
    out = tmp_path / "model.gguf"
    assert h.cli("export-gguf", directory, out, "--quiet") == 0
    modelfile = out.with_suffix(".Modelfile")
    text = modelfile.read_text(encoding="utf-8")
    assert "FROM ./model.gguf\n" in text
    for line in ("PARAMETER temperature 0.2", "PARAMETER top_k 40", "PARAMETER top_p 0.9",
                 "PARAMETER repeat_penalty 1.3"):
        assert line + "\n" in text
    hf = transformers.AutoTokenizer.from_pretrained(directory)
    eos = hf.convert_ids_to_tokens(hf.eos_token_id)
    assert f'PARAMETER stop "{eos}"\n' in text
    template = modelfile_template(modelfile)
    bos = "<|begin_of_text|>" if which == "llama3" else ""
    for system in ("", "You answer in Chinese."):
        for prompt in ("北京是中国的首都吗？", "Say {{ hi }} and \"quote\"\n twice."):
            messages = ([{"role": "system", "content": system}] if system else []) + [
                {"role": "user", "content": prompt}]
            want = hf.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            assert want.startswith(bos)
            assert go_render(template, system, prompt) == want[len(bos):], (system, prompt)


def test_modelfile_without_a_chat_template_says_so(tmp_path):
    directory = Path(shutil.copytree(h.tiny_model_dir("merged"), tmp_path / "m"))
    (directory / "chat_template.jinja").unlink(missing_ok=True)
    assert h.cli("export-gguf", directory, tmp_path / "m.gguf", "--quiet") == 0
    text = (tmp_path / "m.Modelfile").read_text(encoding="utf-8")
    assert "TEMPLATE" not in text.replace("# No TEMPLATE", "") and "# No TEMPLATE: the model directory has no" in text
    assert 'PARAMETER stop "</s>"' in text


# --- errors ----------------------------------------------------------------------------------------------


def test_errors_are_one_line(tmp_path, capsys):
    model = h.tiny_model_dir("merged")

    def err(*argv) -> str:
        assert h.cli("export-gguf", *argv) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1, lines
        return lines[0]

    with pytest.raises(SystemExit) as e:
        h.cli("export-gguf", model, tmp_path / "o.gguf", "--type", "q5_x")
    assert e.value.code == 2 and "invalid choice: 'q5_x'" in capsys.readouterr().err
    assert "no such model directory" in err(tmp_path / "missing", tmp_path / "o.gguf")
    bad = Path(shutil.copytree(model, tmp_path / "gpt2"))
    config = json.loads((bad / "config.json").read_text())
    (bad / "config.json").write_text(json.dumps({**config, "architectures": ["GPT2LMHeadModel"]}))
    assert "architecture 'GPT2LMHeadModel' is not supported" in err(bad, tmp_path / "o.gguf")
    notok = Path(shutil.copytree(model, tmp_path / "notok"))
    (notok / "tokenizer.model").unlink()
    (notok / "tokenizer.json").unlink(missing_ok=True)  # the exact tokenizer.json written beside it
    assert "no tokenizer (tokenizer.model or tokenizer.json)" in err(notok, tmp_path / "o.gguf")
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    assert "LoRA adapter" in err(adapter, tmp_path / "o.gguf")
    small = Path(shutil.copytree(model, tmp_path / "small"))
    shutil.copyfile(h.tokenizer_dir("merged-pad") / "tokenizer_config.json", small / "tokenizer_config.json")
    (small / "tokenizer.model").write_bytes((h.tokenizer_dir("merged-pad") / "tokenizer.model").read_bytes())
    g.tiny_llama(300).save_pretrained(small)
    capsys.readouterr()
    assert "only 300 embedding rows" in err(small, tmp_path / "o.gguf")
    exists = tmp_path / "exists.gguf"
    exists.write_bytes(b"keep")
    assert "exists; pass --force" in err(model, exists)
    assert exists.read_bytes() == b"keep"
    assert "must be a .gguf file" in err(model, tmp_path / "o.bin")
    assert not list(tmp_path.glob(".o.gguf.*"))  # no temporary left behind

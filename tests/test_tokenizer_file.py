"""One rule for "which file is this directory's tokenizer" (issue 28): ``tokenizer_file`` in
zhllama.tokenizer.directory, used by the loader of inference models, merge-lora, the identity
records and the native-code paths. Before it, ``load_for_inference`` looked only for
``tokenizer.model`` in an adapter, so a byte-level adapter (``tokenizer.json``) was paired with its
base's tokenizer, and merge-lora read no vocabulary size from it."""

from __future__ import annotations

import json
import shutil

import pytest

import train_helpers as h
from fixture_paths import smollm2_dir
from zhllama.tokenizer.directory import resolve_model_file, sha256_file, tokenizer_file


def test_the_rule(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    assert tokenizer_file(d) is None
    with pytest.raises(FileNotFoundError, match="no such tokenizer"):
        resolve_model_file(d)
    (d / "tokenizer.json").write_text("{}")
    assert tokenizer_file(d) == d / "tokenizer.json"
    (d / "tokenizer.model").write_bytes(b"x")  # SentencePiece (or tiktoken) first, as the loader reads it
    assert tokenizer_file(d) == resolve_model_file(d) == d / "tokenizer.model"
    assert tokenizer_file(d / "tokenizer.json") == d / "tokenizer.json"  # a file as given
    assert tokenizer_file(tmp_path / "missing") is None


@pytest.fixture(scope="module")
def byte_level_adapter(tmp_path_factory):
    """A tiny LLaMA on SmolLM2's tokenizer, and a LoRA adapter on it saved with its own byte-level
    tokenizer: SmolLM2's plus an added [PAD] (as SFT saves it), in tokenizer.json only."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    peft = pytest.importorskip("peft")
    from zhllama.tokenizer import Tokenizer

    tmp = tmp_path_factory.mktemp("bytelevel-adapter")
    tok_dir = smollm2_dir().path
    n = len(Tokenizer.from_pretrained(tok_dir))
    base = tmp / "base"
    torch.manual_seed(0)
    transformers.LlamaForCausalLM(h.tiny_config(n + 8, hidden=16)).save_pretrained(base)
    for f in tok_dir.iterdir():
        if f.name.startswith("tokenizer"):
            shutil.copyfile(f, base / f.name)
    adapter = tmp / "adapter"
    model = transformers.AutoModelForCausalLM.from_pretrained(base)
    peft.get_peft_model(model, peft.LoraConfig(r=2, target_modules=["q_proj"])).save_pretrained(adapter)
    doc = json.loads((tok_dir / "tokenizer.json").read_text(encoding="utf-8"))
    doc["added_tokens"].append({"id": n, "content": "[PAD]", "single_word": False, "lstrip": False,
                                "rstrip": False, "normalized": False, "special": True})
    (adapter / "tokenizer.json").write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    shutil.copyfile(tok_dir / "tokenizer_config.json", adapter / "tokenizer_config.json")
    assert not (adapter / "tokenizer.model").exists()
    return base, adapter, n


def test_a_byte_level_adapter_brings_its_own_tokenizer(byte_level_adapter):
    from zhllama.model.identity import tokenizer_sha256
    from zhllama.model.loading import load_for_inference
    from zhllama.model.merge_lora import adapter_vocab_size

    base, adapter, n = byte_level_adapter
    _, tok = load_for_inference(str(base), str(adapter), None, device="cpu")
    assert len(tok) == n + 1 and str(adapter) in tok.source  # the adapter's, not the base's
    assert tok.piece_to_id("[PAD]") == n
    assert adapter_vocab_size(adapter) == n + 1  # no embed_tokens saved: its tokenizer's size
    assert tokenizer_sha256(adapter) == sha256_file(adapter / "tokenizer.json")

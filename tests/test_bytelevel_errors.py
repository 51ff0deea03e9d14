"""Bad byte-level input gets one-line errors naming the file, line or component: an unsupported
tokenizer.json (WordPiece, Unigram, a pre-tokenizer/normalizer/decoder zhllama does not
implement), corrupt JSON, a merge whose parts are not in the vocabulary, a truncated tiktoken
file; decoding an id out of range is an IndexError."""

from __future__ import annotations

import json

import pytest

import fixture_paths as fp
from zhllama import Tokenizer
from zhllama._native import ModelError


def _smol_json() -> dict:
    return json.loads((fp.smollm2_dir().path / "tokenizer.json").read_text(encoding="utf-8"))


def _load(tmp_path, j) -> str:
    d = tmp_path / "tok"
    d.mkdir(exist_ok=True)
    (d / "tokenizer.json").write_text(j if isinstance(j, str) else json.dumps(j), encoding="utf-8")
    with pytest.raises(ModelError) as e:
        Tokenizer.from_pretrained(d)
    msg = str(e.value)
    assert "\n" not in msg and str(d / "tokenizer.json") in msg, msg
    return msg


@pytest.mark.parametrize("edit,expect", [
    (lambda j: j["model"].update(type="WordPiece"), 'model "WordPiece" is not supported'),
    (lambda j: j["model"].update(type="Unigram"), 'model "Unigram" is not supported'),
    (lambda j: j.update(pre_tokenizer={"type": "Metaspace", "replacement": "▁"}), 'pre_tokenizer "Metaspace"'),
    (lambda j: j.update(pre_tokenizer={"type": "Whitespace"}), 'pre_tokenizer "Whitespace"'),
    (lambda j: j.update(normalizer={"type": "NFKC"}), 'normalizer "NFKC" is not supported'),
    (lambda j: j.update(decoder={"type": "WordPiece"}), 'decoder "WordPiece" is not supported'),
    (lambda j: j.update(post_processor={"type": "BertProcessing"}), 'post_processor "BertProcessing"'),
    (lambda j: j["model"]["merges"].insert(5, ["Ġt", "zzz_not_a_token"]),
     'merge 5 ["Ġt", "zzz_not_a_token"]: "zzz_not_a_token" is not in the vocabulary'),
])
def test_refused_in_one_line(tmp_path, edit, expect):
    j = _smol_json()
    edit(j)
    msg = _load(tmp_path, j)
    assert expect in msg, msg


def test_corrupt_json_names_line(tmp_path):
    text = json.dumps(_smol_json(), indent=1)
    cut = text[: len(text) // 2]
    msg = _load(tmp_path, cut)
    assert "not valid JSON" in msg and f"tokenizer.json:{cut.count(chr(10)) + 1}:" in msg, msg


def test_truncated_tiktoken_file(tmp_path):
    data = fp.llama3_tiktoken().path.read_bytes()
    p = tmp_path / "tokenizer.model"
    cut = data[: len(data) // 2]
    cut = cut[: cut.rindex(b" ") + 1]  # ends inside a line: "BASE64 " with no rank
    p.write_bytes(cut)
    with pytest.raises(ModelError) as e:
        Tokenizer.from_file(p)
    line = cut.count(b"\n") + 1
    assert str(e.value).startswith(f"{p}:{line}: ") and "\n" not in str(e.value), e.value
    p.write_bytes(data[: data[:100].rindex(b"\n") + 1])  # a few whole ranks: most bytes have no token
    with pytest.raises(ModelError, match="no token for the byte 0x"):
        Tokenizer.from_file(p)


def test_decode_out_of_range():
    tok = Tokenizer.from_file(fp.llama3_tiktoken().path)
    with pytest.raises(IndexError, match="128256"):
        tok.decode([1, 128256])
    assert len(tok) == tok.vocab_size == 128256
    assert (tok.bos_id, tok.eos_id, tok.pad_id) == (128000, 128001, 128004)
    assert tok.eos_ids == [128001, 128008, 128009]
    assert tok.encode("hi", add_bos=True, add_eos=True) == [128000, 6151, 128001]


def test_smollm2_specials_follow_the_post_processor():
    tok = Tokenizer.from_pretrained(fp.smollm2_dir().path)
    assert tok.bos_id is None and tok.eos_id == 2 and tok.pad_id == 2
    assert tok.encode("hi", add_bos=True) == tok.encode("hi")  # SmolLM2's template adds no BOS
    assert tok.encode("<|im_end|>", parse_special=True) == [2]


def test_pickles_by_path():
    import pickle

    for tok in (Tokenizer.from_file(fp.llama3_tiktoken().path), Tokenizer.from_pretrained(fp.smollm2_dir().path)):
        back = pickle.loads(pickle.dumps(tok))
        assert back.encode("中文 text 123") == tok.encode("中文 text 123")
        assert (back.bos_id, back.eos_id, back.eos_ids, back.vocab_size) == (tok.bos_id, tok.eos_id, tok.eos_ids,
                                                                            tok.vocab_size)


def test_a_sentencepiece_directory_with_a_tokenizer_json_is_refused_by_its_model(tmp_path):
    """extend-vocab's base follows the one rule for a directory's tokenizer (tokenizer.model, else
    tokenizer.json): a SentencePiece directory that also holds a tokenizer.json, as merge-vocab
    writes them, is named a SentencePiece model with the verb that grows it."""
    import shutil

    from zhllama.tokenizer.bytelevel_base import load_base
    from zhllama.tokenizer.spm_json import write_tokenizer_json

    d = tmp_path / "sp"
    d.mkdir()
    shutil.copy(fp.llama_tokenizer().path, d / "tokenizer.model")
    assert write_tokenizer_json(d / "tokenizer.json", (d / "tokenizer.model").read_bytes()) is not None
    with pytest.raises(ValueError, match=r"sp/tokenizer.model: a SentencePiece model, not a byte-level BPE tokenizer; "
                                         r"merge Chinese pieces into it with `zhllama merge-vocab"):
        load_base(d)

"""Parity on models trained here with sentencepiece: BPE and Unigram, user-defined and control
symbols, byte fallback on and off, each normalizer flag flipped, custom normalization rules,
and UNUSED pieces (which BPE resegments)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import sentencepiece as spm
from sentencepiece import sentencepiece_model_pb2 as pb

from conftest import TRICKY, assert_parity

USER = ["<sep>", "[MASK]", "中华人民共和国", "ab", "  ", "🙂"]
CONTROL = ["<cls>", "<ctl>"]

CONFIGS = {
    "bpe": dict(model_type="bpe"),
    "bpe_bytes_user": dict(
        model_type="bpe", byte_fallback=True, user_defined_symbols=USER, control_symbols=CONTROL
    ),
    "bpe_no_split_ws": dict(model_type="bpe", split_by_whitespace=False, allow_whitespace_only_pieces=True),
    "bpe_suffix": dict(model_type="bpe", treat_whitespace_as_suffix=True, byte_fallback=True),
    "bpe_nfkc_cf_no_dummy": dict(model_type="bpe", normalization_rule_name="nfkc_cf", add_dummy_prefix=False),
    "bpe_identity_keep_ws": dict(
        model_type="bpe",
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        split_digits=True,
    ),
    "unigram": dict(model_type="unigram"),
    "unigram_bytes_user": dict(
        model_type="unigram", byte_fallback=True, user_defined_symbols=USER, control_symbols=CONTROL
    ),
    "unigram_suffix_keep_ws": dict(
        model_type="unigram", treat_whitespace_as_suffix=True, remove_extra_whitespaces=False
    ),
    "unigram_identity_no_dummy": dict(
        model_type="unigram", normalization_rule_name="identity", add_dummy_prefix=False
    ),
    "unigram_custom_rules": dict(model_type="unigram", normalization_rule_tsv="RULES"),
}

# A custom normalization rule set (TSV of code points): fold a few letters and fullwidth digits.
RULES = "41\t61\n42\t62\nFF10\t30\nFF11\t31\n3000\t20\n61 62 63\t78\n"


def _train(corpus: Path, out: Path, name: str, **kw) -> Path:
    if kw.get("normalization_rule_tsv") == "RULES":
        rules = out / f"{name}.tsv"
        rules.write_text(RULES, encoding="utf-8")
        kw["normalization_rule_tsv"] = str(rules)
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        input=str(corpus),
        model_writer=model,
        vocab_size=kw.pop("vocab_size", 3000),
        character_coverage=0.98,
        num_threads=2,
        minloglevel=2,
        hard_vocab_limit=False,
        **kw,
    )
    p = out / f"{name}.model"
    p.write_bytes(model.getvalue())
    return p


@pytest.fixture(scope="module")
def trained(small_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("trained")
    return {name: _train(small_corpus, out, name, **dict(cfg)) for name, cfg in CONFIGS.items()}


def _texts(peoples_daily: list[str], stdlib_docs: list[str]) -> list[str]:
    glued = [
        f"{a} <sep> {b[:100]} [MASK]中华人民共和国ab  🙂<cls>"
        for a, b in zip(peoples_daily[5000:5300], stdlib_docs)
    ]
    return TRICKY + peoples_daily[3000:4500] + stdlib_docs[1500:2500] + glued


@pytest.mark.parametrize("name", list(CONFIGS))
def test_trained_model(name, trained, peoples_daily, stdlib_docs):
    assert_parity(trained[name], _texts(peoples_daily, stdlib_docs))


@pytest.mark.parametrize("base", ["bpe", "bpe_bytes_user", "unigram"])
def test_unused_pieces(base, trained, peoples_daily, stdlib_docs):
    # Mark every 7th multi-character piece UNUSED: BPE still merges through them and then
    # splits them back (bpe_model.cc "resegment"); Unigram leaves them out of the lattice.
    m = pb.ModelProto()
    m.ParseFromString(trained[base].read_bytes())
    marked = 0
    for i, p in enumerate(m.pieces):
        if p.type == pb.ModelProto.SentencePiece.NORMAL and len(p.piece) > 1 and i % 7 == 0:
            p.type = pb.ModelProto.SentencePiece.UNUSED
            marked += 1
    assert marked > 50
    assert_parity(m.SerializeToString(), _texts(peoples_daily, stdlib_docs)[:1500])


@pytest.mark.parametrize("flag", ["escape_whitespaces", "add_dummy_prefix", "remove_extra_whitespaces"])
def test_normalizer_flags_flipped_in_the_model(flag, trained, stdlib_docs):
    # Flags a trainer cannot set (escape_whitespaces) are flipped in the proto directly.
    m = pb.ModelProto()
    m.ParseFromString(trained["bpe"].read_bytes())
    setattr(m.normalizer_spec, flag, not getattr(m.normalizer_spec, flag))
    assert_parity(m.SerializeToString(), TRICKY + stdlib_docs[:500])


def test_no_byte_fallback_fuses_unknown_runs(trained):
    # Characters the model lacks: consecutive unknowns become one <unk> without byte fallback.
    texts = ["𝔘𝔫𝔨𝔫𝔬𝔴𝔫 run", "a𝔘b𝔘𝔘c", "☃☃☃ ☃", "\U000e0001\U000e0002"]
    for name in ("bpe", "unigram"):
        assert_parity(trained[name], texts)


@pytest.mark.parametrize("base", ["bpe_bytes_user", "unigram_bytes_user", "bpe"])
def test_byte_fallback_model_without_unknown_piece(base, trained, peoples_daily, stdlib_docs):
    # sentencepiece loads a model with no UNKNOWN piece when byte_fallback is on (unknown text
    # becomes bytes; unk_id() and PieceToId of a non-piece answer -1); without byte fallback it
    # refuses it, and so does zhllama, with the reason.
    from zhllama import Tokenizer
    from zhllama._native import ModelError

    m = pb.ModelProto()
    m.ParseFromString(trained[base].read_bytes())
    assert m.pieces[0].type == pb.ModelProto.SentencePiece.UNKNOWN
    m.pieces[0].type = pb.ModelProto.SentencePiece.NORMAL  # "<unk>" is now ordinary text
    data = m.SerializeToString()
    if not m.trainer_spec.byte_fallback:
        with pytest.raises(RuntimeError):
            spm.SentencePieceProcessor(model_proto=data)
        with pytest.raises(ModelError, match="no UNKNOWN piece and byte_fallback is off"):
            Tokenizer.from_bytes(data)
        return
    sp = spm.SentencePieceProcessor(model_proto=data)
    tok = Tokenizer.from_bytes(data)
    texts = _texts(peoples_daily, stdlib_docs)[:1500] + ["<unk>", "a <unk>b", "𝔘𝔫𝔨 ☃☃ \U000e0001"]
    r = assert_parity(data, texts)
    assert r.texts == len(texts)
    assert sp.unk_id() == -1 and tok.unk_id is None and tok.model_unk_id is None
    assert tok.piece_to_id("no such piece") == sp.piece_to_id("no such piece") == -1
    assert tok.encode("<unk>") == sp.encode("<unk>")
    assert all(0 <= i < tok.vocab_size for i in tok.encode("𝔘𝔫𝔨 ☃☃ \U000e0001"))


def test_load_checks_match_sentencepiece(trained):
    # sentencepiece's model_interface.cc: Unigram keeps CONTROL/UNKNOWN/BYTE pieces in a map of
    # their own, so an ordinary piece may repeat their text (PieceToId answers the reserved one);
    # BPE has one map and refuses the repeat; a piece of 8,000 bytes or more is refused.
    from zhllama import Tokenizer
    from zhllama._native import ModelError

    def with_extra(name: str, *extra: str) -> bytes:
        m = pb.ModelProto()
        m.ParseFromString(trained[name].read_bytes())
        for s in extra:
            p = m.pieces.add()
            p.piece, p.score = s, -1.0
        return m.SerializeToString()

    data = with_extra("unigram_bytes_user", "<s>", "<0x41>", "<unk>", "</s>", "<cls>")
    sp = spm.SentencePieceProcessor(model_proto=data)
    tok = Tokenizer.from_bytes(data)
    texts = ["x<s>A<0x41><unk></s>", "<cls> <s></s>", "a <unk> b"] + TRICKY
    assert_parity(data, texts)
    n = tok.vocab_size
    for s in ("<s>", "<0x41>", "<unk>", "</s>", "<cls>"):
        assert tok.piece_to_id(s) == sp.piece_to_id(s) < n - 5
    assert (tok.bos_id, tok.eos_id, tok.unk_id) == (sp.bos_id(), sp.eos_id(), sp.unk_id())
    ids = [n - 1, n - 2, n - 3, 1, 2, 0]
    assert tok.decode(ids) == sp.decode(ids)

    for refused in (with_extra("bpe_bytes_user", "<s>"), with_extra("unigram", "x" * 8000)):
        with pytest.raises(RuntimeError):
            spm.SentencePieceProcessor(model_proto=refused)
        with pytest.raises(ModelError, match="defined twice|8000 bytes or more"):
            Tokenizer.from_bytes(refused)
    Tokenizer.from_bytes(with_extra("unigram", "x" * 7999))  # one byte under the limit loads
    spm.SentencePieceProcessor(model_proto=with_extra("unigram", "x" * 7999))

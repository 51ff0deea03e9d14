"""One error path: native error classes, the CLI's one-line reports and exit statuses, panics,
out-of-range ids, thread counts and Ctrl-C in batches."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

import pytest

from fixture_paths import llama_tokenizer, package_env
from zhllama import _native
from zhllama.cli import EXIT_ERROR, EXIT_INTERNAL, main


def test_native_errors_are_also_builtin_errors():
    for cls in (_native.ModelError, _native.MergeError, _native.CorpusError):
        assert issubclass(cls, _native.ZhllamaError) and issubclass(cls, ValueError), cls
    assert issubclass(_native.InternalError, _native.ZhllamaError) and issubclass(_native.InternalError, RuntimeError)
    assert not issubclass(_native.InternalError, ValueError)
    with pytest.raises(ValueError) as e:
        _native.Tokenizer.from_bytes(b"\x0a\xff\xff")
    assert type(e.value) is _native.ModelError and e.value.__class__.__module__ == "zhllama._native"


@pytest.fixture
def broken_model(tmp_path):
    p = tmp_path / "broken.model"
    p.write_bytes(llama_tokenizer().path.read_bytes()[:999])
    return p


def _one_line_error(capsys, verb: str, *names: str) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"zhllama {verb}: error: "), err
    assert "Traceback" not in err
    for name in names:
        assert name in err, err
    return err


@pytest.mark.parametrize("verb", ["tokenize-corpus", "stats", "merge-vocab", "resize"])
def test_broken_model_is_one_line_and_exit_2(verb, broken_model, tmp_path, capsys):
    # These verbs used to end in a traceback ending `_native.ModelError: not a SentencePiece model`.
    corpus = tmp_path / "c.txt"
    corpus.write_text("你好\n", encoding="utf-8")
    out = str(tmp_path / "out")
    args = {
        "tokenize-corpus": ["--tokenizer", str(broken_model), "--input", str(corpus), "--out", out],
        "stats": ["--tokenizer", str(broken_model), "--input", str(corpus), "--out", out],
        "merge-vocab": ["--base", str(llama_tokenizer().path), "--add", str(broken_model), "--out", out],
        "resize": ["--model", str(tmp_path), "--tokenizer", str(broken_model), "--out", out],
    }[verb]
    (tmp_path / "config.json").write_text("{}")  # resize checks --model first
    assert main([verb, *args]) == EXIT_ERROR
    _one_line_error(capsys, verb, str(broken_model), "not a SentencePiece model", "truncated")


def test_tokenizer_directory_error_names_the_model_file(broken_model, tmp_path):
    d = tmp_path / "tok"
    d.mkdir()
    (d / "tokenizer.model").write_bytes(broken_model.read_bytes())
    from zhllama import Tokenizer

    with pytest.raises(_native.ModelError, match=f"^{d / 'tokenizer.model'}: not a SentencePiece model"):
        Tokenizer.from_pretrained(d)


def test_os_errors_are_one_line_and_exit_2(tmp_path, capsys):
    # PermissionError and other OSErrors used to escape as tracebacks (only FileNotFoundError and
    # FileExistsError were caught).
    blocker = tmp_path / "file"
    blocker.write_text("x")
    llama = str(llama_tokenizer().path)
    code = main(["merge-vocab", "--base", llama, "--add", llama, "--out", str(blocker / "sub")])
    assert code == EXIT_ERROR
    _one_line_error(capsys, "merge-vocab", str(blocker))


@pytest.fixture
def probe_verb(monkeypatch):
    """A verb `probe` whose run() calls a function chosen by the test."""
    import importlib.machinery
    import types

    import zhllama.cli as cli_module

    mod = types.ModuleType("zhllama_errors_probe")
    mod.__spec__ = importlib.machinery.ModuleSpec(mod.__name__, None)
    mod.action = lambda: None
    mod.add_arguments = lambda p: None
    mod.run = lambda args: mod.action()
    monkeypatch.setitem(sys.modules, mod.__name__, mod)
    monkeypatch.setitem(cli_module.VERBS, "probe", (mod.__name__, "test verb"))
    return mod


def test_panic_is_an_internal_error():
    with pytest.raises(_native.InternalError,
                       match=r"internal error in zhllama's native code: boom at .*\.rs:\d+.*report"):
        _native._panic("boom")


def test_panic_in_a_verb_is_one_line_with_its_own_status(probe_verb, capsys):
    probe_verb.action = lambda: _native._panic("boom")
    assert main(["probe"]) == EXIT_INTERNAL != EXIT_ERROR
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("zhllama probe: internal error in zhllama's native code: boom"), err
    assert "please report" in err


@pytest.mark.parametrize("exc", [_native.CorpusError("a.jsonl:3: bad"), _native.MergeError("no"), FileExistsError("x"),
                                 ValueError("two\nlines")])
def test_zhllama_errors_exit_2_in_one_line(probe_verb, exc, capsys):
    def fail():
        raise exc

    probe_verb.action = fail
    assert main(["probe"]) == EXIT_ERROR
    assert capsys.readouterr().err.count("\n") == 1


def test_other_exceptions_keep_their_traceback(probe_verb):
    def bug():
        raise KeyError("a bug, not a user error")

    probe_verb.action = bug
    with pytest.raises(KeyError):
        main(["probe"])


def test_help_documents_exit_statuses(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert f"{EXIT_ERROR} an error" in out and f"{EXIT_INTERNAL} an internal error" in out


@pytest.fixture(scope="module")
def tok():
    return _native.Tokenizer.from_file(llama_tokenizer().path)


@pytest.mark.parametrize("bad", [32000, 10**6, -1])
def test_out_of_range_ids_raise_the_same_index_error(tok, bad):
    # piece_type used to raise ValueError without the vocabulary size; id_to_piece IndexError.
    messages = set()
    for method in (tok.piece_type, tok.id_to_piece, lambda i: tok.decode([i])):
        with pytest.raises(IndexError) as e:
            method(bad)
        messages.add(str(e.value))
    assert messages == {f"piece id {bad} is out of range: the model has 32000 pieces (ids 0..32000)"}


def test_piece_types_are_named(tok):
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(llama_tokenizer().path))
    assert [int(t) for t in _native.PieceType] == [1, 2, 3, 4, 5, 6]
    assert tok.piece_type(0) is _native.PieceType.UNKNOWN and sp.IsUnknown(0)
    assert tok.piece_type(1) is _native.PieceType.CONTROL and sp.IsControl(1)
    assert tok.piece_type(3) is _native.PieceType.BYTE and sp.IsByte(3)
    assert tok.piece_type(500) is _native.PieceType.NORMAL
    pieces = _native.SentencePieceModel.from_file(llama_tokenizer().path).pieces()
    assert [t for _, _, t in pieces[:4]] == [
        _native.PieceType.UNKNOWN, *[_native.PieceType.CONTROL] * 2, _native.PieceType.BYTE
    ]
    import pickle

    assert pickle.loads(pickle.dumps(_native.PieceType.BYTE)) is _native.PieceType.BYTE


@pytest.mark.parametrize("method", ["encode_batch", "encode_batch_flat"])
@pytest.mark.parametrize("bad", [0, -1, 1025])
def test_thread_count_is_validated(tok, method, bad):
    # 0 and negative counts used to mean "all cores", and any count built a pool that size.
    with pytest.raises(ValueError, match=f"num_threads must be between 1 and 1024, or None for all cores; got {bad}"):
        getattr(tok, method)(["a"], num_threads=bad)


@pytest.mark.parametrize("verb", ["tokenize-corpus", "stats"])
@pytest.mark.parametrize("bad", ["0", "-2", "1025"])
def test_corpus_thread_count_is_validated(verb, bad, tmp_path, capsys):
    # tokenize-corpus refused only < 1 and stats clamped to 1; both sized pools from any count.
    text = tmp_path / "a.txt"
    text.write_text("一行\n", encoding="utf-8")
    args = ["--tokenizer", str(llama_tokenizer().path), "--input", str(text), "--threads", bad]
    args += ["--out", str(tmp_path / "out")] if verb == "tokenize-corpus" else ["--out", str(tmp_path / "stats")]
    assert main([verb, *args]) == EXIT_ERROR
    assert f"--threads must be between 1 and 1024; got {bad}" in capsys.readouterr().err


@pytest.mark.parametrize("method", ["encode_batch", "encode_batch_flat"])
def test_thread_counts_give_the_same_ids(tok, method):
    texts = [f"第{i}行 line {i}" for i in range(300)]
    want = [tok.encode(t) for t in texts]
    for n in (None, 1, 2, 3, 5, 7):
        got = getattr(tok, method)(texts, num_threads=n)
        if method == "encode_batch_flat":
            ids, off = got
            got = [ids[off[i]:off[i + 1]].tolist() for i in range(len(texts))]
        assert got == want, n


CTRL_C_CHILD = textwrap.dedent("""
    import signal, sys, threading, time
    from zhllama import _native
    tok = _native.Tokenizer.from_file(sys.argv[1])
    encode = getattr(tok, sys.argv[2])
    encode(["warm up"])  # the first encode_batch_flat loads numpy's C API: Python code, after encoding
    text = "今天天气很好，我们去公园散步。The weather is nice today. " * 100
    base = sys.getrefcount(text)
    texts = [text] * 20000  # one str, encoded 20,000 times: seconds of work, little memory
    # While the native call runs it holds one more reference per item.
    running = lambda: sys.getrefcount(text) >= base + 2 * len(texts)

    def announce():
        # Runs only when the native call has released the GIL, i.e. is encoding.
        while not running():
            time.sleep(0.001)
        print("ready", flush=True)

    def on_sigint(signum, frame):
        print("during" if running() else "after", flush=True)
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_sigint)
    threading.Thread(target=announce, daemon=True).start()
    encode(texts, num_threads=int(sys.argv[3]))
    print("finished", flush=True)
""")



@pytest.mark.parametrize("method", ["encode_batch", "encode_batch_flat"])
@pytest.mark.parametrize("threads", [1, 2])
def test_ctrl_c_interrupts_a_batch(method, threads):
    # encode_batch used to run the whole batch before Python saw the signal.
    env = package_env()
    proc = subprocess.Popen([sys.executable, "-c", CTRL_C_CHILD, str(llama_tokenizer().path), method,
                             str(threads)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    assert proc.stdout.readline() == "ready\n"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=600)
    assert out.split() == ["during"], (out, err)
    assert "KeyboardInterrupt" in err and proc.returncode != 0

"""The CLI surface and train-spm."""

from __future__ import annotations

import subprocess
import sys

import pytest
import sentencepiece as spm

from zhllama.cli import available_verbs, build_parser
from zhllama.cli import main as cli
from zhllama.samples import peoples_daily


@pytest.mark.parametrize("verb", sorted(available_verbs()))
def test_every_flag_has_help(verb):
    parser = build_parser(only=verb)
    sub = next(a for a in parser._actions if a.dest == "verb").choices[verb]
    for action in sub._actions:
        if action.dest != "help":
            assert action.help and len(action.help) > 10, f"{verb} {action.option_strings} has no help"


@pytest.mark.parametrize("verb", ["train-spm", "merge-vocab", "tokenize-corpus", "stats"])
def test_tokenizer_and_corpus_verbs_do_not_import_torch(verb):
    # Importing torch costs seconds: it once made tokenize-corpus spend longer starting than
    # tokenizing 30 MB. These verbs (and the pip install without the training extra) must not.
    module = available_verbs()[verb][0]
    code = (f"import importlib, sys; importlib.import_module({module!r}); "
            "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", f"{module} imports {out.stdout.strip()}"


@pytest.mark.parametrize("verb", ["tokenize-corpus", "stats"])
def test_parsing_a_verb_imports_no_other_verbs_package(verb):
    # `build_parser` once looked up every verb's module to list the installed ones, which
    # imported zhllama.model (and its resize module) and the other verb packages: a third of
    # a small tokenize-corpus run's start-up.
    code = (f"import sys; from zhllama.cli import build_parser; build_parser(only={verb!r}); "
            "print(sorted(m for m in sys.modules if m.startswith(('zhllama.model', 'zhllama.train', "
            "'zhllama.infer', 'zhllama.demo'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", f"parsing {verb} imported {out.stdout.strip()}"
    parser = build_parser(only=verb)
    verbs = next(a for a in parser._actions if a.dest == "verb").choices
    assert set(verbs) == set(available_verbs())  # every verb is still a choice


def test_version_reads_lazily_and_prints(capsys):
    import zhllama

    v = zhllama.__version__  # read from the metadata on first use (not at import)
    assert isinstance(v, str) and v
    assert cli(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"zhllama {v}"
    with pytest.raises(AttributeError, match="no attribute"):
        zhllama.no_such_name  # noqa: B018


def test_console_help_runs():
    out = subprocess.run([sys.executable, "-m", "zhllama.cli", "--help"], capture_output=True, text=True, check=True)
    for verb in available_verbs():
        assert verb in out.stdout


def test_train_spm_and_merge(tmp_path):
    corpus = tmp_path / "zh.jsonl"
    import json

    with open(corpus, "w", encoding="utf-8") as f:
        for t in peoples_daily(3000):
            f.write(json.dumps({"text": t}, ensure_ascii=False) + "\n")
    prefix = tmp_path / "zh"
    assert cli(["train-spm", "--input", str(corpus), "--model-prefix", str(prefix), "--vocab-size", "5000",
                "--quiet"]) == 0
    sp = spm.SentencePieceProcessor(model_file=str(prefix) + ".model")
    assert sp.get_piece_size() == 5000
    from sentencepiece import sentencepiece_model_pb2 as pb

    m = pb.ModelProto()
    m.ParseFromString((tmp_path / "zh.model").read_bytes())
    assert m.trainer_spec.model_type == pb.TrainerSpec.BPE
    assert m.normalizer_spec.name == "identity"


def test_sample_documents_is_a_seeded_sample_in_input_order():
    from zhllama.tokenizer.train_spm import sample_documents

    docs = [f"doc {i}" for i in range(1000)]
    assert sample_documents(iter(docs[:10]), 50, seed=0) == docs[:10]
    a = sample_documents(iter(docs), 100, seed=0)
    assert len(a) == 100 and len(set(a)) == 100
    assert a == sorted(a, key=docs.index)  # input order
    assert a == sample_documents(iter(docs), 100, seed=0)
    assert a != sample_documents(iter(docs), 100, seed=1)
    assert max(docs.index(d) for d in a) > 500  # drawn from the whole input, not its head


def test_train_spm_sampling_repeats_across_processes(tmp_path):
    """The same inputs, seed and threads give the same model in another process (sentencepiece's own
    sampling did not: its seed does not carry across processes)."""
    corpus = tmp_path / "zh.txt"
    corpus.write_text("\n".join(peoples_daily(4000)) + "\n", encoding="utf-8")
    prefix = tmp_path / "out" / "zh"
    args = ["--input", str(corpus), "--model-prefix", str(prefix), "--vocab-size", "4000",
            "--input-sentence-size", "2000", "--threads", "1", "--seed", "7", "--quiet"]
    models = []
    for _ in range(2):
        subprocess.run([sys.executable, "-m", "zhllama.cli", "train-spm", *args], check=True, capture_output=True)
        models.append((tmp_path / "out" / "zh.model").read_bytes())
    assert models[0] == models[1]


def test_train_spm_bad_json_names_line(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "好"}\n{"text": \n', encoding="utf-8")
    assert cli(["train-spm", "--input", str(bad), "--model-prefix", str(tmp_path / "x"), "--vocab-size", "50"]) == 2
    assert "bad.jsonl:2" in capsys.readouterr().err


@pytest.fixture
def process_group(tmp_path):
    """A real one-rank gloo group, as torchrun's ranks hold one while a verb runs."""
    torch = pytest.importorskip("torch")
    dist = torch.distributed
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    yield dist
    if dist.is_initialized():
        dist.destroy_process_group()


@pytest.fixture
def fake_verb(monkeypatch):
    """A verb `probe` whose run() reports whether the group is still up and returns a chosen code or raises."""
    import importlib.machinery
    import types

    import zhllama.cli as cli_module

    mod = types.ModuleType("zhllama_probe_verb")
    mod.__spec__ = importlib.machinery.ModuleSpec(mod.__name__, None)
    mod.seen = []

    def add_arguments(p):
        p.add_argument("--outcome", default="0", help="exit code to return, or 'raise' to raise ValueError")

    def run(args):
        import torch.distributed as dist

        mod.seen.append(dist.is_initialized())
        if args.outcome == "raise":
            raise ValueError("probe failed")
        return int(args.outcome)

    mod.add_arguments, mod.run = add_arguments, run
    monkeypatch.setitem(sys.modules, mod.__name__, mod)
    monkeypatch.setitem(cli_module.VERBS, "probe", (mod.__name__, "test verb"))
    return mod


@pytest.mark.parametrize("outcome", ["0", "3", "raise"])
def test_verb_closes_process_group(process_group, fake_verb, outcome, monkeypatch):
    # Left to interpreter shutdown, gloo's threads can abort a rank after its job succeeded (CI saw
    # SIGABRT, "terminate called without an active exception"); the CLI closes the group itself.
    barriers = []
    real_barrier = process_group.barrier
    monkeypatch.setattr(process_group, "barrier", lambda *a, **k: (barriers.append(1), real_barrier(*a, **k))[1])
    code = cli(["probe", "--outcome", outcome])
    assert code == (2 if outcome == "raise" else int(outcome))
    assert fake_verb.seen == [True]  # the group was up while the verb ran
    assert not process_group.is_initialized()
    assert barriers == ([1] if outcome == "0" else [])  # peers are awaited only after a success

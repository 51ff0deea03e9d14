"""tokenize-corpus output safety: one writer per --out, merge never harms its parts, the Rust
job never outlives its Python caller, and --merge-manifests carries every manifest field."""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import time
from pathlib import Path

import pytest

from corpus_helpers import cli, cli_subprocess, dir_bytes, pd_docs
from fixture_paths import llama_tokenizer
from zhllama import _native
from zhllama.corpus import tokenize

LOCK = ".zhllama-lock"


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """An input that takes seconds with many small shards, its arguments, its whole output."""
    d = tmp_path_factory.mktemp("safety")
    (d / "c.txt").write_text("\n".join(pd_docs(6000) * 3) + "\n", encoding="utf-8")
    model = llama_tokenizer().path
    args = ["--tokenizer", str(model), "--input", str(d / "c.txt"), "--shard-size", "24KB", "--threads", "1", "--quiet"]
    assert cli(*args, "--out", str(d / "whole")) == 0
    return args, dir_bytes(d / "whole")


def corpus_threads() -> set[str]:
    """Ids of this process's threads named like the job's (its stages inherit the name, and
    so do pools that other libraries start from it, e.g. pyarrow's: compare with a before)."""
    tasks = Path("/proc/self/task")
    if not tasks.is_dir():
        pytest.skip("needs Linux /proc to see the job's threads")
    found = set()
    for t in tasks.iterdir():
        with contextlib.suppress(FileNotFoundError):  # a thread that just ended
            if (t / "comm").read_text().strip() == "zhllama-corpus":
                found.add(t.name)
    return found


def wait_for(path: Path, still_running) -> None:
    deadline = time.time() + 60
    while not path.exists() and still_running() and time.time() < deadline:
        time.sleep(0.005)
    assert path.exists(), f"{path} never appeared"


def test_second_writer_fails_at_once_naming_the_first_which_completes_identically(tmp_path, big, capsys):
    args, whole = big
    out = tmp_path / "o"
    first = cli_subprocess(*args, "--out", str(out), nice=19)  # still running when this test acts, under load
    wait_for(out / "progress.json", lambda: first.poll() is None)
    assert first.poll() is None, "the first run finished before the second started; enlarge the input"
    assert cli(*args, "--out", str(out)) == 2
    err = capsys.readouterr().err
    assert f"{out}: another run is writing this directory (pid {first.pid} on " in err
    assert "tokenize-corpus" in err and "--shard-index" in err
    assert first.wait(timeout=120) == 0, first.stderr.read()
    assert dir_bytes(out) == whole  # untouched by the second, and no lock file left behind


def test_lock_left_by_a_killed_run_does_not_block_a_rerun(tmp_path, big):
    args, whole = big
    out = tmp_path / "o"
    out.mkdir()
    (out / LOCK).write_text('{"pid": 999999, "host": "gone", "command": "killed"}\n')
    assert cli(*args, "--out", str(out)) == 0
    assert dir_bytes(out) == whole


def test_an_exception_in_python_cancels_and_joins_the_job(tmp_path, big, monkeypatch):
    args, whole = big
    out = tmp_path / "o"

    def failing_bar(job, quiet):
        wait_for(out / "progress.json", lambda: not job.wait(0))
        raise RuntimeError("boom")

    monkeypatch.setattr(tokenize, "_progress_bar", failing_bar)
    parser = argparse.ArgumentParser()
    tokenize.add_arguments(parser)
    before = corpus_threads()
    with pytest.raises(RuntimeError, match="boom"):
        tokenize.tokenize_corpus(parser.parse_args([*args, "--out", str(out)]))
    # The job stopped with the exception (the traceback still holds it, so this is the
    # `with` block's doing, not garbage collection): no thread left, lock released.
    assert corpus_threads() - before == set()
    assert not (out / LOCK).exists() and not (out / "manifest.json").exists()
    monkeypatch.undo()
    assert cli(*args, "--out", str(out)) == 0
    assert dir_bytes(out) == whole


def start_job(args: list[str], out: Path):
    """A native tokenize-corpus job over the ``big`` fixture's input, one thread, small shards."""
    return _native.tokenize_corpus_start(
        args[1], [args[3]], str(out), threads=1, text_field="text", append_eos=True, add_bos=False,
        shard_size=24 << 10, on_bad_line="fail", tokenizer_sha256="x", extra_json="{}",
    )


def test_dropping_the_job_cancels_and_joins_it(tmp_path, big):
    args, _ = big
    out = tmp_path / "o"
    before = corpus_threads()
    job = start_job(args, out)
    wait_for(out / "progress.json", lambda: True)  # (a closure over `job` would keep it alive)
    assert corpus_threads() - before
    del job
    gc.collect()
    assert corpus_threads() - before == set()
    assert not (out / LOCK).exists() and not (out / "manifest.json").exists()


def test_job_as_context_manager_cancels_on_exit(tmp_path, big):
    args, _ = big
    out = tmp_path / "o"
    before = corpus_threads()
    job = start_job(args, out)
    with pytest.raises(KeyError), job as j:
        assert j is job
        wait_for(out / "progress.json", lambda: not job.wait(0))
        raise KeyError("x")
    assert job.wait(0) and corpus_threads() - before == set()
    with pytest.raises(_native.CorpusError, match="cancelled"):
        job.result()


@pytest.fixture()
def parts(tmp_path):
    """Two finished worker outputs of one command."""
    docs = pd_docs(400)
    for k in range(4):
        (tmp_path / f"in-{k}.txt").write_text("\n".join(docs[k * 100 : (k + 1) * 100]) + "\n", encoding="utf-8")
    common = ["--tokenizer", str(llama_tokenizer().path), "--input", str(tmp_path / "in-*.txt"), "--quiet"]
    dirs = [tmp_path / f"part-{i}" for i in range(2)]
    for i, d in enumerate(dirs):
        assert cli(*common, "--out", str(d), "--num-shards", "2", "--shard-index", str(i), "--shard-size", "8KB") == 0
    return dirs


def snapshot(d: Path) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(d.iterdir())}


@pytest.mark.parametrize("spelling", ["same", "dotted"])
def test_merge_refuses_an_out_that_is_one_of_its_parts_before_touching_it(parts, capsys, spelling):
    before = [snapshot(p) for p in parts]
    out = str(parts[1]) if spelling == "same" else f"{parts[1]}/../{parts[1].name}/."
    assert cli("--merge-manifests", *map(str, parts), "--out", out) == 2
    err = capsys.readouterr().err
    assert "--out is also one of the parts" in err and str(parts[1]) in err
    assert [snapshot(p) for p in parts] == before


def test_merge_refuses_a_part_given_twice(parts, tmp_path, capsys):
    assert cli("--merge-manifests", str(parts[0]), str(parts[1]), str(parts[0]), "--out", str(tmp_path / "m")) == 2
    assert "given twice" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_merge_sums_every_counter_the_parts_hold(parts, tmp_path):
    assert cli("--merge-manifests", *map(str, parts), "--out", str(tmp_path / "m")) == 0
    ms = [json.loads((p / "manifest.json").read_text()) for p in parts]
    merged = json.loads((tmp_path / "m" / "manifest.json").read_text())
    assert set(merged["totals"]) == set(ms[0]["totals"])
    assert merged["totals"] == {k: sum(m["totals"][k] for m in ms) for k in ms[0]["totals"]}
    assert merged["sources"] == ms[0]["sources"] + ms[1]["sources"]
    # Every top-level field of a part survives the merge.
    assert set(merged) == set(ms[0])
    assert [s["from"] for s in merged["shards"]] == [str(p / s["name"]) for p, m in zip(parts, ms) for s in m["shards"]]


def test_merge_refuses_a_field_it_would_drop(parts, tmp_path, capsys):
    # A manifest written by a zhllama with one more counter: merging it must not lose it.
    for p in parts:
        m = json.loads((p / "manifest.json").read_text())
        m["totals"]["future_counter"] = 3
        (p / "manifest.json").write_text(json.dumps(m))
    assert cli("--merge-manifests", *map(str, parts), "--out", str(tmp_path / "m")) == 2
    err = capsys.readouterr().err
    assert "totals.future_counter" in err and "would be lost" in err
    assert not (tmp_path / "m").exists()


def test_merge_refuses_an_out_another_run_holds(parts, tmp_path, capsys):
    out = tmp_path / "m"
    out.mkdir()
    import fcntl

    with open(out / LOCK, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        f.write('{"pid": 4242, "host": "node7", "command": "zhllama tokenize-corpus --out m"}\n')
        f.flush()
        assert cli("--merge-manifests", *map(str, parts), "--out", str(out)) == 2
    err = capsys.readouterr().err
    assert "pid 4242 on node7: zhllama tokenize-corpus --out m" in err
    assert not (out / "manifest.json").exists()

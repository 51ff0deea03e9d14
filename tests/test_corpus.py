"""tokenize-corpus: parity with sentencepiece per document, formats, determinism, resume."""

from __future__ import annotations

import gzip
import json
import os
import signal
import time

import pytest
import sentencepiece as spm

from corpus_helpers import cli, cli_subprocess, dir_bytes, generated_docs, invalid_utf8_lines, pd_docs
from fixture_paths import fixture_or_substitute, llama_tokenizer
from zhllama.corpus.dataset import TokenizedCorpus
from zhllama.corpus.tokenize import assign_files
from zhllama.documents import parquet_batches
from zhllama.sizes import parse_size


@pytest.fixture(scope="module")
def llama():
    return llama_tokenizer().path


def all_docs(out):
    c = TokenizedCorpus(out)
    return [c.doc(i).tolist() for i in range(len(c))]


@pytest.mark.parametrize("model", ["llama_tokenizer.model", "chinese_sp.model"])
def test_every_document_matches_sentencepiece(tmp_path, model):
    path = fixture_or_substitute(model).path
    sp = spm.SentencePieceProcessor(model_file=str(path))
    lines = [d.encode() for d in pd_docs(2000) + generated_docs()] + invalid_utf8_lines()
    (tmp_path / "c.txt").write_bytes(b"\n".join(lines) + b"\n")
    assert cli("--tokenizer", str(path), "--input", str(tmp_path / "c.txt"), "--out", str(tmp_path / "o"),
               "--quiet") == 0
    # sentencepiece on the raw line bytes: its own rule for invalid UTF-8 is the reference.
    expected = [sp.encode(line) + [sp.eos_id()] for line in lines]
    assert all_docs(tmp_path / "o") == expected
    m = json.loads((tmp_path / "o" / "manifest.json").read_text())
    assert m["totals"]["invalid_utf8_docs"] == len(invalid_utf8_lines())
    assert m["num_docs"] == len(lines) and m["dtype"] == "uint16" and m["megatron_dtype_code"] == 8


def test_formats_dirs_globs_and_bos(tmp_path, llama):
    import pyarrow as pa
    import pyarrow.parquet as pq
    import zstandard

    sp = spm.SentencePieceProcessor(model_file=str(llama))
    docs = generated_docs(400, seed=1)
    parts = [docs[:100], docs[100:200], docs[200:300], docs[300:]]
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    jl = lambda ds: "".join(  # noqa: E731
        json.dumps({"id": i, "text": d}, ensure_ascii=False) + "\n" for i, d in enumerate(ds)
    ).encode()
    (src / "a.txt").write_text("\n".join(parts[0]) + "\n", encoding="utf-8")
    (src / "b.jsonl.gz").write_bytes(gzip.compress(jl(parts[1])))
    (src / "sub" / "c.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(jl(parts[2])))
    pq.write_table(pa.table({"text": parts[3], "n": list(range(100))}), src / "sub" / "d.parquet", row_group_size=30)
    (src / "notes.md").write_text("not an input")
    # A whitespace-only document ("\t" is one here) holds no text: skipped and counted, as by every reader.
    expected = [[sp.bos_id()] + sp.encode(d) + [sp.eos_id()] for d in docs if d.strip()]
    assert len(expected) < len(docs)
    for inputs in ([str(src)], [str(src / "*.*"), str(src / "sub" / "*")]):
        out = tmp_path / f"o{len(inputs)}"
        assert cli("--tokenizer", str(llama), "--input", *inputs, "--out", str(out), "--add-bos", "--quiet") == 0
        assert all_docs(out) == expected
    m = json.loads((tmp_path / "o1" / "manifest.json").read_text())
    assert [s["format"] for s in m["sources"]] == ["txt", "jsonl", "jsonl", "parquet"]
    assert ([s["docs"] + s["empty_docs"] for s in m["sources"]] == [100] * 4
            and m["totals"]["empty_docs"] == len(docs) - len(expected))
    # Resuming inside a Parquet file skips rows across row groups.
    rows = [r for batch in parquet_batches(str(src / "sub" / "d.parquet"), "text", 45) for r in batch]
    assert rows == [d.encode() for d in parts[3][45:]]


def test_sizes_and_worker_assignment(tmp_path):
    # One parser for every size flag: GB is 10^9 and GiB 2^30 (tokenize-corpus read GB as 2^30, plan as 10^9).
    assert parse_size("1GB", "--shard-size") == 10**9 and parse_size("1GiB", "--shard-size") == 1 << 30
    assert parse_size("24KB", "--shard-size") == 24_000 and parse_size("24KiB", "--shard-size") == 24 << 10
    assert parse_size("1000", "--shard-size") == 1000
    with pytest.raises(ValueError, match="--shard-size 'big': expected a positive size"):
        parse_size("big", "--shard-size")
    files = [str(tmp_path / f"f{i}") for i in range(7)]
    parts = [assign_files(files, 3, i) for i in range(3)]
    # datatrove's rule (files[i::K]): worker 0 takes f0, f3, f6, whatever the sizes.
    assert parts == [files[0::3], files[1::3], files[2::3]] and sorted(sum(parts, [])) == files
    assert assign_files(files[:2], 3, 2) == []
    with pytest.raises(ValueError, match="--shard-index"):
        assign_files(files, 3, 3)


def test_output_is_identical_for_any_thread_count(tmp_path, llama):
    (tmp_path / "c.txt").write_text("\n".join(pd_docs(1500)) + "\n", encoding="utf-8")
    outs = []
    for t in (1, 2):
        out = tmp_path / f"t{t}"
        assert cli("--tokenizer", str(llama), "--input", str(tmp_path / "c.txt"), "--out", str(out),
                   "--threads", str(t), "--shard-size", "16KB", "--quiet") == 0
        outs.append(dir_bytes(out))
    assert len(outs[0]) > 10 and outs[0] == outs[1]


@pytest.fixture(scope="module")
def resumable(tmp_path_factory, llama):
    """An input big enough to interrupt, its arguments, and its uninterrupted output."""
    d = tmp_path_factory.mktemp("resume")
    (d / "c.txt").write_text("\n".join(pd_docs(6000) * 3) + "\n", encoding="utf-8")
    args = ["--tokenizer", str(llama), "--input", str(d / "c.txt"), "--shard-size", "24KB", "--threads", "1", "--quiet"]
    assert cli(*args, "--out", str(d / "whole")) == 0
    return args, dir_bytes(d / "whole")


def interrupt(args, out, sig):
    """Start a run and send `sig` once it has completed a shard; returns the process. The run has the
    lowest priority, so that on a loaded machine it is still running when this process sees its
    first shard; it takes SIGINT as a terminal run does (corpus_helpers._child_setup)."""
    proc = cli_subprocess(*args, "--out", str(out), nice=19)
    deadline = time.time() + 60
    while not (out / "progress.json").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    proc.send_signal(sig)
    proc.wait(timeout=60)
    finished = (out / "manifest.json").exists()
    assert proc.returncode != 0 and not finished, "the run finished before it could be interrupted; enlarge the input"
    progress = json.loads((out / "progress.json").read_text())
    assert progress["shards"] and not (out / "manifest.json").exists()
    return proc


def test_kill_9_then_rerun_is_byte_identical_and_finished_run_not_redone(tmp_path, resumable):
    args, whole = resumable
    cut = tmp_path / "cut"
    assert interrupt(args, cut, signal.SIGKILL).returncode == -signal.SIGKILL
    assert cli(*args, "--out", str(cut)) == 0
    assert dir_bytes(cut) == whole
    mtimes = {p.name: p.stat().st_mtime_ns for p in cut.iterdir()}
    assert cli(*args, "--out", str(cut)) == 0
    assert {p.name: p.stat().st_mtime_ns for p in cut.iterdir()} == mtimes


def test_ctrl_c_stops_promptly_and_resumes(tmp_path, resumable):
    args, whole = resumable
    proc = interrupt(args, tmp_path / "cut", signal.SIGINT)
    assert proc.returncode == 130 and b"interrupted" in proc.stderr.read()
    assert cli(*args, "--out", str(tmp_path / "cut")) == 0
    assert dir_bytes(tmp_path / "cut") == whole


def test_bad_lines_fail_with_file_line_or_skip_and_count(tmp_path, llama, capsys):
    bad = tmp_path / "b.jsonl"
    bad.write_text('{"text": "好"}\n{"text": "x"\n{"content": "y"}\n{"text": "z"}\n', encoding="utf-8")
    assert cli("--tokenizer", str(llama), "--input", str(bad), "--out", str(tmp_path / "f"), "--quiet") == 2
    err = capsys.readouterr().err
    assert f"{bad}:2: malformed JSON" in err and "--on-bad-line skip" in err
    assert cli("--tokenizer", str(llama), "--input", str(bad), "--out", str(tmp_path / "s"),
               "--on-bad-line", "skip", "--quiet") == 0
    m = json.loads((tmp_path / "s" / "manifest.json").read_text())
    assert (m["num_docs"], m["totals"]["bad_lines"]) == (2, 2)
    assert m["bad_line_examples"][1].startswith(f"{bad}:3: no field \"text\"")


def test_no_eos_and_empty_lines_counted(tmp_path, llama):
    sp = spm.SentencePieceProcessor(model_file=str(llama))
    (tmp_path / "c.txt").write_text("一\n\n二\r\n\n", encoding="utf-8")
    assert cli("--tokenizer", str(llama), "--input", str(tmp_path / "c.txt"), "--out", str(tmp_path / "o"),
               "--no-append-eos", "--quiet") == 0
    assert all_docs(tmp_path / "o") == [sp.encode("一"), sp.encode("二")]
    m = json.loads((tmp_path / "o" / "manifest.json").read_text())
    assert (m["totals"]["lines"], m["totals"]["empty_docs"], m["options"]["append_eos"]) == (4, 2, False)


def test_truncated_gzip_is_an_error_naming_the_file(tmp_path, llama, capsys):
    data = gzip.compress("".join(json.dumps({"text": f"第{i}行"}) + "\n" for i in range(20000)).encode())
    gz = tmp_path / "t.jsonl.gz"
    gz.write_bytes(data[: len(data) // 2])
    assert cli("--tokenizer", str(llama), "--input", str(gz), "--out", str(tmp_path / "o"), "--quiet") == 2
    err = capsys.readouterr().err
    assert str(gz) in err and "truncated or corrupt gzip" in err


def test_worker_split_and_merge_equal_a_single_run(tmp_path, llama):
    docs = pd_docs(900)
    for k in range(5):
        (tmp_path / f"in-{k}.txt").write_text("\n".join(docs[k * 180 : (k + 1) * 180]) + "\n", encoding="utf-8")
    common = ["--tokenizer", str(llama), "--input", str(tmp_path / "in-*.txt"), "--quiet"]
    # The merged parts hold worker 0's files (in-0, in-3), then worker 1's (in-1, in-4), then in-2.
    in_merged_order = [str(tmp_path / f"in-{k}.txt") for k in (0, 3, 1, 4, 2)]
    assert cli("--tokenizer", str(llama), "--input", *in_merged_order, "--quiet",
               "--out", str(tmp_path / "single")) == 0
    for i in range(3):
        assert cli(*common, "--out", str(tmp_path / f"part-{i}"), "--num-shards", "3", "--shard-index", str(i)) == 0
    parts = [json.loads((tmp_path / f"part-{i}" / "manifest.json").read_text()) for i in range(3)]
    assert sum(len(p["sources"]) for p in parts) == 5
    assert cli("--merge-manifests", *[str(tmp_path / f"part-{i}") for i in range(3)],
               "--out", str(tmp_path / "merged")) == 0
    assert all_docs(tmp_path / "merged") == all_docs(tmp_path / "single")
    assert TokenizedCorpus(tmp_path / "merged").num_tokens == TokenizedCorpus(tmp_path / "single").num_tokens


def test_megatron_reads_the_shards(tmp_path, llama):
    indexed = pytest.importorskip("megatron.core.datasets.indexed_dataset",
                                  reason="pip install --no-deps megatron-core==0.16.1")
    (tmp_path / "c.txt").write_text("\n".join(pd_docs(300)) + "\n", encoding="utf-8")
    assert cli("--tokenizer", str(llama), "--input", str(tmp_path / "c.txt"), "--out", str(tmp_path / "o"),
               "--shard-size", "8KB", "--quiet") == 0
    ours = TokenizedCorpus(tmp_path / "o")
    theirs = []
    for s in ours.manifest["shards"]:
        ds = indexed.IndexedDataset(os.path.join(tmp_path, "o", s["name"]))
        assert len(ds) == s["docs"] and list(ds.document_indices) == list(range(len(ds) + 1))
        theirs.extend(ds[i].tolist() for i in range(len(ds)))
    assert theirs == all_docs(tmp_path / "o")

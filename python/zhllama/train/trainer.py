"""The Hugging Face ``Trainer`` set-up shared by ``pretrain`` and ``sft``.

One place decides precision, logging, evaluation, checkpointing, DeepSpeed and resuming, so
every stage behaves the same single-process, under ``torchrun`` and under ``deepspeed``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import sys
from pathlib import Path
from typing import Any, Callable, Optional

import torch

from zhllama.tokenizer import Tokenizer
from zhllama.tokenizer.directory import copy_tokenizer_files
from zhllama.train.args import ModelArguments, RunArguments

log = logging.getLogger("zhllama.train")


def setup_logging() -> None:
    rank = int(os.environ.get("RANK", "0"))
    logging.basicConfig(level=logging.INFO if rank == 0 else logging.WARNING,
                        format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")


TORCH_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def resolve_precision(precision: str) -> str:
    """``auto``: bf16 where the GPU supports it, else fp16 on GPU; fp32 on CPU.

    bf16 also runs on CPU (autocast); fp16 needs a GPU (its loss scaler is CUDA's).
    """
    if precision != "auto":
        if precision == "fp16" and not torch.cuda.is_available():
            raise ValueError("--precision fp16 needs a GPU; use bf16 or fp32 (or auto) on CPU")
        return precision
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "fp32"


def expose_interpreter_bin() -> None:
    """Put the running interpreter's ``bin/`` on PATH, where DeepSpeed looks for ``ninja``.

    DeepSpeed JIT-builds ops (e.g. ``deepspeed_shm_comm``) through torch's cpp_extension, which
    finds ``ninja`` on PATH only. A virtualenv's ``zhllama`` or ``python`` run without activating
    the virtualenv (cron, Slurm, systemd) has ninja installed beside the interpreter but not on
    PATH: "Ninja is required to load C++ extensions".
    """
    here = os.path.dirname(sys.executable)
    path = os.environ.get("PATH", "")
    if here and here not in path.split(os.pathsep):
        os.environ["PATH"] = here + (os.pathsep + path if path else "")
    if shutil.which("ninja") is None:
        log.warning("no `ninja` on PATH or in %s: DeepSpeed cannot JIT-build its ops; `pip install ninja` into "
                    "this environment (%s)", here, sys.executable)


def resume_checkpoint(run: RunArguments) -> Optional[str]:
    """The checkpoint to resume from, or None; refuses to silently restart over old checkpoints."""
    from transformers.trainer_utils import get_last_checkpoint

    out = Path(run.output_dir)
    last = get_last_checkpoint(str(out)) if out.is_dir() else None
    if run.resume is None:
        if last is not None and not run.overwrite_output_dir:
            raise ValueError(f"--output-dir {out} already holds {Path(last).name}; pass --resume to continue "
                             f"from it or --overwrite-output-dir to start over")
        return None
    if run.resume == "last":
        if last is None:
            raise FileNotFoundError(f"--resume: no checkpoint-* directory in --output-dir {out}")
        return last
    if not Path(run.resume).is_dir():
        raise FileNotFoundError(f"--resume {run.resume}: no such checkpoint directory")
    return run.resume


def training_arguments(run: RunArguments, default_lr: float, has_eval: bool, gradient_checkpointing: bool):
    from transformers import TrainingArguments

    if run.deepspeed is not None:
        expose_interpreter_bin()  # before TrainingArguments imports DeepSpeed
    precision = resolve_precision(run.precision)
    lr = run.learning_rate if run.learning_rate is not None else default_lr
    eval_steps = run.eval_steps or run.save_steps
    return TrainingArguments(
        output_dir=run.output_dir,
        learning_rate=lr,
        num_train_epochs=run.num_train_epochs,
        max_steps=run.max_steps,
        per_device_train_batch_size=run.per_device_train_batch_size,
        per_device_eval_batch_size=run.per_device_eval_batch_size,
        gradient_accumulation_steps=run.gradient_accumulation_steps,
        lr_scheduler_type=run.lr_scheduler_type,
        warmup_steps=run.warmup_ratio,  # a float in [0, 1) is a ratio of the total steps
        weight_decay=run.weight_decay,
        max_grad_norm=run.max_grad_norm,
        seed=run.seed,
        data_seed=run.seed,
        logging_steps=run.logging_steps,
        logging_first_step=True,
        save_strategy="steps",
        save_steps=run.save_steps,
        save_total_limit=run.save_total_limit,
        eval_strategy="steps" if has_eval else "no",
        eval_steps=eval_steps if has_eval else None,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        activation_checkpointing=gradient_checkpointing,
        activation_checkpointing_kwargs={"use_reentrant": False} if gradient_checkpointing else None,
        deepspeed=run.deepspeed,
        report_to=[] if run.report_to == "none" else [run.report_to],
        dataloader_num_workers=run.dataloader_num_workers,
        remove_unused_columns=False,
        # Without CUDA, accelerate only sets up a multi-process (gloo) group when told it runs on CPU.
        use_cpu=not torch.cuda.is_available(),
        dataloader_pin_memory=torch.cuda.is_available(),
        # CPU processes talk over gloo (DeepSpeed's CPU accelerator would pick ccl, rarely installed).
        ddp_backend="gloo" if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available() else None,
        ddp_find_unused_parameters=False,
        include_num_input_tokens_seen="all",  # the token count behind the throughput figures
    )


def measure_tokens_per_char(dataset, tokenizer, sample: int = 64) -> Optional[float]:
    """Tokens per character of the training data: up to ``sample`` evenly spaced items decoded back to text.

    Decoding the ids the model trains on works alike for a tokenized corpus (whose manifest
    records tokens but no characters), packed raw text and SFT records.
    """
    from zhllama.train.throughput import tokens_per_char

    n = len(dataset)
    if n == 0:
        return None
    picks = sorted({i * n // min(n, sample) for i in range(min(n, sample))})
    blocks = [[int(t) for t in dataset[i]["input_ids"]] for i in picks]
    return tokens_per_char(blocks, tokenizer.decode)


def fit(model, train_dataset, eval_dataset, collator: Callable, run: RunArguments, default_lr: float,
        model_args: ModelArguments, tokenizer: Tokenizer, seq_len: int,
        extra_metrics: Optional[dict[str, Any]] = None) -> dict:
    """Train ``model`` (its trainable tensors chosen), evaluate, save the final model/adapter and
    the tokenizer files to ``run.output_dir``; the one training loop of pretrain and sft.

    The trainable tensors become fp32 masters here, and their share is logged and saved.
    ``seq_len`` (the block or maximum sequence length) and the tokens per character measured on
    ``train_dataset`` feed the throughput figures: tokens/s, characters/s, MFU and peak memory in
    every log and in the final metrics.
    """
    from transformers import Trainer

    from zhllama.train.throughput import ThroughputCallback, device_peak_tflops, model_flops_per_token
    from zhllama.train.trainable import log_trainable, upcast_trainable

    upcast_trainable(model)
    extra_metrics = {"trainable_percent": log_trainable(model), **(extra_metrics or {})}
    tokens_per_char = measure_tokens_per_char(train_dataset, tokenizer)
    gradient_checkpointing = model_args.gradient_checkpointing
    resume = resume_checkpoint(run)
    args = training_arguments(run, default_lr, eval_dataset is not None, gradient_checkpointing)
    if gradient_checkpointing and hasattr(model, "enable_input_require_grads"):
        model.enable_input_require_grads()
    flops = model_flops_per_token(model, seq_len)
    throughput = ThroughputCallback(flops, run.peak_tflops or device_peak_tflops(resolve_precision(run.precision)),
                                    tokens_per_char)
    trainer = Trainer(model=model, args=args, train_dataset=train_dataset, eval_dataset=eval_dataset,
                      data_collator=collator)
    throughput.install(trainer)
    if resume:
        log.info("resuming from %s", resume)
    result = trainer.train(resume_from_checkpoint=resume)
    metrics = dict(result.metrics)
    metrics.update(throughput.final_metrics())
    metrics["flops_per_token"] = flops
    if tokens_per_char:
        metrics["tokens_per_char"] = tokens_per_char
    if not math.isfinite(result.training_loss):
        raise RuntimeError(f"training loss is {result.training_loss}; lower --learning-rate or use fp32")
    if eval_dataset is not None:
        ev = trainer.evaluate()
        metrics.update(ev)
        if "eval_loss" in ev:
            metrics["eval_perplexity"] = math.exp(min(ev["eval_loss"], 700.0))
    metrics.update(extra_metrics)
    trainer.save_model(run.output_dir)
    trainer.log_metrics("train", metrics)
    trainer.save_metrics("all", metrics)
    trainer.save_state()
    if trainer.is_world_process_zero():
        copy_tokenizer_files(model_args.tokenizer_path, run.output_dir)
        (Path(run.output_dir) / "zhllama_metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics

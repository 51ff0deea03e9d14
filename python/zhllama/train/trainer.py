"""The Hugging Face ``Trainer`` set-up shared by ``pretrain`` and ``sft``.

One place decides precision, logging, evaluation, checkpointing, DeepSpeed and resuming, so
every stage behaves the same single-process, under ``torchrun`` and under ``deepspeed``.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Any, Callable, Optional

import torch

from zhllama.tokenizer.directory import copy_tokenizer_files
from zhllama.train.args import RunArguments

log = logging.getLogger("zhllama.train")


def setup_logging() -> None:
    rank = int(os.environ.get("RANK", "0"))
    logging.basicConfig(level=logging.INFO if rank == 0 else logging.WARNING,
                        format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")


def resolve_precision(precision: str) -> str:
    """``auto``: bf16 where the GPU supports it, else fp16 on GPU; fp32 on CPU."""
    if precision != "auto":
        if precision in ("bf16", "fp16") and not torch.cuda.is_available():
            raise ValueError(f"--precision {precision} needs a GPU; use fp32 (or auto) on CPU")
        return precision
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "fp32"


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
    )


def fit(model, train_dataset, eval_dataset, collator: Callable, run: RunArguments, default_lr: float,
        tokenizer_source: str, gradient_checkpointing: bool = False, extra_metrics: Optional[dict[str, Any]] = None) -> dict:
    """Train, evaluate, save the final model/adapter and tokenizer to ``run.output_dir``."""
    from transformers import Trainer

    resume = resume_checkpoint(run)
    args = training_arguments(run, default_lr, eval_dataset is not None, gradient_checkpointing)
    if gradient_checkpointing and hasattr(model, "enable_input_require_grads"):
        model.enable_input_require_grads()
    trainer = Trainer(model=model, args=args, train_dataset=train_dataset, eval_dataset=eval_dataset,
                      data_collator=collator)
    if resume:
        log.info("resuming from %s", resume)
    result = trainer.train(resume_from_checkpoint=resume)
    metrics = dict(result.metrics)
    if not math.isfinite(result.training_loss):
        raise RuntimeError(f"training loss is {result.training_loss}; lower --learning-rate or use fp32")
    if eval_dataset is not None:
        ev = trainer.evaluate()
        metrics.update(ev)
        if "eval_loss" in ev:
            metrics["eval_perplexity"] = math.exp(min(ev["eval_loss"], 700.0))
    metrics.update(extra_metrics or {})
    trainer.save_model(run.output_dir)
    trainer.log_metrics("train", metrics)
    trainer.save_metrics("all", metrics)
    trainer.save_state()
    if trainer.is_world_process_zero():
        copy_tokenizer_files(tokenizer_source, run.output_dir)
        (Path(run.output_dir) / "zhllama_metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics

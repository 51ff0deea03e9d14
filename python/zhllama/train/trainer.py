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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import torch

from zhllama.model.parameters import param_numel
from zhllama.tokenizer import Tokenizer
from zhllama.tokenizer.directory import copy_tokenizer_files
from zhllama.train import checkpoints, fingerprint
from zhllama.train.args import ModelArguments, RunArguments

log = logging.getLogger("zhllama.train")


def setup_logging() -> None:
    """Log INFO on rank 0, WARNING elsewhere; silence what a user could not act on.

    - peft probes ``model.is_gradient_checkpointing``, a property transformers 5 deprecates with a
      FutureWarning on every stage-2/SFT run: peft's call, nothing the user can change.
    - DeepSpeed, imported on a machine without a GPU, warns "Setting accelerator to CPU" unless
      ``DS_ACCELERATOR`` names one: on a CPU-only machine CPU is the only choice, so name it.
    """
    import warnings

    warnings.filterwarnings("ignore", message=r"`is_gradient_checkpointing` is deprecated", category=FutureWarning)
    if "DS_ACCELERATOR" not in os.environ and "deepspeed" not in sys.modules and not torch.cuda.is_available():
        os.environ["DS_ACCELERATOR"] = "cpu"
    rank = int(os.environ.get("RANK", "0"))
    logging.basicConfig(level=logging.INFO if rank == 0 else logging.WARNING,
                        format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")


def resolve_precision(precision: str) -> str:
    """``auto``: bf16 on a GPU of compute capability >= 8.0 (Ampere and later), fp16 with loss
    scaling on an older GPU, fp32 on CPU.

    Not ``torch.cuda.is_bf16_supported()``: it answers yes on T4/V100 too (its default counts
    emulation), where bf16 runs emulated, slowly. bf16 also runs on CPU (autocast); fp16 needs a
    GPU (its loss scaler is CUDA's).
    """
    if precision != "auto":
        if precision == "fp16" and not torch.cuda.is_available():
            raise ValueError("--precision fp16 needs a GPU; use bf16 or fp32 (or auto) on CPU")
        return precision
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.get_device_capability() >= (8, 0) else "fp16"
    return "fp32"


def cpu_has_native_bf16() -> bool:
    """True on a CPU with bf16 instructions (AVX512-BF16, AMX-BF16), where torch's bf16 matmuls
    run several times faster than fp32 ones (4.5x for the LM head of SmolLM2 on one core of an EPYC
    with avx512_bf16); elsewhere bf16 is emulated and slower. Linux only (``/proc/cpuinfo``)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


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


@dataclass
class Start:
    """A run about to train: its TrainingArguments, the checkpoint it resumes (or None), its fingerprint."""

    args: Any
    resume: Optional[str]
    fingerprint: dict[str, Any]
    base: dict[str, Any]  # zhllama.model.identity.base_record: saved beside the adapter and in each checkpoint


def start_run(verb: str, groups: tuple[Any, ...], derived: dict[str, Any], run: RunArguments,
              model_args: ModelArguments, default_lr: float, has_eval: bool) -> Optional[Start]:
    """Check the output directory, the resume target and the fingerprint, before any tokenizing or
    model loading; None when the run to resume has already finished (said in the log).

    Call it holding ``zhllama.train.run_lock.lock_output_dir(run.output_dir)``. It makes the
    TrainingArguments first: that starts the process group (torchrun) and, under
    ``--deepspeed``, registers the DeepSpeed config, so ``from_pretrained`` afterwards builds a
    ZeRO-3 model partitioned across the ranks (``deepspeed.zero.Init``) instead of whole on each.
    Rank 0 checks and cleans the directory first; the other ranks then read what it left.
    """
    from zhllama.model.identity import base_record, tokenizer_sha256, weights_digest

    args = distributed_training_arguments(run, default_lr, has_eval, model_args.gradient_checkpointing)
    derived = {**derived, "tokenizer_sha256": tokenizer_sha256(model_args.tokenizer_path),
               "base_model_digest": weights_digest(model_args.model),
               "deepspeed_zero_stage": fingerprint.zero_stage(run.deepspeed)}
    fp = fingerprint.build(verb, groups, derived)
    with args.main_process_first(desc="checking --output-dir", local=False):
        resume = _check_output_dir(run, fp, writer=args.process_index == 0)
    if resume is _FINISHED:
        return None
    base = base_record(model_args.model, model_args.tokenizer_path)
    # Seeded before the model is built: LoRA's A matrices are drawn at apply_lora, before the
    # Trainer seeds, and a run must be a function of its --seed (two runs alike, a resumed one alike).
    from transformers import set_seed

    set_seed(run.seed)
    return Start(args=args, resume=resume, fingerprint=fp, base=base)


_FINISHED = "finished"


def _check_output_dir(run: RunArguments, fp: dict[str, Any], writer: bool) -> Optional[str]:
    out = Path(run.output_dir)
    found = checkpoints.all_checkpoints(out)
    finished = fingerprint.finished_at(out)
    if run.resume is None:
        if (found or finished) and not run.overwrite_output_dir:
            what = found[-1][1].name if found else f"a finished run ({fingerprint.FINGERPRINT})"
            raise ValueError(f"--output-dir {out} already holds {what}; pass --resume to continue from it or "
                             f"--overwrite-output-dir to delete its checkpoints and start over")
        if writer:
            if found:
                log.warning("--overwrite-output-dir: deleting %d checkpoints of the previous run in %s", len(found),
                            out)
            for _, path in found:
                shutil.rmtree(path)
            for name in (fingerprint.FINGERPRINT, "zhllama_metrics.json"):
                (out / name).unlink(missing_ok=True)
            shutil.rmtree(out / ".zhllama-cache", ignore_errors=True)  # text_data.CACHE_DIR
            fingerprint.write(out, fp)
        return None
    if run.resume == "last":
        complete = checkpoints.complete_checkpoints(out)
        if not complete:
            partial = f" ({len(found)} incomplete: saves that did not finish)" if found else ""
            raise FileNotFoundError(f"--resume: no complete checkpoint-* directory in --output-dir {out}{partial}")
        step, target = complete[-1]
    else:
        target = Path(run.resume)
        if not target.is_dir():
            raise FileNotFoundError(f"--resume {run.resume}: no such checkpoint directory")
        if not checkpoints.is_complete(target):
            raise ValueError(f"--resume {run.resume}: an incomplete checkpoint (no {checkpoints.MARKER}: its save did "
                             f"not finish); pass an earlier one, or --resume last for the newest complete one")
    fingerprint.check_resume(out, fp)
    settings = fp["settings"]
    if finished and finished.get("max_steps") == settings["max_steps"] and (
            settings["max_steps"] > 0 or finished.get("num_train_epochs") == settings["num_train_epochs"]):
        log.warning("%s: this run already finished at step %s; nothing to do (raise --max-steps or "
                    "--num-train-epochs with --reschedule to train on)", out, finished.get("global_step"))
        print(f"zhllama: {out} already finished at step {finished.get('global_step')}: nothing to do "
              f"(raise --max-steps or --num-train-epochs with --reschedule to train on)", file=sys.stderr)
        return _FINISHED
    if writer:
        checkpoints.remove_incomplete(out)
        fingerprint.write(out, fp)  # the allowed changes are now this run's settings; not finished any more
    return str(target)


def distributed_training_arguments(run: RunArguments, default_lr: float, has_eval: bool,
                                   gradient_checkpointing: bool):
    """:func:`training_arguments`, with every process set up as ``from_pretrained`` then needs.

    Making them starts the process group (torchrun) and registers the DeepSpeed config, so a
    ZeRO-3 model is built inside ``deepspeed.zero.Init``; DeepSpeed's communicator is started on
    that group here, because zero.Init reads the world size from it.
    """
    args = training_arguments(run, default_lr, has_eval, gradient_checkpointing)
    if run.deepspeed is not None:
        import deepspeed

        deepspeed.init_distributed(dist_backend="nccl" if torch.cuda.is_available() else "gloo")
    return args


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
        per_device_eval_batch_size=run.per_device_eval_batch_size or run.per_device_train_batch_size,
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
        save_total_limit=None,  # rotated by checkpoints.callback, after a save is complete
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


def _trainer_class():
    """transformers' Trainer whose optimizer gives the embedding tensors their own peak learning
    rate (``--embedding-learning-rate``): its AdamW groups as transformers builds them, with those
    tensors moved into one more group; the scheduler, made after it, scales every group alike."""
    from transformers import Trainer

    class ZhllamaTrainer(Trainer):
        embedding_lr: Optional[tuple[float, list]] = None

        def create_optimizer(self, *args: Any, **kwargs: Any):
            fresh = self.optimizer is None
            optimizer = super().create_optimizer(*args, **kwargs)
            if not fresh or self.embedding_lr is None:
                return optimizer
            lr, params = self.embedding_lr
            ids = {id(p) for p in params}
            moved, decay = [], 0.0
            for group in optimizer.param_groups:
                if any(id(p) in ids for p in group["params"]):
                    moved += [p for p in group["params"] if id(p) in ids]
                    decay = group.get("weight_decay", 0.0)
                    group["params"] = [p for p in group["params"] if id(p) not in ids]
            optimizer.param_groups[:] = [g for g in optimizer.param_groups if g["params"]]
            if moved:
                optimizer.add_param_group({"params": moved, "lr": lr, "weight_decay": decay})
                log.info("embedding learning rate %g for %d tensor(s) (%s values); the rest at %g", lr, len(moved),
                         f"{sum(param_numel(p) for p in moved):,}", self.args.learning_rate)
            return optimizer

    return ZhllamaTrainer


def fit(start: Start, model, train_dataset, eval_dataset, collator: Callable, run: RunArguments,
        model_args: ModelArguments, tokenizer: Tokenizer, seq_len: int,
        extra_metrics: Optional[dict[str, Any]] = None, callbacks: Sequence[Any] = ()) -> dict:
    """Train ``model`` (its trainable tensors chosen), evaluate, save the final model/adapter and
    the tokenizer files to ``run.output_dir``; the one training loop of pretrain and sft.

    ``start`` is :func:`start_run`'s answer. The trainable tensors become fp32 masters here, and
    their share is logged and saved. ``seq_len`` (the block or maximum sequence length) and the
    tokens per character measured on ``train_dataset`` feed the throughput figures: tokens/s,
    characters/s, MFU and peak memory in every log and in the final metrics. ``callbacks`` join the
    Trainer's (``transformers.TrainerCallback`` instances).
    """
    from transformers.integrations import is_deepspeed_zero3_enabled
    from transformers.trainer_utils import IntervalStrategy

    from zhllama.model.identity import write_base_record
    from zhllama.train.throughput import ThroughputCallback, device_peak_tflops, model_flops_per_token
    from zhllama.train.trainable import embedding_parameters, log_trainable, upcast_trainable

    if is_deepspeed_zero3_enabled():
        # The weights are partitions built by zero.Init (a stub in each parameter), in the training
        # dtype; DeepSpeed keeps fp32 masters of what trains itself. Parameters made after the load
        # (LoRA's, fp32) join them in that dtype: its optimizer needs one dtype per group.
        from zhllama.model.loading import torch_dtype

        dtype = torch_dtype(resolve_precision(run.precision))
        for p in model.parameters():
            if not hasattr(p, "ds_id") and p.dtype != dtype:
                p.data = p.data.to(dtype)
    else:
        upcast_trainable(model)
    extra_metrics = {"trainable_percent": log_trainable(model), **(extra_metrics or {})}
    tokens_per_char = measure_tokens_per_char(train_dataset, tokenizer)
    args = start.args
    if eval_dataset is None:
        args.eval_strategy = IntervalStrategy.NO  # too few blocks to hold any out
    if model_args.gradient_checkpointing and hasattr(model, "enable_input_require_grads"):
        model.enable_input_require_grads()
    flops = model_flops_per_token(model, seq_len)
    throughput = ThroughputCallback(flops, run.peak_tflops or device_peak_tflops(resolve_precision(run.precision)),
                                    tokens_per_char)
    trainer = _trainer_class()(model=model, args=args, train_dataset=train_dataset, eval_dataset=eval_dataset,
                               data_collator=collator,
                               callbacks=[checkpoints.callback(run.output_dir, run.save_total_limit, start.base),
                                          *callbacks])
    if run.embedding_learning_rate is not None:
        trainer.embedding_lr = (run.embedding_learning_rate, embedding_parameters(model))
    throughput.install(trainer)
    if start.resume:
        log.info("resuming from %s", start.resume)
    result = trainer.train(resume_from_checkpoint=start.resume)
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
        write_base_record(run.output_dir, start.base)
        (Path(run.output_dir) / "zhllama_metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        fingerprint.mark_finished(run.output_dir, trainer.state.global_step, start.fingerprint["settings"])
    return metrics

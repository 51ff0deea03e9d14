"""What trains in each stage, and how much of the model that is.

Stage 1: only ``embed_tokens`` (optionally only its added rows). Stage 2 and SFT: LoRA adapters
on the attention (and, for SFT, MLP) projections plus full copies of ``embed_tokens`` and
``lm_head`` through peft's ``modules_to_save``, so the saved adapter holds the new vocabulary.
"""

from __future__ import annotations

import logging

import torch

from zhllama.train.args import LoraArguments

log = logging.getLogger("zhllama.train")


def train_embeddings_only(model, new_rows_only: bool = False, base_rows: int | None = None) -> None:
    """Freeze everything but the input embeddings (tied output embeddings share them)."""
    for p in model.parameters():
        p.requires_grad_(False)
    weight = model.get_input_embeddings().weight
    weight.requires_grad_(True)
    if new_rows_only:
        rows = weight.shape[0]
        if base_rows is None or not 0 < base_rows < rows:
            raise ValueError(f"--new-rows-only needs the number of original rows (--base-vocab-size) between 1 and "
                             f"{rows - 1}, got {base_rows}; resize the model with `zhllama resize` (which records "
                             f"it in resize.json) or pass --base-vocab-size")
        mask = torch.ones(rows, 1, dtype=weight.dtype, device=weight.device)
        mask[:base_rows] = 0
        # A tensor hook masks the gradient before it is accumulated (and before DeepSpeed's reduce
        # hooks see it): Adam's moments of the original rows stay zero, so their update is exactly 0.
        weight.register_hook(lambda g: g * mask.to(g.device, g.dtype))


def apply_lora(model, lora: LoraArguments):
    """Wrap ``model`` in a peft LoRA model per ``lora``; returns the PeftModel."""
    from peft import LoraConfig, TaskType, get_peft_model

    present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    missing = [m for m in lora.target_modules + lora.saved_modules if m not in present]
    if missing:
        raise ValueError(f"the model has no module named {', '.join(missing)} (--lora-target / --modules-to-save)")
    # peft annotates lora_alpha as int but only ever scales by lora_alpha / r: a float alpha works.
    config = LoraConfig(task_type=TaskType.CAUSAL_LM, r=lora.lora_rank,
                        lora_alpha=lora.lora_alpha,  # type: ignore[arg-type]
                        lora_dropout=lora.lora_dropout, target_modules=lora.target_modules,
                        modules_to_save=lora.saved_modules or None, inference_mode=False)
    return get_peft_model(model, config)


def upcast_trainable(model) -> None:
    """Make every trainable tensor an fp32 master; frozen ones keep the dtype they were loaded in.

    Frozen weights sit in the training precision (bf16/fp16: half the bytes, no cast per matmul
    under autocast); what the optimizer updates stays fp32, so small updates are not rounded away
    (and fp16's loss scaler, which refuses fp16 gradients, works). Under DeepSpeed, its engine casts
    the module to the 16-bit dtype and keeps fp32 masters of the trainable tensors in the optimizer.
    """
    for p in model.parameters():
        if p.requires_grad and p.dtype != torch.float32:
            p.data = p.data.float()


def count_parameters(model) -> tuple[int, int]:
    """(trainable, total) — total is the model's own parameters plus LoRA's.

    peft's ``modules_to_save`` keeps the frozen original beside its trainable copy; the copy
    replaces the original, so the original is not counted a second time (this is how the
    report's 6.06 % / 6.22 % are defined).
    """
    trainable = total = 0
    seen: set[int] = set()
    for name, p in model.named_parameters():
        if id(p) in seen or ".original_module." in name:
            continue
        seen.add(id(p))
        total += p.numel()
        if p.requires_grad:
            trainable += p.numel()
    return trainable, total


def log_trainable(model) -> float:
    trainable, total = count_parameters(model)
    share = 100.0 * trainable / total
    log.info("trainable parameters: %s of %s (%.2f %%)", f"{trainable:,}", f"{total:,}", share)
    return share

"""What trains in each stage, and how much of the model that is.

Stage 1: ``embed_tokens`` (optionally only its added rows) and an untied ``lm_head``'s added rows.
Stage 2 and SFT: LoRA adapters
on the attention (and, for SFT, MLP) projections plus full copies of ``embed_tokens`` and
``lm_head`` through peft's ``modules_to_save``, so the saved adapter holds the new vocabulary.

Tied embeddings (SmolLM2, LLaMA-3.2-1B/3B, Qwen2.5-0.5B: ``lm_head`` *is* ``embed_tokens``): only
the input embedding's copy is in ``modules_to_save`` (:func:`tied_saved_modules`) and the output
layer is pointed at that very tensor (:mod:`zhllama.model.tying`, which says why), so one matrix
trains and the adapter saves it once.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from zhllama.model.parameters import param_numel, param_shape
from zhllama.model.tying import embeddings_tied, tie_output_to_saved_input
from zhllama.train.args import LoraArguments

log = logging.getLogger("zhllama.train")


def train_embeddings_only(model, new_rows_only: bool = False, base_rows: int | None = None) -> None:
    """Stage 1: freeze everything but the embeddings.

    The input embedding trains (only the rows ``resize`` added with ``new_rows_only``). An untied
    output layer trains its added rows, ``base_rows`` and up: they start where ``resize`` put them
    (one shared mean with ``--init mean``), and frozen there no added token could ever be predicted
    better, while the data is read through the input rows that do move. Its original rows are the
    base's predictions of the base's tokens and stay bit-identical (with ``--weight-decay 0``, the
    default). A tied output layer is the input embedding itself. With ``base_rows`` unknown (None)
    the untied output layer stays frozen.
    """
    for p in model.parameters():
        p.requires_grad_(False)
    weight = model.get_input_embeddings().weight
    weight.requires_grad_(True)
    if new_rows_only:
        _mask_original_rows(weight, base_rows)
    head = model.get_output_embeddings()
    if head is None or head.weight is weight or base_rows is None or base_rows == param_shape(head.weight)[0]:
        return
    head.weight.requires_grad_(True)
    _mask_original_rows(head.weight, base_rows)


def _check_base_rows(weight, base_rows: int | None, what: str) -> int:
    """``base_rows``, the number of original rows of ``weight``, once it is known and leaves added rows."""
    rows = param_shape(weight)[0]
    if base_rows is None or not 0 < base_rows < rows:
        raise ValueError(f"{what} needs the number of original rows (--base-vocab-size) between 1 and {rows - 1}, "
                         f"got {base_rows}; resize the model with `zhllama resize` (which records it in resize.json) "
                         f"or pass --base-vocab-size")
    return base_rows


def _mask_original_rows(weight, base_rows: int | None) -> None:
    rows = param_shape(weight)[0]
    base_rows = _check_base_rows(weight, base_rows, "training only the added rows (--new-rows-only; stage 1's lm_head)")
    mask = torch.ones(rows, 1, dtype=weight.dtype, device=weight.device)
    mask[:base_rows] = 0
    # A tensor hook masks the gradient before it is accumulated (and before DeepSpeed's reduce
    # hooks see it): Adam's moments of the original rows stay zero, so their update is exactly 0.
    weight.register_hook(lambda g: g * mask.to(g.device, g.dtype))
    weight.zhllama_frozen_rows = base_rows  # count_parameters counts the rows that can move


def embedding_parameters(model) -> list:
    """The trainable tensors of the input and output embeddings (stage 1's embedding; the
    ``modules_to_save`` copies under peft), each once: what ``--embedding-learning-rate`` applies to."""
    found, seen = [], set()
    for module in (model.get_input_embeddings(), model.get_output_embeddings()):
        for p in module.parameters() if module is not None else ():
            if p.requires_grad and id(p) not in seen:
                seen.add(id(p))
                found.append(p)
    return found


def train_new_rows_only(peft_model, base_rows: int | None) -> None:
    """Stage 2 with ``--new-rows-only``: the ``modules_to_save`` copies of the embedding (and of an
    untied output layer) update only the rows ``resize`` added; LoRA trains as usual."""
    params = embedding_parameters(peft_model)
    if not params:
        raise ValueError("--new-rows-only: no embedding trains in this run (--modules-to-save names neither "
                         "embed_tokens nor lm_head)")
    for p in params:
        _mask_original_rows(p, base_rows)


def train_batch_rows_only(model, until_step: int = 0, all_rows: bool = True, lazy_base: bool = False,
                          base_rows: int | None = None):
    """``--batch-rows-only`` (``all_rows``): the trainable embedding tensors (input, and an untied
    output layer) keep, at each micro-batch, only the gradient rows of the tokens that batch contains
    (its targets are its inputs shifted). Every other row gets a gradient of exactly 0 and, with
    Adam's moments at 0, does not move until its token is read, instead of drifting with the
    softmax's small push-down, which Adam scales up to a full step. (That push-down also lowers
    unread tokens' probability, which longer runs need: benches/EFFICACY.md, round 7.)

    ``until_step`` > 0 (``--batch-rows-only-steps``): only optimizer steps before it are masked so.
    ``lazy_base`` (``--lazy-base-rows``): outside those steps, or without ``all_rows``, the
    ``base_rows`` original rows still move only when read, and the added rows train at every step.
    Returns the ``TrainerCallback`` that tells the hooks the Trainer's step (restored from the
    checkpoint on a resume); pass it to :func:`zhllama.train.trainer.fit`.

    The rows kept are those of the input embedding's last forward with gradients enabled before
    the backward: a pass under ``torch.no_grad`` (an evaluation, a frozen teacher's pass as in
    ``benches/stage2_kl_probe.py``) does not replace the batch's own rows."""
    from transformers import TrainerCallback

    flag = "--batch-rows-only" if all_rows else "--lazy-base-rows"
    params = embedding_parameters(model)
    if not params:
        raise ValueError(f"{flag}: no embedding trains in this run (stage 2: --modules-to-save names "
                         "neither embed_tokens nor lm_head)")
    lazy_base_rows = None
    for p in params if lazy_base else ():
        lazy_base_rows = _check_base_rows(p, base_rows, "--lazy-base-rows")
    rows: dict[str, Any] = {"step": 0}

    def remember(_module, args, kwargs):
        if not torch.is_grad_enabled():  # an evaluation or a teacher's pass: it has no gradient to mask
            return
        ids = args[0] if args else kwargs.get("input", kwargs.get("input_ids"))
        rows["ids"] = ids.detach().reshape(-1).unique()

    model.get_input_embeddings().register_forward_pre_hook(remember, with_kwargs=True)

    def keep(grad):
        ids = rows.get("ids")
        if ids is None:
            return grad
        if all_rows and not (until_step and rows["step"] >= until_step):
            mask = torch.zeros(grad.shape[0], 1, dtype=grad.dtype, device=grad.device)
        elif lazy_base_rows is not None:
            mask = torch.ones(grad.shape[0], 1, dtype=grad.dtype, device=grad.device)
            mask[:lazy_base_rows] = 0
        else:
            return grad
        mask[ids.to(grad.device)] = 1
        return grad * mask

    for p in params:
        p.register_hook(keep)

    class StepClock(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            rows["step"] = state.global_step

    return StepClock()


def _module_name(model, module) -> str:
    """The last component of ``module``'s name in ``model`` (``embed_tokens``, ``lm_head``)."""
    return next(name.rsplit(".", 1)[-1] for name, m in model.named_modules() if m is module)


def tied_saved_modules(model, saved: list[str]) -> list[str]:
    """``--modules-to-save`` for ``model``: on tied embeddings, the input embedding alone stands
    for both names (the output layer shares its tensor), so one matrix trains, not two copies."""
    if not embeddings_tied(model):
        return saved
    inp = _module_name(model, model.get_input_embeddings())
    out = _module_name(model, model.get_output_embeddings())
    if out not in saved:
        return saved
    kept = [m for m in saved if m != out] + ([] if inp in saved else [inp])
    log.info("tied embeddings: %s and %s are one matrix; it trains once (as %s) and %s keeps sharing it",
             inp, out, inp, out)
    return kept


def apply_lora(model, lora: LoraArguments):
    """Wrap ``model`` in a peft LoRA model per ``lora``; returns the PeftModel."""
    from peft import LoraConfig, TaskType, get_peft_model

    present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    missing = [m for m in lora.target_modules + lora.saved_modules if m not in present]
    if missing:
        raise ValueError(f"the model has no module named {', '.join(missing)} (--lora-target / --modules-to-save)")
    saved = tied_saved_modules(model, lora.saved_modules)
    # peft annotates lora_alpha as int but only ever scales by lora_alpha / r: a float alpha works.
    config = LoraConfig(task_type=TaskType.CAUSAL_LM, r=lora.lora_rank,
                        lora_alpha=lora.lora_alpha,  # type: ignore[arg-type]
                        lora_dropout=lora.lora_dropout, target_modules=lora.target_modules,
                        modules_to_save=saved or None, inference_mode=False)
    peft_model = get_peft_model(model, config)
    tie_output_to_saved_input(peft_model)
    return peft_model


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
    report's 6.06 % / 6.22 % are defined). The original rows of a tensor trained on its added
    rows only (``--new-rows-only``, stage 1's output layer) do not count as trainable. Sizes are
    the whole tensors' also under ZeRO-3 (:func:`zhllama.model.parameters.param_numel`).
    """
    trainable = total = 0
    seen: set[int] = set()
    for name, p in model.named_parameters():
        if id(p) in seen or ".original_module." in name:
            continue
        seen.add(id(p))
        n = param_numel(p)
        total += n
        if p.requires_grad:
            frozen_rows = getattr(p, "zhllama_frozen_rows", 0)
            trainable += n - (n // param_shape(p)[0] * frozen_rows if frozen_rows else 0)
    return trainable, total


def log_trainable(model) -> float:
    trainable, total = count_parameters(model)
    share = 100.0 * trainable / total
    log.info("trainable parameters: %s of %s (%.2f %%)", f"{trainable:,}", f"{total:,}", share)
    return share

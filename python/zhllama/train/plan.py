"""``zhllama plan``: the GPU memory a training run needs, from the model's config.json (and resize.json).

    zhllama plan --model llama-7b-zh-init --stage 2 --zero 2 --gpus 8 --precision bf16 \\
        --batch 32 --block-size 512 --gpu-memory 80GB

The model is built on the meta device (no weights read, no memory used) and made trainable the
way ``pretrain``/``sft`` do it, so the parameter counts are the training verbs' own. Bytes per GPU:

- frozen weights: the training dtype (2 bytes in bf16/fp16), sharded over the GPUs by ZeRO-3 only;
- trainable tensors (weights, gradients, optimizer states), each whole (a tensor trained on its
  added rows only, as stage 1's untied lm_head, is masked, not sliced): under ZeRO-2/3 with bf16/fp16,
  DeepSpeed's own estimators (``estimate_zero2_model_states_mem_needs``, the ZeRO-3 one) applied to
  the trainable count, split by their multipliers; otherwise by hand: fp32 masters (4 bytes),
  fp32 gradients (4), Adam's two moments (8), sharded as the ZeRO stage says;
- activations (docs/training.md, "Memory plan"): per token and layer 8h + 4I stored elements
  (norm inputs and outputs, q, k, v, the attention output; the SwiGLU's gate, up, SiLU and product),
  plus each LoRA target's dropout output and mask; eager attention adds its a·s probabilities;
  the loss holds 16-bit logits, their fp32 copy and log-softmax. With checkpointing only each
  layer's input stays, plus one layer being recomputed. An upper bound: frozen layers save a little less.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from zhllama.sizes import parse_size
from zhllama.train.args import (
    ATTN_IMPLEMENTATIONS,
    LORA_PRETRAIN_TARGETS,
    LORA_SFT_TARGETS,
    LoraArguments,
    ModelArguments,
    RunArguments,
)
from zhllama.train.pretrain import PretrainArguments, base_rows_of

STAGES = ("1", "2", "sft")
ZERO_STAGES = (0, 2, 3)
PRECISION_BYTES = {"bf16": 2, "fp16": 2, "fp32": 4}
GB = 1e9


@dataclass(frozen=True)
class Plan:
    """Bytes per GPU of one training set-up (``trainable``/``frozen`` are parameter counts, as the
    training verbs log them; ``optimized`` the elements of the tensors the optimizer updates)."""

    trainable: int
    frozen: int
    optimized: int
    frozen_weights: int
    trainable_weights: int
    gradients: int
    optimizer_states: int
    gathered_layer: int  # ZeRO-3's full copy of the largest layer being used
    activations_checkpointing: int
    activations_full: int

    @property
    def model_states(self) -> int:
        return (self.frozen_weights + self.trainable_weights + self.gradients + self.optimizer_states
                + self.gathered_layer)

    def total(self, checkpointing: bool) -> int:
        return self.model_states + (self.activations_checkpointing if checkpointing else self.activations_full)


def read_model_config(model_dir: str | Path):
    """The model's config from ``DIR/config.json`` only."""
    from transformers import AutoConfig

    path = Path(model_dir) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"--model {model_dir}: no config.json; pass a Hugging Face model directory")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None
    model_type = data.pop("model_type", None)
    if model_type is None:
        raise ValueError(f"{path}: no model_type; expected a transformers config such as LLaMA's")
    return AutoConfig.for_model(model_type, **data)


def lora_for(stage: str, rank: int = 8, target: Optional[str] = None) -> LoraArguments:
    default = LORA_SFT_TARGETS if stage == "sft" else LORA_PRETRAIN_TARGETS
    return LoraArguments(lora_rank=rank, lora_target=target or default)


def meta_model(config, stage: str, lora: Optional[LoraArguments] = None, base_rows: Optional[int] = None):
    """The model of ``config`` on the meta device, trainable as ``pretrain --stage``/``sft`` make it
    (``base_rows``: the original rows, where stage 1's untied lm_head starts to train)."""
    import torch
    from transformers import AutoModelForCausalLM

    from zhllama.train.trainable import apply_lora, train_embeddings_only

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    if stage == "1":
        train_embeddings_only(model, base_rows=base_rows)
        return model
    return apply_lora(model, lora or lora_for(stage))


def optimized_elements(model) -> int:
    """Elements of the trainable tensors, each whole and once: what gets gradients and optimizer state."""
    from zhllama.model.parameters import param_numel

    return sum(param_numel(p) for p in model.parameters() if p.requires_grad)


def largest_layer_params(model) -> int:
    """Parameters of the largest single module (own tensors), as DeepSpeed's ``model_to_params`` counts."""
    return max((sum(p.numel() for p in m.parameters(recurse=False)) for m in model.modules()), default=0)


def trainable_states(trainable: int, largest: int, zero: int, gpus: int, precision: str) -> tuple[int, int, int, int]:
    """(trainable weights, gradients, optimizer states, gathered layer) bytes per GPU."""
    t, g = trainable, gpus
    if zero in (2, 3) and precision != "fp32":
        from deepspeed.runtime.zero.stage3 import (
            estimate_zero3_model_states_mem_needs,
        )
        from deepspeed.runtime.zero.stage_1_and_2 import (
            estimate_zero2_model_states_mem_needs,
        )

        # DeepSpeed's multipliers: 16-bit params 2 (sharded by ZeRO-3 only); then, sharded, fp32
        # params 4 and Adam 8, and gradients (16-bit 2 + fp32 4 for ZeRO-2, 4 for ZeRO-3: 18 in all).
        if zero == 2:
            _, total = estimate_zero2_model_states_mem_needs(t, num_gpus_per_node=g, cpu_offload=False)
            split = (2 * t + int(4 * t / g), int(6 * t / g), int(8 * t / g), 0)
        else:
            _, total, gathered = estimate_zero3_model_states_mem_needs(
                t, largest, num_gpus_per_node=g, cpu_offload=False, cpu_offload_params=False)
            split = (int(6 * t / g), int(4 * t / g), int(8 * t / g), int(gathered))
        # int() of each share may round a byte or two away from DeepSpeed's single int(); keep its total.
        return (split[0] + total - sum(split), *split[1:])
    shard = g if zero in (2, 3) else 1
    weights = 4 * t // (g if zero == 3 else 1)
    gathered = 4 * largest if zero == 3 else 0
    return weights, 4 * t // shard, 8 * t // shard, gathered


def activation_bytes(config, lora: Optional[LoraArguments], batch: int, block_size: int, precision: str,
                     attn_implementation: str = "sdpa") -> tuple[int, int]:
    """(with checkpointing, without) activation bytes of one micro-batch, by the docstring's count."""
    b = 2 if precision in ("bf16", "fp16") else 4
    h, inter, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    heads, vocab = config.num_attention_heads, config.vocab_size
    per_layer = (8 * h + 4 * inter) * b
    if lora is not None and lora.lora_dropout > 0:
        inputs = {"q_proj": h, "k_proj": h, "v_proj": h, "o_proj": h, "gate_proj": h, "up_proj": h, "down_proj": inter}
        per_layer += sum(inputs.get(m, h) * (b + 1) + lora.lora_rank * b for m in lora.target_modules)
    if attn_implementation == "eager":
        per_layer += heads * block_size * (4 + b)  # fp32 softmax and its 16-bit copy
    head = vocab * (b + 4 + (4 if b != 4 else 0)) + 2 * h * b  # logits (+ fp32 copy) + log-softmax; final norm
    tokens = batch * block_size
    return tokens * (layers * h * b + per_layer + head), tokens * (layers * per_layer + head)


def plan_memory(config, stage: str, zero: int, gpus: int, precision: str, batch: int, block_size: int,
                lora: Optional[LoraArguments] = None, attn_implementation: str = "sdpa",
                base_rows: Optional[int] = None) -> Plan:
    """The plan; ``base_rows`` as ``pretrain --base-vocab-size`` (stage 1 trains an untied lm_head's added rows)."""
    from zhllama.train.trainable import count_parameters

    if stage not in STAGES:
        raise ValueError(f"--stage must be one of {', '.join(STAGES)}, got {stage!r}")
    if zero not in ZERO_STAGES:
        raise ValueError(f"--zero must be one of 0, 2, 3, got {zero}")
    if precision not in PRECISION_BYTES:
        raise ValueError(f"--precision must be bf16, fp16 or fp32, got {precision!r}")
    if min(gpus, batch, block_size) < 1:
        raise ValueError(f"--gpus, --batch and --block-size must be >= 1, got {gpus}, {batch}, {block_size}")
    lora = None if stage == "1" else (lora or lora_for(stage))
    model = meta_model(config, stage, lora, base_rows)
    trainable, total = count_parameters(model)
    optimized = optimized_elements(model)
    weights, grads, optim, gathered = trainable_states(optimized, largest_layer_params(model), zero, gpus, precision)
    with_ckpt, without = activation_bytes(config, lora, batch, block_size, precision, attn_implementation)
    return Plan(trainable=trainable, frozen=total - trainable, optimized=optimized,
                frozen_weights=PRECISION_BYTES[precision] * (total - optimized) // (gpus if zero == 3 else 1),
                trainable_weights=weights, gradients=grads, optimizer_states=optim, gathered_layer=gathered,
                activations_checkpointing=with_ckpt, activations_full=without)


def largest_batch(config, stage: str, zero: int, gpus: int, precision: str, block_size: int, gpu_memory: float,
                  checkpointing: bool = True, lora: Optional[LoraArguments] = None, limit: int = 4096,
                  attn_implementation: str = "sdpa", base_rows: Optional[int] = None) -> int:
    """The largest micro-batch whose plan fits ``gpu_memory`` bytes (0: not even one sequence), with
    the attention kernel's activations (eager keeps every attention probability)."""
    one = plan_memory(config, stage, zero, gpus, precision, 1, block_size, lora, attn_implementation, base_rows)
    per_sample = one.activations_checkpointing if checkpointing else one.activations_full
    room = gpu_memory - one.model_states
    return max(0, min(limit, int(room // per_sample))) if per_sample else limit


def _gb(n: float) -> str:
    return f"{n / GB:,.2f}"


def format_table(plan: Plan, gpu_memory: float, title: str) -> str:
    share = 100.0 * plan.trainable / (plan.trainable + plan.frozen)
    rows: list[tuple[str, str]] = [
        ("trainable parameters", f"{plan.trainable:,} ({share:.2f} %)"),
        ("frozen parameters", f"{plan.frozen:,}"),
    ]
    if plan.optimized != plan.trainable:  # a tensor trained on some rows: its gradient and states are whole
        rows.append(("elements of the trainable tensors", f"{plan.optimized:,}"))
    rows += [
        ("frozen weights (GB)", _gb(plan.frozen_weights)),
        ("trainable weights (GB)", _gb(plan.trainable_weights)),
        ("gradients (GB)", _gb(plan.gradients)),
        ("optimizer states (GB)", _gb(plan.optimizer_states)),
    ]
    if plan.gathered_layer:
        rows.append(("ZeRO-3 gathered layer (GB)", _gb(plan.gathered_layer)))
    rows += [
        ("model states (GB)", _gb(plan.model_states)),
        ("activations, checkpointing (GB)", _gb(plan.activations_checkpointing)),
        ("activations, no checkpointing (GB)", _gb(plan.activations_full)),
        ("total, checkpointing (GB)", _gb(plan.total(True))),
        ("total, no checkpointing (GB)", _gb(plan.total(False))),
        (f"fits {_gb(gpu_memory)} GB, checkpointing", "yes" if plan.total(True) <= gpu_memory else "no"),
        (f"fits {_gb(gpu_memory)} GB, no checkpointing", "yes" if plan.total(False) <= gpu_memory else "no"),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join([title, *(f"  {k:<{width}}  {v}" for k, v in rows)])


def _default(cls: type, name: str) -> Any:
    """The default of a training dataclass's field: plan's flags mean what pretrain/sft's do."""
    return next(f.default for f in dataclasses.fields(cls) if f.name == name)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, metavar="DIR",
                        help="Model directory; only DIR/config.json (and DIR/resize.json for stage 1) is read.")
    parser.add_argument("--stage", required=True, choices=STAGES,
                        help="1 (embeddings), 2 (LoRA q,k,v,o + embeddings + head) or sft.")
    parser.add_argument("--zero", type=int, choices=ZERO_STAGES, default=2,
                        help="DeepSpeed ZeRO stage (0: no DeepSpeed). Default: 2.")
    parser.add_argument("--gpus", type=int, default=1, help="Number of GPUs (data parallel). Default: 1.")
    parser.add_argument("--precision", choices=tuple(PRECISION_BYTES), default="bf16",
                        help="Training precision (as --precision of pretrain/sft; auto is bf16 on a current GPU). "
                             "Default: bf16.")
    parser.add_argument("--batch", type=int, default=_default(RunArguments, "per_device_train_batch_size"),
                        help=f"Micro-batch per GPU (--per-device-train-batch-size). Default: "
                             f"{_default(RunArguments, 'per_device_train_batch_size')}.")
    parser.add_argument("--block-size", type=int, default=_default(PretrainArguments, "block_size"),
                        help=f"Tokens per sequence (pretrain --block-size, sft --max-seq-length). Default: "
                             f"{_default(PretrainArguments, 'block_size')}.")
    parser.add_argument("--gpu-memory", default=None, metavar="SIZE",
                        help="Memory of one GPU, e.g. 80GB or 141GiB (default: this machine's GPU, else 80GB).")
    parser.add_argument("--lora-rank", type=int, default=_default(LoraArguments, "lora_rank"),
                        help=f"LoRA rank (stage 2, sft). Default: {_default(LoraArguments, 'lora_rank')}.")
    parser.add_argument("--lora-target", default=None, metavar="MODULES",
                        help="LoRA target modules (default: the training verb's for the stage).")
    parser.add_argument("--attn-implementation", choices=ATTN_IMPLEMENTATIONS,
                        default=_default(ModelArguments, "attn_implementation"),
                        help="Attention kernel (eager stores the attention probabilities). Default: "
                             f"{_default(ModelArguments, 'attn_implementation')}.")
    parser.add_argument("--base-vocab-size", type=int, default=None, metavar="N",
                        help="Stage 1: the original rows, where an untied lm_head's trained rows begin (as pretrain's "
                             "flag; default: read from DIR/resize.json, else the untied lm_head stays frozen).")
    parser.add_argument("--json", action="store_true", help="Print the figures as JSON instead of a table.")


def default_gpu_memory() -> float:
    import torch

    if torch.cuda.is_available():
        return float(torch.cuda.get_device_properties(0).total_memory)
    return 80 * GB


def run(args: argparse.Namespace) -> int:
    config = read_model_config(args.model)
    gpu_memory = parse_size(args.gpu_memory, "--gpu-memory", "GB") if args.gpu_memory else default_gpu_memory()
    lora = None if args.stage == "1" else lora_for(args.stage, args.lora_rank, args.lora_target)
    base_rows = base_rows_of(args.model, args.base_vocab_size) if args.stage == "1" else None
    plan = plan_memory(config, args.stage, args.zero, args.gpus, args.precision, args.batch, args.block_size, lora,
                       args.attn_implementation, base_rows)
    if args.json:
        out: dict[str, Any] = {k: getattr(plan, k) for k in plan.__dataclass_fields__}
        out.update(model_states=plan.model_states, total_checkpointing=plan.total(True),
                   total_no_checkpointing=plan.total(False), gpu_memory=gpu_memory)
        print(json.dumps(out, indent=2))
        return 0
    zero = "no DeepSpeed" if args.zero == 0 else f"ZeRO-{args.zero}"
    title = (f"{args.model}: stage {args.stage}, {args.precision}, {zero}, {args.gpus} GPU(s), "
             f"batch {args.batch} x {args.block_size} tokens per GPU; bytes per GPU")
    print(format_table(plan, gpu_memory, title))
    return 0

"""Throughput in the training logs: tokens/s per device, Chinese characters/s, MFU, peak memory.

The FLOPs per token (docs/training.md, "Throughput and MFU") count matrix multiplies only:

    forward   2 · (N_trained + N_frozen)
    backward  4 · N_trained + 2 · N_frozen     (input gradients everywhere, weight gradients only
                                                where weights train)
    attention 12 · L · s · h                   (QKᵀ and AV: 4·s·h a token per layer forward, ×2 back)

N counts the weights of matrix multiplies (every ≥ 2-D parameter except embedding tables, which
are looked up, not multiplied; LoRA's A and B are trained ones; peft's frozen originals of
``modules_to_save`` are replaced by their trained copies). With tied embeddings the embedding
table is also the LM head, a V×h matmul per token: it is counted once, as the head. L layers, h hidden size, s the
sequence length. Recomputation under gradient checkpointing is not counted: that is MFU, not
hardware utilisation (HFU). MFU = FLOPs/token × tokens/s per device ÷ the device's peak.
"""

from __future__ import annotations

import logging
import math
import resource
import sys
import time
from dataclasses import dataclass
from typing import Any, Optional

import torch

from zhllama.model.parameters import param_numel, param_shape

log = logging.getLogger("zhllama.train")

# Dense bf16/fp16 tensor-core peaks (TFLOPS, no sparsity), from the vendors' data sheets. Matched
# in order against torch.cuda.get_device_name(); the first hit wins.
PEAK_TFLOPS_16BIT: tuple[tuple[str, float], ...] = (
    ("H200", 989.5), ("GH200", 989.5), ("H100 NVL", 835.0), ("H100 PCIe", 756.0), ("H100", 989.5),
    ("H800", 989.5), ("A100", 312.0), ("A800", 312.0), ("L40S", 362.1), ("L40", 181.0), ("L4", 121.0),
    ("A10G", 125.0), ("A10", 125.0), ("RTX 4090", 165.2), ("RTX 3090", 71.0), ("V100", 125.0),
)


@dataclass(frozen=True)
class MatmulParams:
    """Weights that take part in matrix multiplies, split by whether they train."""

    trained: int
    frozen: int


def matmul_params(model: torch.nn.Module) -> MatmulParams:
    """:class:`MatmulParams` of ``model`` (a plain or a peft model; works on the meta device and on
    ZeRO-3's 0-element placeholders, through :mod:`zhllama.model.parameters`)."""
    lookups = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.Embedding)}
    get_head = getattr(model, "get_output_embeddings", None)  # a transformers (or peft) model's LM head
    weight = getattr(get_head() if callable(get_head) else None, "weight", None)
    if isinstance(weight, torch.nn.Parameter):
        lookups.discard(id(weight))  # the (possibly tied) output layer multiplies: always counted
    trained = frozen = 0
    seen: set[int] = set()
    for name, p in model.named_parameters():
        if id(p) in seen or id(p) in lookups or len(param_shape(p)) < 2 or ".original_module." in name:
            continue
        seen.add(id(p))
        if p.requires_grad:
            trained += param_numel(p)
        else:
            frozen += param_numel(p)
    return MatmulParams(trained, frozen)


def flops_per_token(params: MatmulParams, num_layers: int, hidden_size: int, seq_len: int) -> int:
    """Training FLOPs per token by the formula of this module's docstring."""
    forward = 2 * (params.trained + params.frozen)
    backward = 4 * params.trained + 2 * params.frozen
    attention = 12 * num_layers * seq_len * hidden_size
    return forward + backward + attention


def model_flops_per_token(model: Any, seq_len: int) -> int:
    config = model.config
    return flops_per_token(matmul_params(model), config.num_hidden_layers, config.hidden_size, seq_len)


def device_peak_tflops(precision: str) -> Optional[float]:
    """The current CUDA device's dense 16-bit peak, or None (CPU, fp32, or an unknown GPU)."""
    if precision not in ("bf16", "fp16") or not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name()
    return next((tflops for key, tflops in PEAK_TFLOPS_16BIT if key in name), None)


def peak_memory_bytes() -> int:
    """Peak memory of this process's device: CUDA allocations on GPU, the process's peak RSS on CPU."""
    if torch.cuda.is_available():
        return int(torch.cuda.max_memory_allocated())
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024)  # macOS reports bytes, Linux KiB


def tokens_per_char(blocks: list[list[int]], decode: Any) -> Optional[float]:
    """Tokens per character of ``blocks`` (token-id lists), measured by decoding them back to text."""
    tokens = sum(len(b) for b in blocks)
    chars = sum(len(decode(b)) for b in blocks)
    return tokens / chars if tokens and chars else None


def throughput_metrics(tokens: int, seconds: float, world_size: int, flops_token: int,
                       peak_tflops: Optional[float], tok_per_char: Optional[float]) -> dict[str, float]:
    """The logged figures for ``tokens`` (summed over all devices) trained in ``seconds``."""
    if seconds <= 0 or tokens <= 0:
        return {}
    per_device = tokens / seconds / world_size
    out = {"tokens_per_second_per_device": per_device,
           "tflops_per_device": flops_token * per_device / 1e12}
    if tok_per_char:
        out["chars_per_second_per_device"] = per_device / tok_per_char
    if peak_tflops:
        out["mfu"] = out["tflops_per_device"] / peak_tflops
    out["peak_memory_gb"] = peak_memory_bytes() / 1e9
    return out


class ThroughputCallback:
    """Adds :func:`throughput_metrics` to every training log (console, TensorBoard, log history).

    Put it first in the trainer's callback list (:meth:`install`): the logs dict it extends is then
    the one the TensorBoard and console callbacks receive. Tokens come from the Trainer's own count
    (``include_num_input_tokens_seen``), summed over processes. The first step (set-up, warm-up) is
    left out of the final average.
    """

    def __init__(self, flops_token: int, peak_tflops: Optional[float], tok_per_char: Optional[float]) -> None:
        self.flops_token = flops_token
        self.peak_tflops = peak_tflops
        self.tok_per_char = tok_per_char
        self._last: Optional[tuple[float, int]] = None  # (time, tokens seen) at the previous log
        self._first: Optional[tuple[float, int]] = None  # after the first step
        self.summary: dict[str, float] = {}

    def install(self, trainer: Any) -> None:
        from transformers import TrainerCallback

        class _Hook(TrainerCallback):
            def on_train_begin(_, args, state, control, **kw):  # noqa: N805
                self._last = (time.perf_counter(), state.num_input_tokens_seen)

            def on_step_end(_, args, state, control, **kw):  # noqa: N805
                if self._first is None:
                    self._first = (time.perf_counter(), state.num_input_tokens_seen)

            def on_log(_, args, state, control, logs=None, **kw):  # noqa: N805
                if logs is None or "loss" not in logs or self._last is None:
                    return
                now, seen = time.perf_counter(), state.num_input_tokens_seen
                figures = self.figures(seen - self._last[1], now - self._last[0], args.world_size)
                self._last = (now, seen)
                logs.update(figures)
                if state.log_history and state.log_history[-1].get("step") == state.global_step:
                    state.log_history[-1].update(figures)
                self.log_line(state.global_step, figures)

            def on_train_end(_, args, state, control, **kw):  # noqa: N805
                start = self._first if self._first and state.num_input_tokens_seen > self._first[1] else None
                start = start or self._last or (time.perf_counter(), 0)
                self.summary = self.figures(state.num_input_tokens_seen - start[1], time.perf_counter() - start[0],
                                            args.world_size)

        trainer.callback_handler.callbacks.insert(0, _Hook())

    def figures(self, tokens: int, seconds: float, world_size: int) -> dict[str, float]:
        return throughput_metrics(tokens, seconds, world_size, self.flops_token, self.peak_tflops, self.tok_per_char)

    @staticmethod
    def log_line(step: int, f: dict[str, float]) -> None:
        if not f:
            return
        parts = [f"{f['tokens_per_second_per_device']:,.0f} tokens/s/device"]
        if "chars_per_second_per_device" in f:
            parts.append(f"{f['chars_per_second_per_device']:,.0f} chars/s/device")
        parts.append(f"{f['tflops_per_device']:.2f} TFLOPS")
        if "mfu" in f and math.isfinite(f["mfu"]):
            parts.append(f"MFU {100 * f['mfu']:.1f} %")
        parts.append(f"peak memory {f['peak_memory_gb']:.2f} GB")
        log.info("step %d: %s", step, ", ".join(parts))

    def final_metrics(self) -> dict[str, float]:
        """The whole run's figures, keyed ``train_*`` for the final metrics JSON."""
        return {f"train_{k}": v for k, v in self.summary.items()}

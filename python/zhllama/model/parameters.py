"""The shape and size of a model's parameters, also where ZeRO-3 has partitioned them.

Under ZeRO-3 (``deepspeed.zero.Init``, which ``from_pretrained`` uses when the Trainer's DeepSpeed
config says stage 3) every parameter is a 0-element placeholder on each rank, and the rank's slice
lives in ``ds_tensor``; DeepSpeed records the whole tensor's shape and size in ``ds_shape`` and
``ds_numel``. ``numel()``, ``shape`` and ``dim()`` read the placeholder (0, ``(0,)``, 1), so a
count over them sees an empty model. Every size zhllama reads from a parameter (trainable shares,
FLOPs, the rows of an embedding) goes through these two functions.
"""

from __future__ import annotations

from typing import Any


def param_numel(p: Any) -> int:
    """Elements of ``p`` as the model defines it (the whole tensor, not this rank's ZeRO-3 slice)."""
    return int(p.ds_numel) if hasattr(p, "ds_numel") else int(p.numel())


def param_shape(p: Any) -> tuple[int, ...]:
    """Shape of ``p`` as the model defines it (``ds_shape`` under ZeRO-3, where ``p.shape`` is ``(0,)``)."""
    return tuple(int(n) for n in (p.ds_shape if hasattr(p, "ds_shape") else p.shape))

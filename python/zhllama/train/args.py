"""Argument dataclasses of the training verbs (``pretrain``, ``sft``).

Every field carries ``help``; validation lives in ``__post_init__`` and raises ``ValueError``
naming the bad value. :func:`add_dataclass_arguments` turns the fields into ``--kebab-case``
flags and :func:`parse_dataclass` builds the dataclass back from the argparse namespace, after
applying a ``--config FILE.yaml`` whose keys are the same names (command line wins).
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, TypeVar

T = TypeVar("T")

LORA_PRETRAIN_TARGETS = "q_proj,k_proj,v_proj,o_proj"
LORA_SFT_TARGETS = "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj"
PRECISIONS = ("auto", "bf16", "fp16", "fp32")


def _help(text: str, **extra: Any) -> dict[str, Any]:
    return {"help": text, **extra}


@dataclass
class ModelArguments:
    model: str = field(metadata=_help("Model directory in Hugging Face layout (e.g. the output of `zhllama resize` or of stage 1)."))
    tokenizer: Optional[str] = field(default=None, metadata=_help("Tokenizer directory or tokenizer.model; defaults to the model directory."))
    gradient_checkpointing: bool = field(default=False, metadata=_help("Recompute activations in the backward pass to save memory."))

    def __post_init__(self) -> None:
        if not Path(self.model).is_dir():
            raise ValueError(f"--model {self.model!r} is not a directory; pass a Hugging Face model directory")
        if self.tokenizer is None:
            self.tokenizer = self.model


@dataclass
class LoraArguments:
    lora_rank: int = field(default=8, metadata=_help("LoRA rank r."))
    lora_alpha: float = field(default=32.0, metadata=_help("LoRA scaling alpha (the update is scaled by alpha / r)."))
    lora_dropout: float = field(default=0.05, metadata=_help("Dropout on the LoRA input."))
    lora_target: str = field(default=LORA_PRETRAIN_TARGETS, metadata=_help("Comma-separated module names that get LoRA adapters."))
    modules_to_save: str = field(default="embed_tokens,lm_head", metadata=_help("Comma-separated modules trained in full and saved with the adapter."))

    def __post_init__(self) -> None:
        if self.lora_rank < 1:
            raise ValueError(f"--lora-rank must be >= 1, got {self.lora_rank}")
        if not 0.0 <= self.lora_dropout < 1.0:
            raise ValueError(f"--lora-dropout must be in [0, 1), got {self.lora_dropout}")
        if not self.target_modules:
            raise ValueError(f"--lora-target names no module: {self.lora_target!r}")

    @property
    def target_modules(self) -> list[str]:
        return [m.strip() for m in self.lora_target.split(",") if m.strip()]

    @property
    def saved_modules(self) -> list[str]:
        return [m.strip() for m in self.modules_to_save.split(",") if m.strip()]


@dataclass
class RunArguments:
    output_dir: str = field(metadata=_help("Directory for checkpoints, TensorBoard logs and the final model/adapter."))
    learning_rate: Optional[float] = field(default=None, metadata=_help("Peak learning rate (default: 2e-4 for stage 1, 1e-4 for stage 2 and SFT)."))
    num_train_epochs: float = field(default=1.0, metadata=_help("Number of passes over the training data (ignored when --max-steps > 0)."))
    max_steps: int = field(default=-1, metadata=_help("Stop after this many optimizer steps (-1: use --num-train-epochs)."))
    per_device_train_batch_size: int = field(default=1, metadata=_help("Micro-batch size per process."))
    per_device_eval_batch_size: int = field(default=1, metadata=_help("Evaluation batch size per process."))
    gradient_accumulation_steps: int = field(default=1, metadata=_help("Micro-batches accumulated per optimizer step."))
    lr_scheduler_type: str = field(default="cosine", metadata=_help("Learning-rate schedule (a transformers scheduler name)."))
    warmup_ratio: float = field(default=0.05, metadata=_help("Fraction of the steps spent in linear warmup."))
    weight_decay: float = field(default=0.0, metadata=_help("AdamW weight decay."))
    max_grad_norm: float = field(default=1.0, metadata=_help("Gradient clipping norm."))
    seed: int = field(default=42, metadata=_help("Seed for initialization, shuffling and dropout."))
    logging_steps: int = field(default=10, metadata=_help("Log loss and learning rate every N steps (TensorBoard and console)."))
    save_steps: int = field(default=500, metadata=_help("Save a checkpoint every N steps."))
    save_total_limit: Optional[int] = field(default=3, metadata=_help("Keep at most this many checkpoints."))
    eval_steps: Optional[int] = field(default=None, metadata=_help("Evaluate on the held-out split every N steps (default: --save-steps)."))
    precision: str = field(default="auto", metadata=_help("auto (bf16 if the GPU supports it, else fp16; fp32 on CPU), bf16, fp16 or fp32."))
    deepspeed: Optional[str] = field(default=None, metadata=_help("DeepSpeed config JSON (e.g. configs/ds_zero2.json)."))
    resume: Optional[str] = field(default=None, metadata=_help("Resume from a checkpoint directory, or 'last' for the newest checkpoint in --output-dir.", nargs="?", const="last"))
    report_to: str = field(default="tensorboard", metadata=_help("Where to log metrics: tensorboard or none."))
    dataloader_num_workers: int = field(default=0, metadata=_help("DataLoader worker processes."))
    overwrite_output_dir: bool = field(default=False, metadata=_help("Allow an --output-dir that already holds checkpoints without --resume."))

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"--precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.learning_rate is not None and self.learning_rate <= 0:
            raise ValueError(f"--learning-rate must be > 0, got {self.learning_rate}")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ValueError(f"--warmup-ratio must be in [0, 1), got {self.warmup_ratio}")
        for name in ("per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps",
                     "logging_steps", "save_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.max_steps == 0 or self.max_steps < -1:
            raise ValueError(f"--max-steps must be > 0 or -1, got {self.max_steps}")
        if self.deepspeed is not None and not Path(self.deepspeed).is_file():
            raise ValueError(f"--deepspeed {self.deepspeed!r}: no such file (see configs/ds_zero2.json)")
        if self.report_to not in ("tensorboard", "none"):
            raise ValueError(f"--report-to must be tensorboard or none, got {self.report_to!r}")


# -- dataclass <-> argparse ----------------------------------------------------------------------

def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_dataclass_arguments(parser: argparse.ArgumentParser, cls: type, defaults: Optional[dict[str, Any]] = None,
                            title: Optional[str] = None) -> None:
    """Add one ``--flag`` per field of ``cls``; fields without a default are required."""
    group = parser.add_argument_group(title or cls.__name__)
    hints = typing.get_type_hints(cls)
    defaults = defaults or {}
    for f in dataclasses.fields(cls):
        kind = hints[f.name]
        meta = dict(f.metadata)
        help_text = meta.pop("help")
        if f.name in defaults:
            default = defaults[f.name]
        elif f.default is not dataclasses.MISSING:
            default = f.default
        else:
            default = None
        if typing.get_origin(kind) is typing.Union:  # Optional[X]
            kind = next(a for a in typing.get_args(kind) if a is not type(None))
        if kind is bool:
            group.add_argument(_flag(f.name), action="store_true", default=default, help=help_text)
            continue
        required = f.default is dataclasses.MISSING and f.name not in defaults
        # Required fields may also come from --config, so argparse only checks them after merging.
        group.add_argument(_flag(f.name), type=kind, default=default, help=help_text + (" (required)" if required else ""),
                           **meta)


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=None,
                        help="YAML file of flag values (names as in --help, with - or _); command-line flags win.")


def apply_config(args: argparse.Namespace, classes: tuple[type, ...], defaults: Optional[dict[str, Any]] = None) -> None:
    """Fill ``args`` from ``--config`` for every flag still at its default."""
    path = getattr(args, "config", None)
    if not path:
        return
    import yaml

    if not Path(path).is_file():
        raise FileNotFoundError(f"--config {path}: no such file")
    with open(path, encoding="utf-8") as f:
        values = yaml.safe_load(f) or {}
    if not isinstance(values, dict):
        raise ValueError(f"--config {path}: expected a mapping of flag names to values")
    known: dict[str, Any] = {}
    for cls in classes:
        for fld in dataclasses.fields(cls):
            d = (defaults or {}).get(fld.name, None if fld.default is dataclasses.MISSING else fld.default)
            known[fld.name] = d
    extra_known = {k for k in vars(args) if k not in known}
    for key, value in values.items():
        name = str(key).replace("-", "_")
        if name in known:
            if getattr(args, name) == known[name]:
                setattr(args, name, value)
        elif name in extra_known:
            setattr(args, name, value)
        else:
            raise ValueError(f"--config {path}: unknown key {key!r}")


def parse_dataclass(cls: type[T], args: argparse.Namespace) -> T:
    """Build ``cls`` from the namespace; a required field still missing is a ValueError."""
    kwargs = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        value = getattr(args, f.name)
        if value is None and f.default is dataclasses.MISSING:
            raise ValueError(f"{_flag(f.name)} is required")
        kwargs[f.name] = value
    return cls(**kwargs)

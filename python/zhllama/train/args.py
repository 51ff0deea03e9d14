"""Argument dataclasses of the training verbs (``pretrain``, ``sft``).

Every field carries ``help``; validation lives in ``__post_init__`` and raises ``ValueError``
naming the bad value. :func:`add_arguments` turns the fields into ``--kebab-case`` flags (through
transformers' ``HfArgumentParser``) plus ``--config FILE.yaml``; :func:`parse_arguments` builds
the dataclasses back: command-line flags, then the file's values (typed and checked as the
flags are; unknown keys refused), then the defaults.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import difflib
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from transformers.hf_argparser import HfArgumentParser, string_to_bool

from zhllama.model.identity import ALLOW_HELP

LORA_PRETRAIN_TARGETS = "q_proj,k_proj,v_proj,o_proj"
LORA_SFT_TARGETS = "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj"
PRECISIONS = ("auto", "bf16", "fp16", "fp32")
ATTN_IMPLEMENTATIONS = ("sdpa", "flash_attention_2", "eager")


def _help(text: str, **extra: Any) -> dict[str, Any]:
    return {"help": text, **extra}


@dataclass
class ModelArguments:
    model: str = field(metadata=_help(
        "Model directory in Hugging Face layout (e.g. the output of `zhllama resize` or of stage 1).", metavar="DIR"))
    tokenizer: Optional[str] = field(default=None, metadata=_help(
        "Tokenizer directory or tokenizer.model; defaults to the model directory.", metavar="PATH"))
    gradient_checkpointing: bool = field(default=False, metadata=_help(
        "Recompute activations in the backward pass to save memory."))
    attn_implementation: str = field(default="sdpa", metadata=_help(
        "Attention kernel: sdpa (PyTorch scaled_dot_product_attention), flash_attention_2 (needs the flash-attn "
        "package, a GPU and bf16/fp16) or eager.", choices=ATTN_IMPLEMENTATIONS))
    allow_mismatch: bool = field(default=False, metadata=_help(ALLOW_HELP))

    def __post_init__(self) -> None:
        if not Path(self.model).is_dir():
            raise ValueError(f"--model {self.model!r} is not a directory; pass a Hugging Face model directory")
        if self.attn_implementation not in ATTN_IMPLEMENTATIONS:
            raise ValueError(f"--attn-implementation must be one of {', '.join(ATTN_IMPLEMENTATIONS)}, "
                             f"got {self.attn_implementation!r}")
        if self.attn_implementation == "flash_attention_2":
            import importlib.util

            if importlib.util.find_spec("flash_attn") is None:
                raise ValueError("--attn-implementation flash_attention_2 needs the flash-attn package, which is not "
                                 "installed: `pip install flash-attn --no-build-isolation` (CUDA GPUs only), or use "
                                 "--attn-implementation sdpa")
        if self.tokenizer is None:
            self.tokenizer = self.model

    @property
    def tokenizer_path(self) -> str:
        """``--tokenizer``, or the model directory when it was not given."""
        return self.tokenizer or self.model


@dataclass
class LoraArguments:
    lora_rank: int = field(default=8, metadata=_help("LoRA rank r."))
    lora_alpha: float = field(default=32.0, metadata=_help("LoRA scaling alpha (the update is scaled by alpha / r)."))
    lora_dropout: float = field(default=0.05, metadata=_help("Dropout on the LoRA input."))
    lora_target: str = field(default=LORA_PRETRAIN_TARGETS, metadata=_help(
        "Comma-separated module names that get LoRA adapters.", metavar="MODULES"))
    modules_to_save: str = field(default="embed_tokens,lm_head", metadata=_help(
        "Comma-separated modules trained in full and saved with the adapter.", metavar="MODULES"))

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
    output_dir: str = field(metadata=_help(
        "Directory for checkpoints, TensorBoard logs and the final model/adapter.", metavar="DIR"))
    learning_rate: Optional[float] = field(default=None, metadata=_help(
        "Peak learning rate (default: 2e-4 for stage 1, 1e-4 for stage 2 and SFT)."))
    embedding_learning_rate: Optional[float] = field(default=None, metadata=_help(
        "Peak learning rate of the embedding and output-layer tensors (stage 1's embedding; stage 2's and SFT's "
        "--modules-to-save copies), on the same schedule; default: --learning-rate. New rows start far from "
        "where training takes them, LoRA's matrices near it (see --new-rows-only)."))
    num_train_epochs: float = field(default=1.0, metadata=_help(
        "Number of passes over the training data (ignored when --max-steps > 0)."))
    max_steps: int = field(default=-1, metadata=_help(
        "Stop after this many optimizer steps (-1: use --num-train-epochs)."))
    per_device_train_batch_size: int = field(default=1, metadata=_help("Micro-batch size per process."))
    per_device_eval_batch_size: Optional[int] = field(default=None, metadata=_help(
        "Evaluation batch size per process (default: --per-device-train-batch-size)."))
    gradient_accumulation_steps: int = field(default=1, metadata=_help("Micro-batches accumulated per optimizer step."))
    lr_scheduler_type: str = field(default="cosine", metadata=_help(
        "Learning-rate schedule (a transformers scheduler name).", metavar="NAME"))
    warmup_ratio: float = field(default=0.05, metadata=_help("Fraction of the steps spent in linear warmup."))
    weight_decay: float = field(default=0.0, metadata=_help("AdamW weight decay."))
    max_grad_norm: float = field(default=1.0, metadata=_help("Gradient clipping norm."))
    seed: int = field(default=42, metadata=_help("Seed for initialization, shuffling and dropout."))
    logging_steps: int = field(default=10, metadata=_help(
        "Log loss and learning rate every N steps (TensorBoard and console)."))
    save_steps: int = field(default=500, metadata=_help("Save a checkpoint every N steps."))
    save_total_limit: Optional[int] = field(default=3, metadata=_help("Keep at most this many checkpoints."))
    eval_steps: Optional[int] = field(default=None, metadata=_help(
        "Evaluate on the held-out split every N steps (default: --save-steps)."))
    precision: str = field(default="auto", metadata=_help(
        "auto (bf16 if the GPU supports it, else fp16; fp32 on CPU), bf16 (also on CPU), fp16 (GPU) or fp32. "
        "Frozen weights are held in this dtype, trainable ones as fp32 masters.", metavar="|".join(PRECISIONS)))
    peak_tflops: Optional[float] = field(default=None, metadata=_help(
        "Peak dense TFLOPS of one device in the training precision, for the MFU in the logs "
        "(default: known for A100/H100/H200/L40S/... GPUs; none on CPU, so no MFU).", metavar="TFLOPS"))
    deepspeed: Optional[str] = field(default=None, metadata=_help(
        "DeepSpeed config JSON (e.g. configs/ds_zero2.json).", metavar="FILE.json"))
    resume: Optional[str] = field(default=None, metadata=_help(
        "Resume from a checkpoint directory, or 'last' for the newest checkpoint in --output-dir.",
        nargs="?", const="last", metavar="CHECKPOINT"))
    reschedule: bool = field(default=False, metadata=_help(
        "With --resume: accept a changed --max-steps, --num-train-epochs, --warmup-ratio or --lr-scheduler-type "
        "(refused otherwise). The learning-rate schedule is recomputed over the new total and continues from the "
        "resumed step, so a longer cosine run's rate jumps back up to the new curve's value there."))
    report_to: str = field(default="tensorboard", metadata=_help(
        "Where to log metrics: tensorboard or none.", metavar="tensorboard|none"))
    dataloader_num_workers: int = field(default=0, metadata=_help("DataLoader worker processes."))
    overwrite_output_dir: bool = field(default=False, metadata=_help(
        "Allow an --output-dir that already holds checkpoints without --resume."))

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"--precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.learning_rate is not None and self.learning_rate <= 0:
            raise ValueError(f"--learning-rate must be > 0, got {self.learning_rate}")
        if self.embedding_learning_rate is not None and self.embedding_learning_rate <= 0:
            raise ValueError(f"--embedding-learning-rate must be > 0, got {self.embedding_learning_rate}")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ValueError(f"--warmup-ratio must be in [0, 1), got {self.warmup_ratio}")
        for name in ("per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps",
                     "logging_steps", "save_steps"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.max_steps == 0 or self.max_steps < -1:
            raise ValueError(f"--max-steps must be > 0 or -1, got {self.max_steps}")
        if self.deepspeed is not None and not Path(self.deepspeed).is_file():
            raise ValueError(f"--deepspeed {self.deepspeed!r}: no such file (see configs/ds_zero2.json)")
        if self.peak_tflops is not None and self.peak_tflops <= 0:
            raise ValueError(f"--peak-tflops must be > 0, got {self.peak_tflops}")
        if self.report_to not in ("tensorboard", "none"):
            raise ValueError(f"--report-to must be tensorboard or none, got {self.report_to!r}")


# -- dataclasses <-> flags and --config ----------------------------------------------------------
#
# transformers' HfArgumentParser turns each field into its argparse arguments (the type, Optional,
# a bool as `--x [true|false]`, both `--x-y` and `--x_y`) and builds the dataclasses from a dict.
# What it leaves out is done here. (1) Explicitness: every flag's argparse default is SUPPRESS, so
# the namespace holds exactly the flags typed on the command line, and a flag given with its
# default value still beats the file. (2) Typed files: `parse_dict` passes values through as
# YAML read them (`2e-4` is a string to YAML 1.1), so each file value is first converted by the
# very `type` and `choices` its flag uses, from the string the command line would carry.

Group = tuple[type, str]  # an argument dataclass and its title in --help

_EXPECTED = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}


@dataclass(frozen=True)
class _Flag:
    """One dataclass field as HfArgumentParser makes it a flag."""

    field: str
    names: tuple[str, ...]  # --kebab-case first, then --snake_case and any aliases
    kwargs: dict[str, Any]  # the add_argument keywords HfArgumentParser chose
    optional: bool  # Optional[X]: a file may give null

    @property
    def option(self) -> str:
        return self.names[0]

    @property
    def kind(self) -> type:
        return bool if self.kwargs["type"] is string_to_bool else self.kwargs["type"]

    @property
    def required(self) -> bool:
        return bool(self.kwargs.get("required", False))


def _flags(cls: type, defaults: Mapping[str, Any]) -> list[_Flag]:
    calls: list[tuple[tuple[str, ...], dict[str, Any]]] = []

    # HfArgumentParser adds whole dataclasses to itself, but `zhllama pretrain` is a subparser that
    # cli.py builds; its per-field step (a staticmethod taking any parser, stable since 2020) is
    # replayed here so that the flags can be adjusted before they reach that subparser.
    class Recorder:  # stands in for the parser: HfArgumentParser only calls add_argument on it
        @staticmethod
        def add_argument(*names: str, **kwargs: Any) -> None:
            calls.append((names, kwargs))

    hints = typing.get_type_hints(cls)
    flags = []
    for f in dataclasses.fields(cls):
        resolved = copy.copy(f)  # HfArgumentParser rewrites .type; the class keeps its own Field
        resolved.type = hints[f.name]
        if f.name in defaults:
            resolved.default = defaults[f.name]
        calls.clear()
        HfArgumentParser._parse_dataclass_field(Recorder(), resolved)  # type: ignore[arg-type]
        names, kwargs = calls[0]  # a calls[1] is its --no_x for a default-true bool; --no-x is added for every bool
        kebab = "--" + f.name.replace("_", "-")
        flags.append(_Flag(f.name, (kebab, *(n for n in names if n != kebab)), kwargs,
                           type(None) in typing.get_args(hints[f.name])))
    return flags


def _all_flags(groups: Sequence[Group], defaults: Mapping[str, Any]) -> dict[str, _Flag]:
    return {flag.field: flag for cls, _ in groups for flag in _flags(cls, defaults)}


def _shown(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def add_arguments(parser: argparse.ArgumentParser, groups: Sequence[Group],
                  defaults: Optional[Mapping[str, Any]] = None) -> None:
    """``--config`` and one flag per field of each group (``defaults`` overrides field defaults)."""
    parser.add_argument("--config", metavar="FILE.yaml", default=None,
                        help="YAML file of flag values, keyed by flag name without the dashes (- or _); typed and "
                             "checked like the flags. Flags given on the command line win over the file.")
    for cls, title in groups:
        group = parser.add_argument_group(title)
        for flag in _flags(cls, defaults or {}):
            kwargs = dict(flag.kwargs)
            required = kwargs.pop("required", False)
            default = kwargs.pop("default", None)
            note = ("required: here or in --config" if required else
                    f"default: {_shown(default)}" if default is not None else "")
            kwargs["help"] = kwargs.get("help", "") + (f" ({note})" if note else "")
            if "choices" not in kwargs and "metavar" not in kwargs:
                kwargs["metavar"] = "true|false" if flag.kind is bool else flag.kind.__name__.upper()
            group.add_argument(*flag.names, default=argparse.SUPPRESS, **kwargs)
            if flag.kind is bool:
                group.add_argument("--no-" + flag.option[2:], "--no_" + flag.field, dest=flag.field,
                                   action="store_false", default=argparse.SUPPRESS,
                                   help=f"Same as {flag.option} false (e.g. to override a true in --config).")


def read_config(path: str, flags: Mapping[str, _Flag]) -> dict[str, Any]:
    """The values of a ``--config`` YAML file, each converted and checked as its flag would be."""
    import yaml

    if not Path(path).is_file():
        raise FileNotFoundError(f"--config {path}: no such file")
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ValueError(f"--config {path}: not valid YAML ({e})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"--config {path}: expected a mapping of flag names to values, got a {type(data).__name__}")
    values: dict[str, Any] = {}
    for key, value in data.items():
        name = str(key).replace("-", "_")
        if name not in flags:
            close = difflib.get_close_matches(name, list(flags), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"--config {path}: unknown key {key!r}{hint}; valid keys (the flags of --help without "
                             f"the dashes): {', '.join(sorted(flags))}")
        if name in values:
            raise ValueError(f"--config {path}: {name!r} is given twice (with - and with _)")
        values[name] = _config_value(path, key, value, flags[name])
    return values


def _config_value(path: str, key: Any, value: Any, flag: _Flag) -> Any:
    where = f"--config {path}: {key}: "
    expected = _EXPECTED.get(flag.kind, flag.kind.__name__)
    if value is None:
        if flag.optional:
            return None
        raise ValueError(f"{where}needs a value ({expected}, as {flag.option} takes)")
    if isinstance(value, (dict, list)):
        raise ValueError(f"{where}expected a single value ({expected}), got a {type(value).__name__}; write it as on "
                         f"the command line (e.g. a,b for a comma-separated list)")
    try:
        # The string the command line would carry, so the file converts exactly like the flag.
        typed = flag.kwargs["type"](str(value))
    except (TypeError, ValueError, argparse.ArgumentTypeError):
        raise ValueError(f"{where}{value!r} is not {expected} (as {flag.option} takes)") from None
    choices = flag.kwargs.get("choices")
    if choices is not None and typed not in choices:
        raise ValueError(f"{where}{value!r} is not one of {', '.join(map(str, choices))}")
    return typed


def parse_arguments(args: argparse.Namespace, groups: Sequence[Group],
                    defaults: Optional[Mapping[str, Any]] = None) -> tuple[Any, ...]:
    """The group dataclasses from command line > ``--config`` file > defaults, validated."""
    flags = _all_flags(groups, defaults or {})
    given = {k: v for k, v in vars(args).items() if k in flags}  # only flags typed on the command line
    config = getattr(args, "config", None)
    values = {**(defaults or {}), **(read_config(config, flags) if config else {}), **given}
    missing = [flag.option for name, flag in flags.items() if flag.required and name not in values]
    if missing:
        raise ValueError(f"{', '.join(missing)} required: pass {'it' if len(missing) == 1 else 'them'} on the command "
                         f"line or in --config")
    classes: list[Any] = [cls for cls, _ in groups]
    return tuple(HfArgumentParser(classes).parse_dict(values, allow_extra_keys=False))

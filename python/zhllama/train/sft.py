"""``zhllama sft``: LoRA instruction tuning on Alpaca-format data, prompt masked.

    zhllama sft --model chinese-llama-merged --train-file alpaca_zh.json --output-dir sft
    torchrun --nproc_per_node 8 -m zhllama.cli sft ... --deepspeed configs/ds_zero2.json

LoRA on q,k,v,o,gate,up,down (r=8, alpha=32, dropout 0.05) with ``embed_tokens`` and ``lm_head``
trained in full, as the report's Chinese-Alpaca. Needs the 49,954 tokenizer: batches are padded
with its ``[PAD]``.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from zhllama.train.args import (
    LORA_SFT_TARGETS,
    Group,
    LoraArguments,
    ModelArguments,
    RunArguments,
    _help,
    parse_arguments,
)
from zhllama.train.args import add_arguments as add_group_arguments

if TYPE_CHECKING:
    from torch.utils.data import Dataset

SFT_LR = 1e-4
TEMPLATES = ("alpaca", "chat")
LORA_DEFAULTS = {"lora_target": LORA_SFT_TARGETS}


@dataclass
class SftArguments:
    train_file: str = field(metadata=_help(
        "Alpaca data (.json list or .jsonl) of instruction/input/output records; comma-separated for several.",
        metavar="FILES"))
    validation_file: Optional[str] = field(default=None, metadata=_help(
        "Held-out Alpaca data for the eval loss (default: --validation-split-percentage of the training data).",
        metavar="FILES"))
    validation_split_percentage: float = field(default=0.0, metadata=_help(
        "Percent of the training records held out when no --validation-file is given."))
    max_seq_length: int = field(default=512, metadata=_help("Truncate prompt + response to this many tokens."))
    template: str = field(default="alpaca", metadata=_help(
        "Prompt format, shipped as the output's chat_template.jinja: 'alpaca' (the report's: instruction/input/"
        "output records, the Alpaca prompt) or 'chat' (multi-turn 'messages' (OpenAI role/content) or "
        "'conversations' (ShareGPT from/value) records rendered with the base tokenizer's own chat template; "
        "loss on assistant turns only).", choices=TEMPLATES))

    def __post_init__(self) -> None:
        if self.max_seq_length < 2:
            raise ValueError(f"--max-seq-length must be >= 2, got {self.max_seq_length}")
        if not 0 <= self.validation_split_percentage < 100:
            raise ValueError(f"--validation-split-percentage must be in [0, 100), "
                             f"got {self.validation_split_percentage}")


GROUPS: tuple[Group, ...] = ((SftArguments, "data"), (ModelArguments, "model"), (LoraArguments, "LoRA"),
                             (RunArguments, "training"))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_group_arguments(parser, GROUPS, LORA_DEFAULTS)


def parse(args: argparse.Namespace) -> tuple[SftArguments, ModelArguments, LoraArguments, RunArguments]:
    """The arguments of a run: command line, then ``--config``, then defaults (LoRA on all seven projections)."""
    return parse_arguments(args, GROUPS, LORA_DEFAULTS)


def require_pad(tokenizer) -> int:
    if tokenizer.pad_id is None:
        raise ValueError(f"the tokenizer {tokenizer.source} has no pad token; SFT pads batches with [PAD]: use the "
                         f"49,954-token tokenizer (`zhllama merge-vocab --pad-token [PAD]`) and a model resized to it")
    return tokenizer.pad_id


def run(args: argparse.Namespace) -> int:
    from zhllama.chat_template import CHAT_TEMPLATE_FILE
    from zhllama.model.identity import check_model_tokenizer
    from zhllama.model.loading import load_model
    from zhllama.tokenizer import Tokenizer
    from zhllama.train.fingerprint import files_with_sizes
    from zhllama.train.run_lock import lock_output_dir
    from zhllama.train.sft_data import InstructionDataset, PaddingCollator
    from zhllama.train.text_data import split_validation
    from zhllama.train.trainable import apply_lora
    from zhllama.train.trainer import fit, resolve_precision, setup_logging, start_run

    data, model_args, lora, run_args = parse(args)
    setup_logging()
    tokenizer = Tokenizer.from_pretrained(model_args.tokenizer_path)
    pad_id = require_pad(tokenizer)
    check_model_tokenizer(model_args.model, model_args.tokenizer_path, model_args.allow_mismatch)
    template = sft_template(data.template, tokenizer, model_args.tokenizer_path)
    files = data.train_file.split(",")
    validation = data.validation_file.split(",") if data.validation_file else []
    for f in files + validation:
        if not Path(f).is_file():
            raise FileNotFoundError(f"{f}: no such file")
    derived = {"train_files": files_with_sizes(files, expand=False),
               "validation_files": files_with_sizes(validation, expand=False)}
    with lock_output_dir(run_args.output_dir):
        start = start_run("sft", (data, model_args, lora, run_args), derived, run_args, model_args, SFT_LR,
                          has_eval=bool(validation) or data.validation_split_percentage > 0)
        if start is None:
            return 0
        chat = template if data.template == "chat" else None
        records = InstructionDataset(files, tokenizer, data.max_seq_length, chat)
        train_ds: Dataset = records
        eval_ds: Optional[Dataset]
        if validation:
            eval_ds = InstructionDataset(validation, tokenizer, data.max_seq_length, chat)
        else:
            train_ds, eval_ds = split_validation(records, data.validation_split_percentage, run_args.seed)
        model = load_model(model_args.model, len(tokenizer), resolve_precision(run_args.precision),
                           model_args.attn_implementation)
        model.config.pad_token_id = pad_id
        model = apply_lora(model, lora)
        # Attention FLOPs are counted at --max-seq-length, an upper bound for records that are shorter.
        fit(start, model, train_ds, eval_ds, PaddingCollator(pad_id), run_args, model_args, tokenizer,
            seq_len=data.max_seq_length, extra_metrics={"dropped_truncated_records": records.dropped,
                                                        "truncated_records": records.truncated})
        if is_main_process():  # after fit, which copied the base's tokenizer files (and template)
            (Path(run_args.output_dir) / CHAT_TEMPLATE_FILE).write_text(template, encoding="utf-8")
    return 0


def sft_template(kind: str, tokenizer, tokenizer_path: str) -> str:
    """The chat template a run trains on and ships: the Alpaca prompt with this tokenizer's BOS
    and EOS, or (``chat``) the base tokenizer's own, which must exist."""
    from zhllama.chat_template import alpaca_template, read_chat_template, special_tokens

    if kind == "alpaca":
        special = special_tokens(tokenizer)
        return alpaca_template(special["bos_token"], special["eos_token"])
    found = read_chat_template(tokenizer_path)
    if found is None:
        raise ValueError(f"--template chat: the tokenizer {tokenizer_path} has no chat template (chat_template.jinja "
                         f"or tokenizer_config.json's chat_template); use --template alpaca, or add the template "
                         f"the model should answer in")
    return found


def is_main_process() -> bool:
    import torch.distributed as dist

    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0

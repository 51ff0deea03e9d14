"""``zhllama pretrain --stage 1|2``: continued pretraining on Chinese text.

    zhllama pretrain --stage 1 --model llama-7b-zh-init --train-file corpus.txt --output-dir stage1
    zhllama pretrain --stage 2 --model stage1 --dataset-dir corpus_tok --output-dir stage2 \\
        --deepspeed configs/ds_zero2.json          # or under: torchrun --nproc_per_node 8 -m zhllama.cli ...

Stage 1 trains the (resized) embeddings only, the rest of the model frozen, so the new Chinese
rows catch up with the old ones without disturbing them: ``embed_tokens`` and, on an untied
model, the rows ``resize`` added to ``lm_head`` (its original rows stay bit-identical;
``--new-rows-only`` leaves the original rows of ``embed_tokens`` untouched too). Stage 2 adds
LoRA on the attention projections and trains ``embed_tokens`` and ``lm_head`` in full; its
output is an adapter (``adapter_model.safetensors``).
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from zhllama.train.args import (
    Group,
    LoraArguments,
    ModelArguments,
    RunArguments,
    _help,
    parse_arguments,
)
from zhllama.train.args import add_arguments as add_group_arguments

log = logging.getLogger("zhllama.train")

STAGE_LR = {1: 2e-4, 2: 1e-4}
MAX_EVAL_BLOCKS = 1000  # zhllama.train.text_data.MAX_EVAL_BLOCKS
PACKING_MODES = ("stream", "doc")  # zhllama.train.doc_packing.PACKING_MODES (that module imports torch)


@dataclass
class PretrainArguments:
    stage: int = field(metadata=_help("1: embeddings only; 2: LoRA(q,k,v,o) + embed_tokens + lm_head.", choices=(1, 2)))
    train_file: Optional[str] = field(default=None, metadata=_help(
        "Raw text to train on: .txt (a document a line) or .jsonl ('text' field); comma-separated for several.",
        metavar="FILES"))
    text_field: str = field(default="text", metadata=_help(
        "--train-file: the JSON field / Parquet column holding each document's text.", metavar="NAME"))
    on_bad_line: str = field(default="fail", metadata=_help(
        "--train-file: a malformed JSON line or a missing field stops the run naming file:line (fail), or is "
        "skipped and counted (skip).", choices=("fail", "skip")))
    dataset_dir: Optional[str] = field(default=None, metadata=_help(
        "Tokenized-corpus directory from `zhllama tokenize-corpus` (instead of --train-file).", metavar="DIR"))
    max_train_file_gib: float = field(default=1.0, metadata=_help(  # text_data.MAX_TRAIN_FILE_GIB
        "Refuse --train-file inputs larger than this many GiB in all (their tokens are held in memory, 4 bytes "
        "each); tokenize bigger corpora once with `zhllama tokenize-corpus` and pass --dataset-dir (memory-mapped). "
        "0: no limit."))
    block_size: int = field(default=512, metadata=_help("Tokens per training sequence (documents are packed)."))
    packing: str = field(default="stream", metadata=_help(
        "stream: blocks cut from the packed documents, attending across document boundaries (the reference "
        "script's group_texts); doc: position ids restart at each document and attention stays inside it "
        "(see zhllama.train.doc_packing; free with flash_attention_2, an explicit mask with sdpa/eager).",
        choices=PACKING_MODES))
    validation_split_percentage: float = field(default=1.0, metadata=_help(
        "Percent of the blocks held out for the eval loss (0: none), at most --max-eval-blocks."))
    max_eval_blocks: int = field(default=MAX_EVAL_BLOCKS, metadata=_help(
        "Hold out at most this many blocks: each evaluation (every --eval-steps) scores them all, and 1 %% of "
        "a 10^7-block corpus would be 10^5 blocks."))
    new_rows_only: bool = field(default=False, metadata=_help(
        "Update only the rows added by `zhllama resize` of the embedding (stage 1) or of the --modules-to-save "
        "copies (stage 2): the original rows stay bit-identical, so text the base already tokenized is scored by "
        "the base's rows and only LoRA can change it. Needs --weight-decay 0."))
    batch_rows_only: bool = field(default=False, metadata=_help(
        "Each step updates only the embedding rows (and untied lm_head rows) of the tokens in its batch: the "
        "softmax pushes every other output row down a little at every step, and Adam, which divides a gradient "
        "by its own size, turns that push into a full step, so rows of tokens not yet read drift from where "
        "`zhllama resize` put them. Like LazyAdam for the rows; the other tensors train as usual. Measured on "
        "SmolLM2 + extend-vocab: it helps short runs (the first ~40K tokens) and loses on longer ones, whose "
        "push-down also teaches that unread tokens are rare (docs/training.md)."))
    batch_rows_only_steps: int = field(default=0, metadata=_help(
        "With --batch-rows-only: apply it during the first N optimizer steps only, then let every row train "
        "(0: the whole run). A resumed run counts from the checkpoint's step."))
    lazy_base_rows: bool = field(default=False, metadata=_help(
        "Train every embedding row, but let an original row (below --base-vocab-size) move only at a step whose "
        "batch holds its token, while the rows `zhllama resize` added train at every step. Rows of text the "
        "corpus never shows (English on a Chinese corpus) stay bit-identical instead of drifting down with "
        "the softmax, and the base rows Chinese text does read (punctuation, the base's own characters and "
        "bytes) adapt, as they do without extension. Not with --new-rows-only; needs --weight-decay 0."))
    base_vocab_size: Optional[int] = field(default=None, metadata=_help(
        "Number of original rows (default: read from MODEL/resize.json): what --new-rows-only keeps, and in stage 1 "
        "where the added rows of an untied lm_head begin (they train; the original rows stay bit-identical)."))

    def __post_init__(self) -> None:
        if self.stage not in (1, 2):
            raise ValueError(f"--stage must be 1 or 2, got {self.stage}")
        if (self.train_file is None) == (self.dataset_dir is None):
            raise ValueError("pass exactly one of --train-file (raw text) or --dataset-dir (tokenized corpus)")
        if self.max_train_file_gib < 0:
            raise ValueError(f"--max-train-file-gib must be >= 0 (0: no limit), got {self.max_train_file_gib}")
        if self.block_size < 2:
            raise ValueError(f"--block-size must be >= 2, got {self.block_size}")
        if not 0 <= self.validation_split_percentage < 100:
            raise ValueError(f"--validation-split-percentage must be in [0, 100), "
                             f"got {self.validation_split_percentage}")
        if self.batch_rows_only_steps < 0:
            raise ValueError(f"--batch-rows-only-steps must be >= 0 (0: the whole run), "
                             f"got {self.batch_rows_only_steps}")
        if self.batch_rows_only_steps and not self.batch_rows_only:
            raise ValueError(f"--batch-rows-only-steps {self.batch_rows_only_steps} needs --batch-rows-only")
        if self.lazy_base_rows and self.new_rows_only:
            raise ValueError("--lazy-base-rows trains the original rows when their token is read; --new-rows-only "
                             "never trains them: pass one of the two")
        if self.max_eval_blocks < 1:
            raise ValueError(f"--max-eval-blocks must be >= 1, got {self.max_eval_blocks}")
        if self.packing not in PACKING_MODES:
            raise ValueError(f"--packing must be one of {', '.join(PACKING_MODES)}, got {self.packing!r}")

    @property
    def train_files(self) -> list[str]:
        return [f for f in (self.train_file or "").split(",") if f]

    @property
    def max_train_file_bytes(self) -> Optional[int]:
        return int(self.max_train_file_gib * 2**30) if self.max_train_file_gib > 0 else None


GROUPS: tuple[Group, ...] = ((PretrainArguments, "data and stage"), (ModelArguments, "model"),
                             (LoraArguments, "LoRA (stage 2)"), (RunArguments, "training"))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_group_arguments(parser, GROUPS)


def parse(args: argparse.Namespace) -> tuple[PretrainArguments, ModelArguments, LoraArguments, RunArguments]:
    """The arguments of a run: command line, then ``--config``, then defaults."""
    return parse_arguments(args, GROUPS)


def base_rows_of(model_dir: str, given: Optional[int]) -> Optional[int]:
    if given is not None:
        return given
    record = Path(model_dir) / "resize.json"
    if record.is_file():
        return int(json.loads(record.read_text())["base_vocab_size"])
    return None


def data_identity(data: PretrainArguments) -> dict:
    """The fingerprint's data fields: the raw files with their sizes, or the corpus manifest's sha256."""
    from zhllama.tokenizer.directory import sha256_file
    from zhllama.train.fingerprint import files_with_sizes

    if data.dataset_dir is not None:
        manifest = Path(data.dataset_dir) / "manifest.json"
        return {"dataset_manifest_sha256": sha256_file(manifest) if manifest.is_file() else None}
    return {"train_files": files_with_sizes(data.train_files)}


def run(args: argparse.Namespace) -> int:
    from transformers import default_data_collator

    from zhllama.model.identity import check_model_tokenizer
    from zhllama.model.loading import load_model
    from zhllama.model.tying import embeddings_tied
    from zhllama.tokenizer import Tokenizer
    from zhllama.train.run_lock import lock_output_dir
    from zhllama.train.text_data import (
        check_corpus_tokenizer,
        load_tokenized_corpus,
        split_validation,
        tokenize_once,
    )
    from zhllama.train.trainable import (
        apply_lora,
        train_batch_rows_only,
        train_embeddings_only,
        train_new_rows_only,
    )
    from zhllama.train.trainer import fit, resolve_precision, setup_logging, start_run

    data, model_args, lora, run_args = parse(args)
    for flag, on in (("--new-rows-only", data.new_rows_only), ("--lazy-base-rows", data.lazy_base_rows)):
        if on and run_args.weight_decay != 0:
            raise ValueError(f"{flag} needs --weight-decay 0 (got {run_args.weight_decay}): decay would move "
                             f"the original rows")
    setup_logging()
    check_model_tokenizer(model_args.model, model_args.tokenizer_path, model_args.allow_mismatch)
    if data.dataset_dir is not None and (Path(data.dataset_dir) / "manifest.json").is_file():
        check_corpus_tokenizer(data.dataset_dir, model_args.tokenizer_path)
    groups = (data, model_args, lora, run_args) if data.stage == 2 else (data, model_args, run_args)
    with lock_output_dir(run_args.output_dir):
        start = start_run("pretrain", groups, data_identity(data), run_args, model_args, STAGE_LR[data.stage],
                          has_eval=data.validation_split_percentage > 0)
        if start is None:
            return 0
        tokenizer = Tokenizer.from_pretrained(model_args.tokenizer_path)
        if data.dataset_dir is not None:
            dataset = load_tokenized_corpus(data.dataset_dir, data.block_size, run_args.seed)
        else:
            settings = start.fingerprint["settings"]
            dataset = tokenize_once(start.args, run_args.output_dir,
                                    {k: settings[k] for k in ("train_files", "tokenizer_sha256", "text_field",
                                                              "on_bad_line")},
                                    data.train_files, tokenizer, data.block_size, data.max_train_file_bytes,
                                    data.text_field, data.on_bad_line)
        train_ds, eval_ds = split_validation(dataset, data.validation_split_percentage, run_args.seed,
                                             data.max_eval_blocks)

        model = load_model(model_args.model, len(tokenizer), resolve_precision(run_args.precision),
                           model_args.attn_implementation)
        base_rows = (base_rows_of(model_args.model, data.base_vocab_size)
                     if data.new_rows_only or data.lazy_base_rows or data.stage == 1 else None)
        if data.stage == 1 and not embeddings_tied(model):
            if base_rows is not None and run_args.weight_decay != 0:
                raise ValueError(f"stage 1 trains only the added rows of the untied lm_head: --weight-decay "
                                 f"{run_args.weight_decay} would move its original rows; use --weight-decay 0")
            if base_rows is None:
                log.warning("stage 1: %s has no resize.json and no --base-vocab-size was given, so the rows "
                            "resize added to lm_head are unknown and lm_head stays frozen; pass --base-vocab-size "
                            "to train them", model_args.model)
        if data.stage == 1:
            train_embeddings_only(model, data.new_rows_only, base_rows)
        else:
            model = apply_lora(model, lora)
            if data.new_rows_only:
                train_new_rows_only(model, base_rows)
        callbacks = ([train_batch_rows_only(model, data.batch_rows_only_steps, all_rows=data.batch_rows_only,
                                            lazy_base=data.lazy_base_rows, base_rows=base_rows)]
                     if data.batch_rows_only or data.lazy_base_rows else [])
        collator: Callable[..., Any] = default_data_collator
        if data.packing == "doc":
            from zhllama.corpus.packing import Packing
            from zhllama.train.doc_packing import DocumentCollator

            corpus = getattr(dataset, "corpus", None)  # --dataset-dir: packed as its manifest says
            packing = Packing.of_corpus(corpus.manifest) if corpus is not None else Packing()
            collator = DocumentCollator(packing, tokenizer.bos_id, tokenizer.eos_id,
                                        flatten=model_args.attn_implementation == "flash_attention_2")
        fit(start, model, train_ds, eval_ds, collator, run_args, model_args, tokenizer,
            seq_len=data.block_size, extra_metrics={"stage": data.stage}, callbacks=callbacks)
    return 0

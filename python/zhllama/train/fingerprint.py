"""The run fingerprint, ``OUTPUT_DIR/zhllama-run.json``: what a checkpoint in that directory was made with.

Written when a run starts: every resolved argument, the tokenizer's sha256, the identity of the
data (the tokenized corpus's manifest sha256, or each raw file with its size), the base model's
weights digest, the world size and the zhllama/transformers/peft/deepspeed versions; and, when
the run ends, the step it finished at.

``--resume`` compares the new run's fingerprint with the recorded one. A difference in a field
of :data:`STRICT` (the data order: which blocks, in which order, how many a step; or the model's
shape: stage, LoRA, base weights, tokenizer) is refused, naming the field: the Trainer would skip
``global_step x batch`` samples of another order, or fail loading the checkpoint. A difference in
the learning-rate schedule (:data:`SCHEDULE`: ``--max-steps``, ``--num-train-epochs`` when it sets
the length, ``--warmup-ratio``, ``--lr-scheduler-type``) is refused too unless ``--reschedule`` is
given: the Trainer rebuilds the schedule from the new total at the resumed step, so a longer
``--max-steps`` would silently send a decayed cosine rate back up. With ``--reschedule`` that is the
documented continuation: the new schedule, evaluated from the resumed step on. ``--learning-rate``
cannot change at all (the checkpoint's optimizer and scheduler carry the old peak, so a new one
would be ignored). Any other difference (``--logging-steps``, ``--save-steps``...) is allowed and
logged.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import Any, Optional

from zhllama.train.checkpoints import write_json_atomic

log = logging.getLogger("zhllama.train")

FINGERPRINT = "zhllama-run.json"

# field -> what a change to it changes. Fields are dataclass field names (shown as --flags) or
# the derived entries of `derived_fields`.
STRICT: dict[str, str] = {
    **dict.fromkeys(("stage", "train_files", "dataset_manifest_sha256", "block_size", "packing", "text_field",
                     "on_bad_line", "validation_split_percentage", "max_eval_blocks", "validation_files",
                     "max_seq_length", "seed", "per_device_train_batch_size", "gradient_accumulation_steps",
                     "world_size", "tokenizer_sha256"), "data order"),
    **dict.fromkeys(("base_model_digest", "lora_rank", "lora_alpha", "lora_target", "modules_to_save",
                     "new_rows_only", "base_vocab_size", "deepspeed_zero_stage"), "model shape"),
    "embedding_learning_rate": "optimizer's parameter groups",
    **dict.fromkeys(("batch_rows_only", "batch_rows_only_steps", "lazy_base_rows"),
                   "which embedding rows each step updates"),
    # Restored from the checkpoint's optimizer and scheduler state: a new value would be ignored.
    "learning_rate": "peak learning rate, which the checkpoint's optimizer and scheduler restore",
}
# Fields that set the learning-rate schedule: a change needs --reschedule (see the module docstring).
SCHEDULE = ("max_steps", "num_train_epochs", "warmup_ratio", "lr_scheduler_type")
_LABELS = {"train_files": "the --train-file files (path, size)", "validation_files": "the --validation-file files",
           "dataset_manifest_sha256": "the --dataset-dir manifest's sha256",
           "tokenizer_sha256": "the tokenizer's sha256", "base_model_digest": "the --model weights' digest",
           "world_size": "the number of processes (WORLD_SIZE)",
           "deepspeed_zero_stage": "the DeepSpeed ZeRO stage"}


def label(name: str) -> str:
    return _LABELS.get(name, "--" + name.replace("_", "-"))


def files_with_sizes(paths: list[str], expand: bool = True) -> list[list[Any]]:
    """``[path, size]`` of each file (``expand``: of each file the inputs name, as the corpus reader expands them)."""
    from zhllama.documents import expand_inputs

    files = expand_inputs(paths) if expand else [os.path.abspath(p) for p in paths]
    return [[f, os.path.getsize(f)] for f in files]


def versions() -> dict[str, Optional[str]]:
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, Optional[str]] = {}
    for name in ("zhllama", "torch", "transformers", "peft", "deepspeed"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def zero_stage(config: Optional[str]) -> Optional[int]:
    import json

    if config is None:
        return None
    return int(json.loads(Path(config).read_text(encoding="utf-8")).get("zero_optimization", {}).get("stage", 0))


def build(verb: str, groups: tuple[Any, ...], derived: dict[str, Any]) -> dict[str, Any]:
    """The fingerprint of a run: ``verb``, the argument dataclasses' fields and ``derived`` ones."""
    settings: dict[str, Any] = {}
    for group in groups:
        settings.update(dataclasses.asdict(group))
    settings.update(derived)
    settings["world_size"] = int(os.environ.get("WORLD_SIZE", "1"))
    return {"verb": verb, "settings": settings, "versions": versions()}


def read(out: str | os.PathLike[str]) -> Optional[dict[str, Any]]:
    import json

    path = Path(out) / FINGERPRINT
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def write(out: str | os.PathLike[str], fingerprint: dict[str, Any]) -> None:
    write_json_atomic(Path(out) / FINGERPRINT, fingerprint)


def _json_form(value: Any) -> Any:
    """``value`` as it reads back from the JSON file (tuples become lists)."""
    import json

    return json.loads(json.dumps(value))


def check_resume(out: str | os.PathLike[str], new: dict[str, Any]) -> None:
    """Refuse resuming the run recorded in ``out`` with settings that change its data order or model shape."""
    old = read(out)
    if old is None:
        log.warning("%s has no %s (a run of an older zhllama): resuming without checking its settings", out,
                    FINGERPRINT)
        return
    where = Path(out) / FINGERPRINT
    if old.get("verb") != new["verb"]:
        raise ValueError(f"--resume: {where} records a `zhllama {old.get('verb')}` run, this is `zhllama "
                         f"{new['verb']}`; resume it with the same verb, or use another --output-dir")
    was, now = old.get("settings", {}), _json_form(new["settings"])
    for name in sorted(set(was) | set(now)):
        a, b = was.get(name), now.get(name)
        if a == b or (name == "num_train_epochs" and _sets_by_steps(was) and _sets_by_steps(now)):
            continue
        if name not in was and b in (None, False, 0):
            continue  # an option a later zhllama added, left off: the run being resumed had it off too
        if name in SCHEDULE and not now.get("reschedule"):
            raise ValueError(f"--resume: {label(name)} was {a!r} in the run being resumed ({where}) but is {b!r} now; "
                             f"that changes the learning-rate schedule mid-run: pass {label(name)} {_flag_value(a)}"
                             f" as before, or add --reschedule to continue on the schedule the new value gives "
                             f"(the rate jumps to its value at the resumed step)")
        if name in SCHEDULE:
            log.warning("--resume --reschedule: %s changed from %r to %r; the learning-rate schedule is recomputed "
                        "over the new total and continues from the resumed step", label(name), a, b)
            continue
        if name in STRICT:
            raise ValueError(f"--resume: {label(name)} was {a!r} in the run being resumed ({where}) but is {b!r} now; "
                             f"that changes the {STRICT[name]}, so the checkpoint cannot continue this run: pass the "
                             f"same value, or start a new run in another --output-dir")
        log.info("--resume: %s changed from %r to %r (allowed: it changes neither the data order nor the model)",
                 label(name), a, b)


def _sets_by_steps(settings: dict[str, Any]) -> bool:
    """--max-steps > 0 sets the run's length, so --num-train-epochs is ignored."""
    return int(settings.get("max_steps") or -1) > 0


def _flag_value(value: Any) -> str:
    return "" if value is None else str(value)


def finished_at(out: str | os.PathLike[str]) -> Optional[dict[str, Any]]:
    """The record of the run's end (``{"global_step", "max_steps", ...}``) when it finished, else None."""
    fp = read(out)
    return fp.get("finished") if fp else None


def mark_finished(out: str | os.PathLike[str], global_step: int, settings: dict[str, Any]) -> None:
    fp = read(out) or {}
    fp["finished"] = {"global_step": global_step, "max_steps": settings.get("max_steps"),
                      "num_train_epochs": settings.get("num_train_epochs")}
    write(out, fp)

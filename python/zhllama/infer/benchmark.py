"""``zhllama eval --tasks``: C-Eval, CMMLU (any lm-evaluation-harness task) with exact tokenization.

    zhllama eval --model chinese-llama-7b --preset ceval            # C-Eval valid, 5-shot
    zhllama eval --model chinese-llama-7b --tasks cmmlu --num-fewshot 5 --output cmmlu.json

Runs lm-eval's ``simple_evaluate`` with the ``zhllama`` backend (``zhllama.infer.harness``) and
writes lm-eval's results JSON plus a markdown table beside it (same name, ``.md``): tasks ×
metrics, headed by what makes the number reproducible — the prompt format of each task, the
few-shot count and sampler, the lm-eval version, the tokenizer's sha256, model and adapter.
Numbers from threads that do not reproduce differ in exactly these settings.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger("zhllama.eval")

# The settings the Chinese-LLaMA-Alpaca reports use, over lm-eval's task definitions (prompt
# "{question}\nA. …\nD. …\n答案：", choices " A".." D" scored by loglikelihood, first-n few-shot
# examples from the dev split).
PRESETS: dict[str, tuple[str, int]] = {
    "ceval": ("ceval-valid", 5),
    "ceval-zeroshot": ("ceval-valid", 0),
    "cmmlu": ("cmmlu", 5),
}


def add_task_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("benchmarks (lm-evaluation-harness; needs `pip install zhllama[eval]`)")
    g.add_argument("--tasks", default=None,
                   help="Comma-separated lm-eval tasks or groups (ceval-valid, cmmlu, ...); "
                        "replaces --text-file.")
    g.add_argument("--preset", choices=sorted(PRESETS), default=None,
                   help="Reported settings: ceval = C-Eval valid 5-shot, ceval-zeroshot = 0-shot, "
                        "cmmlu = CMMLU 5-shot.")
    g.add_argument("--num-fewshot", type=int, default=None,
                   help="Few-shot examples per question (default: the task's).")
    g.add_argument("--limit", type=float, default=None,
                   help="Only the first N documents of each task (a fraction if < 1); results are then not comparable.")
    g.add_argument("--include-path", default=None, help="Directory of extra task YAMLs (as lm-eval's --include_path).")
    g.add_argument("--batch-size", default="1", help="Batch size (an integer, or 'auto').")


def resolve_tasks(args: argparse.Namespace) -> tuple[list[str], int | None]:
    """(task names, few-shot count) from ``--preset``/``--tasks``/``--num-fewshot``."""
    tasks = [t.strip() for t in (args.tasks or "").split(",") if t.strip()]
    fewshot = args.num_fewshot
    if args.preset is not None:
        if tasks:
            raise ValueError(f"--preset {args.preset} names its own tasks; drop --tasks {args.tasks}")
        task, preset_shots = PRESETS[args.preset]
        tasks = [task]
        if fewshot is not None and fewshot != preset_shots:
            raise ValueError(f"--preset {args.preset} is {preset_shots}-shot; "
                             f"drop --num-fewshot {fewshot} or the preset")
        fewshot = preset_shots
    if not tasks:
        raise ValueError(f"--tasks {args.tasks!r} names no task; e.g. --tasks ceval-valid,cmmlu")
    if fewshot is not None and fewshot < 0:
        raise ValueError(f"--num-fewshot must be >= 0, got {fewshot}")
    if args.limit is not None and args.limit <= 0:
        raise ValueError(f"--limit must be > 0, got {args.limit}")
    return tasks, fewshot


def prompt_formats(results: dict[str, Any]) -> list[tuple[str, str]]:
    """(tasks, format) rows: the prompt format shared by each set of tasks (C-Eval's 52 subjects share one)."""
    formats: dict[str, list[str]] = {}
    for task, cfg in sorted(results.get("configs", {}).items()):
        fewshot = cfg.get("fewshot_config") or {}
        fields = {k: cfg.get(k) for k in ("doc_to_text", "doc_to_choice", "target_delimiter", "fewshot_delimiter",
                                          "output_type")}
        fields["fewshot_sampler"] = fewshot.get("sampler")
        formats.setdefault(json.dumps(fields, ensure_ascii=False, default=str), []).append(task)
    rows = []
    for shape, tasks in formats.items():
        label = tasks[0] if len(tasks) == 1 else f"{tasks[0]} … {tasks[-1]} ({len(tasks)} tasks)"
        rows.append((label, shape))
    return rows


def markdown_report(results: dict[str, Any]) -> str:
    from lm_eval.utils import make_table

    config = results.get("config", {})
    shots = sorted({str(v) for v in results.get("n-shot", {}).values()})
    lines = ["# lm-evaluation-harness results (zhllama backend)", "",
             "| setting | value |", "|---|---|",
             f"| model | `{config.get('model_path')}` |",
             f"| LoRA adapter | `{config.get('lora')}` |",
             f"| tokenizer | `{config.get('tokenizer')}` ({config.get('tokenizer_class')}) |",
             f"| tokenizer sha256 | `{config.get('tokenizer_sha256')}` |",
             f"| few-shot | {', '.join(shots) or 'task default'} |",
             f"| limit | {config.get('limit')} |",
             f"| dtype | {config.get('model_dtype')} |",
             f"| lm-eval version | {results.get('lm_eval_version')} |",
             f"| transformers version | {results.get('transformers_version')} |",
             "", "## Prompt format", ""]
    for label, shape in prompt_formats(results):
        lines += [f"- {label}: `{shape}`"]
    lines += ["", "## Results", "", make_table(results).strip()]
    if results.get("groups"):
        lines += ["", make_table(results, "groups").strip()]
    return "\n".join(lines) + "\n"


def run_tasks(args: argparse.Namespace) -> int:
    """Run lm-eval on ``--tasks`` with the zhllama backend; write the JSON and the table."""
    tasks, fewshot = resolve_tasks(args)
    try:
        from lm_eval import evaluator
        from lm_eval.tasks import TaskManager
        from lm_eval.utils import handle_non_serializable

        import zhllama.infer.harness  # noqa: F401  (registers the "zhllama" backend)
    except ImportError as e:
        raise ValueError(f"--tasks needs lm-evaluation-harness ({e}); "
                         "install it with `pip install zhllama[eval]`") from e
    if args.include_path is not None and not Path(args.include_path).is_dir():
        raise FileNotFoundError(f"--include-path {args.include_path}: no such directory of task YAMLs")
    manager = TaskManager(include_path=args.include_path)
    unknown = [t for t in tasks if t not in manager.all_tasks]
    if unknown:
        raise ValueError(f"--tasks: unknown lm-eval task(s) {', '.join(unknown)}; list them with `lm-eval ls tasks`, "
                         f"or add local YAMLs with --include-path")
    model_args = {k: v for k, v in {"pretrained": args.model, "lora": args.lora, "tokenizer": args.tokenizer,
                                    "dtype": args.dtype}.items() if v is not None}
    results = evaluator.simple_evaluate(model="zhllama", model_args=model_args, tasks=tasks, num_fewshot=fewshot,
                                        limit=args.limit, batch_size=args.batch_size, device=args.device,
                                        task_manager=manager, log_samples=False)
    if results is None:  # a non-zero rank under accelerate: rank 0 writes
        return 0
    out = Path(args.output or "lm_eval_results.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=handle_non_serializable, ensure_ascii=False) + "\n",
                   encoding="utf-8")
    table = markdown_report(results)
    out.with_suffix(".md").write_text(table, encoding="utf-8")
    print(table)
    log.info("wrote %s and %s", out, out.with_suffix(".md"))
    return 0

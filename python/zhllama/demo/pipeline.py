"""The demo's step runner, shared by both bases: each step's completion marker is keyed by what it
was made with, so a rerun reuses exactly the steps whose settings and inputs are unchanged.

A step declares (:class:`Step`) the settings it reads, the steps whose outputs it reads, and the
paths it writes. Its key is the sha256 of the demo's kind, those settings' values and the keys of
those steps. A marker ``OUT/.done/STEP.json`` holds the key and the facts the step reported; the
step is reused only when the marker's key equals the key now. Otherwise (another base, ``--quick``
then a full run, another ``--vocab-size``...) its outputs are deleted and it runs again, and so,
their keys having changed with it, does every step that reads it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable, ClassVar, Optional, TypeVar, Union

# A command-line argument before str(): flag names, paths, numbers.
CliArg = Union[str, "os.PathLike[str]", int, float]
T = TypeVar("T", bound="Training")

# zhllama generate's own sampling defaults (the report's: temperature 0.2, top-k 40, top-p 0.9,
# repetition penalty 1.3), 40 new tokens, seed 0.
GENERATE: tuple[CliArg, ...] = ("--max-new-tokens", 40, "--seed", 0)
GENERATE_LABEL = "zhllama generate's defaults: temperature 0.2, top-k 40, top-p 0.9, repetition penalty 1.3; " \
                 "40 new tokens, seed 0"
MARKERS = ".done"


@dataclasses.dataclass(frozen=True)
class Training:
    """Stage 2 (LoRA + embeddings + head) and SFT sizes, shared by both demos. ``--steps`` sets
    the stage-2 steps and scales the fields named in ``SCALED`` alike."""

    SCALED: ClassVar[tuple[str, ...]] = ("sft_steps",)

    steps: int
    batch: int
    block: int
    stage2_lr: float
    sft_steps: int
    sft_records: int
    sft_lr: float

    def scaled(self: T, steps: Optional[int]) -> T:
        """The same settings with ``steps`` stage-2 steps and the ``SCALED`` fields scaled alike."""
        if not steps:
            return self
        k = steps / self.steps
        return dataclasses.replace(self, steps=steps,
                                   **{f: max(1, round(getattr(self, f) * k)) for f in self.SCALED})


@dataclasses.dataclass(frozen=True)
class Step:
    """What one step is made of: ``settings`` (fields of the demo's settings it reads), ``after``
    (the steps whose outputs or facts it reads) and ``outputs`` (paths under ``--out`` it writes,
    deleted before it runs again)."""

    settings: tuple[str, ...] = ()
    after: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()


class Pipeline:
    """Runs ``STEPS`` in order, each unless its marker's key matches; subclasses hold the steps."""

    KIND: ClassVar[str]
    STEPS: ClassVar[dict[str, Step]]

    def __init__(self, out: str | os.PathLike[str], settings: Training, quick: bool, threads: int,
                 force: bool) -> None:
        self.out = Path(out).resolve()
        self.settings = settings
        self.quick = quick
        self.threads = threads
        self.force = force
        self.facts: dict[str, Any] = {}
        self.keys: dict[str, str] = {}
        self.t0 = time.perf_counter()
        self.out.mkdir(parents=True, exist_ok=True)

    def path(self, *parts: str) -> Path:
        return self.out.joinpath(*parts)

    def step_settings(self, name: str) -> dict[str, Any]:
        """What step ``name`` is made with besides its inputs (subclasses add what is not a setting)."""
        return {"kind": self.KIND, **{f: getattr(self.settings, f) for f in self.STEPS[name].settings}}

    def key(self, name: str) -> str:
        made_of = {"settings": self.step_settings(name), "after": {a: self.keys[a] for a in self.STEPS[name].after}}
        return hashlib.sha256(json.dumps(made_of, sort_keys=True, default=str).encode()).hexdigest()

    def step(self, name: str, fn: Callable[[], Optional[dict]]) -> None:
        """Run one step unless its marker records the same key; keep what it reports."""
        marker = self.path(MARKERS, name + ".json")
        i, n = list(self.STEPS).index(name) + 1, len(self.STEPS)
        key = self.keys[name] = self.key(name)
        old = json.loads(marker.read_text()) if marker.is_file() else {}
        if old.get("key") == key and not self.force:
            self.facts.update(old["facts"])
            print(f"[{i:2}/{n}] {name}: done already (reused)", flush=True)
            return
        why = "" if not old or self.force else " (its settings or inputs changed: redone)"
        marker.unlink(missing_ok=True)
        self._delete_outputs(self.STEPS[name].outputs)
        t = time.perf_counter()
        print(f"[{i:2}/{n}] {name} ...{why}", flush=True)
        facts = fn() or {}
        facts[f"seconds.{name}"] = time.perf_counter() - t  # kept with the step: a rerun still knows it
        self.facts.update(facts)
        marker.parent.mkdir(exist_ok=True)
        marker.write_text(json.dumps({"key": key, "settings": self.step_settings(name),
                                      "outputs": list(self.STEPS[name].outputs), "facts": facts},
                                     ensure_ascii=False, default=str))
        print(f"[{i:2}/{n}] {name}: {time.perf_counter() - t:.1f}s", flush=True)

    def _delete_outputs(self, outputs: tuple[str, ...]) -> None:
        """Delete ``outputs``, and the marker of any step (of either demo) with an output among them or
        inside one: a step of another base may have written the same directory, and its marker must
        not outlive it. (A file a later step writes into an earlier step's directory, like SFT's
        records in corpus/, does not undo the earlier step.)"""
        parts = [Path(o).parts for o in outputs]

        def overlaps(other: str) -> bool:
            q = Path(other).parts
            return any(q[:len(p)] == p for p in parts)

        for marker in sorted(self.path(MARKERS).glob("*.json")):
            recorded = json.loads(marker.read_text()).get("outputs", [])
            if any(overlaps(o) for o in recorded):
                marker.unlink()
        for out in outputs:
            target = self.path(out)
            if target.is_dir():
                shutil.rmtree(target)
            else:
                target.unlink(missing_ok=True)

    def cli(self, *argv: CliArg) -> None:
        """Run ``zhllama ARGV...`` in this process; paths and numbers are passed as their text."""
        from zhllama.cli import main

        rc = main([str(a) for a in argv])
        if rc != 0:
            raise RuntimeError(f"zhllama {argv[0]} failed with exit code {rc}")

    def _trained(self, out: str) -> dict:
        """A finished training step's losses; its ``checkpoint-*`` folders (the Trainer's last save, with the
        optimizer state: as large again as the adapter and the model's trainable rows) are removed, since the
        adapter in ``out`` is the result and a finished step is never resumed (a rerun reuses it or starts over)."""
        for ckpt in self.path(out).glob("checkpoint-*"):
            shutil.rmtree(ckpt)
        m = json.loads(self.path(out, "zhllama_metrics.json").read_text())
        return {f"{out}_train_loss": m.get("train_loss"), f"{out}_eval_loss": m.get("eval_loss")}

    def report(self, seconds: float) -> Path:
        raise NotImplementedError

    def run(self) -> Path:
        for name in self.STEPS:
            self.step(name, getattr(self, name.replace("-", "_")))
        report = self.report(time.perf_counter() - self.t0)
        print()
        print(report.read_text(encoding="utf-8"))
        return report

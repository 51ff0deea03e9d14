"""Makes ``lm_eval run --model zhllama ...`` work: registers zhllama's lm-eval backend in lm-eval.

lm-eval 0.4 finds models only in its in-process registry (it reads no plugin entry points), so
the wheel ships ``zhllama-lm-eval.pth``, whose one line imports this module at interpreter start.
That costs a module of plain Python: nothing of zhllama, torch or lm-eval is imported here. The
module puts a finder on ``sys.meta_path`` that does nothing until ``lm_eval.models`` is imported
(lm-eval imports it to fill its registry before the first model lookup); right after that
module has run, ``zhllama`` is registered as a lazy target, ``zhllama.infer.harness:ZhllamaLM``,
so the backend (and torch) are imported only when a run asks for ``--model zhllama``. Without
lm-eval installed the finder never fires. Every error is swallowed: this must never break
Python's start-up or lm-eval.
"""

import sys

# No typing or __future__ import: this runs at every interpreter start (names only for mypy).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Optional

NAME = "zhllama"
TARGET = "zhllama.infer.harness:ZhllamaLM"
# Watched rather than lm_eval.api.registry: lm-eval's get_model imports lm_eval.models (which
# registers its built-in backends) only while the registry is empty, so an entry made before
# that would hide `--model hf` and the rest.
WATCHED = "lm_eval.models"


def register() -> None:
    """Register ``zhllama`` (lazily) in lm-eval's model registry, unless a ``zhllama`` is there."""
    try:
        from lm_eval.api.registry import model_registry

        if NAME not in model_registry:
            model_registry.register(NAME, target=TARGET)
    except Exception:
        pass


class _RegisterAfter:
    """The loader of the watched module, wrapped: runs it, then :func:`register`."""

    def __init__(self, loader: "Any") -> None:
        self._loader = loader

    def create_module(self, spec: "Any") -> "Any":
        return self._loader.create_module(spec)

    def exec_module(self, module: "Any") -> None:
        self._loader.exec_module(module)
        register()

    def __getattr__(self, name: str) -> "Any":  # get_source, get_resource_reader, ...
        return getattr(self._loader, name)


class Finder:
    """A ``sys.meta_path`` finder that answers only for the watched module, once."""

    def find_spec(self, fullname: str, path: "Any" = None, target: "Any" = None) -> "Optional[Any]":
        if fullname != WATCHED:
            return None
        try:
            for finder in sys.meta_path:
                if finder is self or not hasattr(finder, "find_spec"):
                    continue
                spec = finder.find_spec(fullname, path, target)
                if spec is not None:
                    if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                        spec.loader = _RegisterAfter(spec.loader)  # type: ignore[assignment]
                    return spec
        except Exception:
            pass
        return None


def install() -> None:
    """Put the finder on ``sys.meta_path`` (once); register now if lm-eval's models are loaded."""
    try:
        if WATCHED in sys.modules:
            register()
        elif not any(isinstance(f, Finder) for f in sys.meta_path):
            sys.meta_path.insert(0, Finder())
    except Exception:
        pass


install()

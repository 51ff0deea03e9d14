"""Which install extra brings a missing package: the CLI's one-line report of an ImportError.

The extras are read from zhllama's installed metadata (``pyproject.toml``'s
``[project.optional-dependencies]``), or from ``pyproject.toml`` itself in a source tree, so the
message never drifts from what ``pip install 'zhllama[EXTRA]'`` installs.
"""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path
from typing import Optional

# Import names whose distribution is named otherwise (after PEP 503 normalization).
DISTRIBUTIONS = {"llama_cpp": "llama-cpp-python"}
_NAME = re.compile(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
_EXTRA = re.compile(r"""extra\s*==\s*['"]([^'"]+)['"]""")


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirements() -> list[str]:
    """zhllama's requirements as ``Requires-Dist`` lines (``NAME>=X; extra == "EXTRA"``)."""
    try:
        return metadata.requires("zhllama") or []
    except metadata.PackageNotFoundError:
        pass
    try:  # a source tree: python/zhllama/ -> pyproject.toml
        import tomllib  # type: ignore[import-not-found,unused-ignore]  # Python >= 3.11

        project = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())["project"]
    except (ImportError, OSError, ValueError, KeyError):
        return []
    reqs = list(project.get("dependencies", []))
    for extra, items in project.get("optional-dependencies", {}).items():
        reqs += [f'{r}; extra == "{extra}"' for r in items]
    return reqs


def missing_module(e: BaseException) -> Optional[str]:
    """The top-level name of the module whose absence caused ``e`` (itself or a cause), if known."""
    seen: set[int] = set()
    x: Optional[BaseException] = e
    while x is not None and id(x) not in seen:
        seen.add(id(x))
        if isinstance(x, ModuleNotFoundError) and x.name:
            return x.name.split(".")[0]
        x = x.__cause__ or x.__context__
    return None


def install_hint(module: str) -> str:
    """What to install for ``module``: the first extra that lists its distribution, else the distribution."""
    dist = DISTRIBUTIONS.get(module, module)
    for req in requirements():
        m = _NAME.match(req)
        if m is None or _normalize(m.group(1)) != _normalize(dist):
            continue
        extra = _EXTRA.search(req)
        if extra is None:  # a core dependency: a broken install
            return f"pip install --force-reinstall zhllama (it needs {m.group(1)})"
        return f"pip install 'zhllama[{extra.group(1)}]'"
    return f"pip install {dist}"


def import_error_hint(e: ImportError) -> str:
    """`` (the 'X' package is missing: pip install ...)`` when a missing package caused ``e``, else ``""``."""
    module = missing_module(e)
    return "" if module is None else f" (the {module!r} package is missing: {install_hint(module)})"

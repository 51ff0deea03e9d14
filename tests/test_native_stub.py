"""python/zhllama/_native.pyi declares exactly what the compiled module exports."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import zhllama
from zhllama import _native

STUB = Path(zhllama.__file__).parent / "_native.pyi"


def _stub_names() -> dict[str, set[str]]:
    tree = ast.parse(STUB.read_text(encoding="utf-8"))
    out: dict[str, set[str]] = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            out[node.name] = {n.name for n in node.body if isinstance(n, ast.FunctionDef)}
        elif isinstance(node, ast.FunctionDef):
            out[node.name] = set()
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            out[node.target.id] = set()
    return out


def test_stub_matches_module():
    stub = _stub_names()
    module = {n for n in dir(_native) if not n.startswith("_")} | {"__version__"}
    assert set(stub) - module == set(), "declared in _native.pyi but missing from the module"
    assert module - set(stub) == set(), "exported by _native but not declared in _native.pyi"
    for name, members in stub.items():
        obj = getattr(_native, name)
        if inspect.isclass(obj) and not issubclass(obj, BaseException):
            public = {m for m in dir(obj) if not m.startswith("_")}
            declared = {m for m in members if not m.startswith("_")}
            assert declared - public == set(), f"{name}: declared but missing"
            assert public - declared == set(), f"{name}: exported but not declared"

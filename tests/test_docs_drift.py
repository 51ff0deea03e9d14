"""The docs cannot drift from the code.

- Every ``zhllama VERB --flag`` written in README.md and docs/ (code blocks and inline code; also
  ``python -m zhllama VERB``, ``-m zhllama.cli VERB`` and inline code that starts with a verb, such
  as ``pretrain --new-rows-only``) names a verb of ``zhllama.cli.VERBS`` and flags its parser
  defines, spelled in full.
- The README's Python snippets run, doctest style, on the tiny fixtures: a merged tokenizer built
  from the LLaMA tokenizer and the Chinese model (or their stand-ins), and a corpus tokenized from
  People's Daily.
"""

from __future__ import annotations

import argparse
import doctest
import functools
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted(p for p in (ROOT / "docs").rglob("*.md") if "hooks" not in p.parts)]
FENCE = re.compile(r"^(`{3,}|~{3,})[ \t]*([\w+-]*)[^\n]*\n(.*?)^\1\s*$", re.M | re.S)
INLINE = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")
# What introduces a zhllama command inside a line of code.
LAUNCHER = re.compile(r"(?:^|(?<=[\s;&|(]))(?:zhllama|python3? -m zhllama(?:\.cli)?|-m zhllama\.cli)\s+(?=[a-zA-Z])")
# Where a command ends: shell operators, a comment.
ENDS = {"&&", "||", ";", "|", "#", ")"}
NOT_SHELL = {"python", "py", "pycon", "yaml", "yml", "json", "toml", "jinja", "jinja2"}


@dataclass(frozen=True)
class Use:
    """One ``zhllama VERB [--flag ...]`` written in a doc."""

    where: str  # FILE:LINE
    verb: str
    flags: tuple[str, ...]


@functools.lru_cache(maxsize=1)
def parsers() -> dict[str, argparse.ArgumentParser]:
    from zhllama.cli import build_parser

    root = build_parser(only=None)
    sub = next(a for a in root._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def _words(command: str) -> list[str]:
    try:
        words = shlex.split(command, comments=False, posix=True)
    except ValueError:  # an unbalanced quote in prose: fall back to whitespace
        words = command.split()
    out = []
    for w in words:
        if w in ENDS or w.startswith("#"):
            break
        out.append(w)
    return out


def _uses_in(text: str, where: str, verbs: set[str], inline: bool) -> list[Use]:
    """The zhllama commands in one line (or inline code span) of code."""
    uses = []
    starts = [m.end() for m in LAUNCHER.finditer(text)]
    first = text.split(maxsplit=1)[0] if text.strip() else ""
    if inline and first in verbs:  # `pretrain --new-rows-only`
        starts.append(len(text) - len(text.lstrip()))
    for start in starts:
        words = _words(text[start:])
        if not words:
            continue
        verb = words[0]
        if not re.fullmatch(r"[a-z][a-z0-9-]*", verb):  # a placeholder such as VERB, or `zhllama.Tokenizer`
            continue
        flags = tuple(w.split("=", 1)[0] for w in words[1:] if re.match(r"--[a-zA-Z]", w))
        if verb in verbs or flags:
            uses.append(Use(where, verb, flags))
    return uses


def collect(text: str, name: str, verbs: set[str]) -> list[Use]:
    """Every zhllama command written in a markdown text."""
    uses: list[Use] = []
    spans = []
    for m in FENCE.finditer(text):
        spans.append((m.start(), m.end()))
        if m.group(2).lower() in NOT_SHELL:
            continue
        body_line = text.count("\n", 0, m.start(3)) + 1
        # Join continuation lines (`\` at the end) into one command, keeping the first line's number.
        joined: list[tuple[int, str]] = []
        continued = False
        for i, line in enumerate(m.group(3).split("\n")):
            line = re.sub(r"^\s*\$\s+", "", line)  # a shell prompt
            command = line.rstrip().removesuffix("\\")
            if continued:
                joined[-1] = (joined[-1][0], joined[-1][1] + " " + command)
            else:
                joined.append((body_line + i, command))
            continued = line.rstrip().endswith("\\")
        for lineno, line in joined:
            uses += _uses_in(line, f"{name}:{lineno}", verbs, inline=False)
    for m in INLINE.finditer(text):
        if any(a <= m.start() < b for a, b in spans):
            continue
        uses += _uses_in(m.group(1), f"{name}:{text.count(chr(10), 0, m.start()) + 1}", verbs, inline=True)
    return uses


def problems(uses: list[Use]) -> list[str]:
    """What in ``uses`` the parsers do not accept: unknown verbs, unknown or abbreviated flags."""
    found = parsers()
    out = []
    for use in uses:
        parser = found.get(use.verb)
        if parser is None:
            out.append(f"{use.where}: `zhllama {use.verb}`: no such verb (known: {', '.join(found)})")
            continue
        options = {o for a in parser._actions for o in a.option_strings}
        for flag in use.flags:
            if flag not in options:
                out.append(f"{use.where}: `zhllama {use.verb} {flag}`: the parser has no {flag}")
    return out


def all_uses() -> list[Use]:
    verbs = set(parsers())
    uses = []
    for path in DOCS:
        uses += collect(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)), verbs)
    return uses


def test_every_documented_flag_exists() -> None:
    uses = all_uses()
    assert len({u.verb for u in uses}) >= 10, "the collector found almost no commands: is it broken?"
    assert sum(len(u.flags) for u in uses) >= 100
    bad = problems(uses)
    assert not bad, "documented commands the parser rejects:\n" + "\n".join(bad)


def test_every_verb_is_documented() -> None:
    """Every verb appears as a command in README.md or a guide (the CLI reference is generated)."""
    missing = set(parsers()) - {u.verb for u in all_uses()}
    assert not missing, f"verbs no guide shows: {sorted(missing)}"


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        ("```bash\nzhllama resize --model m/ --no-such-flag 3 --out o/\n```\n", "the parser has no --no-such-flag"),
        ("Run `zhllama tokenize-corpus --tokenizer t/ --thread 4`.\n", "the parser has no --thread"),  # abbreviation
        ("Stage 2 with `pretrain --new-rows-onyl`.\n", "the parser has no --new-rows-onyl"),
        ("```bash\ntorchrun --nproc_per_node 8 -m zhllama.cli sft ... \\\n    --deepspeeed ds.json\n```\n",
         "the parser has no --deepspeeed"),
        ("```\n$ python -m zhllama export-ggml m/ o.gguf --type f16\n```\n", "no such verb"),
    ],
)
def test_a_wrong_flag_is_caught(doc: str, expected: str) -> None:
    bad = problems(collect(doc, "doc.md", set(parsers())))
    assert len(bad) == 1 and expected in bad[0], bad


def test_right_flags_and_other_tools_pass() -> None:
    doc = (
        "```bash\nzhllama resize --model m/ --tokenizer t/ --out o/  # --not-a-flag in a comment\n"
        "lm_eval run --model zhllama --model_args pretrained=x --tasks cmmlu\n"
        "pip install 'zhllama[eval]' && zhllama eval --model m/ --text-file h.txt\n```\n"
        "```python\nfrom zhllama import Tokenizer\n```\n"
        "`zhllama.Tokenizer`, `zhllama VERB --help`, `--threads` alone.\n"
    )
    uses = collect(doc, "doc.md", set(parsers()))
    assert [u.verb for u in uses] == ["resize", "eval"] and not problems(uses)


# ---- the README's Python snippets -------------------------------------------------------------


def readme_snippets() -> list[tuple[int, str]]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return [(text.count("\n", 0, m.start()) + 2, m.group(3)) for m in FENCE.finditer(text)
            if m.group(2).lower() in ("python", "pycon", "py")]


DOCUMENTS = [f"第{i}条：北京是中国的首都，上海是最大的城市。Tokens {i}." for i in range(200)]


@pytest.fixture(scope="module")
def snippet_dir(tmp_path_factory: pytest.TempPathFactory, llama_model: Path, chinese_model: Path) -> Path:
    """What the README's snippets read: ``merged/`` (the default merge of the fixtures) and
    ``tokens/`` (200 short Chinese documents tokenized with it)."""
    import json

    from zhllama.cli import main

    d = tmp_path_factory.mktemp("readme")
    assert main(["merge-vocab", "--base", str(llama_model), "--add", str(chinese_model), "--out", str(d / "merged"),
                 "--quiet"]) == 0
    corpus = d / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in DOCUMENTS),
                      encoding="utf-8")
    assert main(["tokenize-corpus", "--tokenizer", str(d / "merged"), "--input", str(corpus),
                 "--out", str(d / "tokens")]) == 0
    return d


def test_readme_has_python_snippets() -> None:
    assert readme_snippets(), "README.md has no ```python snippet for the doctest below"


@pytest.mark.parametrize(("line", "code"), [pytest.param(*s, id=f"README.md:{s[0]}") for s in readme_snippets()])
def test_readme_snippet_runs(line: int, code: str, snippet_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(snippet_dir)
    if ">>>" in code:
        test = doctest.DocTestParser().get_doctest(code, {}, f"README.md:{line}", "README.md", line)
        runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
        runner.run(test, out=lambda s: pytest.fail(f"README.md:{line}: the snippet's output differs:\n{s}"))
        assert runner.failures == 0 and test.examples
    else:
        exec(compile(code, f"README.md:{line}", "exec"), {})

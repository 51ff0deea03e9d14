"""The CLI reference page, rendered from the argparse parsers of ``zhllama.cli`` (never written by
hand: a flag that the parser does not define cannot appear here).

``render()`` returns the page's markdown. Every verb in ``zhllama.cli.VERBS`` gets a section, so a
verb added to that table appears on the next build. The mkdocs hook (``docs/hooks/site.py``) calls
it at build time; ``python docs/hooks/cli_reference.py`` prints it.
"""

from __future__ import annotations

import argparse
import html
import os
import re

INTRO = """# Command-line reference

Generated from the `zhllama` parsers when the site is built: every verb, every flag, its default,
its help. `zhllama VERB --help` prints the same. `pretrain` and `sft` also accept each flag in the
`--snake_case` spelling of the original Chinese-LLaMA-Alpaca scripts (`--learning_rate`), and a
`--config FILE.yaml` holding the same settings ([training guide](training.md#flags-and-config-files-pretrain-sft)).
"""


def _cell(text: str) -> str:
    """A markdown table cell: HTML-escaped, pipes and emphasis marks neutralised, one line."""
    text = html.escape(" ".join(text.split()), quote=False)
    return text.replace("|", "&#124;").replace("*", "\\*")


def _snake_alias(option: str, shown: list[str]) -> bool:
    return option.startswith("--") and "_" in option and option.replace("_", "-") in shown


def _flags(action: argparse.Action) -> str:
    if not action.option_strings:  # positional
        return f"`{action.metavar or action.dest}`"
    shown: list[str] = []
    for o in action.option_strings:
        if not _snake_alias(o, action.option_strings):
            shown.append(o)
    takes_value = action.nargs != 0
    meta = ""
    if takes_value:
        meta = action.metavar if isinstance(action.metavar, str) else action.dest.upper()
        if action.choices is not None and action.metavar is None:
            meta = "{" + ",".join(str(c) for c in action.choices) + "}"
        if action.nargs in ("*", "+"):
            meta += " ..."
    return ", ".join(f"`{o}{' ' + meta if meta else ''}`" for o in shown)


def _default(action: argparse.Action) -> str:
    d = action.default
    if action.nargs == 0 or d is None or d is argparse.SUPPRESS or d == [] or not action.option_strings:
        return "required" if getattr(action, "required", False) and action.option_strings else ""
    if d == "":
        return '`""`'
    if isinstance(d, int) and "thread" in action.dest and d == os.cpu_count():
        return "all cores"  # computed on the machine that builds the site
    return f"`{_cell(str(d))}`"


def _verb_section(verb: str, parser: argparse.ArgumentParser) -> list[str]:
    out = [f"## `zhllama {verb}`", ""]
    if parser.description:
        out += [_cell(parser.description), ""]
    usage = parser.format_usage().strip()
    usage = re.sub(r"^usage: ", "", usage).replace("\n" + " " * len("usage: "), "\n")
    out += ["```text", usage, "```", ""]
    rows = [a for a in parser._actions if a.help is not argparse.SUPPRESS and "-h" not in a.option_strings]
    if rows:
        formatter = parser._get_formatter()
        out += ["| argument | default | what it does |", "|---|---|---|"]
        for a in rows:
            text = formatter._expand_help(a) if a.help else ""
            out.append(f"| {_flags(a)} | {_default(a)} | {_cell(text)} |")
        out.append("")
    if parser.epilog:
        out += ["```text", parser.epilog.strip("\n"), "```", ""]
    return out


def verb_parsers() -> dict[str, argparse.ArgumentParser]:
    """Every verb's parser, with its arguments (all verb modules are imported)."""
    from zhllama.cli import build_parser

    root = build_parser(only=None)
    sub = next(a for a in root._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def render() -> str:
    os.environ["COLUMNS"] = "100"  # argparse wraps usage lines at the terminal width: fix it
    from zhllama.cli import EPILOG, VERBS

    parsers = verb_parsers()
    missing = sorted(set(VERBS) - set(parsers))
    if missing:
        raise RuntimeError(f"the CLI reference lacks verbs whose module did not import: {missing}")
    out = [INTRO, "| verb | what it does |", "|---|---|"]
    for verb in parsers:
        anchor = "zhllama-" + verb
        out.append(f"| [`{verb}`](#{anchor}) | {_cell(VERBS[verb][1])} |")
    out += ["", "Exit status of every verb:", "", "```text", EPILOG.strip(), "```", ""]
    for verb, parser in parsers.items():
        out += _verb_section(verb, parser)
    return "\n".join(out)


if __name__ == "__main__":
    print(render())

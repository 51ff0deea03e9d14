"""Where the shared fixtures are; tests skip without them unless ZHLLAMA_REQUIRE_FIXTURES=1."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def fixture_path(name: str) -> Path:
    d = Path(os.environ.get("ZHLLAMA_FIXTURES", ROOT.parent / "shared" / "fixtures"))
    p = d / name
    if not p.exists():
        if os.environ.get("ZHLLAMA_REQUIRE_FIXTURES") == "1":
            pytest.fail(f"fixture {p} is missing and ZHLLAMA_REQUIRE_FIXTURES=1")
        pytest.skip(f"fixture {p} not found; set ZHLLAMA_FIXTURES to ../shared/fixtures")
    return p

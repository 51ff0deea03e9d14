"""``python -m zhllama VERB ...``: the ``zhllama`` command through an interpreter, which needs no
activated virtualenv (``.venv/bin/python -m zhllama demo``)."""

from __future__ import annotations

import sys

from zhllama.cli import main

if __name__ == "__main__":
    sys.exit(main())

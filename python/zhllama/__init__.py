"""zhllama: teach a LLaMA-family model Chinese.

Rust-accelerated, sentencepiece-exact tokenization (``zhllama.Tokenizer``), vocabulary merging,
corpus tokenization, and the two-stage pretraining + LoRA SFT pipeline of the
Chinese-LLaMA-Alpaca report.
"""

from __future__ import annotations

from zhllama.tokenizer.tokenizer import Tokenizer

__all__ = ["Tokenizer", "__version__"]



def __getattr__(name: str) -> str:
    # ``__version__`` is read from the package metadata on first use: importlib.metadata costs
    # ~20 ms at import, a visible share of a sub-second ``zhllama tokenize-corpus`` run.
    if name == "__version__":
        try:
            from importlib.metadata import version

            v = version("zhllama")
        except Exception:  # pragma: no cover - running from a source tree without metadata
            v = "0.0.0"
        globals()["__version__"] = v
        return v
    raise AttributeError(f"module 'zhllama' has no attribute {name!r}")

"""zhllama: teach a LLaMA-family model Chinese.

Rust-accelerated, sentencepiece-exact tokenization (``zhllama.Tokenizer``), vocabulary merging,
corpus tokenization, and the two-stage pretraining + LoRA SFT pipeline of the
Chinese-LLaMA-Alpaca report.
"""

from __future__ import annotations

from zhllama.tokenizer.tokenizer import Tokenizer

__all__ = ["Tokenizer", "__version__"]

try:
    from importlib.metadata import version as _version

    __version__ = _version("zhllama")
except Exception:  # pragma: no cover - running from a source tree without metadata
    __version__ = "0.0.0"

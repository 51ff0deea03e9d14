"""Tokenizers: the one exact ``Tokenizer`` loader, the tokenizer directory, the HF adapter,
and the ``train-spm`` / ``merge-vocab`` verbs."""

from zhllama.tokenizer.tokenizer import Tokenizer

__all__ = ["Tokenizer"]

"""``zhllama.hf``: the documented name of :mod:`zhllama.tokenizer.hf` (the transformers adapter)."""

from zhllama.tokenizer.hf import ZhllamaLlamaTokenizer

__all__ = ["ZhllamaLlamaTokenizer"]

"""``zhllama.data``: the documented name of :mod:`zhllama.corpus.dataset` (tokenized corpus readers)."""

from zhllama.corpus.dataset import PackedDataset, TokenizedCorpus, to_hf_dataset

__all__ = ["PackedDataset", "TokenizedCorpus", "to_hf_dataset"]

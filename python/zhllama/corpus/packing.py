"""``Packing``: how a document becomes ids in the pretraining stream, the one convention of
``tokenize-corpus`` and of ``pretrain --train-file``. Its own module, free of torch, so that
``tokenize-corpus`` starts without importing torch."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class Packing:
    """How one document enters the pretraining token stream: ``[<s>] ids [</s>]``.

    The default, ``doc </s>`` (``append_eos=True, add_bos=False``), is what ``tokenize-corpus``
    writes and what ``pretrain --train-file`` packs, so a corpus trains on the same blocks by
    either route. The reference script (Chinese-LLaMA-Alpaca ``run_clm_pt_with_peft.py``) packs
    ``<s> doc`` instead: its ``LlamaTokenizer`` adds BOS and no EOS. zhllama appends EOS because
    in a packed stream the EOS is the only mark of where a document ends, so the model learns
    to stop (and generation, which stops at EOS, ends); BOS stays available as ``add_bos``.
    """

    append_eos: bool = True
    add_bos: bool = False

    @classmethod
    def of_corpus(cls, manifest: dict[str, Any]) -> Packing:
        """The packing a tokenized corpus was made with (its ``manifest.json`` options)."""
        o = manifest["options"]
        return cls(append_eos=bool(o["append_eos"]), add_bos=bool(o["add_bos"]))

    def encode(self, tokenizer: Any, docs: Iterable[str]) -> list[list[int]]:
        """Each document's ids as packed (``tokenizer``: a ``zhllama.Tokenizer``)."""
        return tokenizer.encode_batch(list(docs), add_bos=self.add_bos, add_eos=self.append_eos)

    def encode_flat(self, tokenizer: Any, docs: Iterable[str]) -> np.ndarray:
        """The documents' ids as packed, back to back: one int32 array (4 bytes a token)."""
        import numpy as np

        ids, _ = tokenizer.encode_batch_flat(list(docs), add_bos=self.add_bos, add_eos=self.append_eos)
        # uint32 from the encoder; every id is below the vocabulary size, far under 2**31.
        return np.asarray(ids).view(np.int32)

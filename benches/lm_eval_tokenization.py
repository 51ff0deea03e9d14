"""Does the tokenizer change a C-Eval score? lm-eval's ``hf`` backend against the ``zhllama``
backend, same model, same task, same requests; only the tokenizer differs.

    ZHLLAMA_FIXTURES=../shared/fixtures PYTHONPATH=python python benches/lm_eval_tokenization.py [--num-fewshot 5]

Tokenizer: the reference 49,953-piece Chinese-LLaMA merge (benches/corpus_common.py) plus
``[PAD]``, as a merge-vocab directory. ``hf`` loads it with ``AutoTokenizer`` (transformers 5: the
``tokenizers`` conversion of ``tokenizer.model``); ``zhllama`` with ``ZhllamaLlamaTokenizer``
(sentencepiece's ids). Model: a random tiny LLaMA (2 layers, hidden 64) sized to that
vocabulary and trained for a few hundred steps on People's Daily tokenized by zhllama (as
``pretrain`` would), so the run needs no download and the model has seen sentencepiece's
segmentations; a real model differs in how much each mis-tokenized request costs, not in which
requests are mis-tokenized. Task: the local
C-Eval-format task of the tests (tests/data/lm_eval, 20 questions × 4 choices).

Prints, for each backend, how many loglikelihood requests have other token ids than
sentencepiece's, and the accuracy; then how many requests differ between the two backends, the
mean |Δ log-likelihood| of those, the questions whose predicted answer changes, and the change
in accuracy.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benches"))

from corpus_common import reference_merge  # noqa: E402

TASKS = ROOT / "tests" / "data" / "lm_eval"
TASK = "ceval-local"


def tiny_model(tok_dir: Path, out: Path, seed: int, steps: int) -> Path:
    """A tiny LLaMA sized to the tokenizer, trained ``steps`` steps on People's Daily as zhllama
    tokenizes it (what pretraining does), so that it has seen sentencepiece's segmentations."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from zhllama.samples import peoples_daily
    from zhllama.tokenizer import Tokenizer
    from zhllama.tokenizer.directory import copy_tokenizer_files

    tok = Tokenizer.from_pretrained(tok_dir)
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
                         max_position_embeddings=4096, bos_token_id=1, eos_token_id=2)
    model = LlamaForCausalLM(config)
    if steps:
        ids = [i for doc in tok.encode_batch(peoples_daily(limit=4000), add_bos=True) for i in doc]
        block, batch = 128, 8
        data = torch.tensor(ids[: len(ids) // block * block]).view(-1, block)
        opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
        gen = torch.Generator().manual_seed(seed)
        for step in range(steps):
            x = data[torch.randint(len(data), (batch,), generator=gen)]
            loss = model(input_ids=x, labels=x).loss
            loss.backward()
            opt.step()
            opt.zero_grad()
            if step % 25 == 0 or step == steps - 1:
                print(f"  train step {step}: loss {loss.item():.3f}", file=sys.stderr)
    model.save_pretrained(out)
    copy_tokenizer_files(tok_dir, out)
    return out


def run_backend(backend: str, model_dir: Path, num_fewshot: int) -> tuple[dict[str, Any], list]:
    """(lm-eval results, [(request args, ids, log-likelihood)] in request order) of one backend."""
    from lm_eval import evaluator
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    import zhllama.infer.harness  # noqa: F401  (registers "zhllama")

    seen: list = []
    original = HFLM._loglikelihood_tokens

    def spy(self, requests, *args, **kwargs):
        out = original(self, requests, *args, **kwargs)
        seen.extend((args_, ctx + cont, ll) for (args_, ctx, cont), (ll, _) in zip(requests, out))
        return out

    HFLM._loglikelihood_tokens = spy
    try:
        results = evaluator.simple_evaluate(model=backend, model_args={"pretrained": str(model_dir)}, tasks=[TASK],
                                            num_fewshot=num_fewshot, device="cpu", batch_size=8,
                                            task_manager=TaskManager(include_path=str(TASKS)), log_samples=True)
    finally:
        HFLM._loglikelihood_tokens = original
    return results, seen


def predictions(results: dict[str, Any]) -> list[int]:
    samples = sorted(results["samples"][TASK], key=lambda s: s["doc_id"])
    return [max(range(len(s["resps"])), key=lambda i: s["resps"][i][0][0]) for s in samples]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--num-fewshot", type=int, default=5, help="Few-shot examples (C-Eval's reported setting: 5).")
    ap.add_argument("--seed", type=int, default=0, help="Seed of the tiny model and its training batches.")
    ap.add_argument("--train-steps", type=int, default=150,
                    help="Training steps on People's Daily before the evaluation (0: a random model).")
    args = ap.parse_args()

    import sentencepiece as spm

    from zhllama.tokenizer.directory import write_tokenizer_dir_from_model

    with tempfile.TemporaryDirectory(prefix="zhllama-lmeval-bench-") as tmp:
        merged = reference_merge(Path(tmp) / "merge") / "tokenizer.model"
        tok_dir = write_tokenizer_dir_from_model(Path(tmp) / "tok", merged, pad_token="[PAD]")
        model_dir = tiny_model(tok_dir, Path(tmp) / "model", args.seed, args.train_steps)
        sp = spm.SentencePieceProcessor(model_file=str(merged))
        runs = {b: run_backend(b, model_dir, args.num_fewshot) for b in ("hf", "zhllama")}

    print(f"task {TASK}, {args.num_fewshot}-shot; tokenizer: reference merge + [PAD] (49,954); "
          f"model: tiny LLaMA, seed {args.seed}, {args.train_steps} steps on People's Daily")
    print(f"{'backend':<8} {'requests':>8} {'ids != sentencepiece':>21} {'accuracy':>9}")
    for backend, (results, seen) in runs.items():
        differ = sum(ids != sp.encode(ctx + cont, add_bos=True) for (ctx, cont), ids, _ in seen)
        acc = results["results"][TASK]["acc,none"]
        print(f"{backend:<8} {len(seen):>8} {differ:>12} ({differ / len(seen):6.1%}) {acc:>9.3f}")
    (hf_res, hf_seen), (zh_res, zh_seen) = runs["hf"], runs["zhllama"]
    assert [a for a, _, _ in hf_seen] == [a for a, _, _ in zh_seen], "the backends built different requests"
    pairs = [(h_ll, z_ll) for (_, h_ids, h_ll), (_, z_ids, z_ll) in zip(hf_seen, zh_seen) if h_ids != z_ids]
    mean_delta = sum(abs(h - z) for h, z in pairs) / max(1, len(pairs))
    flips = sum(a != b for a, b in zip(predictions(hf_res), predictions(zh_res)))
    delta = zh_res["results"][TASK]["acc,none"] - hf_res["results"][TASK]["acc,none"]
    print(f"requests whose ids differ between hf and zhllama: {len(pairs)} of {len(hf_seen)} "
          f"({len(pairs) / len(hf_seen):.1%}); mean |Δ log-likelihood| on those: {mean_delta:.3f} nats")
    print(f"questions whose predicted answer changes: {flips} of {len(predictions(zh_res))}; "
          f"accuracy zhllama − hf: {delta:+.3f}")


if __name__ == "__main__":
    main()

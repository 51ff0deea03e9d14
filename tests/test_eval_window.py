"""`zhllama eval` scores a document longer than its window with a sliding window.

The reference is a model whose receptive field is known: Mistral with a 4-token attention window
and 2 layers sees at most the 7 last tokens, so one pass over the whole document gives every
token its exact full-context log-probability. A sliding evaluation whose windows give every
scored token at least that much context must reproduce it; windows that restart with one token of
context (the old scoring) cannot.
"""

from __future__ import annotations

import math

import pytest
import torch

import train_helpers as h

transformers = pytest.importorskip("transformers")

from zhllama.infer.evaluate import document_nll, evaluate  # noqa: E402
from zhllama.tokenizer import Tokenizer  # noqa: E402

RECEPTIVE_FIELD = 7  # 2 layers x (sliding window 4 - 1) + the token itself


def bounded_model(vocab_size: int):
    cfg = transformers.MistralConfig(vocab_size=vocab_size, hidden_size=16, intermediate_size=32,
                                     num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                                     sliding_window=4, max_position_embeddings=512)
    torch.manual_seed(0)
    return transformers.MistralForCausalLM(cfg).eval()


def full_pass_nll(model, ids: list[int]) -> float:
    x = torch.tensor([ids])
    with torch.no_grad():
        logits = model(input_ids=x[:, :-1]).logits.float()
    return torch.nn.functional.cross_entropy(logits[0], x[0, 1:], reduction="sum").item()


def test_sliding_window_equals_one_full_context_pass():
    tok = Tokenizer.from_pretrained(h.tokenizer_dir("base"))
    model = bounded_model(len(tok))
    docs = [" ".join(h.corpus_lines(8, seed=5)), "".join(h.corpus_lines(6, seed=6))]
    ids = [tok.encode(d, add_bos=True) for d in docs]
    assert min(len(i) for i in ids) > 40  # several 16-token windows per document
    # The model's own receptive field is bounded, so the full pass is the truth for any window.
    assert (document_nll(model, ids[0], block_size=1024)
            == pytest.approx(full_pass_nll(model, ids[0]), rel=1e-6))
    block = 16  # the default stride (8) gives every scored token >= 9 tokens >= the receptive field
    got = evaluate(model, tok, docs, block)
    nll = sum(full_pass_nll(model, i) for i in ids)
    assert got["tokens"] == sum(len(i) - 1 for i in ids)
    assert got["bits_per_char"] == pytest.approx(nll / math.log(2) / sum(map(len, docs)), rel=1e-5)
    assert got["block_size"] == block and got["stride"] == 8 and block - 8 + 1 >= RECEPTIVE_FIELD
    # Any stride that leaves the receptive field agrees; stride 1 gives each token its full window.
    for window, stride in ((16, 10), (12, 1)):
        assert document_nll(model, ids[0], window, stride) == pytest.approx(full_pass_nll(model, ids[0]), rel=1e-5)
    # Disjoint windows (stride = block) leave tokens with one token of context: a different, worse score.
    assert document_nll(model, ids[0], block, block) != pytest.approx(full_pass_nll(model, ids[0]), rel=1e-5)


def test_sliding_window_keeps_the_first_token_after_end_of_text():
    """A tokenizer without BOS (SmolLM2) still has its first token scored given <|endoftext|>,
    and the sliding window carries that context like any other token."""
    from fixture_paths import smollm2_dir

    tok = Tokenizer.from_pretrained(smollm2_dir().path)
    assert tok.bos_id is None and tok.eos_id is not None
    model = bounded_model(len(tok))
    docs = ["北京是中国的首都，也是全国的政治、文化和国际交往中心。" * 3, "def f(x):\n    return x * 2\n" * 4]
    got = evaluate(model, tok, docs, 12)  # default stride 6: >= 7 tokens of context
    nll = sum(full_pass_nll(model, [tok.eos_id, *tok.encode(d)]) for d in docs)
    assert got["tokens"] == sum(len(tok.encode(d)) for d in docs)
    assert got["bits_per_char"] == pytest.approx(nll / math.log(2) / sum(map(len, docs)), rel=1e-5)


@pytest.mark.parametrize("block, stride", [(0, None), (8, 0), (8, 9)])
def test_window_arguments_are_checked(block, stride):
    with pytest.raises(ValueError, match="--block-size|--stride"):
        document_nll(None, [1, 2, 3], block, stride)

"""`zhllama pretrain`: what trains in each stage, trainable shares, saved adapters, resume."""

from __future__ import annotations

import json
import math
import shutil

import pytest
import torch

import train_helpers as h

transformers = pytest.importorskip("transformers")
pytest.importorskip("peft")


def pretrain(model, text, out, *extra, steps=4):
    return h.cli("pretrain", "--model", model, "--train-file", text, "--output-dir", out, "--block-size", "32",
                 "--max-steps", str(steps), "--save-steps", "2", "--logging-steps", "1", "--report-to", "none",
                 "--per-device-train-batch-size", "2", "--validation-split-percentage", "10", *extra)


def _state(path):
    return h.safetensors_of(path / "model.safetensors")


@pytest.mark.parametrize("new_rows_only", [False, True])
def test_stage1_trains_embeddings_only(resized, text_file, tmp_path, new_rows_only):
    out = tmp_path / "stage1"
    extra = ("--new-rows-only",) if new_rows_only else ()
    assert pretrain(resized, text_file, out, "--stage", "1", "--learning-rate", "1e-2", *extra) == 0
    before, after = _state(resized), _state(out)
    assert before.keys() == after.keys()
    emb, head = "model.embed_tokens.weight", "lm_head.weight"
    for name in before:
        if name not in (emb, head):
            assert torch.equal(before[name], after[name]), name
    assert not torch.equal(before[emb][400:], after[emb][400:])
    # The untied head's added rows train (they start as one identical mean row): the added tokens can
    # be predicted; its original rows, the base's predictions of the base's tokens, stay bit-identical.
    assert torch.equal(before[head][400:], before[head][400:401].expand(10, -1))
    assert torch.equal(before[head][:400], after[head][:400])
    assert ((after[head][400:] - before[head][400:]).abs().amax(dim=1) > 0).all()
    assert len({tuple(r.tolist()) for r in after[head][400:]}) > 1  # an added token the text holds moved apart
    if new_rows_only:
        assert torch.equal(before[emb][:400], after[emb][:400])
    else:
        assert not torch.equal(before[emb][:400], after[emb][:400])
    assert (out / "tokenizer.model").is_file() and (out / "checkpoint-4").is_dir()
    # --report-to none writes no TensorBoard logs (test_tensorboard_logs_written checks the default);
    # --logging-steps 1 logs a finite loss at every step.
    assert not (out / "runs").exists()
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    logged = [(e["step"], e["loss"]) for e in history if "loss" in e]
    assert [step for step, _ in logged] == [1, 2, 3, 4] and all(math.isfinite(loss) for _, loss in logged)


def test_stage1_untied_head_refuses_weight_decay(resized, text_file, tmp_path, capsys):
    """AdamW's decay would move the head's original rows, which stage 1 keeps bit-identical."""
    assert pretrain(resized, text_file, tmp_path / "wd", "--stage", "1", "--weight-decay", "0.1", steps=1) == 2
    assert "--weight-decay 0.1 would move its original rows" in capsys.readouterr().err


def test_stage2_saves_lora_and_full_embeddings(resized, text_file, tmp_path):
    out = tmp_path / "stage2"
    assert pretrain(resized, text_file, out, "--stage", "2") == 0
    for d in (out, out / "checkpoint-2"):
        tensors = h.safetensors_of(d / "adapter_model.safetensors")
        names = list(tensors)
        for proj in ("q_proj", "k_proj", "v_proj", "o_proj"):
            assert any(f"{proj}.lora_A" in n for n in names), proj
            assert any(f"{proj}.lora_B" in n for n in names), proj
        assert not any("gate_proj" in n for n in names)
        embed = [n for n in names if "embed_tokens" in n]
        head = [n for n in names if "lm_head" in n]
        assert embed and head, names
        assert tensors[embed[0]].shape == (410, 32) and tensors[head[0]].shape == (410, 32)
        # B starts at zero; trained adapters are not.
        assert any(tensors[n].abs().sum() > 0 for n in names if "lora_B" in n)
    metrics = json.loads((out / "zhllama_metrics.json").read_text())
    assert "eval_loss" in metrics and torch.isfinite(torch.tensor(metrics["eval_loss"]))


def _adapter_matrices(out):
    tensors = h.safetensors_of(out / "adapter_model.safetensors")
    embed = next(t for n, t in tensors.items() if "embed_tokens" in n)
    head = next((t for n, t in tensors.items() if "lm_head" in n), None)
    return tensors, embed, head


@pytest.mark.parametrize("tie", [False, True])
def test_stage2_new_rows_only_keeps_the_original_rows(resized, text_file, tmp_path, tie):
    """Stage 2 with --new-rows-only: LoRA trains, and of the saved embedding (and untied head)
    copies only the rows resize added move; the base's 400 rows stay bit-identical."""
    model = resized
    if tie:
        model = tmp_path / "resized-tied"
        assert h.cli("resize", "--model", h.tiny_model_dir("base", tie=True), "--tokenizer",
                     h.tokenizer_dir("merged-pad"), "--out", model, "--init", "mean") == 0
    out = tmp_path / "stage2"
    assert pretrain(model, text_file, out, "--stage", "2", "--learning-rate", "1e-2", "--new-rows-only") == 0
    before = _state(model)
    tensors, embed, head = _adapter_matrices(out)
    assert (head is None) == tie
    for new, old in ((embed, before["model.embed_tokens.weight"]),
                     *(() if tie else ((head, before["lm_head.weight"]),))):
        assert torch.equal(new[:400], old[:400])
        assert not torch.equal(new[400:], old[400:])
    assert any(t.abs().sum() > 0 for n, t in tensors.items() if "lora_B" in n)


def _model_and_read_tokens(resized, text_file, tmp_path, tie):
    """The resized tiny model (a tied one made here when ``tie``), its tokenizer, and the ids the
    training text holds (with BOS/EOS, which packing adds)."""
    from zhllama.tokenizer import Tokenizer

    model = resized
    if tie:
        model = tmp_path / "resized-tied"
        assert h.cli("resize", "--model", h.tiny_model_dir("base", tie=True), "--tokenizer",
                     h.tokenizer_dir("merged-pad"), "--out", model, "--init", "mean") == 0
    tok = Tokenizer.from_pretrained(model)
    read = {i for line in text_file.read_text(encoding="utf-8").splitlines() for i in tok.encode(line)}
    read |= {i for i in (tok.bos_id, tok.eos_id) if i is not None}
    return model, tok, read


@pytest.mark.parametrize("tie", [False, True])
def test_stage2_batch_rows_only_moves_only_rows_of_read_tokens(resized, text_file, tmp_path, tie):
    """--batch-rows-only: a row moves only if its token is in the text (here, of the merged
    vocabulary's 410 rows, those the Chinese lines use); without it the softmax's push-down,
    scaled by Adam, moves rows of tokens never read too."""
    model, tok, read = _model_and_read_tokens(resized, text_file, tmp_path, tie)
    before = _state(model)
    for flag in (True, False):
        out = tmp_path / f"stage2-{flag}"
        extra = ("--batch-rows-only",) if flag else ()
        assert pretrain(model, text_file, out, "--stage", "2", "--learning-rate", "1e-2", *extra) == 0
        _, embed, head = _adapter_matrices(out)
        assert (head is None) == tie
        for new, old, output in ((embed, before["model.embed_tokens.weight"], tie),
                                 *(() if tie else ((head, before["lm_head.weight"], True),))):
            moved = {int(i) for i in (new != old).any(dim=1).nonzero().flatten()}
            assert moved and moved & read
            if flag:
                assert moved <= read, sorted(moved - read)[:10]
            elif output:  # an input row's gradient is 0 unless its token is read: the output side drifts
                assert moved - read


@pytest.mark.parametrize("tie", [False, True])
def test_lazy_base_rows_moves_original_rows_only_when_read(resized, text_file, tmp_path, tie):
    """--lazy-base-rows: of the base's 400 rows, those of tokens the text holds train and every
    other one stays bit-identical (an output row too, which the softmax would push down); the rows
    resize added train at every step. It is refused beside --new-rows-only or with weight decay."""
    model, tok, read = _model_and_read_tokens(resized, text_file, tmp_path, tie)
    before = _state(model)
    out = tmp_path / "stage2"
    assert pretrain(model, text_file, out, "--stage", "2", "--learning-rate", "1e-2", "--lazy-base-rows") == 0
    _, embed, head = _adapter_matrices(out)
    assert (head is None) == tie
    for new, old in ((embed, before["model.embed_tokens.weight"]),
                     *(() if tie else ((head, before["lm_head.weight"]),))):
        moved = {int(i) for i in (new != old).any(dim=1).nonzero().flatten()}
        base_moved = {i for i in moved if i < 400}
        assert base_moved and base_moved <= read, sorted(base_moved - read)[:10]
        added = set(range(400, len(tok)))
        assert added & moved  # input side: the added rows the batches read (not every line is trained on)
        if new is head or tie:  # output rows: every added row trains at every step, read or not
            assert added <= moved
    assert pretrain(model, text_file, tmp_path / "bad1", "--stage", "2", "--lazy-base-rows", "--new-rows-only") == 2
    assert pretrain(model, text_file, tmp_path / "bad2", "--stage", "2", "--lazy-base-rows",
                    "--weight-decay", "0.1") == 2
    unknown = tmp_path / "no-record"  # no resize.json, no --base-vocab-size: which rows are the base's is unknown
    shutil.copytree(model, unknown, ignore=shutil.ignore_patterns("resize.json"))
    assert pretrain(unknown, text_file, tmp_path / "bad3", "--stage", "2", "--lazy-base-rows") == 2


def test_batch_rows_only_steps_masks_the_first_steps_only(resized, text_file, tmp_path):
    """--batch-rows-only-steps 2: through step 2 no output row of an unread token moves; from step 3
    on every row trains, so they do. A run resumed from checkpoint-2 ends where the straight one does
    (the switch reads the Trainer's restored step, not a count of this process's batches)."""
    from zhllama.tokenizer import Tokenizer

    tok = Tokenizer.from_pretrained(resized)
    read = {i for line in text_file.read_text(encoding="utf-8").splitlines() for i in tok.encode(line)}
    read |= {i for i in (tok.bos_id, tok.eos_id) if i is not None}
    head0 = _state(resized)["lm_head.weight"]
    unread = sorted(set(range(head0.shape[0])) - read)
    args = ("--stage", "2", "--learning-rate", "1e-2", "--batch-rows-only", "--batch-rows-only-steps", "2")
    straight = tmp_path / "straight"
    assert pretrain(resized, text_file, straight, *args) == 0
    _, _, head2 = _adapter_matrices(straight / "checkpoint-2")
    _, _, head4 = _adapter_matrices(straight)
    assert torch.equal(head2[unread], head0[unread])
    assert not torch.equal(head4[unread], head0[unread])
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    shutil.copytree(straight / "checkpoint-2", resumed / "checkpoint-2")
    assert pretrain(resized, text_file, resumed, *args, "--resume") == 0
    _, _, again = _adapter_matrices(resumed)
    assert torch.allclose(again, head4, atol=1e-6, rtol=1e-5)
    assert pretrain(resized, text_file, tmp_path / "bad", "--stage", "2", "--batch-rows-only-steps", "2") == 2


def test_embedding_learning_rate_is_the_embeddings_own(resized, text_file, tmp_path):
    """--embedding-learning-rate gives the embedding copies their own peak rate: at 1e-9 they stay
    where they started (within float noise) while LoRA, at 1e-2, trains."""
    out = tmp_path / "stage2"
    assert pretrain(resized, text_file, out, "--stage", "2", "--learning-rate", "1e-2",
                    "--embedding-learning-rate", "1e-9") == 0
    before = _state(resized)
    tensors, embed, head = _adapter_matrices(out)
    assert (embed - before["model.embed_tokens.weight"]).abs().max() < 1e-6
    assert (head - before["lm_head.weight"]).abs().max() < 1e-6
    assert any(t.abs().sum() > 0 for n, t in tensors.items() if "lora_B" in n)
    assert pretrain(resized, text_file, tmp_path / "default", "--stage", "2", "--learning-rate", "1e-2") == 0
    _, embed, _ = _adapter_matrices(tmp_path / "default")
    assert (embed - before["model.embed_tokens.weight"]).abs().max() > 1e-4


def test_tensorboard_logs_written(resized, text_file, tmp_path):
    out = tmp_path / "tb"
    assert h.cli("pretrain", "--stage", "2", "--model", resized, "--train-file", text_file, "--output-dir", out,
                 "--block-size", "32", "--max-steps", "1", "--save-steps", "10", "--logging-steps", "1",
                 "--gradient-checkpointing") == 0
    assert list((out / "runs").rglob("events.out.tfevents.*"))


def test_resume_matches_straight_run(resized, text_file, tmp_path):
    straight = tmp_path / "straight"
    assert pretrain(resized, text_file, straight, "--stage", "2", "--learning-rate", "1e-2") == 0
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    # An interrupted run: only its first checkpoint exists.
    shutil.copytree(straight / "checkpoint-2", resumed / "checkpoint-2")
    assert pretrain(resized, text_file, resumed, "--stage", "2", "--learning-rate", "1e-2") == 2  # refuses to restart
    assert pretrain(resized, text_file, resumed, "--stage", "2", "--learning-rate", "1e-2", "--resume") == 0
    a = h.safetensors_of(straight / "adapter_model.safetensors")
    b = h.safetensors_of(resumed / "adapter_model.safetensors")
    c = h.safetensors_of(straight / "checkpoint-2" / "adapter_model.safetensors")
    assert a.keys() == b.keys()
    for name in a:
        assert torch.allclose(a[name], b[name], atol=1e-6, rtol=1e-5), name
    assert any(not torch.allclose(a[n], c[n]) for n in a)  # the second half did train
    # It resumed rather than restarting: the copied checkpoint-2 was not written again.
    ckpt = "checkpoint-2/adapter_model.safetensors"
    assert (resumed / ckpt).stat().st_mtime_ns == (straight / ckpt).stat().st_mtime_ns
    assert (resumed / "checkpoint-4").is_dir()


def test_config_file_and_validation_errors(resized, text_file, tmp_path, capsys):
    cfg = tmp_path / "stage.yaml"
    # 2e-4 is a string to YAML 1.1; it must train as the float --learning-rate 2e-4 would.
    cfg.write_text(f"stage: 2\nmodel: {resized}\ntrain-file: {text_file}\nblock_size: 32\nmax_steps: 1\n"
                   f"save_steps: 5\nreport_to: none\nlora_rank: 4\nlearning_rate: 2e-4\nwarmup_ratio: 0\n"
                   f"lr_scheduler_type: constant\nlogging_steps: 1\ngradient_checkpointing: true\n")
    out = tmp_path / "cfg"
    assert h.cli("pretrain", "--config", cfg, "--output-dir", out) == 0
    assert json.loads((out / "adapter_config.json").read_text())["r"] == 4
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    assert history[0]["learning_rate"] == 2e-4
    # Explicit flags win, even one equal to its default (--lora-rank 8), and a file's true is switched off.
    out = tmp_path / "cfg-flags"
    assert h.cli("pretrain", "--config", cfg, "--output-dir", out, "--lora-rank", "8",
                 "--no-gradient-checkpointing") == 0
    assert json.loads((out / "adapter_config.json").read_text())["r"] == 8
    assert h.cli("pretrain", "--config", cfg, "--output-dir", tmp_path / "e", "--lora-dropout", "1.5") == 2
    assert "--lora-dropout must be in [0, 1), got 1.5" in capsys.readouterr().err
    cfg.write_text(cfg.read_text() + "max_step: 3\n")
    assert h.cli("pretrain", "--config", cfg, "--output-dir", tmp_path / "u") == 2
    assert "unknown key 'max_step' (did you mean 'max_steps'?)" in capsys.readouterr().err
    # A model smaller than the tokenizer: resize first.
    assert h.cli("pretrain", "--stage", "1", "--model", h.tiny_model_dir("base"), "--tokenizer",
                 h.tokenizer_dir("merged-pad"), "--train-file", text_file, "--output-dir", tmp_path / "f",
                 "--block-size", "32") == 2
    assert "zhllama resize" in capsys.readouterr().err


def _meta_7b():
    from transformers import LlamaForCausalLM

    with torch.device("meta"):
        return LlamaForCausalLM(h.llama7b_config())


def test_trainable_fractions_match_report_on_meta_7b():
    from zhllama.train.args import LORA_SFT_TARGETS, LoraArguments
    from zhllama.train.trainable import apply_lora, count_parameters, train_embeddings_only

    model = _meta_7b()
    train_embeddings_only(model)
    t, n = count_parameters(model)
    assert round(100 * t / n, 2) == 2.97
    # Resized from LLaMA's 32,000 rows, stage 1 also trains the head's 17,953 added rows (only those
    # count: the original rows cannot move); with --new-rows-only, the added rows of both.
    model = _meta_7b()
    train_embeddings_only(model, base_rows=32_000)
    assert count_parameters(model) == ((49_953 + 17_953) * 4096, n)
    model = _meta_7b()
    train_embeddings_only(model, new_rows_only=True, base_rows=32_000)
    assert count_parameters(model) == (2 * 17_953 * 4096, n)
    t, n = count_parameters(apply_lora(_meta_7b(), LoraArguments()))
    assert round(100 * t / n, 2) == 6.06
    t, n = count_parameters(apply_lora(_meta_7b(), LoraArguments(lora_target=LORA_SFT_TARGETS)))
    assert round(100 * t / n, 2) == 6.22


def test_shipped_deepspeed_configs_open_with_their_command():
    # The YAML configs are parsed value by value in test_train_args.py.
    for name in ("ds_zero2", "ds_zero3"):
        cfg = json.loads((h.REPO / "configs" / f"{name}.json").read_text())
        assert cfg["_comment"].split(". Run: ")[1].startswith("torchrun")
        assert cfg["zero_optimization"]["stage"] == int(name[-1])


def test_dataset_dir_trains_on_the_tokenized_corpus(resized, text_file, tmp_path, capsys):
    import sentencepiece as spm

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    assert h.cli("pretrain", "--stage", "1", "--model", resized, "--dataset-dir", corpus, "--output-dir",
                 tmp_path / "x", "--block-size", "16", "--max-steps", "1") == 2
    err = capsys.readouterr().err
    assert f"--dataset-dir {corpus}: no manifest.json" in err and "`zhllama tokenize-corpus`" in err
    shutil.rmtree(corpus)
    assert h.cli("tokenize-corpus", "--tokenizer", resized, "--input", text_file, "--out", corpus, "--quiet") == 0
    out = tmp_path / "y"
    assert h.cli("pretrain", "--stage", "1", "--model", resized, "--dataset-dir", corpus, "--output-dir", out,
                 "--block-size", "64", "--per-device-train-batch-size", "4", "--validation-split-percentage", "0",
                 "--num-train-epochs", "1", "--report-to", "none", "--learning-rate", "1e-2") == 0
    # One epoch over the corpus's blocks: every document as sentencepiece encodes it, plus its EOS,
    # cut into blocks of 64 (the partial tail dropped), 4 blocks a step.
    sp = spm.SentencePieceProcessor(model_file=str(resized / "tokenizer.model"))
    lines = [line for line in text_file.read_text(encoding="utf-8").splitlines() if line]
    blocks = sum(len(ids) + 1 for ids in sp.encode(lines)) // 64
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == math.ceil(blocks / 4)
    emb = "model.embed_tokens.weight"
    assert not torch.equal(_state(resized)[emb], _state(out)[emb])


def test_dataset_dir_from_another_tokenizer_is_refused(resized, tmp_path, capsys):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "manifest.json").write_text('{"tokenizer_sha256": "' + "0" * 64 + '"}')
    assert h.cli("pretrain", "--stage", "1", "--model", resized, "--dataset-dir", corpus, "--output-dir",
                 tmp_path / "x", "--block-size", "16", "--max-steps", "1", "--report-to", "none") == 2
    assert "re-run `zhllama tokenize-corpus`" in capsys.readouterr().err


def test_batch_rows_only_keeps_the_rows_of_the_pass_with_gradients(resized):
    """The rows --batch-rows-only keeps are the batch's even when another pass reads other ids
    between its forward and its backward under torch.no_grad (a frozen teacher's pass, an
    evaluation): that pass has no gradient to mask, and taking its ids left the batch's own rows
    with a gradient of 0 (benches/EFFICACY.md, round 10)."""
    from zhllama.train.trainable import embedding_parameters, train_batch_rows_only

    model = transformers.AutoModelForCausalLM.from_pretrained(resized, dtype=torch.float32)
    train_batch_rows_only(model)
    batch = torch.tensor([[400, 401, 402, 403, 404, 405]])
    out = model(input_ids=batch, labels=batch)
    with torch.no_grad():
        model(input_ids=torch.tensor([[5, 6, 7, 8]]))
    out.loss.backward()
    for p in embedding_parameters(model):
        moved = {int(i) for i in (p.grad != 0).any(dim=1).nonzero().flatten()}
        # every row the batch reads has a gradient (the last input's only as an output row: no target
        # follows it), and no other row has one
        assert set(range(400, 405)) <= moved <= set(range(400, 406)), sorted(moved)[:10]

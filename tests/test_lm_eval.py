"""lm-evaluation-harness backend ``zhllama`` and ``zhllama eval --tasks`` on a local C-Eval-format task.

The task (tests/data/lm_eval/ceval_local) is C-Eval's prompt and scoring over 5 dev + 20 val
questions read from local JSON, so nothing is downloaded. References are computed here with
sentencepiece's ids and a plain forward pass, never with the backend itself.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import sentencepiece as spm
import torch

import train_helpers as h
from fixture_paths import package_env, real_fixture

lm_eval = pytest.importorskip("lm_eval")
transformers = pytest.importorskip("transformers")
peft = pytest.importorskip("peft")

from lm_eval.api.instance import Instance  # noqa: E402

from test_train_merge_lora import _adapter as lora_adapter  # noqa: E402
from zhllama.infer.harness import ZhllamaLM  # noqa: E402

TASKS = Path(__file__).resolve().parent / "data" / "lm_eval"
HOOK_PTH = Path(__file__).resolve().parent.parent / "python" / "zhllama-lm-eval.pth"
VAL = json.loads((TASKS / "ceval_local" / "val.json").read_text(encoding="utf-8"))


def ceval_prompt(doc: dict) -> str:
    """C-Eval's question format (lm-eval's ceval-valid doc_to_text)."""
    return f"{doc['question'].strip()}\nA. {doc['A']}\nB. {doc['B']}\nC. {doc['C']}\nD. {doc['D']}\n答案："


def continuation_logprob(model, sp: spm.SentencePieceProcessor, context: str, continuation: str) -> float:
    """log P(continuation | BOS + context) over sentencepiece's ids of the whole text."""
    whole = sp.encode(context + continuation, add_bos=True)
    n_ctx = len(sp.encode(context.rstrip(" "), add_bos=True))
    ids = torch.tensor([whole])
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=ids[:, :-1]).logits.float(), dim=-1)[0]
    return sum(logp[i - 1, whole[i]].item() for i in range(n_ctx, len(whole)))


def test_backend_is_registered():
    from lm_eval.api.registry import get_model

    assert get_model("zhllama") is ZhllamaLM


def test_installed_wheel_declares_the_plugin_and_the_command():
    from importlib import metadata

    try:
        dist = metadata.distribution("zhllama")
    except metadata.PackageNotFoundError:
        pytest.skip("zhllama is not installed (source tree run); CI checks the installed wheel")
    points = {(e.group, e.name): e for e in dist.entry_points}
    assert points[("lm_eval.models", "zhllama")].load() is ZhllamaLM
    assert points[("console_scripts", "zhllama-lm-eval")].value == "zhllama.infer.harness:main"
    # the hook that makes plain `lm_eval run --model zhllama` work, at site-packages' top level
    files = {str(f): f for f in dist.files or ()}
    assert files["zhllama-lm-eval.pth"].read_text() == HOOK_PTH.read_text() == "import zhllama_lm_eval_hook\n"
    assert "zhllama_lm_eval_hook.py" in files


def test_requests_are_sentencepiece_ids_and_accuracy_is_theirs(monkeypatch):
    from lm_eval import evaluator
    from lm_eval.tasks import TaskManager

    model_dir = h.tiny_model_dir("merged-pad")
    seen: list = []
    original = ZhllamaLM._loglikelihood_tokens

    def spy(self, requests, *args, **kwargs):
        out = original(self, requests, *args, **kwargs)
        seen.extend(zip(requests, out))
        return out

    monkeypatch.setattr(ZhllamaLM, "_loglikelihood_tokens", spy)
    results = evaluator.simple_evaluate(model="zhllama", model_args={"pretrained": str(model_dir)},
                                        tasks=["ceval-local"], num_fewshot=0, device="cpu", batch_size=4,
                                        task_manager=TaskManager(include_path=str(TASKS)), log_samples=False)
    assert len(seen) == 4 * len(VAL)

    sp = spm.SentencePieceProcessor(model_file=str(h.merged_sp_model()))
    model = transformers.AutoModelForCausalLM.from_pretrained(model_dir).eval()
    new_ids = {sp.piece_to_id(p) for p in h.NEW_PIECES}
    scores: dict[int, list[float]] = {}
    uses_new_pieces = 0
    for ((context, continuation), ctx_enc, cont_enc), (logprob, _) in seen:
        assert ctx_enc + cont_enc == sp.encode(context + continuation, add_bos=True), context[-40:]
        assert ctx_enc == sp.encode(context.rstrip(" "), add_bos=True)
        uses_new_pieces += bool(new_ids & set(ctx_enc))
        assert len(ctx_enc + cont_enc) <= 256  # within the tiny model's window: nothing truncated
        # Zero-shot (a few-shot prompt of the tiny tokenizer's bytes would overflow 256 positions):
        # C-Eval's description, then the val question in C-Eval's format.
        (doc_index,) = [i for i, doc in enumerate(VAL) if context.endswith(ceval_prompt(doc))]
        assert context.startswith("以下是中国关于常识的单项选择题") and context.count("答案：") == 1
        assert logprob == pytest.approx(continuation_logprob(model, sp, context, continuation), abs=1e-4)
        scores.setdefault(doc_index, [0.0] * 4)["ABCD".index(continuation.strip())] = logprob
    assert uses_new_pieces > 0  # the merged pieces are in play, or the test proves little
    correct = [max(range(4), key=s.__getitem__) == "ABCD".index(VAL[i]["answer"]) for i, s in scores.items()]
    assert len(correct) == len(VAL)
    assert results["results"]["ceval-local"]["acc,none"] == pytest.approx(sum(correct) / len(correct))
    assert results["config"]["tokenizer_class"] == "ZhllamaLlamaTokenizer"
    assert results["n-shot"]["ceval-local"] == 0


@pytest.mark.fixtures
def test_reference_merge_requests_are_sentencepiece_ids_where_hf_backend_differs(reference_merge, tmp_path,
                                                                                  monkeypatch):
    # The tiny test tokenizer's conversion agrees with sentencepiece on these prompts; the real
    # 49,953 merge does not, so only here can a backend that tokenizes as `hf` does be caught.
    # mistral-common's stand-in and the trained Chinese stand-in merge into a vocabulary whose
    # conversion happens to agree too: this needs the real pair.
    real_fixture("llama_tokenizer.model")
    real_fixture("chinese_sp.model")
    from lm_eval.models.huggingface import HFLM

    from zhllama.tokenizer import Tokenizer
    from zhllama.tokenizer.directory import copy_tokenizer_files, write_tokenizer_dir_from_model

    tok_dir = write_tokenizer_dir_from_model(tmp_path / "tok", reference_merge, pad_token="[PAD]")
    model_dir = tmp_path / "model"
    torch.manual_seed(0)
    transformers.LlamaForCausalLM(
        h.tiny_config(len(Tokenizer.from_pretrained(tok_dir)), hidden=16)
    ).save_pretrained(model_dir)
    copy_tokenizer_files(tok_dir, model_dir)

    seen: list = []
    original = HFLM._loglikelihood_tokens

    def spy(self, requests, *args, **kwargs):
        seen.extend((ctx + cont, context + continuation) for (context, continuation), ctx, cont in requests)
        return original(self, requests, *args, **kwargs)

    monkeypatch.setattr(HFLM, "_loglikelihood_tokens", spy)
    description = "以下是中国关于常识的单项选择题，请选出其中的正确答案。\n\n"
    requests = [Instance(request_type="loglikelihood", doc={}, arguments=(description + ceval_prompt(doc), f" {c}"),
                         idx=i) for doc in VAL for i, c in enumerate("ABCD")]
    sp = spm.SentencePieceProcessor(model_file=str(reference_merge))
    differ = {}
    for backend in (ZhllamaLM, HFLM):
        seen.clear()
        backend(pretrained=str(model_dir), device="cpu").loglikelihood(requests, disable_tqdm=True)
        assert len(seen) == len(requests)
        differ[backend] = sum(ids != sp.encode(text, add_bos=True) for ids, text in seen)
    assert differ[ZhllamaLM] == 0
    assert differ[HFLM] > 0  # the conversion's ids: what the zhllama backend exists to avoid


def test_backend_loads_base_plus_lora_adapter(tmp_path):
    # The adapter was trained on the resized (merged-pad, 410-row) model; the base given is the
    # original 400-row one: the loader resizes it, merges the adapter and takes its tokenizer.
    resized = tmp_path / "resized"
    assert h.cli("resize", "--model", h.tiny_model_dir("base"), "--tokenizer", h.tokenizer_dir("merged-pad"),
                 "--out", resized, "--init", "mean") == 0
    adapter = lora_adapter(resized, tmp_path / "adapter", "q_proj,k_proj,v_proj,o_proj", seed=3)
    lm = ZhllamaLM(pretrained=str(h.tiny_model_dir("base")), lora=str(adapter), device="cpu")
    assert lm.model.get_input_embeddings().weight.shape[0] == 410
    assert lm.tokenizer.pad_token == "[PAD]" and len(lm.tokenizer) == 410

    reference = peft.PeftModel.from_pretrained(transformers.AutoModelForCausalLM.from_pretrained(resized),
                                               str(adapter)).eval()
    sp = spm.SentencePieceProcessor(model_file=str(h.merged_sp_model()))
    context, continuation = ceval_prompt(VAL[3]), " A"
    request = Instance(request_type="loglikelihood", doc={}, arguments=(context, continuation), idx=0)
    (logprob, _), = lm.loglikelihood([request], disable_tqdm=True)
    assert logprob == pytest.approx(continuation_logprob(reference, sp, context, continuation), abs=1e-4)


def test_eval_cli_tasks_writes_json_and_table(tmp_path, capsys):
    out = tmp_path / "ceval.json"
    rc = h.cli("eval", "--model", h.tiny_model_dir("merged-pad"), "--tasks", "ceval-local", "--include-path", TASKS,
               "--num-fewshot", "2", "--limit", "6", "--device", "cpu", "--output", out)
    assert rc == 0
    results = json.loads(out.read_text(encoding="utf-8"))
    acc = results["results"]["ceval-local"]["acc,none"]
    assert 0.0 <= acc <= 1.0 and results["n-samples"]["ceval-local"]["effective"] == 6
    table = out.with_suffix(".md").read_text(encoding="utf-8")
    from zhllama.tokenizer.directory import sha256_file

    sha = sha256_file(h.tokenizer_dir("merged-pad") / "tokenizer.model")
    assert f"`{sha}`" in table and results["config"]["tokenizer_sha256"] == sha
    assert f"| lm-eval version | {lm_eval.__version__} |" in table
    assert "| few-shot | 2 |" in table and "答案：" in table  # the prompt format is recorded
    assert "|ceval-local|" in table.replace(" ", "") and f"{acc:.4f}" in table
    assert "# lm-evaluation-harness results" in capsys.readouterr().out  # the table is printed too


def test_lm_eval_command_line_runs_the_zhllama_backend(tmp_path):
    from zhllama.infer.harness import main

    model_dir = h.tiny_model_dir("merged-pad")
    main(["run", "--model", "zhllama", "--model_args", f"pretrained={model_dir}", "--tasks", "ceval-local",
          "--include_path", str(TASKS), "--device", "cpu", "--limit", "3", "--output_path", str(tmp_path / "out")])
    (written,) = (tmp_path / "out").rglob("results_*.json")
    results = json.loads(written.read_text(encoding="utf-8"))
    assert results["config"]["model"] == "zhllama" and "acc,none" in results["results"]["ceval-local"]


@pytest.mark.parametrize(("argv", "message"), [
    (["--tasks", "ceval-local", "--preset", "cmmlu"], "--preset cmmlu names its own tasks"),
    (["--preset", "ceval", "--num-fewshot", "3"], "--preset ceval is 5-shot"),
    (["--tasks", ","], "names no task"),
    ([], "give --text-file"),
    (["--tasks", "no-such-task", "--include-path", str(TASKS)], "unknown lm-eval task(s) no-such-task"),
])
def test_eval_tasks_argument_errors(argv, message, capsys):
    assert h.cli("eval", "--model", h.tiny_model_dir("merged-pad"), *argv) == 2
    assert message in capsys.readouterr().err


# Runs `python -m lm_eval ARGS` after processing a site directory that holds only the wheel's
# .pth, as an installed wheel's site-packages would at start-up; then reports the registry.
_LM_EVAL_WITH_PTH = """
import runpy, site, sys
site.addsitedir(sys.argv.pop(1))
sys.argv[0] = "lm_eval"
runpy.run_module("lm_eval", run_name="__main__", alter_sys=True)
from lm_eval.api.registry import model_registry
cls = model_registry.get("zhllama")
print("REGISTRY", cls.__module__, cls.__name__)
"""


@pytest.mark.parametrize("form", [["run"], []], ids=["lm_eval run", "lm_eval (legacy, no subcommand)"])
def test_plain_lm_eval_command_runs_the_zhllama_backend_through_the_pth_hook(tmp_path, form):
    site_dir = tmp_path / "site"
    site_dir.mkdir()
    shutil.copy(HOOK_PTH, site_dir)
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-c", _LM_EVAL_WITH_PTH, str(site_dir), *form, "--model", "zhllama", "--model_args",
         f"pretrained={h.tiny_model_dir('merged-pad')}", "--tasks", "ceval-local", "--include_path", str(TASKS),
         "--device", "cpu", "--limit", "2", "--output_path", str(out)],
        env=package_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "REGISTRY zhllama.infer.harness ZhllamaLM" in proc.stdout
    (written,) = out.rglob("results_*.json")
    results = json.loads(written.read_text(encoding="utf-8"))
    assert results["config"]["model"] == "zhllama" and "acc,none" in results["results"]["ceval-local"]
    assert results["config"]["tokenizer_class"] == "ZhllamaLlamaTokenizer"


def test_the_startup_hook_imports_nothing_but_itself():
    # The .pth runs it at every interpreter start: no torch, no zhllama, no lm_eval, no typing.
    code = ("import sys; sys.path.insert(0, sys.argv[1]); before = set(sys.modules); import zhllama_lm_eval_hook; "
            "print(sorted(set(sys.modules) - before)); "
            "print(sum(type(f).__name__ == 'Finder' for f in sys.meta_path))")
    env = package_env()
    proc = subprocess.run([sys.executable, "-S", "-c", code, env["PYTHONPATH"]], env=env, capture_output=True,
                          text=True, check=True)
    assert proc.stdout.split("\n")[:2] == ["['zhllama_lm_eval_hook']", "1"]


def test_the_hook_registers_lazily_and_keeps_lm_evals_own_backends(tmp_path):
    # An entry made before lm-eval fills its registry would hide `--model hf` and the rest
    # (get_model loads lm_eval.models only while the registry is empty).
    shutil.copy(HOOK_PTH, tmp_path)
    code = ("import site, sys; site.addsitedir(sys.argv[1]); "
            "from lm_eval.api.registry import get_model, model_registry; "
            "print(get_model('dummy').__name__, dict(model_registry.items())['zhllama'], "
            "'zhllama' in sys.modules, 'torch' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path)], env=package_env(), capture_output=True,
                          text=True, check=True)
    assert proc.stdout.split() == ["DummyLM", "zhllama.infer.harness:ZhllamaLM", "False", "False"]

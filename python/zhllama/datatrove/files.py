"""``ZhllamaTokenizeFiles``: a task's files → one part of a zhllama tokenized corpus, read and
encoded by the Rust pipeline of ``tokenize-corpus``.

    from datatrove.executor import SlurmPipelineExecutor
    from zhllama.datatrove import ZhllamaTokenizeFiles

    SlurmPipelineExecutor(pipeline=[ZhllamaTokenizeFiles("corpus/", "tokens/", tokenizer="merged/",
                                                         glob_pattern="**/*.jsonl.zst")],
                          tasks=64, workers=16, time="12:00:00", partition="cpu", cpus_per_task=32,
                          logging_dir="logs/tok", job_name="zhllama-tok").run()

The step is the whole pipeline (it reads the files itself: no datatrove reader before it).
Task ``rank`` takes ``folder.get_shard(rank, world_size)``, the files ``tokenize-corpus
--num-shards K --shard-index RANK`` takes over the same folder, and writes what that command
writes, byte for byte, into ``tokens/part-RANK``. So it keeps the pipeline's reading speed
and its resume inside a task: a task killed (``kill -9``, a Slurm time limit) and relaunched
continues at its first incomplete shard instead of starting over.
"""

from __future__ import annotations

import argparse
import os
from typing import Optional

from datatrove.data import DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from datatrove.utils.logging import logger

from zhllama.datatrove.parts import CorpusOptions, local_path, part_dir


class ZhllamaTokenizeFiles(PipelineStep):
    """Tokenize this task's files of ``data_folder`` into ``output_folder/part-RANK``.

    Args:
        data_folder: local (or mounted) folder of ``.txt``/``.jsonl[.gz|.zst]``/``.parquet`` files.
        output_folder: local (or mounted) folder; task ``r`` writes ``output_folder/part-0000r``.
        tokenizer: a tokenizer directory or model file, as ``tokenize-corpus --tokenizer``.
        glob_pattern / recursive: which files of ``data_folder`` (datatrove's ``list_files``);
            every file listed must be one zhllama reads.
        text_field / append_eos / add_bos / shard_size / on_bad_line: as ``tokenize-corpus``.
        threads: encoder threads per task (None: the CPUs this process may use).
    """

    name = "🀄 zhllama tokenize files"
    type = "🔢 - TOKENIZER"

    def __init__(
        self,
        data_folder: str | os.PathLike[str],
        output_folder: str | os.PathLike[str],
        tokenizer: str | os.PathLike[str],
        glob_pattern: Optional[str] = None,
        recursive: bool = True,
        text_field: str = "text",
        append_eos: bool = True,
        add_bos: bool = False,
        shard_size: str = "1GB",
        on_bad_line: str = "fail",
        threads: Optional[int] = None,
    ) -> None:
        super().__init__()
        self.data_folder = local_path(data_folder, "data_folder")
        self.output_folder = local_path(output_folder, "output_folder")
        self.options = CorpusOptions(str(tokenizer), text_field, append_eos, add_bos, shard_size, on_bad_line)
        self.glob_pattern = glob_pattern
        self.recursive = recursive
        self.threads = threads

    def task_files(self, rank: int, world_size: int) -> list[str]:
        """This task's files (absolute paths), by datatrove's own sharding rule."""
        from datatrove.io import get_datafolder

        from zhllama.documents import input_format

        folder = get_datafolder(str(self.data_folder))
        files = folder.get_shard(rank, world_size, recursive=self.recursive, glob_pattern=self.glob_pattern)
        if files is None:
            raise FileNotFoundError(f"{self.data_folder}: no files match glob_pattern={self.glob_pattern!r}")
        paths = [os.path.abspath(folder.resolve_paths(f)) for f in files]
        unreadable = [p for p in paths if not input_format(p)]
        if unreadable:
            # Dropping them here would shift every other task's share; refuse with the fix.
            raise ValueError(f"{unreadable[0]}: not a .txt/.jsonl[.gz|.zst]/.parquet file; "
                             "choose the corpus files with glob_pattern (e.g. '**/*.jsonl.gz')")
        return paths

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        from zhllama.corpus.tokenize import tokenize_corpus

        if data:
            raise ValueError("ZhllamaTokenizeFiles reads its files itself; put it first in the pipeline "
                             "(use ZhllamaTokenize after a reader or filter)")
        files = self.task_files(rank, world_size)
        o = self.options
        args = argparse.Namespace(
            tokenizer=o.tokenizer, input=None, out=str(part_dir(self.output_folder, rank)),
            text_field=o.text_field, threads=self.threads or _cpus(),
            append_eos=o.append_eos, add_bos=o.add_bos, shard_size=o.shard_size,
            num_shards=world_size, shard_index=rank, on_bad_line=o.on_bad_line, quiet=True,
        )
        manifest = tokenize_corpus(args, files)
        t = manifest["totals"]
        self.stat_update("input_files", value=len(files), unit="task")
        self.stat_update("documents", value=manifest["num_docs"], unit="task")
        self.stat_update("tokens", value=manifest["num_tokens"], unit="task")
        self.stat_update("input_bytes", value=sum(s["bytes"] for s in manifest["sources"]), unit="task")
        if t["bad_lines"]:
            self.stat_update("bad_lines", value=t["bad_lines"], unit="task")
        logger.info(f"{args.out}: {manifest['num_docs']:,} docs, {manifest['num_tokens']:,} tokens "
                    f"from {len(files)} files")
        return iter(())


def _cpus() -> int:
    # The CPUs this task may use (Slurm's --cpus-per-task sets the affinity), not the node's.
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1

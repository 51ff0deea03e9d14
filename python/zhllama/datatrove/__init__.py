"""zhllama's exact tokenizer as datatrove pipeline steps (``pip install 'zhllama[datatrove]'``).

- ``ZhllamaTokenize``: a document-level step. It takes ``Document``s from any datatrove reader
  or filter and writes, per task (rank), ``OUTPUT/part-RANK/``: Megatron ``.bin``/``.idx``
  shards and ``manifest.json``, as ``zhllama tokenize-corpus`` writes them for the same
  documents in the same order.
- ``ZhllamaTokenizeFiles``: a file-level fast path. It hands the task's files
  (``folder.get_shard(rank, world_size)``) to the Rust pipeline of ``tokenize-corpus``, with
  its reading speed and its resume inside a task (even after ``kill -9``).

Both run on ``LocalPipelineExecutor``, ``SlurmPipelineExecutor`` and ``RayPipelineExecutor``;
datatrove skips finished tasks on relaunch (``LOGS/completions/RANK``). The task outputs join
with ``zhllama tokenize-corpus --merge-manifests OUTPUT/part-* --out OUTPUT/all``. The README
section "Many machines with datatrove" has one command per executor.
"""

from __future__ import annotations

from zhllama.datatrove.documents import ZhllamaTokenize
from zhllama.datatrove.files import ZhllamaTokenizeFiles
from zhllama.datatrove.parts import part_dir

__all__ = ["ZhllamaTokenize", "ZhllamaTokenizeFiles", "part_dir"]

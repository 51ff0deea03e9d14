"""What each rank holds right after loading a model under ZeRO-3, the way ``pretrain``/``sft`` load it.

    torchrun --nproc_per_node 2 benches/zero3_load.py MODEL_DIR OUT_DIR [--precision fp32] [--config ...]

Writes OUT_DIR/rank-N.json for each rank N: the model's parameter count (``ds_numel`` summed), the elements this
rank holds (``ds_tensor`` summed), the elements left in the parameters themselves (ZeRO-3 leaves
empty stubs) and the largest allocation seen. Under ``zero.Init`` each rank holds about 1/N of the
model; a model built whole on each rank and partitioned later would have held all of it first.
Used by tests/test_train_deepspeed.py (2 CPU ranks) and benches/gpu_check.py (GPUs).
"""

from __future__ import annotations

import argparse
import json
import os
import resource


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("out")
    ap.add_argument("--precision", default="fp32")
    ap.add_argument("--config", default=os.path.join(os.path.dirname(__file__), "..", "configs", "ds_zero3.json"))
    args = ap.parse_args(argv)

    import tempfile

    import torch

    from zhllama.cli import close_process_group
    from zhllama.model.loading import load_model
    from zhllama.model.parameters import param_numel
    from zhllama.train.args import RunArguments
    from zhllama.train.trainer import distributed_training_arguments

    run = RunArguments(output_dir=tempfile.mkdtemp(prefix="zero3-load-"), deepspeed=args.config,
                       precision=args.precision, report_to="none")
    training = distributed_training_arguments(run, 1e-4, False, False)
    model = load_model(args.model, 0, args.precision)
    params = list(model.parameters())
    report = {
        "rank": training.process_index,
        "world_size": training.world_size,
        "partitioned": all(hasattr(p, "ds_tensor") for p in params),
        "ds_numel": sum(param_numel(p) for p in params),
        "held": sum(int(p.ds_tensor.numel()) if hasattr(p, "ds_tensor") else p.numel() for p in params),
        "in_stubs": sum(p.numel() for p in params),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "cuda_peak_mb": torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None,
    }
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, f"rank-{report['rank']}.json"), "w") as f:
        json.dump(report, f)
    close_process_group(wait_for_peers=True)
    return 0


if __name__ == "__main__":
    # As every zhllama verb under torchrun: closed process group, then no interpreter teardown (CI saw rank 1 of
    # this script abort at exit with "terminate called without an active exception", failing the launch).
    from zhllama.cli import exit_launched_rank

    exit_launched_rank(main())

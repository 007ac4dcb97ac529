"""``asr decode`` and ``asr tune`` of one manifest in one torchrun job (one process group for both).

    torchrun --standalone --nproc-per-node 2 tests/shard_check.py DECODE_ARGS... -- TUNE_ARGS...

tests/test_shards.py compares what rank 0 writes with a single process's files.
"""

from __future__ import annotations

import sys

import torch.distributed as dist

from asr.cli import main

if __name__ == "__main__":
    dist.init_process_group("gloo")  # decode and tune then share it instead of each making its own
    split = sys.argv.index("--")
    status = main(sys.argv[1:split]) or main(sys.argv[split + 1:])
    dist.destroy_process_group()
    sys.exit(status)

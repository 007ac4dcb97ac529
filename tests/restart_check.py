"""A torchrun restart in which rank 1 of the new attempt joins before rank 0 (run with --max-restarts 1).

    torchrun --standalone --nproc-per-node 2 --max-restarts 1 tests/restart_check.py DIR

Attempt 0: both ranks join and sum a tensor, then rank 1 fails, so torchrun restarts both.
Attempt 1: rank 1 writes DIR/joining and joins; rank 0 waits for that file and one more second
before it joins. Rank 1 must not take the addresses that attempt 0 left in torchrun's store (those
ports are closed: "Connection refused"), but wait for rank 0's. Exits 0 once attempt 1 has summed
a tensor on both ranks.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist

from asr.training.distributed import init_distributed, leave_distributed

if __name__ == "__main__":
    attempt, rank = int(os.environ["TORCHELASTIC_RESTART_COUNT"]), int(os.environ["RANK"])
    joining = Path(sys.argv[1]) / "joining"
    if attempt == 1 and rank == 1:
        joining.touch()
    if attempt == 1 and rank == 0:
        while not joining.exists():
            time.sleep(0.05)
        time.sleep(1)
    ctx = init_distributed(torch.device("cpu"))
    total = torch.ones(1)
    dist.all_reduce(total)
    assert total.item() == 2
    if attempt == 0 and rank == 1:
        sys.exit(1)
    if attempt == 0:
        time.sleep(60)  # stopped by torchrun, which restarts the group
    print(f"attempt {attempt} rank {rank} summed", flush=True)
    leave_distributed(ctx)

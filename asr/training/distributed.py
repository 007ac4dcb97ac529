"""torchrun integration: process group, device per rank, and sums across ranks.

``asr train`` runs unchanged under ``torchrun --nproc-per-node N`` (and multi-node rendezvous):
torchrun sets ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``; without them everything here is a
no-op for a single process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["Dist", "init_distributed", "pick_device", "all_sum", "broadcast_object", "gather_objects"]


@dataclass(frozen=True)
class Dist:
    rank: int = 0  # global rank
    world_size: int = 1  # processes in the job
    local_rank: int = 0  # rank on this node (picks the GPU)
    local_world_size: int = 1  # processes on this node (shares the CPU cores)

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def pick_device(name: str, local_rank: int = 0) -> torch.device:
    """``"auto"`` -> cuda when available, else cpu; a CUDA device is ``cuda:LOCAL_RANK``."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name not in ("cpu", "cuda"):
        raise ValueError(f"device: expected 'cpu', 'cuda' or 'auto', got {name!r}")
    if name == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("device 'cuda' requested but torch sees no CUDA device")
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def init_distributed(device: torch.device) -> Dist:
    """Join the torchrun process group (NCCL on GPU, gloo on CPU) if ``WORLD_SIZE`` > 1."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return Dist()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Dist(dist.get_rank(), world_size, int(os.environ.get("LOCAL_RANK", "0")),
                int(os.environ.get("LOCAL_WORLD_SIZE", str(world_size))))


def all_sum(values: list[float], ctx: Dist, device: torch.device) -> list[float]:
    """Element-wise sum of ``values`` over all ranks (float64)."""
    if not ctx.enabled:
        return list(values)
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.tolist()


def broadcast_object(obj, ctx: Dist):
    """Rank 0's ``obj`` on every rank (picklable objects; tensors travel via CPU)."""
    if not ctx.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_objects(obj, ctx: Dist) -> list:
    """``[obj of rank 0, obj of rank 1, ...]`` on every rank."""
    if not ctx.enabled:
        return [obj]
    out = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out

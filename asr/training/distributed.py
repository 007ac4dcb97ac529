"""torchrun integration: process group, device per rank, sums across ranks, an orderly exit.

``asr train`` runs unchanged under ``torchrun --nproc-per-node N`` (and multi-node rendezvous):
torchrun sets ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``; without them everything here is a
no-op for a single process.

Restarts (``torchrun --max-restarts``): torch's elastic agent keeps one TCPStore for the whole
job and hands it to every attempt's workers without a per-attempt key prefix, so the workers of
a restart can read the previous attempt's Gloo/NCCL addresses and fail with "Connection refused"
or hang (pytorch/pytorch#135712). ``init_distributed`` therefore joins a process group through a
fresh store that rank 0 hosts for its own attempt only.
"""

from __future__ import annotations

import gc
import os
import time
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

__all__ = ["Dist", "init_distributed", "leave_distributed", "pick_device", "all_sum", "broadcast_object",
           "gather_objects", "torchrun_rank"]

_STORE_KEY = "asr/attempt_store/{}"  # rank 0's "host:port" for the process's n-th group, in the agent's store
_PROBE_TIMEOUT = timedelta(seconds=2)  # one try to reach a published store (a past attempt's never answers)
_STORE_TIMEOUT = timedelta(minutes=30)  # torch's default for gloo: how long a rank waits for the others
_groups_joined = [0]  # process groups this process has joined through _attempt_store (each gets its own key)


@dataclass(frozen=True)
class Dist:
    rank: int = 0  # global rank
    world_size: int = 1  # processes in the job
    local_rank: int = 0  # rank on this node (picks the GPU)
    local_world_size: int = 1  # processes on this node (shares the CPU cores)
    owns_group: bool = False  # the process group was created here (and is destroyed by leave_distributed)

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def torchrun_rank() -> tuple[int, int]:
    """(RANK, WORLD_SIZE) set by torchrun; (0, 1) outside it."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


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


def init_distributed(device: torch.device, backend: str | None = None) -> Dist:
    """Join the torchrun process group if ``WORLD_SIZE`` > 1 (``backend`` None: NCCL on GPU, gloo on CPU).

    A group that already exists (created by the caller) is used as it is.
    """
    rank, world_size = torchrun_rank()
    if world_size == 1:
        return Dist()
    owns_group = not dist.is_initialized()
    if owns_group:
        backend = backend or ("nccl" if device.type == "cuda" else "gloo")
        if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True":
            dist.init_process_group(backend, store=_attempt_store(rank, world_size), rank=rank, world_size=world_size)
        else:  # env:// (torchrun with TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1, or another launcher): rank 0 hosts it
            dist.init_process_group(backend)
    return Dist(dist.get_rank(), world_size, int(os.environ.get("LOCAL_RANK", "0")),
                int(os.environ.get("LOCAL_WORLD_SIZE", str(world_size))), owns_group)


def _attempt_store(rank: int, world_size: int) -> dist.Store:
    """A store that only this attempt's workers use, hosted by rank 0 and found through the agent's.

    Rank 0 publishes its store's address in the torchrun agent's store; the other ranks read it,
    and an address left by an earlier attempt (its rank 0 is gone, the connection is refused) is
    read again until rank 0 of this attempt has replaced it.
    """
    # The agent's store runs on the node of rendezvous rank 0, which holds global rank 0: MASTER_ADDR reaches both.
    host, port = os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"])
    agent = dist.TCPStore(host, port, world_size, is_master=False, timeout=_STORE_TIMEOUT)
    key = _STORE_KEY.format(_groups_joined[0])
    _groups_joined[0] += 1
    if rank == 0:
        store = dist.TCPStore(host, 0, world_size, is_master=True, timeout=_STORE_TIMEOUT, wait_for_workers=False)
        agent.set(key, f"{host}:{store.port}")
        return store
    deadline = time.monotonic() + _STORE_TIMEOUT.total_seconds()
    while True:
        address = agent.get(key).decode()  # waits for the first attempt's rank 0
        store_host, store_port = address.rsplit(":", 1)
        try:
            store = dist.TCPStore(store_host, int(store_port), world_size, is_master=False, timeout=_PROBE_TIMEOUT)
        except (RuntimeError, TimeoutError) as err:  # the previous attempt's rank 0, gone
            if time.monotonic() > deadline:
                raise RuntimeError(f"rank {rank}: no store at {address} (rank 0's, published by the torchrun "
                                   f"agent at {host}:{port}) within {_STORE_TIMEOUT}: {err}") from err
            time.sleep(0.2)
            continue
        store.set_timeout(_STORE_TIMEOUT)
        return store


def leave_distributed(ctx: Dist) -> None:
    """Leave the process group that ``init_distributed`` created, together, while the interpreter is alive.

    Every rank must call it (it starts with a barrier); after an error, when a peer may be gone,
    call nothing. The group is only freed once nothing references it: objects that do (a
    DistributedDataParallel module inside a reference cycle) must be unreachable by then, so that
    the collection here frees them. Else the group's threads are torn down during interpreter exit,
    where releasing a tensor needs the GIL, and the process ends now and then in ``terminate called
    without an active exception`` (SIGABRT) after its work is done.
    """
    if not (ctx.owns_group and dist.is_initialized()):
        return
    dist.barrier()
    gc.collect()
    dist.destroy_process_group()
    gc.collect()


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

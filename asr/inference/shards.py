"""Sharded decoding and tuning: ``asr decode`` and ``asr tune`` split over processes or jobs.

Shard I of N takes batches I, I + N, I + 2N, ... of the unsharded run's batches
(``asr.data.cuts.eval_batches``): every cut is decoded in the same batch, with the same padding
and arithmetic, as without shards, so the merged result is the unsharded one, line for line.

- Under torchrun (``WORLD_SIZE`` > 1) the processes join a gloo group; rank r is shard r of
  ``WORLD_SIZE``; rank 0 gathers the shards' results and writes them. With ``device`` "cuda",
  rank r runs on ``cuda:LOCAL_RANK``.
- ``shard="I/N"`` (one job of a job array, nothing shared but the output folder): each job
  writes its part under ``OUT/shards/``; the job that finds all N parts of the same run there
  (the last to finish) writes the merged result. Parts of another run (another model, manifest
  or option) are never merged with this run's.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..decoding.search import write_hypothesis_lines
from ..training.distributed import Dist, all_sum, gather_objects, init_distributed, leave_distributed, torchrun_rank

__all__ = ["Shard", "open_shard", "parse_shard", "run_key"]

log = logging.getLogger(__name__)


def parse_shard(spec: str) -> tuple[int, int]:
    """``"I/N"`` -> (I, N), with 0 <= I < N."""
    try:
        index, count = (int(v) for v in spec.split("/"))
    except ValueError:
        index, count = 0, 0
    if not 0 <= index < count:
        raise ValueError(f"shard: expected I/N with 0 <= I < N (e.g. 0/4), got {spec!r}")
    return index, count


@dataclass(frozen=True)
class Shard:
    """Which part of a set this process handles, and how the parts meet again."""

    index: int = 0  # I of I/N
    count: int = 1  # N of I/N
    ctx: Dist = field(default_factory=Dist)  # the torchrun group; disabled for a job array or one process
    run: str = ""  # what the parts of one run share (model, manifest, options): parts of other runs are not merged

    @property
    def part(self) -> tuple[int, int]:
        return self.index, self.count

    def device(self, name: str) -> str:
        """Under torchrun, "cuda" (and "auto" on a GPU machine) is this rank's GPU, ``cuda:LOCAL_RANK``."""
        if self.ctx.enabled and name == "auto":
            name = "cuda" if torch.cuda.is_available() else "cpu"
        return f"cuda:{self.ctx.local_rank}" if self.ctx.enabled and name == "cuda" else name

    def merge_hypotheses(self, lines: list[tuple[str, str, str]], out_dir: str | Path, name: str) -> Path | None:
        """Write ``hyp-NAME.{txt,jsonl}`` of all shards (``hypothesis_lines``) once they are all in.

        Returns the text file, or None where this process does not write it (another rank; a job
        whose part is not the last).
        """
        if self.ctx.enabled:
            parts = gather_objects(lines, self.ctx)
            merged = [line for part in parts for line in part]
            return write_hypothesis_lines(merged, out_dir, name) if self.ctx.is_main else None
        if self.count == 1:
            return write_hypothesis_lines(lines, out_dir, name)
        parts = self._exchange_parts(Path(out_dir) / "shards", f"hyp-{name}", lines)
        if parts is None:
            return None
        return write_hypothesis_lines([tuple(line) for part in parts for line in part], out_dir, name)

    def sum_counts(self, counts: list[tuple[int, int]], parts_dir: str | Path, name: str
                   ) -> list[tuple[int, int]] | None:
        """Element-wise sums of every shard's (errors, words) counts; None until all are in (job array)."""
        if self.ctx.enabled:
            flat = all_sum([float(v) for pair in counts for v in pair], self.ctx, torch.device("cpu"))
            return [(int(flat[i]), int(flat[i + 1])) for i in range(0, len(flat), 2)]
        if self.count == 1:
            return counts
        parts = self._exchange_parts(Path(parts_dir), name, counts)
        if parts is None:
            return None
        return [(sum(p[k][0] for p in parts), sum(p[k][1] for p in parts)) for k in range(len(counts))]

    def _exchange_parts(self, parts_dir: Path, name: str, content: list) -> list[list] | None:
        """Write this job's part; every job's part of this run when all N are there, else None."""
        parts_dir.mkdir(parents=True, exist_ok=True)
        paths = [parts_dir / f"{name}.{i}-of-{self.count}.json" for i in range(self.count)]
        partial = paths[self.index].with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(json.dumps({"run": self.run, "content": content}))
        os.replace(partial, paths[self.index])
        parts = []
        for path in paths:
            try:
                part = json.loads(path.read_text())
            except (FileNotFoundError, json.JSONDecodeError):
                return None
            if part["run"] != self.run:
                return None
            parts.append(part["content"])
        log.info("all %d parts of %s are in: merging", self.count, name)
        return parts

    def close(self) -> None:
        """Leave the torchrun group (every rank calls it)."""
        leave_distributed(self.ctx)


def run_key(files: list[str | Path], **options) -> str:
    """What the parts of one run share: the files' paths, sizes and modification times, and the options."""
    stats = [(str(Path(f).resolve()), Path(f).stat().st_size, Path(f).stat().st_mtime_ns) for f in files]
    return json.dumps({"files": stats, **options}, default=str, sort_keys=True)


def open_shard(spec: str | None, run: str = "") -> Shard:
    """This process's shard: from torchrun's environment, from ``spec`` ("I/N"), or the whole set.

    Under torchrun this joins a gloo process group (``Shard.close`` leaves it). ``run``: what
    identifies the run (see ``Shard.run``).
    """
    rank, world_size = torchrun_rank()
    if world_size > 1:
        if spec is not None:
            raise ValueError(f"shard: {spec!r} under torchrun, which shards by rank already; give one or the other")
        ctx = init_distributed(torch.device("cpu"), backend="gloo")  # the results travel as CPU objects
        return Shard(ctx.rank, ctx.world_size, ctx, run)
    if spec is None:
        return Shard(run=run)
    index, count = parse_shard(spec)
    return Shard(index, count, run=run)

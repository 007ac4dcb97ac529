"""torchrun + DistributedDataParallel on the CPU (gloo, 2 processes) against a single process."""

from __future__ import annotations

import csv
import os
import subprocess
import sys

import pytest
import torch

from asr.model.checkpoint import load_file
from asr.config import load_config
from asr.data.cuts import load_cuts, train_sampler
from helpers import REPO, TINY

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]


def _run(command, **kwargs):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env, **kwargs)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.mark.parametrize("mode", ["", "oom"])
def test_two_gloo_ranks_take_the_same_steps_as_one_process_on_the_union_of_their_batches(small_sets, tmp_path, mode):
    """With ``oom``, one rank runs out of memory on the first batch: both skip it, as one process does."""
    cuts = small_sets / "cuts12.jsonl.gz"
    script = str(REPO / "tests" / "ddp_step_check.py")
    _run([sys.executable, script, str(cuts), str(tmp_path / "single.pt"), mode])
    _run([*TORCHRUN, script, str(cuts), str(tmp_path / "ddp.pt"), mode])
    single, ddp = torch.load(tmp_path / "single.pt"), torch.load(tmp_path / "ddp.pt")
    assert ddp["losses"] == pytest.approx(single["losses"], rel=1e-5)
    if mode == "oom":
        assert single["oom_batches"] == ddp["oom_batches"] == [1, 0]
        assert ddp["losses"][0] == 0.0 < ddp["losses"][1]
    else:
        assert single["losses"][1] != pytest.approx(single["losses"][0], rel=1e-3)  # the weights did move
    for key, value in single["state_dict"].items():
        torch.testing.assert_close(ddp["state_dict"][key], value, rtol=1e-4, atol=1e-5, msg=key)


def test_asr_train_runs_unchanged_under_torchrun(small_sets, tmp_path):
    cuts = small_sets / "cuts12.jsonl.gz"
    exp = tmp_path / "exp"
    _run([*TORCHRUN, "-m", "asr.cli", "train", "--train", str(cuts), "--dev", str(cuts), "--exp-dir", str(exp),
          *TINY, "epochs=2", "log_every=1"])
    with open(exp / "log.csv") as f:
        rows = list(csv.DictReader(f))
    cfg = load_config(None, TINY)

    def batches(epoch, world_size):
        sampler = train_sampler(load_cuts(cuts), cfg.data, 0, world_size=world_size, rank=0)
        sampler.set_epoch(epoch)
        return sum(1 for _ in sampler)

    per_rank = [batches(0, 2), batches(1, 2)]
    assert per_rank[0] < batches(0, 1)  # each rank sees its own shard
    assert [int(r["step"]) for r in rows] == [per_rank[0], sum(per_rank)]  # one row per epoch: rank 0 logs
    assert float(rows[1]["train_loss"]) < float(rows[0]["train_loss"])
    assert [p.name for p in sorted(exp.glob("checkpoints/*.pt"))] == ["epoch-001.pt", "epoch-002.pt"]
    state = load_file(exp / "checkpoints/epoch-002.pt")["train_state"]
    assert len(state["rng"]) == 2  # both ranks' random streams, for an exact resume
    assert (exp / "train.log").read_text().count("epoch 2: ") == 1


def test_bad_training_audio_under_torchrun_is_skipped_named_and_counted(small_sets, tmp_path):
    from test_loader import bad_audio_manifest

    manifest, bad_files = bad_audio_manifest(small_sets, tmp_path)
    exp = tmp_path / "exp"
    result = _run([*TORCHRUN, "-m", "asr.cli", "train", "--train", str(manifest), "--dev",
                   str(small_sets / "cuts12.jsonl.gz"), "--exp-dir", str(exp), *TINY, "epochs=2"])
    with open(exp / "log.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["bad_audio"]) for r in rows] == [3, 3]  # summed over both ranks
    for path in bad_files:
        assert str(path) in result.stderr
    assert "Traceback" not in result.stderr

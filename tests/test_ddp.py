"""torchrun + DistributedDataParallel on the CPU (gloo, 2 processes) against a single process."""

from __future__ import annotations

import csv
import os
import socket
import subprocess
import sys

import pytest
import torch

from asr.model.checkpoint import load_file
from asr.config import load_config
from asr.data.cuts import load_cuts, train_sampler
from helpers import REPO, TINY, log_rows

sys.path.insert(0, str(REPO / "tools" / "bench"))
import ddp_faults  # noqa: E402  (the launch and kill helpers of the benchmark, used here in small)

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


def test_resume_with_another_number_of_processes_restarts_the_epoch(small_sets, tmp_path):
    """A mid-epoch checkpoint of 2 processes resumes in 1 (lhotse's sampler state cannot: it asserts)."""
    cuts = small_sets / "cuts20.jsonl.gz"
    exp = tmp_path / "exp"
    train = ["-m", "asr.cli", "train", "--train", str(cuts), "--dev", str(cuts), "--exp-dir", str(exp), *TINY]
    _run([*TORCHRUN, *train, "epochs=2", "max_steps=2"])
    state = load_file(exp / "checkpoints/step-00000002.pt")["train_state"]
    assert (state["epoch"], state["world_size"]) == (0, 2)  # mid-epoch 1
    result = _run([sys.executable, *train, "epochs=2"])
    assert "checkpoint written by 2 process(es), now 1: epoch 1 starts again from its first batch" in result.stderr
    assert [int(row["epoch"]) for row in log_rows(exp)] == [1, 2]


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory, small_sets):
    """One uninterrupted 2-process run of ``ddp_faults.OVERRIDES`` on 20 cuts: (cuts, its final weights)."""
    cuts = small_sets / "cuts20.jsonl.gz"
    exp = tmp_path_factory.mktemp("ddp_reference")
    result = _run(ddp_faults.train_command(cuts, exp, ["--standalone", "--nproc-per-node", "2"]))
    assert "terminate called" not in result.stderr
    return cuts, ddp_faults.final_weights(exp)


def test_a_worker_killed_under_max_restarts_is_restarted_and_ends_with_the_same_weights(reference_run, tmp_path):
    cuts, reference = reference_run
    status, stderr = ddp_faults.kill_and_restart(cuts, tmp_path, kill_step=4, victim=1, timeout=240)
    assert status == 0, stderr[-3000:]
    assert "will restart worker group" in stderr and "resuming from" in (tmp_path / "train.log").read_text()
    assert ddp_faults.same_weights(ddp_faults.final_weights(tmp_path), reference)


def test_two_launchers_on_loopback_train_as_one_launcher_with_two_processes(reference_run, tmp_path):
    """``--nnodes 2`` with c10d rendezvous on 127.0.0.1, one process per launcher."""
    cuts, reference = reference_run
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    launchers = [subprocess.Popen(ddp_faults.train_command(cuts, tmp_path, [
        "--nnodes", "2", "--node-rank", str(node), "--nproc-per-node", "1", "--rdzv-backend", "c10d",
        "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", "two-launchers"]), env=ddp_faults.environment(),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for node in (0, 1)]
    for launcher in launchers:
        _, stderr = launcher.communicate(timeout=300)
        assert launcher.returncode == 0, stderr[-3000:]
    assert ddp_faults.same_weights(ddp_faults.final_weights(tmp_path), reference)

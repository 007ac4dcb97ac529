"""torchrun + DistributedDataParallel on the CPU (gloo, 2 processes) against a single process."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys

import pytest
import torch

from asr.model.checkpoint import load_file
from asr.config import load_config
from asr.data.cuts import load_cuts, train_sampler
from asr.training.loop import train
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


# The reference of the tests below: 2 processes, 20 cuts, 3 epochs, a step checkpoint every 2 steps.
OVERRIDES = [*TINY, "epochs=3", "save_every_steps=2"]


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory, small_sets):
    """One uninterrupted ``asr train`` of ``OVERRIDES`` under torchrun: (cuts, exp dir, torchrun's stderr)."""
    cuts = small_sets / "cuts20.jsonl.gz"
    exp = tmp_path_factory.mktemp("ddp_reference")
    result = _run(ddp_faults.train_command(cuts, exp, ["--standalone", "--nproc-per-node", "2"], OVERRIDES))
    return cuts, exp, result.stderr


def test_asr_train_runs_unchanged_under_torchrun_and_ends_cleanly(reference_run):
    cuts, exp, stderr = reference_run
    assert "terminate called" not in stderr
    rows = log_rows(exp)
    cfg = load_config(None, OVERRIDES)

    def batches(epoch, world_size):
        sampler = train_sampler(load_cuts(cuts), cfg.data, 0, world_size=world_size, rank=0)
        sampler.set_epoch(epoch)
        return sum(1 for _ in sampler)

    per_rank = [batches(epoch, 2) for epoch in range(3)]
    assert per_rank[0] < batches(0, 1)  # each rank sees its own shard
    assert [int(r["step"]) for r in rows] == [sum(per_rank[:n]) for n in (1, 2, 3)]  # one row per epoch: rank 0 logs
    assert float(rows[2]["train_loss"]) < float(rows[0]["train_loss"])
    assert [p.name for p in sorted(exp.glob("checkpoints/epoch-*.pt"))] == ["epoch-001.pt", "epoch-002.pt",
                                                                           "epoch-003.pt"]
    state = load_file(exp / "checkpoints/epoch-003.pt")["train_state"]
    assert len(state["rng"]) == state["world_size"] == 2  # both ranks' random streams, for an exact resume
    assert (exp / "train.log").read_text().count("epoch 3: ") == 1


def test_a_mid_epoch_checkpoint_of_two_processes_resumes_in_one(reference_run, tmp_path, caplog):
    """lhotse's sampler state cannot change its world size (it asserts): the epoch restarts instead."""
    cuts, exp, _ = reference_run
    step = sorted(exp.glob("checkpoints/step-*.pt"))[-1]
    state = load_file(step)["train_state"]
    assert state["world_size"] == 2 and state["step"] < int(log_rows(exp)[-1]["step"])  # inside the last epoch
    (tmp_path / "checkpoints").mkdir()
    shutil.copy(step, tmp_path / "checkpoints")
    train(load_config(None, OVERRIDES), cuts, cuts, tmp_path)
    assert (f"checkpoint written by 2 process(es), now 1: epoch {state['epoch'] + 1} starts again from its first "
            "batch") in caplog.text
    assert [int(row["epoch"]) for row in log_rows(tmp_path)] == [3]


def test_a_worker_killed_under_max_restarts_is_restarted_and_ends_with_the_same_weights(reference_run, tmp_path):
    cuts, exp, _ = reference_run
    status, stderr = ddp_faults.kill_and_restart(cuts, tmp_path, kill_step=4, victim=1, timeout=240,
                                                 overrides=OVERRIDES)
    assert status == 0, stderr[-3000:]
    assert "exitcode: -9" in stderr and "resuming from" in (tmp_path / "train.log").read_text()
    assert ddp_faults.same_weights(ddp_faults.final_weights(tmp_path), ddp_faults.final_weights(exp))


def test_a_restarted_rank_that_joins_first_waits_for_this_attempts_rank_0(tmp_path):
    """torchrun keeps one store for all attempts: the addresses of the last one must not be taken."""
    result = _run([*TORCHRUN, "--max-restarts", "1", str(REPO / "tests" / "restart_check.py"), str(tmp_path)])
    assert "attempt 1 rank 1 summed" in result.stdout and "attempt 1 rank 0 summed" in result.stdout


def test_two_launchers_without_a_shared_filesystem_train_as_one_launcher_with_two_processes(reference_run, tmp_path):
    """``--nnodes 2`` with c10d rendezvous on 127.0.0.1, one process per launcher, each with its own exp dir,
    and only node 0's holding a checkpoint (epoch 1): rank 0, wherever it runs, decides whether to resume."""
    cuts, exp, _ = reference_run
    exp_dirs = [tmp_path / "node0", tmp_path / "node1"]
    (exp_dirs[0] / "checkpoints").mkdir(parents=True)
    shutil.copy(exp / "checkpoints/epoch-001.pt", exp_dirs[0] / "checkpoints")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    launchers = [subprocess.Popen(ddp_faults.train_command(cuts, exp_dirs[node], [
        "--nnodes", "2", "--node-rank", str(node), "--nproc-per-node", "1", "--rdzv-backend", "c10d",
        "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", "two-launchers"], OVERRIDES), env=ddp_faults.environment(),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for node in (0, 1)]
    for launcher in launchers:
        _, stderr = launcher.communicate(timeout=300)
        assert launcher.returncode == 0, stderr[-3000:]
    written = [d for d in exp_dirs if (d / "checkpoints/epoch-003.pt").exists()]  # by rank 0 only
    assert len(written) == 1
    assert ddp_faults.same_weights(ddp_faults.final_weights(written[0]), ddp_faults.final_weights(exp))


def test_bad_training_audio_under_torchrun_is_skipped_named_and_counted(small_sets, tmp_path):
    from test_loader import bad_audio_manifest

    manifest, bad_files = bad_audio_manifest(small_sets, tmp_path)
    exp = tmp_path / "exp"
    result = _run([*TORCHRUN, "-m", "asr.cli", "train", "--train", str(manifest), "--dev",
                   str(small_sets / "cuts12.jsonl.gz"), "--exp-dir", str(exp), *TINY, "epochs=2"])
    assert [int(r["bad_audio"]) for r in log_rows(exp)] == [3, 3]  # summed over both ranks
    for path in bad_files:
        assert str(path) in result.stderr
    assert "Traceback" not in result.stderr


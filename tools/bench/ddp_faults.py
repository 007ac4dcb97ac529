"""Clean ends and restarts of 2-process torchrun training (gloo, CPU), in a row.

A tiny model on 64 AN4 training cuts (``device=cpu``, ``save_every_steps=2``, 3 epochs, about 35
steps) is trained once without interruption: the reference. Then

  clean  N runs of the same command: each must exit 0, print no "terminate called", and end with
         the reference's weights (bit for bit);
  kill   N runs under ``torchrun --max-restarts 2``: once the run has written the checkpoint of a
         step drawn from 4-24, one worker (drawn too) is SIGKILLed; torchrun must restart the
         workers, which resume from the newest step checkpoint; the run must exit 0 with the
         reference's weights, within ``--timeout`` seconds.

It prints each trial's outcome and seconds, and the counts. Nothing is timed against a limit
except the hang guard (``--timeout``).

    python tools/bench/ddp_faults.py --clean 10 --kills 10     # about 10 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run"]
OVERRIDES = ["model.encoder.num_layers=1", "model.encoder.hidden_size=32", "model.subsampling.factor=3",
             "data.max_duration=12.0", "data.num_buckets=2", "optim.warmup_steps=3", "log_every=1000", "device=cpu",
             "save_every_steps=2", "epochs=3"]


def train_command(cuts: Path, exp: Path, launcher: list[str], overrides: list[str] = OVERRIDES) -> list[str]:
    """``torchrun LAUNCHER -m asr.cli train`` on ``cuts`` (also the dev set) into ``exp``."""
    return [*TORCHRUN, *launcher, "-m", "asr.cli", "train", "--train", str(cuts), "--dev", str(cuts),
            "--exp-dir", str(exp), *overrides]


def environment() -> dict:
    """This tree first on the path; one thread per process (2 processes share the cores)."""
    return dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))


def final_weights(exp: Path) -> dict:
    """The weights of the newest epoch checkpoint of ``exp``."""
    from asr.model.checkpoint import list_checkpoints, load_file

    return load_file(list_checkpoints(exp, "epoch-*.pt")[-1])["state_dict"]


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def _step_written(exp: Path, step: int) -> bool:
    return any(int(p.stem.split("-")[1]) >= step for p in (exp / "checkpoints").glob("step-*.pt"))


def kill_and_restart(cuts: Path, exp: Path, kill_step: int, victim: int, timeout: float,
                     overrides: list[str] = OVERRIDES) -> tuple[int | None, str]:
    """Train under ``--max-restarts 2``, SIGKILL worker ``victim`` (0 or 1, by start order) once the
    checkpoint of ``kill_step`` exists; (exit status or None on timeout, torchrun's stderr)."""
    command = train_command(cuts, exp, ["--standalone", "--nproc-per-node", "2", "--max-restarts", "2"], overrides)
    with tempfile.TemporaryFile("w+") as err:
        process = subprocess.Popen(command, env=environment(), stdout=subprocess.DEVNULL, stderr=err,
                                   start_new_session=True)
        try:
            deadline = time.monotonic() + timeout
            while not _step_written(exp, kill_step) and process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)
            workers = sorted(_children(process.pid))
            if process.poll() is None and len(workers) == 2:
                os.kill(workers[victim], signal.SIGKILL)
            status = process.wait(max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            status = None
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        err.seek(0)
        return status, err.read()


def _clean_trial(cuts: Path, exp: Path, reference: dict, timeout: float) -> str:
    command = train_command(cuts, exp, ["--standalone", "--nproc-per-node", "2"])
    try:
        result = subprocess.run(command, env=environment(), capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "hung"
    if result.returncode != 0 or "terminate called" in result.stderr:
        return f"exit {result.returncode}: {_last_line(result.stderr)}"
    return "ok" if same_weights(final_weights(exp), reference) else "other weights"


def _kill_trial(cuts: Path, exp: Path, reference: dict, timeout: float, rng: random.Random) -> str:
    kill_step, victim = rng.randint(4, 24), rng.randint(0, 1)
    status, stderr = kill_and_restart(cuts, exp, kill_step, victim, timeout)
    if status is None:
        return f"hung (killed worker {victim} at step {kill_step})"
    if status != 0:
        return f"exit {status} (killed worker {victim} at step {kill_step}): {_last_line(stderr)}"
    if "resuming from" not in (exp / "train.log").read_text():
        return "never restarted"
    return "ok" if same_weights(final_weights(exp), reference) else "other weights"


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1][:200] if lines else ""


def _subset(data_dir: Path, out: Path, count: int) -> Path:
    from asr.data.corpora.an4 import prepare_an4
    from asr.data.cuts import load_cuts

    prepare_an4(data_dir, out)
    cuts = load_cuts(out / "an4_cuts_train.jsonl.gz").subset(first=count)
    cuts.to_file(out / f"cuts{count}.jsonl.gz")
    return out / f"cuts{count}.jsonl.gz"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clean", type=int, default=10, help="clean runs")
    parser.add_argument("--kills", type=int, default=10, help="kill-and-restart trials")
    parser.add_argument("--cuts", type=int, default=64, help="AN4 training cuts trained on")
    parser.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data" / "an4")
    parser.add_argument("--timeout", type=float, default=300, help="seconds before a run counts as hung")
    parser.add_argument("--seed", type=int, default=0, help="draws the killed step and worker")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        cuts = _subset(args.data_dir, work / "data", args.cuts)
        started = time.time()
        outcome = _clean_trial(cuts, work / "reference", {}, args.timeout)
        if outcome not in ("ok", "other weights"):
            sys.exit(f"the reference run failed: {outcome}")
        reference = final_weights(work / "reference")
        print(f"reference run: {time.time() - started:.0f} s", flush=True)
        counts = {}
        for kind, trials in (("clean", args.clean), ("kill", args.kills)):
            ok, seconds = 0, []
            for i in range(trials):
                started = time.time()
                exp = work / f"{kind}{i}"
                outcome = (_clean_trial(cuts, exp, reference, args.timeout) if kind == "clean"
                           else _kill_trial(cuts, exp, reference, args.timeout, rng))
                seconds.append(time.time() - started)
                ok += outcome == "ok"
                print(f"{kind} {i + 1}/{trials}: {outcome} ({seconds[-1]:.0f} s)", flush=True)
            counts[kind] = (ok, trials, sum(seconds))
        for kind, (ok, trials, total) in counts.items():
            print(f"{kind}: {ok}/{trials} ended with the reference weights, {total:.0f} s in all")


if __name__ == "__main__":
    main()

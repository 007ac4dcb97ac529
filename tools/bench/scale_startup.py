"""Start-up of ``asr train`` at LibriSpeech size: seconds to the first optimiser step and peak memory.

For each size, a synthetic training manifest is written to a temporary directory: the real AN4
training cuts repeated under unique ids (``<id>-r<k>``) until the count is reached, so every cut
points at real audio (28,539 cuts = train-clean-100's count, 281,241 = train-960's, 843,723 =
train-960 with 3x speed perturbation). Writing it is excluded from the figures. Then
``asr train --train MANIFEST --dev AN4-dev`` runs as a child process with ``max_steps=1`` and
``log_every=1``, and the benchmark reports

- ``first step s``: wall time from starting the child to the timestamp of its ``step 1`` log line
  (Python and torch import, manifest pass, tokenizer, CMVN, model, sampler, first batch, one step);
- ``total s``: wall time to the child's exit (a checkpoint is written after the step);
- ``peak RSS MiB``: the child's peak resident set (``wait4``; loader workers are separate processes
  and are reported by the OS in the same figure only for their own peak, which is smaller).

The stages of the start-up are read from the child's ``train.log`` timestamps and printed below the
table, so it shows where the time goes and how it grows with the number of cuts.

    python tools/bench/scale_startup.py                                  # 28k, 281k, 843k cuts
    python tools/bench/scale_startup.py --sizes 28539 --config conf/an4.yaml
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import asr
from asr.data.corpora.an4 import prepare_an4

REPO = Path(asr.__file__).resolve().parents[1]
SIZES = (28539, 281241, 843723)
_STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \w+ [\w.]+: (.*)$")


def write_repeated_manifest(source: Path, out: Path, count: int) -> None:
    """``count`` cuts: the cuts of manifest ``source`` over and over, ids suffixed ``-r<k>`` (gzip level 1)."""
    with gzip.open(source, "rt") as f:
        cuts = [json.loads(line) for line in f]
    templates = []
    for cut in cuts:  # each cut serialised once, with a placeholder where the id goes
        cut_id = cut["id"]
        cut["id"] = "@ID@"
        for sup in cut["supervisions"]:
            sup["id"] = "@ID@"
        templates.append((cut_id, json.dumps(cut)))
    with gzip.open(out, "wt", compresslevel=1) as f:
        for i in range(count):
            cut_id, line = templates[i % len(templates)]
            f.write(line.replace("@ID@", f"{cut_id}-r{i // len(templates)}") + "\n")


def read_log(path: Path) -> list[tuple[float, str]]:
    """(unix time, message) of every timestamped line of a ``train.log``."""
    lines = []
    for line in path.read_text().splitlines():
        match = _STAMP.match(line)
        if match:
            stamp = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
            lines.append((stamp, match.group(2)))
    return lines


def run_train(manifest: Path, dev: Path, exp: Path, config: str, overrides: list[str]) -> dict:
    """One ``asr train`` child to its first step; its timings and peak RSS."""
    argv = [sys.executable, "-m", "asr.cli", "train", "--train", str(manifest), "--dev", str(dev),
            "--exp-dir", str(exp), "--config", config, "max_steps=1", "log_every=1", *overrides]
    env = dict(os.environ, PYTHONPATH=f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    started = time.time()
    child = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(child.pid, 0)
    total = time.time() - started
    stderr = child.stderr.read()
    child.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"asr train failed on {manifest}:\n{stderr[-3000:]}")
    lines = read_log(exp / "train.log")
    first_step = next(t for t, message in lines if re.match(r"epoch 1 step 1 ", message))
    stages = [(t - started, message.splitlines()[0][:110]) for t, message in lines if not message.startswith("config:")]
    return {"first_step": first_step - started, "total": total, "peak_mib": usage.ru_maxrss / 1024, "stages": stages}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES), help="cut counts to try")
    parser.add_argument("--config", default=str(REPO / "conf" / "an4.yaml"), help="training config")
    parser.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data" / "an4", help="AN4 directory")
    parser.add_argument("overrides", nargs="*", help="extra dotted.key=value overrides for asr train")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        prepare_an4(args.data_dir, tmp / "an4")
        source, dev = tmp / "an4" / "an4_cuts_train.jsonl.gz", tmp / "an4" / "an4_cuts_dev.jsonl.gz"
        print(f"# asr train to its first optimiser step; {args.config} {' '.join(args.overrides)}; "
              f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
        print(f"{'cuts':>8} {'manifest MB':>11} {'first step s':>12} {'total s':>8} {'peak RSS MiB':>12}")
        details = []
        for size in args.sizes:
            manifest = tmp / f"cuts{size}.jsonl.gz"
            write_repeated_manifest(source, manifest, size)
            result = run_train(manifest, dev, tmp / f"exp{size}", args.config, args.overrides)
            print(f"{size:8d} {manifest.stat().st_size / 1e6:11.1f} {result['first_step']:12.1f} "
                  f"{result['total']:8.1f} {result['peak_mib']:12.0f}", flush=True)
            details.append((size, result["stages"]))
            manifest.unlink()
        for size, stages in details:
            print(f"\n## {size} cuts: train.log, seconds since start")
            for seconds, message in stages:
                print(f"{seconds:7.1f}  {message}")


if __name__ == "__main__":
    main()

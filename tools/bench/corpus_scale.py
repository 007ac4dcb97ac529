"""Speed and memory of ``asr validate`` and ``asr prepare table`` on large inputs built from AN4.

- validate, no audio reads: the AN4 training cuts repeated under new ids (``<id>-r<k>``, as
  ``scale_startup.py``) up to ``--cuts``, checked with ``--audio none``;
- validate, header checks: the same for ``--audio-cuts`` cuts with ``--audio header`` (the 882 AN4
  files are read again and again, so the page cache holds them: this is the cost of opening and
  parsing a header, not of a cold disk);
- prepare: ``--table-rows`` symbolic links to the AN4 training files in one directory and a CSV of
  ``file,text,speaker``, imported with ``asr prepare table --num-jobs N`` (one header read per file).

Each command runs as a child process; the table gives its wall time, rate and peak RSS (``wait4``).
Building the inputs is not timed.

    python tools/bench/corpus_scale.py --work /tmp/corpus_scale                  # 1M / 100k cuts, 20k rows
    python tools/bench/corpus_scale.py --work /tmp/cs --cuts 100000 --audio-cuts 10000 --table-rows 2000
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from scale_startup import write_repeated_manifest

REPO = Path(__file__).resolve().parents[2]


def run(args: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS MiB) of ``asr ARGS`` in a child process; it must succeed."""
    started = time.time()
    child = subprocess.Popen([sys.executable, "-m", "asr.cli", *args], cwd=REPO, stdout=subprocess.DEVNULL,
                             env=dict(os.environ, PYTHONPATH=str(REPO)))
    _, status, usage = os.wait4(child.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"asr {' '.join(args)} failed")
    return time.time() - started, usage.ru_maxrss / 1024


def write_table(manifest: Path, work: Path, rows: int) -> Path:
    """``rows`` symbolic links to the manifest's audio files (cycled) and ``table.csv`` naming them."""
    with gzip.open(manifest, "rt") as f:
        cuts = [json.loads(line) for line in f]
    links = work / "links"
    links.mkdir(parents=True, exist_ok=True)
    table = work / "table.csv"
    with open(table, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["file", "text", "speaker"])
        for i in range(rows):
            cut = cuts[i % len(cuts)]
            link = links / f"{cut['id']}-r{i // len(cuts)}.wav"
            if not link.is_symlink():
                link.symlink_to(cut["recording"]["sources"][0]["source"])
            writer.writerow([f"links/{link.name}", cut["supervisions"][0]["text"], cut["supervisions"][0]["speaker"]])
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="scratch directory (inputs and outputs)")
    parser.add_argument("--an4", type=Path, default=REPO.parent / "shared/data/an4", help="the AN4 corpus")
    parser.add_argument("--cuts", type=int, default=1_000_000, help="cuts validated without audio reads")
    parser.add_argument("--audio-cuts", type=int, default=100_000, help="cuts validated with header checks")
    parser.add_argument("--table-rows", type=int, default=20_000, help="rows of the prepared table")
    parser.add_argument("--num-jobs", type=int, default=4, help="threads of validate and prepare")
    args = parser.parse_args()
    work = args.work
    an4 = work / "an4"
    if not (an4 / "an4_cuts_train.jsonl.gz").is_file():
        run(["prepare", "an4", str(args.an4), str(an4)])
    train = an4 / "an4_cuts_train.jsonl.gz"
    rows = []
    for count, level in ((args.cuts, "none"), (args.audio_cuts, "header")):
        manifest = work / f"repeated-{count}.jsonl.gz"
        if not manifest.is_file():
            write_repeated_manifest(train, manifest, count)
        seconds, peak = run(["validate", str(manifest), "--audio", level, "--num-jobs", str(args.num_jobs)])
        rows.append((f"asr validate --audio {level}", count, seconds, peak))
    table = write_table(train, work, args.table_rows)
    seconds, peak = run(["prepare", "table", str(table), str(work / "prepared"), "--audio", "file", "--text", "text",
                         "--speaker", "speaker", "--split", "train", "--num-jobs", str(args.num_jobs)])
    rows.append((f"asr prepare table --num-jobs {args.num_jobs}", args.table_rows, seconds, peak))
    print(f"{'command':<36} {'items':>9} {'wall s':>8} {'items/s':>9} {'peak RSS MiB':>13}")
    for name, count, seconds, peak in rows:
        print(f"{name:<36} {count:>9} {seconds:>8.1f} {count / seconds:>9.0f} {peak:>13.0f}")


if __name__ == "__main__":
    main()

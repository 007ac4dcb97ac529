"""Fine-tuning a trained AN4 model onto a corpus with another character set, against training from scratch.

The "new corpus" is AN4 audio whose transcripts spell E as É and O as 0 (two of AN4's units gone,
two new ones): the first ``--utts`` training cuts and the whole dev set, respelled. Both runs use
``--config`` with ``epochs=--epochs``; the fine-tuned one adds ``init_from=MODEL init_units=data``
(encoder kept, output rows of the 26 shared units copied) and ``init_cmvn=data``. The table is
each run's ``log.csv``: train loss per frame, dev loss per frame, dev CER and WER per epoch.

    python tools/bench/finetune_units.py --model /work/an4run/exp/model.pt --work /tmp/ft
    python tools/bench/finetune_units.py --model EXP/checkpoints/epoch-010.pt --work /tmp/ft --utts 200 --epochs 2
    python tools/bench/finetune_units.py --model MODEL --work /tmp/ft6 --epochs 6 optim.warmup_steps=20
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

REPO = Path(__file__).resolve().parents[2]
RESPELL = str.maketrans({"E": "É", "O": "0"})


def respell(source: Path, out: Path, limit: int | None) -> None:
    """The first ``limit`` cuts of ``source`` (all when None) with respelled transcripts."""
    with gzip.open(source, "rt") as f, gzip.open(out, "wt") as w:
        for number, line in enumerate(f):
            if limit is not None and number >= limit:
                break
            cut = json.loads(line)
            for sup in cut["supervisions"]:
                sup["text"] = sup["text"].translate(RESPELL)
            w.write(json.dumps(cut, ensure_ascii=False) + "\n")


def train(work: Path, name: str, config: str, overrides: list[str]) -> tuple[float, list[dict]]:
    """(wall seconds, log.csv rows) of one ``asr train`` run in a child process."""
    exp = work / name
    started = time.time()
    subprocess.run([sys.executable, "-m", "asr.cli", "train", "--config", config, "--train",
                    str(work / "train.jsonl.gz"), "--dev", str(work / "dev.jsonl.gz"), "--exp-dir", str(exp),
                    "device=cpu", *overrides], check=True, cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)),
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(exp / "log.csv") as f:
        return time.time() - started, list(csv.DictReader(f))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="trained AN4 model (.pt file or epoch checkpoint)")
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--manifests", type=Path, help="AN4 manifests of 'asr prepare an4' (default: prepared "
                        "into WORK/an4)")
    parser.add_argument("--config", default=str(REPO / "conf/an4.yaml"))
    parser.add_argument("--utts", type=int, default=200, help="training cuts of the new corpus")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="more training overrides of both runs")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of each run (num_threads; 1 avoids "
                        "OpenMP spinning on a shared machine)")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    manifests = args.manifests or args.work / "an4"
    if not (manifests / "an4_cuts_train.jsonl.gz").is_file():
        subprocess.run([sys.executable, "-m", "asr.cli", "prepare", "an4", str(REPO.parent / "shared/data/an4"),
                        str(manifests)], check=True, cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)))
    respell(manifests / "an4_cuts_train.jsonl.gz", args.work / "train.jsonl.gz", args.utts)
    respell(manifests / "an4_cuts_dev.jsonl.gz", args.work / "dev.jsonl.gz", None)
    common = [f"epochs={args.epochs}", f"num_threads={args.threads}", *args.overrides]
    runs = {"scratch": train(args.work, "scratch", args.config, common),
            "fine-tuned": train(args.work, "tuned", args.config, common + [f"init_from={args.model}", "init_units=data",
                                                                         "init_cmvn=data"])}
    print(f"{'run':<11} {'epoch':>5} {'train loss':>10} {'dev loss':>9} {'dev CER':>8} {'dev WER':>8} {'wall s':>7}")
    for name, (seconds, rows) in runs.items():
        for row in rows:
            print(f"{name:<11} {row['epoch']:>5} {row['train_loss']:>10} {row['dev_loss']:>9} {row['dev_cer']:>8} "
                  f"{row['dev_wer']:>8} {seconds:>7.0f}")


if __name__ == "__main__":
    main()

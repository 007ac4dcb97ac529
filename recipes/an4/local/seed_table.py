"""Test WER/CER of one system trained with several seeds: a Markdown row per seed, then mean ± sd.

Reads the score JSON files of ``asr score`` (``DECODE/score-hyp-NAME-METHOD-{word,char}.json``),
``lm-params.yaml`` (``asr tune``) and ``log.csv`` (training) of each run folder. DECODE and NAME
may hold ``{run}``, the run folder's name: run.sh writes ``exp-sN/decode/score-hyp-test-*``,
streaming.sh ``exp-streaming/score-hyp-test-EXP-*``.

    python local/seed_table.py exp-s0 exp-s1 exp-s2
    python local/seed_table.py --decode exp-streaming --name 'test-{run}' exp-lcblstm-ft-c5-r8 exp-lcblstm-ft-c5-r8-s1
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
from pathlib import Path

import yaml

COLUMNS = [("greedy", "word"), ("greedy", "char"), ("beam-lm", "word"), ("beam-lm", "char")]


def error_rate(decode: Path, name: str, method: str, unit: str) -> float | None:
    """%WER or %CER from a score JSON; None when that file was not written."""
    path = decode / f"score-hyp-{name}-{method}-{unit}.json"
    return json.loads(path.read_text())["overall"]["err_rate"] if path.is_file() else None


def training_minutes(run: Path) -> float | None:
    log = run / "log.csv"
    return sum(float(r["seconds"]) for r in csv.DictReader(log.open())) / 60.0 if log.is_file() else None


def cell(value: float | None, digits: int = 2) -> str:
    """A table cell: the value with ``digits`` decimals, '-' for None."""
    return "-" if value is None else f"{value:.{digits}f}"


def _spread(values: list[float | None]) -> str:
    """'mean ± sd' (sample standard deviation) of the runs, '-' if one lacks the value."""
    if not values or any(v is None for v in values):
        return "-"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"**{statistics.mean(values):.2f} ± {sd:.2f}**"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders, one per seed")
    parser.add_argument("--decode", default="{run}/decode", help="folder of the score files")
    parser.add_argument("--name", default="test", help="decode name of the hypotheses")
    args = parser.parse_args()
    print("| run | test WER greedy | test CER greedy | test WER beam-lm | test CER beam-lm | lm weight / word score "
          "| training min |")
    print("|---|---|---|---|---|---|---|")
    table = []
    for run in args.runs:
        decode = Path(args.decode.format(run=run.name) if "{run}" in args.decode else args.decode)
        name = args.name.format(run=run.name)
        rates = [error_rate(decode, name, method, unit) for method, unit in COLUMNS]
        table.append(rates + [training_minutes(run)])
        tuned = run / "lm-params.yaml"
        lm = yaml.safe_load(tuned.read_text()) if tuned.is_file() else {}
        print(f"| {run.name} | " + " | ".join(map(cell, rates))
              + f" | {lm.get('lm_weight', '-')} / {lm.get('word_score', '-')} | {cell(table[-1][-1], 1)} |")
    columns = list(zip(*table))
    print(f"| **mean ± sd of {len(args.runs)}** | " + " | ".join(_spread(list(c)) for c in columns[:4])
          + f" | | {_spread(list(columns[4]))} |")


if __name__ == "__main__":
    main()

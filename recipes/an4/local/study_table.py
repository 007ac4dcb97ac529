"""One Markdown row per study run: dev WER/CER (greedy, beam-lm), training time, speed, parameters.

Reads what the study's stages wrote in EXP_ROOT/NAME (seed 0) and EXP_ROOT/NAME-sN (seed N):
log.csv (training), model.pt (parameters), decode/score-hyp-dev-*-{word,char}.json (``asr score``)
and lm-params.yaml (``asr tune``). With several seeds, a mean row follows each variant's runs.

    python local/study_table.py --exp-root exp/study/exp --seeds 0 1 -- base x4 > exp/study/study.md
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import yaml

from asr.model.checkpoint import load_file
from seed_table import cell, error_rate  # the score-file reader both tables share (local/ is on sys.path)


def _error_rate(decode: Path, method: str, unit: str) -> str:
    """%WER or %CER of ``hyp-dev-METHOD`` from its score JSON; '-' when not scored yet."""
    return cell(error_rate(decode, "dev", method, unit))


def _training(exp: Path) -> tuple[int, float, float]:
    """(epochs, training minutes, median audio-s/s) from log.csv."""
    rows = list(csv.DictReader((exp / "log.csv").open()))
    speeds = sorted(float(r["audio_s_per_s"]) for r in rows)
    return len(rows), sum(float(r["seconds"]) for r in rows) / 60.0, speeds[len(speeds) // 2]


def _parameters(exp: Path) -> float:
    """Millions of parameters of model.pt."""
    state = load_file(exp / "model.pt")["state_dict"]  # weights only, no pickled code
    return sum(t.numel() for t in state.values() if t.is_floating_point()) / 1e6


RATES = [("greedy", "word"), ("greedy", "char"), ("beam-lm", "word"), ("beam-lm", "char")]


def row(exp: Path) -> list[str]:
    """The table cells of one run."""
    epochs, minutes, speed = _training(exp)
    tuned = exp / "lm-params.yaml"
    lm = yaml.safe_load(tuned.read_text()) if tuned.is_file() else {}
    return [exp.name, *(_error_rate(exp / "decode", method, unit) for method, unit in RATES),
            f"{lm.get('lm_weight', '-')} / {lm.get('word_score', '-')}", str(epochs), f"{minutes:.1f}",
            f"{speed:.0f}", f"{_parameters(exp):.2f}"]


def mean_row(name: str, rows: list[list[str]]) -> list[str]:
    """Mean error rates and training minutes of a variant's runs (bold), '-' where a run lacks one."""
    def mean(column: int, digits: int) -> str:
        values = [r[column] for r in rows]
        return "-" if "-" in values else f"{sum(map(float, values)) / len(values):.{digits}f}"

    return [f"**{name} (mean of {len(rows)})**", *(f"**{mean(i, 2)}**" for i in range(1, 5)), "", rows[0][6],
            mean(7, 1), mean(8, 0), rows[0][9]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exp-root", type=Path, required=True, help="folder holding one folder per variant")
    parser.add_argument("--seeds", nargs="+", default=["0"], help="training seeds of every variant")
    parser.add_argument("variants", nargs="+", help="variant names (folders under --exp-root)")
    args = parser.parse_args()
    print("| run | dev WER greedy | dev CER greedy | dev WER beam-lm | dev CER beam-lm | lm weight / word score "
          "| epochs | training min | audio-s/s | M params |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in args.variants:
        rows = [row(args.exp_root / (name if seed == "0" else f"{name}-s{seed}")) for seed in args.seeds]
        if len(rows) > 1:
            rows.append(mean_row(name, rows))
        for cells in rows:
            print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()

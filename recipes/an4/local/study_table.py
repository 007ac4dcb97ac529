"""One Markdown row per study variant: dev WER/CER (greedy, beam-lm), training time, speed, parameters.

Reads what the study's stages wrote in EXP_ROOT/NAME: log.csv (training), model.pt (parameters),
decode/score-hyp-dev-*-{word,char}.json (``asr score``) and lm-params.yaml (``asr tune``).

    python local/study_table.py --exp-root exp/study/exp base x4 x4-interctc > exp/study/study.md
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import torch
import yaml


def _error_rate(decode: Path, method: str, unit: str) -> str:
    """%WER or %CER of ``hyp-dev-METHOD`` from its score JSON; '-' when not scored yet."""
    path = decode / f"score-hyp-dev-{method}-{unit}.json"
    if not path.is_file():
        return "-"
    return f"{json.loads(path.read_text())['overall']['err_rate']:.2f}"


def _training(exp: Path) -> tuple[int, float, float]:
    """(epochs, training minutes, median audio-s/s) from log.csv."""
    rows = list(csv.DictReader((exp / "log.csv").open()))
    speeds = sorted(float(r["audio_s_per_s"]) for r in rows)
    return len(rows), sum(float(r["seconds"]) for r in rows) / 60.0, speeds[len(speeds) // 2]


def _parameters(exp: Path) -> float:
    """Millions of parameters of model.pt."""
    state = torch.load(exp / "model.pt", map_location="cpu", weights_only=False)["state_dict"]
    return sum(t.numel() for t in state.values() if t.is_floating_point()) / 1e6


def row(exp: Path) -> str:
    epochs, minutes, speed = _training(exp)
    decode = exp / "decode"
    tuned = exp / "lm-params.yaml"
    lm = yaml.safe_load(tuned.read_text()) if tuned.is_file() else {}
    cells = [exp.name, _error_rate(decode, "greedy", "word"), _error_rate(decode, "greedy", "char"),
             _error_rate(decode, "beam-lm", "word"), _error_rate(decode, "beam-lm", "char"),
             f"{lm.get('lm_weight', '-')} / {lm.get('word_score', '-')}", str(epochs), f"{minutes:.1f}",
             f"{speed:.0f}", f"{_parameters(exp):.2f}"]
    return "| " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exp-root", type=Path, required=True, help="folder holding one folder per variant")
    parser.add_argument("variants", nargs="+", help="variant names (folders under --exp-root)")
    args = parser.parse_args()
    print("| variant | dev WER greedy | dev CER greedy | dev WER beam-lm | dev CER beam-lm | lm weight / word score "
          "| epochs | training min | audio-s/s | M params |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in args.variants:
        print(row(args.exp_root / name))


if __name__ == "__main__":
    main()

"""Word-confidence calibration on AN4: ECE on test before and after, per method, fitted on dev only.

The model runs once over dev and once over test (greedy words, raw confidence = mean posterior of
their units over their frames). Every method is fitted on all of dev and scored on test; ``auto``
is what ``asr calibrate`` picks (lowest ECE on a held-out half of dev). Writes
``calibration-test.txt`` and ``reliability-test.png`` (raw vs the auto choice) into ``--out-dir``.

    python tools/bench/calibration_an4.py --model recipes/an4/exp/model.pt --dev data/an4_cuts_dev.jsonl.gz \
        --test data/an4_cuts_test.jsonl.gz --out-dir recipes/an4/exp/calibration
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from asr.config import CalibrationConfig
from asr.data.cuts import load_cuts
from asr.decoding.confidence import METHODS, choose_calibrator, fit_calibrator, word_samples
from asr.model.checkpoint import load_model
from asr.scoring.calibration import ece, write_calibration_report


def flat(samples):
    confs = np.array([w.conf for s in samples for w in s.words])
    correct = np.array([c for s in samples for c in s.correct], dtype=bool)
    return confs, correct, [i for i, s in enumerate(samples) for _ in s.words]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--dev", type=Path, required=True)
    parser.add_argument("--test", type=Path, required=True)
    parser.add_argument("--out-dir", type=Path, required=True)
    parser.add_argument("--bins", type=int, default=CalibrationConfig().bins)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model, tokenizer = load_model(args.model)
    dev_confs, dev_correct, dev_utts = flat(word_samples(model, tokenizer, load_cuts(args.dev)))
    test_confs, test_correct, _ = flat(word_samples(model, tokenizer, load_cuts(args.test)))
    cfg = CalibrationConfig(bins=args.bins)
    auto = choose_calibrator(dev_confs, dev_correct, dev_utts, cfg)
    print(f"dev {dev_confs.size} words ({dev_correct.mean():.1%} correct), test {test_confs.size} words "
          f"({test_correct.mean():.1%} correct); {args.bins} bins; greedy words\n")
    print("| mapping (fitted on dev) | held-out dev ECE % | dev ECE % | test ECE % | test mean conf | test accuracy |")
    print("|---|---|---|---|---|---|")
    held = auto.info.get("held_out_ece", {})
    rows = {"raw (none)": None, **{m: fit_calibrator(dev_confs, dev_correct, m) for m in METHODS}}
    for name, calibrator in rows.items():
        dev_mapped = dev_confs if calibrator is None else calibrator(dev_confs)
        test_mapped = test_confs if calibrator is None else calibrator(test_confs)
        key = "identity" if calibrator is None else name
        mark = " (auto's choice)" if name == auto.method else ""
        print(f"| {name}{mark} | {held.get(key, float('nan')):.2f} | {ece(dev_mapped, dev_correct, args.bins):.2f} | "
              f"{ece(test_mapped, test_correct, args.bins):.2f} | {test_mapped.mean():.3f} | "
              f"{test_correct.mean():.3f} |")
    curves = {"raw": (test_confs, test_correct), f"calibrated ({auto.method})": (auto(test_confs), test_correct)}
    lines = write_calibration_report(curves, args.out_dir, "test", args.bins)
    print("\n" + "\n".join(lines))
    print(f"wrote {args.out_dir / 'calibration-test.txt'} and {args.out_dir / 'reliability-test.png'}")


if __name__ == "__main__":
    main()

"""How far word confidences can be trusted: correctness labels, expected calibration error, reliability diagrams.

A hypothesis word is correct when sclite's alignment (``asr.scoring.align``) pairs it with an equal
reference word. Confidences fall into ``bins`` equal-width bins over [0, 1]; the expected
calibration error (ECE) is the mean, weighted by the words in each bin, of ``|accuracy - mean
confidence|`` (Guo et al. 2017), here in percent. A reliability diagram plots accuracy against
mean confidence per bin: a calibrated system lies on the diagonal.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import CalibrationConfig
from .align import align_pair

__all__ = ["Bin", "word_correct", "reliability", "ece", "reliability_diagram", "write_calibration_report"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Bin:
    lo: float  # lower confidence edge (inclusive; the last bin includes 1.0)
    hi: float  # upper confidence edge
    count: int  # words whose confidence falls in the bin
    conf: float  # their mean confidence (nan when empty)
    accuracy: float  # the share of them that is correct (nan when empty)


def word_correct(ref: Sequence[str], hyp: Sequence[str]) -> list[bool]:
    """Per hypothesis word: does sclite's alignment pair it with an equal reference word."""
    flags: list[bool] = []
    for op in align_pair(ref, hyp):
        if op != "D":  # C, S and I each consume one hypothesis word
            flags.append(op == "C")
    return flags


def _arrays(confs, correct) -> tuple[np.ndarray, np.ndarray]:
    confs = np.asarray(confs, dtype=np.float64).reshape(-1)
    correct = np.asarray(correct, dtype=bool).reshape(-1)
    if confs.shape != correct.shape:
        raise ValueError(f"confs and correct: expected the same length, got {confs.size} and {correct.size}")
    if confs.size and (np.isnan(confs).any() or confs.min() < 0 or confs.max() > 1):
        raise ValueError(f"confs: expected values in [0, 1], got range [{confs.min()}, {confs.max()}]")
    return confs, correct


def reliability(confs, correct, bins: int = CalibrationConfig.bins) -> list[Bin]:
    """Words per equal-width confidence bin, with their mean confidence and accuracy."""
    if bins < 1:
        raise ValueError(f"bins: expected >= 1, got {bins}")
    confs, correct = _arrays(confs, correct)
    index = np.minimum((confs * bins).astype(np.int64), bins - 1)  # conf 1.0 goes to the last bin
    result = []
    for b in range(bins):
        mask = index == b
        n = int(mask.sum())
        mean_conf = float(confs[mask].mean()) if n else float("nan")
        accuracy = float(correct[mask].mean()) if n else float("nan")
        result.append(Bin(b / bins, (b + 1) / bins, n, mean_conf, accuracy))
    return result


def ece(confs, correct, bins: int = CalibrationConfig.bins) -> float:
    """Expected calibration error in percent: sum over bins of ``count / N * |accuracy - conf|``."""
    table = reliability(confs, correct, bins)
    total = sum(b.count for b in table)
    if total == 0:
        raise ValueError("confs: expected at least one word")
    return 100.0 * sum(b.count / total * abs(b.accuracy - b.conf) for b in table if b.count)


def reliability_diagram(curves: Mapping[str, tuple], path: str | Path, bins: int = CalibrationConfig.bins, title: str = "") -> Path:
    """Plot accuracy vs mean confidence per bin for each ``label -> (confs, correct)``, with the diagonal.

    The ECE of each curve goes into its legend entry; bins with no word are left out.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(5, 6), height_ratios=[3, 1], sharex=True)
    top.plot([0, 1], [0, 1], color="0.6", linestyle="--", linewidth=1, label="calibrated")
    width = 1.0 / bins / (len(curves) + 1)
    for k, (label, (confs, correct)) in enumerate(curves.items()):
        table = [b for b in reliability(confs, correct, bins) if b.count]
        top.plot([b.conf for b in table], [b.accuracy for b in table], marker="o",
                 label=f"{label} (ECE {ece(confs, correct, bins):.1f}%)")
        bottom.bar([b.lo + (k + 0.5) * width for b in table], [b.count for b in table], width=width, label=label)
    top.set_ylabel("accuracy (words correct)")
    top.set_xlim(0, 1)
    top.set_ylim(0, 1)
    top.legend(loc="upper left", fontsize=8)
    top.set_title(title or "reliability diagram")
    bottom.set_xlabel("word confidence")
    bottom.set_ylabel("words")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_calibration_report(curves: Mapping[str, tuple], out_dir: str | Path, name: str,
                             bins: int = CalibrationConfig.bins, png: bool = True) -> list[str]:
    """Write ``calibration-<name>.txt`` (ECE and the per-bin table of each curve) and ``reliability-<name>.png``.

    Returns:
        One summary line per curve, ``%ECE 4.21 [ 775 words, 10 bins ] LABEL``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    lines, body = [], []
    for label, (confs, correct) in curves.items():
        confs, correct = _arrays(confs, correct)
        line = f"%ECE {ece(confs, correct, bins):.2f} [ {confs.size} words, {bins} bins ] {label}"
        lines.append(line)
        body += [line, f"{'bin':>11} {'words':>6} {'conf':>6} {'acc':>6}"]
        body += [f"{b.lo:.2f}-{b.hi:.2f} {b.count:6d} {b.conf:6.3f} {b.accuracy:6.3f}"
                 for b in reliability(confs, correct, bins)]
        body.append("")
    (out_dir / f"calibration-{name}.txt").write_text("\n".join(body))
    if png:
        reliability_diagram(curves, out_dir / f"reliability-{name}.png", bins, f"word confidence: {name}")
    return lines

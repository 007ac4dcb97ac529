"""Training curves of one or more runs, read from each experiment directory's ``log.csv``."""

from __future__ import annotations

import csv
import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path

__all__ = ["CURVES", "read_log", "plot_curves"]

log = logging.getLogger(__name__)

# (log.csv column, panel title): one panel each, against epoch
CURVES = (("train_loss", "train loss (per frame)"), ("dev_loss", "dev loss (per frame)"), ("dev_wer", "dev WER (%)"))


def read_log(path: str | Path) -> dict[str, list[float]]:
    """``{"epoch": [...], "train_loss": [...], "dev_loss": [...], "dev_wer": [...]}`` from a ``log.csv``.

    Empty or non-numeric cells read as NaN. When an epoch appears twice (a run resumed after
    logging it but before its checkpoint was saved), the later row wins.
    """
    path = Path(path)
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
            columns = rows[0].keys() if rows else []
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise ValueError(f"{path}: cannot read training log ({getattr(err, 'strerror', None) or err})") from None
    missing = [c for c in ("epoch", *(name for name, _ in CURVES)) if c not in columns]
    if not rows or missing:
        raise ValueError(f"{path}: not a training log.csv (no rows, or no column {', '.join(missing)})")
    by_epoch = {}
    for row in rows:
        try:
            by_epoch[int(row["epoch"])] = row
        except ValueError:
            raise ValueError(f"{path}: bad epoch {row['epoch']!r}") from None
    curves = {"epoch": [float(e) for e in sorted(by_epoch)]}
    for name, _ in CURVES:
        curves[name] = [_number(by_epoch[e][name]) for e in sorted(by_epoch)]
    return curves


def _number(text: str | None) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan


def plot_curves(exp_dirs: Sequence[str | Path], out: str | Path, labels: Sequence[str] | None = None) -> dict:
    """Panels of train loss, dev loss and dev WER against epoch, one line per run.

    Args:
        exp_dirs: experiment directories of ``asr train``, each holding ``log.csv``.
        out: the PNG to write; the same numbers go to ``out`` with suffix ``.json``.
        labels: one name per run (default: the directory names).

    Returns:
        dict: ``{label: read_log(...)}``, as written to the JSON (NaN as null).
    """
    labels = list(labels) if labels is not None else [Path(d).resolve().name for d in exp_dirs]
    if len(labels) != len(exp_dirs):
        raise ValueError(f"labels: expected one per run ({len(exp_dirs)}), got {len(labels)}")
    if len(set(labels)) != len(labels):
        raise ValueError(f"labels: expected distinct names, got {labels} (give --labels)")
    runs = {label: read_log(Path(d) / "log.csv") for label, d in zip(labels, exp_dirs)}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(CURVES), figsize=(4.5 * len(CURVES), 3.5))
    for ax, (name, title) in zip(axes, CURVES):
        for label, curves in runs.items():
            ax.plot(curves["epoch"], curves[name], marker=".", label=label)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("epoch")
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.savefig(out, dpi=100, bbox_inches="tight")
    plt.close(fig)
    clean = {label: {k: [v if math.isfinite(v) else None for v in values] for k, values in curves.items()}
             for label, curves in runs.items()}
    out.with_suffix(".json").write_text(json.dumps(clean, indent=1) + "\n")
    log.info("wrote %s and %s", out, out.with_suffix(".json"))
    return clean

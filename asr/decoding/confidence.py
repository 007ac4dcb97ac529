"""Calibrated word confidences: fit a mapping of ``Word.conf`` on a dev set, store it as plain numbers.

A word's raw confidence is the mean CTC posterior of its units over the frames aligned to them
(``asr.decoding.words.group_words``). Such posteriors are over-confident, so ``calibrate`` runs
the model over dev cuts, labels every greedy hypothesis word correct or not by sclite's alignment
to the reference, and fits one monotone mapping of the confidence:

- ``temperature``: ``sigmoid(logit(c) / T)``, one number (binary temperature scaling);
- ``platt``: ``sigmoid(a * logit(c) + b)``, two numbers;
- ``isotonic``: the pool-adjacent-violators fit, stored as knots and interpolated linearly.

``auto`` fits each on one part of the dev utterances, keeps the one with the lowest expected
calibration error on the rest (held out), and refits it on all of dev. The result is a small JSON
file, ``calibration.json`` beside the model by default, which whoever builds words applies with
``Calibrator.apply``.
"""

from __future__ import annotations

import json
import logging
import random
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from ..config import CalibrationConfig, DecodeConfig
from ..scoring.calibration import ece, word_correct, write_calibration_report
from .search import GreedySearch, decode_cuts, frame_shift
from .words import Word

__all__ = ["CALIBRATION_FILE", "METHODS", "Calibrator", "default_calibration_path", "load_calibrator",
           "fit_calibrator", "choose_calibrator", "WordSample", "word_samples", "calibrate", "calibrate_files"]

log = logging.getLogger(__name__)

CALIBRATION_FILE = "calibration.json"  # beside the model, read by whoever builds words
METHODS = ("temperature", "platt", "isotonic")
_EPS = 1e-6  # confidences are clipped to [eps, 1 - eps] before the logit


def _logit(confs: np.ndarray) -> np.ndarray:
    c = np.clip(confs, _EPS, 1 - _EPS)
    return np.log(c) - np.log1p(-c)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # no overflow warnings for large |z|


@dataclass
class Calibrator:
    method: str  # "identity", "temperature", "platt" or "isotonic"
    params: dict = field(default_factory=dict)  # temperature: {"T"}; platt: {"a", "b"}; isotonic: {"x", "y"} knots
    info: dict = field(default_factory=dict)  # how it was fitted: words, ECE before/after, held-out ECE per method

    def __post_init__(self):
        need = {"identity": set(), "temperature": {"T"}, "platt": {"a", "b"}, "isotonic": {"x", "y"}}
        if self.method not in need:
            raise ValueError(f"method: expected one of {sorted(need)}, got {self.method!r}")
        if set(self.params) != need[self.method]:
            raise ValueError(f"{self.method} calibrator: expected parameters {sorted(need[self.method])}, "
                             f"got {sorted(self.params)}")

    def __call__(self, confs):
        """Map a confidence (float) or an array of them to calibrated confidences."""
        c = np.asarray(confs, dtype=np.float64)
        if self.method == "identity":
            out = c
        elif self.method == "temperature":
            out = _sigmoid(_logit(c) / self.params["T"])
        elif self.method == "platt":
            out = _sigmoid(self.params["a"] * _logit(c) + self.params["b"])
        else:
            out = np.interp(c, self.params["x"], self.params["y"])
        return float(out) if np.ndim(confs) == 0 else out

    def apply(self, words: list[Word]) -> list[Word]:
        """The same words with calibrated ``conf``."""
        if not words:
            return []
        confs = self(np.array([w.conf for w in words]))
        return [replace(w, conf=round(float(c), 6)) for w, c in zip(words, confs)]

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=1) + "\n")
        return path


def default_calibration_path(model_path: str | Path) -> Path:
    """``calibration.json`` in the model file's directory, or in the model folder."""
    path = Path(model_path)
    return (path if path.is_dir() else path.parent) / CALIBRATION_FILE


def load_calibrator(path: str | Path) -> Calibrator:
    """Read a file written by ``Calibrator.save``.

    Raises:
        FileNotFoundError: no such file; ValueError: naming the file when it is no calibrator.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such calibration file")
    try:
        values = json.loads(path.read_text())
        calibrator = Calibrator(**values)
    except (json.JSONDecodeError, TypeError, ValueError) as err:
        raise ValueError(f"{path}: not a calibration file written by 'asr calibrate' ({err})") from None
    if calibrator.method == "isotonic":
        x, y = np.asarray(calibrator.params["x"]), np.asarray(calibrator.params["y"])
        if x.ndim != 1 or x.shape != y.shape or x.size == 0 or np.any(np.diff(x) < 0):
            raise ValueError(f"{path}: isotonic knots must be two equal-length lists with x ascending")
    return calibrator


def _fit_logistic(z: np.ndarray, y: np.ndarray, with_bias: bool) -> tuple[float, float]:
    """Maximum-likelihood ``a, b`` of ``P(correct) = sigmoid(a z + b)`` by Newton's method (b = 0 without bias)."""
    features = np.stack([z, np.ones_like(z)], 1) if with_bias else z[:, None]  # (N, 1 or 2)
    w = np.zeros(features.shape[1])
    w[0] = 1.0
    ridge = 1e-6 * np.eye(w.size)  # keeps the Hessian invertible on separable data
    for _ in range(100):
        p = _sigmoid(features @ w)
        grad = features.T @ (p - y)
        hess = (features * (p * (1 - p))[:, None]).T @ features + ridge
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-9:
            break
    return float(w[0]), float(w[1]) if with_bias else 0.0


def _fit_isotonic(confs: np.ndarray, y: np.ndarray) -> tuple[list[float], list[float]]:
    """Pool adjacent violators over the sorted confidences: knots (x ascending, y non-decreasing)."""
    order = np.argsort(confs, kind="stable")
    xs, ys = confs[order], y[order].astype(np.float64)
    blocks: list[list[float]] = []  # [sum of y, weight, first x, last x]
    for x, v in zip(xs, ys):
        blocks.append([v, 1.0, x, x])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] >= blocks[-1][0] / blocks[-1][1]:
            s, w, _, last = blocks.pop()
            blocks[-1][0] += s
            blocks[-1][1] += w
            blocks[-1][3] = last
    knots_x, knots_y = [], []
    for s, w, first, last in blocks:  # each block is flat from its first to its last confidence
        for x in (first, last) if last > first else (first,):
            knots_x.append(float(x))
            knots_y.append(s / w)
    return knots_x, knots_y


def fit_calibrator(confs, correct, method: str) -> Calibrator:
    """Fit one calibration ``method`` (``temperature``, ``platt``, ``isotonic``) on words' confidences and labels."""
    confs = np.asarray(confs, dtype=np.float64)
    y = np.asarray(correct, dtype=np.float64)
    if confs.size == 0:
        raise ValueError("confs: expected at least one word to calibrate on")
    if method == "temperature":
        a, _ = _fit_logistic(_logit(confs), y, with_bias=False)
        if not a > 0:  # confidence carries no (or inverse) information; keep the mapping monotone
            a = 1e-3
        return Calibrator("temperature", {"T": 1.0 / a})
    if method == "platt":
        a, b = _fit_logistic(_logit(confs), y, with_bias=True)
        return Calibrator("platt", {"a": max(a, 0.0), "b": b})
    if method == "isotonic":
        x, fitted = _fit_isotonic(confs, y)
        return Calibrator("isotonic", {"x": x, "y": fitted})
    raise ValueError(f"method: expected one of {', '.join(METHODS)} or 'auto', got {method!r}")


def choose_calibrator(confs, correct, utterance: list[int], cfg: CalibrationConfig) -> Calibrator:
    """``cfg.method``, or for ``auto`` the method with the lowest ECE on held-out utterances, fitted on all words.

    Args:
        confs, correct: (N,) raw confidences and labels of the dev words.
        utterance: (N,) the utterance index of each word (held-out parts are whole utterances).
    """
    confs = np.asarray(confs, dtype=np.float64)
    correct = np.asarray(correct, dtype=bool)
    info: dict = {"words": int(confs.size), "bins": cfg.bins, "ece_before": round(ece(confs, correct, cfg.bins), 3)}
    method = cfg.method
    if method == "auto":
        if not 0 < cfg.held_out < 1:
            raise ValueError(f"held_out: expected a share between 0 and 1, got {cfg.held_out}")
        utts = sorted(set(utterance))
        held = set(random.Random(cfg.seed).sample(utts, max(1, round(cfg.held_out * len(utts)))))
        test = np.array([u in held for u in utterance])
        if test.all() or not test.any():
            raise ValueError(f"calibration needs words in at least two utterances, got {len(utts)}")
        scores = {"identity": ece(confs[test], correct[test], cfg.bins)}
        for name in METHODS:
            fitted = fit_calibrator(confs[~test], correct[~test], name)
            scores[name] = ece(fitted(confs[test]), correct[test], cfg.bins)
        info["held_out_ece"] = {k: round(v, 3) for k, v in scores.items()}
        info["held_out_utterances"] = len(held)
        method = min(METHODS, key=scores.__getitem__)
        log.info("held-out ECE (%d of %d utterances): %s -> %s", len(held), len(utts),
                 ", ".join(f"{k} {v:.2f}%" for k, v in scores.items()), method)
    calibrator = fit_calibrator(confs, correct, method)
    info["ece_after"] = round(ece(calibrator(confs), correct, cfg.bins), 3)
    calibrator.info = info
    return calibrator


@dataclass
class WordSample:
    cut_id: str
    ref: str  # reference transcript
    words: list[Word]  # greedy hypothesis words with raw confidences
    correct: list[bool]  # per word: aligned to an equal reference word


@torch.no_grad()
def word_samples(model, tokenizer, cuts, max_duration: float = DecodeConfig.max_duration) -> list[WordSample]:
    """Greedy (best path) words of every cut with raw confidences and correctness labels.

    Cost: one forward pass per batch of ``max_duration`` seconds; holds only the words.
    """
    search = GreedySearch(tokenizer, frame_shift(model))  # words as every decoder builds them
    return [WordSample(cut_id, ref, list(hyp.words), word_correct(ref.split(), [w.word for w in hyp.words]))
            for cut_id, ref, hyp in decode_cuts(model, cuts, search, max_duration, num_workers=0)]


def _flat(samples: list[WordSample]) -> tuple[np.ndarray, np.ndarray, list[int]]:
    confs = np.array([w.conf for s in samples for w in s.words], dtype=np.float64)
    correct = np.array([c for s in samples for c in s.correct], dtype=bool)
    utterance = [i for i, s in enumerate(samples) for _ in s.words]
    return confs, correct, utterance


def calibrate(model, tokenizer, dev_cuts, cfg: CalibrationConfig | None = None, test_cuts=None,
              report_dir: str | Path | None = None, max_duration: float = DecodeConfig.max_duration) -> Calibrator:
    """Fit a calibrator on ``dev_cuts``; with ``report_dir``, write ECE tables and reliability diagrams.

    Args:
        cfg: method, bins, held-out share and seed.
        test_cuts: also report raw and calibrated ECE on these (never used for fitting).
        report_dir: gets ``calibration-dev.txt``, ``reliability-dev.png`` (and ``-test`` ones).

    Returns:
        The fitted ``Calibrator``; ``info`` holds its dev (and test) ECE before and after.
    """
    cfg = cfg or CalibrationConfig()
    dev = word_samples(model, tokenizer, dev_cuts, max_duration)
    confs, correct, utterance = _flat(dev)
    calibrator = choose_calibrator(confs, correct, utterance, cfg)
    log.info("dev: %d words, ECE %.2f%% -> %.2f%% (%s)", confs.size, calibrator.info["ece_before"],
             calibrator.info["ece_after"], calibrator.method)
    sets = {"dev": (confs, correct)}
    if test_cuts is not None:
        test_confs, test_correct, _ = _flat(word_samples(model, tokenizer, test_cuts, max_duration))
        sets["test"] = (test_confs, test_correct)
        calibrator.info["test_words"] = int(test_confs.size)
        calibrator.info["test_ece_before"] = round(ece(test_confs, test_correct, cfg.bins), 3)
        calibrator.info["test_ece_after"] = round(ece(calibrator(test_confs), test_correct, cfg.bins), 3)
        log.info("test: %d words, ECE %.2f%% -> %.2f%%", test_confs.size, calibrator.info["test_ece_before"],
                 calibrator.info["test_ece_after"])
    if report_dir is not None:
        for name, (c, y) in sets.items():
            curves = {"raw": (c, y), f"calibrated ({calibrator.method})": (calibrator(c), y)}
            for line in write_calibration_report(curves, report_dir, name, cfg.bins):
                log.info("%s: %s", name, line)
    return calibrator


def calibrate_files(model_path: str | Path, dev_cuts: str | Path, out: str | Path | None = None,
                    cfg: CalibrationConfig | None = None, test_cuts: str | Path | None = None,
                    report_dir: str | Path | None = None, max_duration: float = DecodeConfig.max_duration) -> Path:
    """``calibrate`` a model (any format ``asr decode`` reads) on a dev manifest and save the calibrator
    (default: beside the model file, or inside the model folder, where ``Recognizer`` finds it)."""
    from ..data.cuts import load_cuts
    from ..model.files import load_acoustic_model

    model, tokenizer, _ = load_acoustic_model(model_path)
    test = load_cuts(test_cuts) if test_cuts is not None else None
    calibrator = calibrate(model, tokenizer, load_cuts(dev_cuts), cfg, test, report_dir, max_duration)
    path = calibrator.save(out if out is not None else default_calibration_path(model_path))
    log.info("wrote %s (%s)", path, calibrator.method)
    return path

"""Comparing two systems on the same utterances: bootstrap confidence intervals and paired tests.

* Bootstrap (Bisani & Ney, ICASSP 2004): utterances are resampled with replacement; each
  resample gives both systems' error rates, hence a 95% percentile interval for each rate and for
  their difference, the probability that B improves on A, and a two-sided p-value.
* MAPSSWE (Gillick & Cox 1989, as ``sctk sc_stats -t mapsswe``): utterances are cut into segments
  bounded by two words both systems got right; the per-segment error differences give a Z test.
"""

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..config import ScoreConfig
from .score import ScoreResult, read_transcripts, read_utt2spk, score, system_name
from .normalize import Normalizer

__all__ = ["bootstrap_rates", "mapsswe_segments", "Mapsswe", "mapsswe", "Comparison", "compare", "compare_files"]

MIN_GOOD = 2


def bootstrap_rates(errors: np.ndarray, ref_lens: np.ndarray, n_boot: int = ScoreConfig.n_boot, seed: int = ScoreConfig.seed,
                    chunk: int = 50) -> np.ndarray:
    """Error rates (%) of ``n_boot`` resamples of the utterances, shape ``(n_boot, systems)``.

    Args:
        errors: ``(utterances, systems)`` error counts; resampled rows are shared by all systems.
        ref_lens: ``(utterances,)`` reference lengths.
    """
    errors = np.asarray(errors, dtype=np.float64).reshape(len(ref_lens), -1)
    lens = np.asarray(ref_lens, dtype=np.float64)
    rng = np.random.default_rng(seed)
    out = np.empty((n_boot, errors.shape[1]))
    for start in range(0, n_boot, chunk):
        idx = rng.integers(0, len(lens), size=(min(chunk, n_boot - start), len(lens)))
        n_ref = lens[idx].sum(axis=1)
        for s in range(errors.shape[1]):
            out[start:start + len(idx), s] = 100.0 * errors[idx, s].sum(axis=1) / np.maximum(n_ref, 1.0)
    return out


def mapsswe_segments(ops_a: str, ops_b: str, min_good: int = MIN_GOOD) -> list[tuple[int, int, int]]:
    """``(ref words, errors of A, errors of B)`` per segment of one utterance (sclite's ``test_comp_sents``).

    ``ops_a``/``ops_b`` are the C/S/D/I alignments of the two systems against the same reference.
    A segment ends after ``min_good`` consecutive reference words that both systems got right
    (those words are shared with the next segment's start) or at the end of the utterance;
    segments without errors are dropped. As sctk 2.4.10, a trailing insertion of B after a
    correct end still makes a last segment (one of A's does too, through the insertion skip).
    """
    n1, n2 = len(ops_a), len(ops_b)
    segments = []

    def count(beg1: int, beg2: int, end1: int, end2: int) -> None:
        part1, part2 = ops_a[max(beg1, 0):end1 + 1], ops_b[max(beg2, 0):end2 + 1]
        err1, err2 = sum(c != "C" for c in part1), sum(c != "C" for c in part2)
        if err1 or err2:
            segments.append(((sum(c != "I" for c in part1) + sum(c != "I" for c in part2)) // 2, err1, err2))

    i1 = i2 = eog1 = eog2 = good = 0
    state = "b"
    while i1 < n1:
        while i1 < n1 and ops_a[i1] == "I":
            i1, state = i1 + 1, "e"
        while i2 < n2 and ops_b[i2] == "I":
            i2, state = i2 + 1, "e"
        both = i1 < n1 and ops_a[i1] == "C" and i2 < n2 and ops_b[i2] == "C"
        if state == "b":
            if both:
                eog1, eog2 = i1, i2
            else:
                state = "e"
        elif both:
            good = 1 if state == "e" else good + 1
            state = "g"
            if good == min_good:
                count(eog1 - (min_good - 1), eog2 - (min_good - 1), i1, i2)
                eog1, eog2, state = i1, i2, "b"
        else:
            state = "e"
        i1 += i1 < n1
        i2 += i2 < n2
    if state != "b" or i2 < n2:
        count(eog1 - (min_good - 1), eog2 - (min_good - 1), n1 - 1, n2 - 1)
    return segments


@dataclass
class Mapsswe:
    """Matched-pairs sentence-segment word error test; ``mean`` is errors of A minus B per segment."""

    segments: int
    ref_words: int
    errors_a: int
    errors_b: int
    mean: float
    std: float
    z: float
    p_value: float


def mapsswe(a: ScoreResult, b: ScoreResult, min_good: int = MIN_GOOD) -> Mapsswe:
    """The MAPSSWE test over all utterances (p-value two-sided, normal approximation, as sclite)."""
    segs = [s for ua, ub in zip(a.utts, b.utts)
            for s in mapsswe_segments("".join(op for op, _, _ in ua.ops), "".join(op for op, _, _ in ub.ops), min_good)]
    diff = np.array([e1 - e2 for _, e1, e2 in segs], dtype=np.float64)
    mean = float(diff.mean()) if len(diff) else 0.0
    ss = float(((diff - mean) ** 2).sum())
    std = math.sqrt(ss / (len(diff) - 1)) if ss else 0.0
    z = mean / (std / math.sqrt(len(diff))) if ss else 0.0
    return Mapsswe(len(segs), sum(s[0] for s in segs), sum(s[1] for s in segs), sum(s[2] for s in segs),
                   mean, std, z, math.erfc(abs(z) / math.sqrt(2.0)))


@dataclass
class Comparison:
    """System B against system A on the same utterances; ``delta`` is B's error rate minus A's."""

    metric: str
    name_a: str
    name_b: str
    utterances: int
    ref_tokens: int
    rate_a: float
    rate_b: float
    ci_a: tuple[float, float]
    ci_b: tuple[float, float]
    delta: float
    ci_delta: tuple[float, float]
    prob_b_better: float
    p_bootstrap: float
    n_boot: int
    seed: int
    level: float
    mapsswe: Mapsswe
    normalization: dict

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    def report(self) -> str:
        """A short plain-text report."""
        m = self.mapsswe
        width = max(len(self.name_a), len(self.name_b), len("B - A"))
        p_boot = f"< {1 / self.n_boot:.2g}" if self.p_bootstrap == 0 else f"= {self.p_bootstrap:.4f}"
        lines = [f"Comparison of {self.utterances} utterances ({self.ref_tokens} reference tokens), "
                 f"{self.n_boot} bootstrap resamples (seed {self.seed})",
                 f"{'':<{width}}  {self.metric:>7}  {100 * self.level:g}% CI (bootstrap)"]
        for label, rate, ci in ((self.name_a, self.rate_a, self.ci_a), (self.name_b, self.rate_b, self.ci_b),
                                ("B - A", self.delta, self.ci_delta)):
            lines.append(f"{label:<{width}}  {rate:7.2f}  [{ci[0]:.2f}, {ci[1]:.2f}]")
        lines += [f"Paired bootstrap: P(B better than A) = {self.prob_b_better:.4f}, two-sided p {p_boot}",
                  f"MAPSSWE: {m.segments} segments, {m.ref_words} reference words, errors A {m.errors_a} "
                  f"B {m.errors_b}, mean A-B {m.mean:.3f}, sd {m.std:.3f}, Z {m.z:.3f}, two-sided p = {m.p_value:.3g}",
                  f"Significant at p < 0.05: bootstrap {'yes' if self.p_bootstrap < 0.05 else 'no'}, "
                  f"MAPSSWE {'yes' if m.p_value < 0.05 else 'no'}"]
        return "\n".join(lines) + "\n"


def compare(a: ScoreResult, b: ScoreResult, name_a: str = "A", name_b: str = "B", n_boot: int = ScoreConfig.n_boot,
            seed: int = ScoreConfig.seed, level: float = 0.95) -> Comparison:
    """Bootstrap intervals, paired bootstrap and MAPSSWE for two results on the same references.

    Raises:
        ValueError: when the results differ in unit, utterances or reference tokens.
    """
    if a.unit != b.unit or [u.id for u in a.utts] != [u.id for u in b.utts] or \
            any(ua.ref != ub.ref for ua, ub in zip(a.utts, b.utts)):
        raise ValueError("the two results must score the same references with the same unit and normalisation")
    if n_boot < 1:
        raise ValueError(f"n_boot must be positive, got {n_boot}")
    lens = np.array([len(u.ref) for u in a.utts])
    errors = np.array([[ua.errors, ub.errors] for ua, ub in zip(a.utts, b.utts)]).reshape(len(lens), 2)
    rates = bootstrap_rates(errors, lens, n_boot, seed)
    delta = rates[:, 1] - rates[:, 0]
    q = (100.0 * (1 - level) / 2, 100.0 * (1 + level) / 2)

    def ci(x: np.ndarray) -> tuple[float, float]:
        lo, hi = np.percentile(x, q)
        return float(lo), float(hi)

    p = min(1.0, 2.0 * min(float((delta >= 0).mean()), float((delta <= 0).mean())))
    return Comparison(a.rate_name, name_a, name_b, len(lens), int(lens.sum()), a.err_rate, b.err_rate,
                      ci(rates[:, 0]), ci(rates[:, 1]), b.err_rate - a.err_rate, ci(delta),
                      float((delta < 0).mean()), p, n_boot, seed, level, mapsswe(a, b), a.normalization)


def compare_files(ref_path: str | Path, hyp_a: str | Path, hyp_b: str | Path, unit: str = ScoreConfig.unit, *,
                  utt2spk: str | Path | None = None, normalizer: Normalizer | None = None, n_boot: int = ScoreConfig.n_boot,
                  seed: int = ScoreConfig.seed, out_dir: str | Path | None = None) -> Comparison:
    """:func:`compare` two hypothesis files; with ``out_dir``, write ``compare-A-vs-B-UNIT.{txt,json}``.

    Raises:
        ValueError: as :func:`compare` and the readers, or when both files have the same name stem.
    """
    name_a, name_b = system_name(hyp_a), system_name(hyp_b)
    if name_a == name_b:
        name_a, name_b = str(hyp_a), str(hyp_b)
    refs = read_transcripts(ref_path)
    spk = read_utt2spk(utt2spk) if utt2spk is not None else None
    a, b = (score(refs, read_transcripts(h), unit, utt2spk=spk, normalizer=normalizer) for h in (hyp_a, hyp_b))
    result = compare(a, b, name_a, name_b, n_boot, seed)
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        stem = f"compare-{system_name(hyp_a)}-vs-{system_name(hyp_b)}-{unit}"
        (out / f"{stem}.txt").write_text(result.report(), encoding="utf-8")
        (out / f"{stem}.json").write_text(json.dumps(result.to_dict(), indent=1) + "\n", encoding="utf-8")
    return result

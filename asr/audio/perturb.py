"""Speed perturbation of training cuts (Ko et al., Interspeech 2015): extra copies at other speeds.

A copy at factor ``f`` is lhotse's ``MonoCut.perturb_speed(f)``: the same file audio with a
``Speed`` transform (resampling by ``f``, so pitch and tempo change together), ``1 / f`` times as
long, its id suffixed ``_sp{f}``. ``asr.data.cut_audio`` applies the transform when it reads the cut.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from lhotse import CutSet

__all__ = ["speed_perturb"]

log = logging.getLogger(__name__)


def speed_perturb(cuts: CutSet, factors: Sequence[float]) -> CutSet:
    """``cuts`` followed by one speed-perturbed copy of them per factor (1.0 adds nothing).

    Args:
        cuts: training cuts.
        factors: speed factors, e.g. ``[0.9, 1.1]`` (Kaldi's ``0.9 1.0 1.1``: the originals stay first).

    Returns:
        ``len(cuts) * (1 + number of factors other than 1.0)`` cuts: eager for eager ``cuts``; for
        lazy ones a lazy chain (the copies are made as it is iterated, nothing is held).
    """
    bad = [f for f in factors if isinstance(f, bool) or not isinstance(f, (int, float)) or not 0 < f < 10]
    if bad:
        raise ValueError(f"speed_perturb: factors must be numbers in (0, 10), got {bad[0]!r}")
    extra = [float(f) for f in dict.fromkeys(factors) if f != 1.0]
    if not extra:
        return cuts
    if cuts.is_lazy:
        log.info("speed perturbation %s: %d copies of every cut, made as they are read", extra, len(extra))
        chained = cuts
        for factor in extra:
            chained = chained + cuts.perturb_speed(factor)  # lazy: a LazyIteratorChain
        return chained
    perturbed = [cut.perturb_speed(factor) for factor in extra for cut in cuts]
    log.info("speed perturbation %s: %d + %d cuts", extra, len(cuts), len(perturbed))
    return CutSet.from_cuts([*cuts, *perturbed])

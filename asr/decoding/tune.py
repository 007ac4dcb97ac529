"""Tune the LM weight and word score of the lexicon + n-gram beam search on a dev set.

The model runs once over the dev cuts; every (lm_weight, word_score) point then re-runs only the
beam search (sharing one loaded LM per process, points spread over worker processes) and is
scored by word error rate. ``asr tune`` (``asr.inference.tuning.tune_files``) writes the best
point to a small YAML file, by default ``lm-params.yaml`` next to the model, which ``asr decode
--method beam-lm`` reads for every option not given on its command line.
"""

from __future__ import annotations

import logging
import random
from pathlib import Path

import numpy as np
import torch
from lhotse import CutSet

from ..config import DecodeConfig, SearchConfig, TuneConfig
from ..data.cuts import FeatureBatcher, eval_batches
from ..model.files import model_device
from ..scoring.score import score
from .resolve import LMParams, make_search
from .search import BeamSearch, inheritable, process_pool

__all__ = ["best_params", "cut_emissions", "neighbourhood_wers", "point_errors", "search_points", "tune"]

log = logging.getLogger(__name__)


def _axis(bounds: tuple[float, float], points: int) -> np.ndarray:
    """``points`` evenly spaced values from ``bounds[0]`` to ``bounds[1]``; one value when the two are equal."""
    return np.linspace(*bounds, points if bounds[0] != bounds[1] else 1)


def search_points(search: str = TuneConfig.search,
                  lm_weight_range: tuple[float, float] = TuneConfig.lm_weight_range,
                  word_score_range: tuple[float, float] = TuneConfig.word_score_range,
                  points: int = TuneConfig.points, trials: int = TuneConfig.trials,
                  seed: int = TuneConfig.seed) -> list[tuple[float, float]]:
    """(lm_weight, word_score) pairs: a ``points`` x ``points`` grid, or ``trials`` uniform random draws.

    A range whose ends are equal (e.g. word score 0 for lexicon-free search) gives one value, not ``points``.
    """
    if search == "grid":
        weights, scores = _axis(lm_weight_range, points), _axis(word_score_range, points)
        return [(round(float(w), 4), round(float(s), 4)) for w in weights for s in scores]
    if search == "random":
        rng = random.Random(seed)
        return [(round(rng.uniform(*lm_weight_range), 4), round(rng.uniform(*word_score_range), 4))
                for _ in range(trials)]
    raise ValueError(f"search: expected 'grid' or 'random', got {search!r}")


@torch.no_grad()
def cut_emissions(model, cuts: CutSet, max_duration: float = DecodeConfig.max_duration, shard: tuple[int, int] = (0, 1)
                  ) -> tuple[list[str], dict[str, str], list[np.ndarray]]:
    """Run the model once: cut ids, references and (T_i, V) float32 log-probs per cut (of ``shard``:
    the cuts of its batches, see ``asr.data.cuts.eval_batches``)."""
    model.eval()
    device = model_device(model)
    batcher = FeatureBatcher(model.cfg.features)
    ids, refs, emissions = [], {}, []
    for batch_cuts in eval_batches(cuts, max_duration, shard):
        batch = batcher(batch_cuts)
        log_probs, lens = model(batch.feats.to(device), batch.feat_lens.to(device))
        log_probs, lens = log_probs.to("cpu", torch.float32), lens.cpu()
        for i, cut_id in enumerate(batch.ids):
            ids.append(cut_id)
            refs[cut_id] = batch.texts[i]
            emissions.append(log_probs[i, : lens[i]].contiguous().numpy())
    return ids, refs, emissions


_worker: dict = {}


def _init_worker(search: BeamSearch | None, options: dict, ids: list[str], refs: dict[str, str],
                 emissions: list[np.ndarray]) -> None:
    torch.set_num_threads(1)
    _worker.update(search=search, options=options, ids=ids, refs=refs, emissions=emissions)


def _errors_at(point: tuple[float, float]) -> tuple[int, int]:
    """(word errors, reference words) of the dev set at one (lm_weight, word_score) point, in this process."""
    if _worker["search"] is None:
        from ..data.tokenizer import tokenizer_from_dict

        options = dict(_worker["options"])
        _worker["search"] = BeamSearch(tokenizer_from_dict(options.pop("tokenizer")), **options)
    search = _worker["search"].reweighted(*point)
    hyps = {}
    for cut_id, emission in zip(_worker["ids"], _worker["emissions"]):
        hyp = search(torch.from_numpy(emission)[None], torch.tensor([emission.shape[0]]))[0]
        hyps[cut_id] = hyp.text
    result = score(_worker["refs"], hyps, "word")
    return result.errors, result.num_ref


def tune(model, tokenizer, cuts: CutSet, lm: str | Path, lexicon: str | Path | None,
         points: list[tuple[float, float]], beam_size: int = TuneConfig.beam_size,
         beam_threshold: float = SearchConfig.beam_threshold, num_workers: int = DecodeConfig.num_workers,
         max_duration: float = DecodeConfig.max_duration, select: str = TuneConfig.select) -> LMParams:
    """WER of every (lm_weight, word_score) point on ``cuts``; returns the chosen one (``best_params``)
    with all trials.

    The search is ``make_search``'s beam-lm search with ``lm`` and ``lexicon`` (no tuned file read).

    Args:
        lm, lexicon: as for ``BeamSearch`` (lexicon None: lexicon-free, word score ignored).
        points: from ``search_points``.
        beam_size, beam_threshold: of the search while tuning.
        num_workers: processes sharing the points (0: this process only).
        max_duration: seconds of audio per forward pass of the model (run once).
    """
    errors = point_errors(model, tokenizer, cuts, lm, lexicon, points, beam_size, beam_threshold, num_workers,
                          max_duration)
    return best_params(lm, lexicon, points, errors, beam_size, beam_threshold, select)


def point_errors(model, tokenizer, cuts: CutSet, lm: str | Path, lexicon: str | Path | None,
                 points: list[tuple[float, float]], beam_size: int = TuneConfig.beam_size,
                 beam_threshold: float = SearchConfig.beam_threshold, num_workers: int = DecodeConfig.num_workers,
                 max_duration: float = DecodeConfig.max_duration, shard: tuple[int, int] = (0, 1)
                 ) -> list[tuple[int, int]]:
    """(word errors, reference words) of every point on ``cuts``, or on ``shard`` of their batches.

    The counts of the N shards of a set add up to the set's (``best_params`` takes the sums).
    Arguments as for ``tune``.
    """
    if not points:
        raise ValueError("points: expected at least one (lm_weight, word_score) pair")
    search = make_search(tokenizer, "beam-lm", dict(lm=lm, lexicon=lexicon, beam_size=beam_size,
                                                    beam_threshold=beam_threshold))  # checks lexicon and LM first
    ids, refs, emissions = cut_emissions(model, cuts, max_duration, shard)
    log.info("tuning on %d utterances: %d points, beam %d, %d worker(s)", len(ids), len(points), beam_size,
             num_workers)
    if num_workers > 0:
        worker_options = {**search.options, "tokenizer": tokenizer.to_dict()}
        initargs = (inheritable(search), worker_options, ids, refs, emissions)
        with process_pool(num_workers, _init_worker, initargs) as pool:
            errors = pool.map(_errors_at, points, chunksize=max(1, len(points) // (4 * num_workers)))
    else:
        _worker.update(search=search, ids=ids, refs=refs, emissions=emissions)
        errors = [_errors_at(p) for p in points]
    _worker.clear()
    return errors


def best_params(lm: str | Path, lexicon: str | Path | None, points: list[tuple[float, float]],
                errors: list[tuple[int, int]], beam_size: int = TuneConfig.beam_size,
                beam_threshold: float = SearchConfig.beam_threshold, select: str = TuneConfig.select) -> LMParams:
    """The chosen point with every trial's, from ``point_errors``' counts.

    ``select`` "lowest": the point of lowest %WER (then lowest LM weight, then smallest word score).
    "smooth": the point whose neighbourhood (``neighbourhood_wers``) has the lowest pooled %WER, then
    its own %WER, then as "lowest". On a small dev set many points tie and single points dip by a
    word or two; pooling with the neighbours picks the middle of the widest low region instead.
    """
    if select not in ("lowest", "smooth"):
        raise ValueError(f"select: expected 'lowest' or 'smooth', got {select!r}")
    wers = [_rate(e, n) for e, n in errors]
    trials = [{"lm_weight": w, "word_score": s, "wer": round(wer, 3)} for (w, s), wer in zip(points, wers)]
    if select == "smooth":
        for trial, pooled in zip(trials, neighbourhood_wers(points, errors)):
            trial["smoothed_wer"] = round(float(pooled), 3)
    best = min(trials, key=lambda t: (t.get("smoothed_wer", 0.0), t["wer"], t["lm_weight"], abs(t["word_score"])))
    log.info("best (%s): lm_weight %.3f, word_score %.3f, dev %%WER %.2f", select, best["lm_weight"],
             best["word_score"], best["wer"])
    return LMParams(lm=str(Path(lm).resolve()), lexicon=str(Path(lexicon).resolve()) if lexicon else None,
                    lm_weight=best["lm_weight"], word_score=best["word_score"], beam_size=beam_size,
                    beam_threshold=beam_threshold, dev_wer=best["wer"], trials=trials)


def _rate(errors: int, num_ref: int) -> float:
    return 100.0 * errors / num_ref if num_ref else (float("inf") if errors else 0.0)  # as ScoreResult.err_rate


def neighbourhood_wers(points: list[tuple[float, float]], errors: list[tuple[int, int]]) -> list[float]:
    """%WER of each point pooled with the points around it (errors and words summed).

    A neighbour lies within one spacing of the point on each axis; the spacing of an axis is its
    span over (n - 1), n being its distinct values on a grid (13 on the default 13 x 13 grid: the
    3 x 3 block) and the points' per-axis density for random draws (about sqrt(trials)).
    """
    coords = np.array(points, dtype=float).reshape(-1, 2)  # (P, 2): lm_weight, word_score
    spans = coords.max(axis=0) - coords.min(axis=0)
    varying = spans > 0
    per_axis = round(len(points) ** (1 / max(int(varying.sum()), 1)))  # points along each varying axis
    distinct = np.array([len(np.unique(coords[:, a])) for a in range(2)])
    steps = np.where(varying, spans / np.maximum(np.minimum(distinct, per_axis) - 1, 1), 0.0)
    near = (np.abs(coords[:, None, :] - coords[None, :, :]) <= steps * (1 + 1e-9) + 1e-12).all(axis=2)  # (P, P)
    counts = np.array(errors, dtype=float).reshape(-1, 2)  # (P, 2): errors, reference words
    pooled = near.astype(float) @ counts  # (P, 2) summed over each point's neighbours
    return [_rate(e, n) for e, n in pooled]

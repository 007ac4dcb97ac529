"""Tune the LM weight and word score of the lexicon + n-gram beam search on a dev set.

The model runs once over the dev cuts; every (lm_weight, word_score) point then re-runs only the
beam search (sharing one loaded LM per process, points spread over worker processes) and is
scored by word error rate. The best point is written to a small YAML file, by default
``lm-params.yaml`` next to the model, which ``asr decode --method beam-lm`` reads for every
option not given on its command line.
"""

from __future__ import annotations

import logging
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import yaml
from lhotse import CutSet

from ..data.cuts import FeatureBatcher, eval_batches
from .search import BeamSearch, inheritable, process_pool
from ..scoring.score import score

__all__ = ["LM_PARAMS_FILE", "LMParams", "default_params_path", "read_lm_params", "write_lm_params",
           "beam_lm_options", "search_points", "tune"]

log = logging.getLogger(__name__)

LM_PARAMS_FILE = "lm-params.yaml"  # written next to the model by ``asr tune``


@dataclass
class LMParams:
    lm: str  # language model file the weights were tuned for
    lexicon: str | None  # lexicon file, None for lexicon-free search
    lm_weight: float  # best LM weight on the dev set
    word_score: float  # best word insertion score on the dev set
    beam_size: int  # beam used while tuning
    beam_threshold: float  # beam threshold used while tuning
    dev_wer: float = float("nan")  # %WER at the best point
    trials: list[dict] = field(default_factory=list)  # every point tried: lm_weight, word_score, wer


def default_params_path(model_path: str | Path) -> Path:
    """``lm-params.yaml`` in the model file's directory."""
    return Path(model_path).parent / LM_PARAMS_FILE


def write_lm_params(params: LMParams, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(asdict(params), sort_keys=False))
    return path


def read_lm_params(path: str | Path) -> LMParams:
    """Load a file written by ``write_lm_params``.

    Raises:
        ValueError: naming the file when it is not such a mapping.
    """
    path = Path(path)
    try:
        values = yaml.safe_load(path.read_text())
        return LMParams(**values)
    except (yaml.YAMLError, TypeError) as err:
        raise ValueError(f"{path}:1: not an LM parameter file written by 'asr tune' ({err})") from None


def beam_lm_options(params_path: str | Path, given: dict, explicit: bool = False) -> dict:
    """``BeamSearch`` keyword arguments for beam-lm decoding: ``given``, completed from a tuned file.

    Args:
        params_path: an ``lm-params.yaml`` from ``asr tune``; used when it exists.
        given: lm, lexicon, lm_weight, word_score, beam_size, beam_threshold, nbest (None: not given).
        explicit: ``params_path`` was named by the user, so it must exist.

    Raises:
        ValueError: neither an LM nor a lexicon, given or tuned; FileNotFoundError: explicit path missing.
    """
    options = {k: v for k, v in given.items() if v is not None}
    path = Path(params_path)
    if path.is_file():
        params = read_lm_params(path)
        tuned = dict(lm=params.lm, lexicon=params.lexicon, lm_weight=params.lm_weight,
                     word_score=params.word_score, beam_size=params.beam_size, beam_threshold=params.beam_threshold)
        if "lm" in options and Path(options["lm"]).resolve() != Path(params.lm).resolve():
            log.warning("%s was tuned for the LM %s, not %s", path, params.lm, options["lm"])
        taken = {k: v for k, v in tuned.items() if k not in options and v is not None}
        options.update(taken)
        log.info("beam-lm options from %s: %s", path, ", ".join(f"{k}={v}" for k, v in taken.items()) or "none")
    elif explicit:
        raise FileNotFoundError(f"{path}: no such LM parameter file")
    if "lm" not in options and "lexicon" not in options:
        raise ValueError(f"beam-lm needs --lm and/or --lexicon, or {path} from 'asr tune'")
    return options


def search_points(search: str, lm_weight_range: tuple[float, float], word_score_range: tuple[float, float],
                  points: int = 13, trials: int = 60, seed: int = 0) -> list[tuple[float, float]]:
    """(lm_weight, word_score) pairs: a ``points`` x ``points`` grid, or ``trials`` uniform random draws."""
    if search == "grid":
        weights = np.linspace(*lm_weight_range, points)
        scores = np.linspace(*word_score_range, points)
        return [(round(float(w), 4), round(float(s), 4)) for w in weights for s in scores]
    if search == "random":
        rng = random.Random(seed)
        return [(round(rng.uniform(*lm_weight_range), 4), round(rng.uniform(*word_score_range), 4))
                for _ in range(trials)]
    raise ValueError(f"search: expected 'grid' or 'random', got {search!r}")


@torch.no_grad()
def _emissions(model, cuts: CutSet, max_duration: float) -> tuple[list[str], dict[str, str], list[np.ndarray]]:
    """Run the model once: cut ids, references and (T_i, V) float32 log-probs per cut."""
    model.eval()
    batcher = FeatureBatcher(model.cfg.features)
    ids, refs, emissions = [], {}, []
    for batch_cuts in eval_batches(cuts, max_duration):
        batch = batcher(batch_cuts)
        log_probs, lens = model(batch.feats, batch.feat_lens)
        for i, cut_id in enumerate(batch.ids):
            ids.append(cut_id)
            refs[cut_id] = batch.texts[i]
            emissions.append(log_probs[i, : lens[i]].to(torch.float32).contiguous().numpy())
    return ids, refs, emissions


_worker: dict = {}


def _init_worker(search: BeamSearch | None, options: dict, ids: list[str], refs: dict[str, str],
                 emissions: list[np.ndarray]) -> None:
    torch.set_num_threads(1)
    _worker.update(search=search, options=options, ids=ids, refs=refs, emissions=emissions)


def _wer_at(point: tuple[float, float]) -> float:
    """%WER of the dev set at one (lm_weight, word_score) point, in this process."""
    if _worker["search"] is None:
        from ..data.tokenizer import tokenizer_from_dict

        options = dict(_worker["options"])
        _worker["search"] = BeamSearch(tokenizer_from_dict(options.pop("tokenizer")), **options)
    search = _worker["search"].reweighted(*point)
    hyps = {}
    for cut_id, emission in zip(_worker["ids"], _worker["emissions"]):
        hyp = search(torch.from_numpy(emission)[None], torch.tensor([emission.shape[0]]))[0]
        hyps[cut_id] = hyp.text
    return score(_worker["refs"], hyps, "word").err_rate


def tune(model, tokenizer, cuts: CutSet, lm: str | Path, lexicon: str | Path | None,
         points: list[tuple[float, float]], beam_size: int = 50, beam_threshold: float = 25.0,
         num_workers: int = 0, max_duration: float = 200.0) -> LMParams:
    """WER of every (lm_weight, word_score) point on ``cuts``; returns the best with all trials.

    Args:
        lm, lexicon: as for ``BeamSearch`` (lexicon None: lexicon-free, word score ignored).
        points: from ``search_points``.
        num_workers: processes sharing the points (0: this process only).
    """
    if not points:
        raise ValueError("points: expected at least one (lm_weight, word_score) pair")
    options = dict(beam_size=beam_size, beam_threshold=beam_threshold, lexicon=lexicon, lm=lm, nbest=1,
                   frame_shift=None)
    search = BeamSearch(tokenizer, **options)  # checks lexicon and LM before any work
    ids, refs, emissions = _emissions(model, cuts, max_duration)
    log.info("tuning on %d utterances: %d points, beam %d, %d worker(s)", len(ids), len(points), beam_size,
             num_workers)
    if num_workers > 0:
        worker_options = {**options, "tokenizer": tokenizer.to_dict()}
        initargs = (inheritable(search), worker_options, ids, refs, emissions)
        with process_pool(num_workers, _init_worker, initargs) as pool:
            wers = pool.map(_wer_at, points, chunksize=max(1, len(points) // (4 * num_workers)))
    else:
        _worker.update(search=search, ids=ids, refs=refs, emissions=emissions)
        wers = [_wer_at(p) for p in points]
    _worker.clear()
    trials = [{"lm_weight": w, "word_score": s, "wer": round(wer, 3)} for (w, s), wer in zip(points, wers)]
    best = min(trials, key=lambda t: (t["wer"], t["lm_weight"], abs(t["word_score"])))
    log.info("best: lm_weight %.3f, word_score %.3f, dev %%WER %.2f", best["lm_weight"], best["word_score"],
             best["wer"])
    return LMParams(lm=str(Path(lm).resolve()), lexicon=str(Path(lexicon).resolve()) if lexicon else None,
                    lm_weight=best["lm_weight"], word_score=best["word_score"], beam_size=beam_size,
                    beam_threshold=beam_threshold, dev_wer=best["wer"], trials=trials)

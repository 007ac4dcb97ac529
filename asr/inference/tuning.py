"""``asr tune`` on files: a model, a dev manifest and an LM in, ``lm-params.yaml`` out; shardable."""

from __future__ import annotations

import logging
from pathlib import Path

from ..config import DecodeConfig, SearchConfig, TranscribeConfig, TuneConfig
from ..data.cuts import load_cuts
from ..decoding.resolve import default_params_path, write_lm_params
from ..decoding.tune import best_params, point_errors, search_points
from .recognizer import load_placed
from .shards import open_shard, run_key

__all__ = ["tune_files"]

log = logging.getLogger(__name__)


def tune_files(model_path: str | Path, cuts_path: str | Path, lm: str | Path, lexicon: str | Path | None = None,
               out: str | Path | None = None, cfg: TuneConfig | None = None,
               beam_threshold: float = SearchConfig.beam_threshold, num_workers: int = DecodeConfig.num_workers,
               max_duration: float = DecodeConfig.max_duration, device: str = TranscribeConfig.device,
               shard: str | None = None) -> Path | None:
    """``asr tune``: ``asr.decoding.tune.tune`` a model (any format ``asr decode`` reads) on a cut manifest and
    write the best point as YAML.

    Under torchrun, or with ``shard`` "I/N" (a job of a job array), each process scores every
    point on its share of the cuts (``asr.inference.shards``); the summed error counts give the
    WERs of the unsharded run, and one process writes the file.

    Args:
        out: the YAML file (default: ``lm-params.yaml`` next to the model file or folder; a file's beam-lm
            decoding reads it from there, a folder's takes it with ``lm_params``).
        cfg: the points searched and the beam size.
        device: where the model runs ("cuda" under torchrun: each rank's own GPU).
    Returns:
        The file written, or None where this process did not write it.
    """
    cfg = cfg or TuneConfig()
    out = Path(out or default_params_path(model_path))
    points = search_points(cfg.search, tuple(cfg.lm_weight_range), tuple(cfg.word_score_range), cfg.points,
                           cfg.trials, cfg.seed)
    files = [model_path, cuts_path, lm] + ([lexicon] if lexicon else [])
    part = open_shard(shard, run_key(files, points=points, beam=[cfg.beam_size, beam_threshold],
                                     max_duration=max_duration))
    model, tokenizer, _ = load_placed(model_path, device, part)
    errors = point_errors(model, tokenizer, load_cuts(cuts_path), lm, lexicon, points, cfg.beam_size, beam_threshold,
                          num_workers, max_duration, part.part)
    errors = part.sum_counts(errors, out.parent / "shards", out.stem)
    path = None
    if errors is not None and part.ctx.is_main:
        path = write_lm_params(best_params(lm, lexicon, points, errors, cfg.beam_size, beam_threshold, cfg.select), out)
        log.info("wrote %s", path)
    part.close()
    return path

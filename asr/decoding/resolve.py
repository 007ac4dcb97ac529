"""From a method and options to a search: the one place that decides what every decoder runs.

``asr decode``, ``asr transcribe``, ``asr tune`` and ``asr.Recognizer`` all call ``make_search``
(or its two halves, ``resolve_search`` and ``build_search``), so a method means the same search
everywhere and a contradictory option is the same ``ValueError`` everywhere:

* ``greedy``: the best path; takes no search option.
* ``beam``: lexicon-free beam search without LM: beam_size, beam_threshold, nbest, sil_score.
* ``beam-lm``: beam search with an LM and/or a lexicon: the beam options plus lm, lexicon,
  lm_weight, word_score. Options not given come from an ``lm-params.yaml`` written by ``asr tune``
  (the one named, else the one next to the model if it exists), then from ``SearchConfig``.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..config import SearchConfig
from .search import BeamSearch, GreedySearch

__all__ = ["METHODS", "LM_PARAMS_FILE", "LMParams", "default_params_path", "read_lm_params", "write_lm_params",
           "method_options", "check_options", "resolve_search", "build_search", "make_search"]

log = logging.getLogger(__name__)

METHODS = ("greedy", "beam", "beam-lm")
LM_PARAMS_FILE = "lm-params.yaml"  # written next to the model by ``asr tune``
_BEAM_OPTIONS = ("beam_size", "beam_threshold", "nbest", "sil_score")
_LM_OPTIONS = ("lm", "lexicon", "lm_weight", "word_score", "hotwords")
_ACCEPTED = {"greedy": (), "beam": _BEAM_OPTIONS, "beam-lm": _BEAM_OPTIONS + _LM_OPTIONS}


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
    """``lm-params.yaml`` in the directory of the model file (or folder)."""
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


def method_options(method: str) -> tuple[str, ...]:
    """The ``SearchConfig`` fields ``method`` takes (besides ``method``)."""
    if method not in _ACCEPTED:
        raise ValueError(f"method: expected one of {', '.join(METHODS)}, got {method!r}")
    return _ACCEPTED[method]


def _given(options: Mapping[str, Any] | None) -> dict[str, Any]:
    """The options actually given (None: not given); an unknown name is an error."""
    given = {k: v for k, v in (options or {}).items() if v is not None}
    known = {f.name for f in dataclasses.fields(SearchConfig)} - {"method"}
    unknown = sorted(set(given) - known)
    if unknown:
        raise ValueError(f"{', '.join(unknown)}: not a search option (expected some of {', '.join(sorted(known))})")
    return given


def check_options(methods: str | Sequence[str], options: Mapping[str, Any] | None = None,
                  lm_params: str | Path | None = None) -> None:
    """Raise ``ValueError`` for a given option that none of ``methods`` uses.

    Args:
        methods: one method or several (``asr decode --method greedy beam``: a beam option is fine).
        options: search options by ``SearchConfig`` field name; None values count as not given.
        lm_params: a tuned parameter file, which only beam-lm reads.
    """
    methods = [methods] if isinstance(methods, str) else list(methods)
    accepted = {name for m in methods for name in method_options(m)}
    unused = sorted(set(_given(options)) - accepted)
    if lm_params is not None and "beam-lm" not in methods:
        unused.append("lm_params")
    if unused:
        users = [m for m in METHODS if all(n in _ACCEPTED[m] or (n, m) == ("lm_params", "beam-lm") for n in unused)]
        raise ValueError(f"{', '.join(unused)}: only for method {' or '.join(map(repr, users))}, "
                         f"not {' '.join(map(repr, methods))}")


def resolve_search(method: str, options: Mapping[str, Any] | None = None, lm_params: str | Path | None = None,
                   model_path: str | Path | None = None) -> SearchConfig:
    """The complete search configuration for ``method`` and the options given.

    Args:
        method: ``"greedy"``, ``"beam"`` or ``"beam-lm"``.
        options: ``SearchConfig`` fields given by the user (None values: not given).
        lm_params: beam-lm: an ``lm-params.yaml`` from ``asr tune`` that supplies every option not
            given (it must exist).
        model_path: beam-lm without ``lm_params``: the ``lm-params.yaml`` next to this model file
            is read if it exists.

    Raises:
        ValueError: an unknown method or option, an option the method does not use, or beam-lm
            with neither an LM nor a lexicon; FileNotFoundError: ``lm_params`` does not exist.
    """
    given = _given(options)
    check_options(method, given, lm_params)
    if method == "beam-lm":
        path = Path(lm_params) if lm_params is not None else None
        if path is None and model_path is not None:
            path = default_params_path(model_path)
        if path is not None and path.is_file():
            given = _with_tuned(given, path)
        elif lm_params is not None:
            raise FileNotFoundError(f"{lm_params}: no such LM parameter file")
        if "lm" not in given and "lexicon" not in given:
            where = f", or {path} from 'asr tune'" if path is not None else ""
            raise ValueError(f"method 'beam-lm' needs lm and/or lexicon{where}")
    return SearchConfig(method=method, **given)


def _with_tuned(given: dict[str, Any], path: Path) -> dict[str, Any]:
    """``given`` completed from a tuned parameter file; logs what it took."""
    params = read_lm_params(path)
    tuned = dict(lm=params.lm, lexicon=params.lexicon, lm_weight=params.lm_weight, word_score=params.word_score,
                 beam_size=params.beam_size, beam_threshold=params.beam_threshold)
    if "lm" in given and Path(given["lm"]).resolve() != Path(params.lm).resolve():
        log.warning("%s was tuned for the LM %s, not %s", path, params.lm, given["lm"])
    taken = {k: v for k, v in tuned.items() if k not in given and v is not None}
    log.info("beam-lm options from %s: %s", path, ", ".join(f"{k}={v}" for k, v in taken.items()) or "none")
    return {**given, **taken}


def build_search(cfg: SearchConfig, tokenizer, frame_shift: float | None = None) -> GreedySearch | BeamSearch:
    """The search object of a resolved configuration (loads the LM and checks the lexicon once).

    Args:
        cfg: from ``resolve_search``.
        tokenizer: the model's tokenizer.
        frame_shift: seconds per output frame; when given, hypotheses carry words.
    """
    if cfg.method == "greedy":
        return GreedySearch(tokenizer, frame_shift)
    method_options(cfg.method)
    return BeamSearch.from_config(tokenizer, cfg, frame_shift)


def make_search(tokenizer, method: str, options: Mapping[str, Any] | None = None,
                lm_params: str | Path | None = None, *, model_path: str | Path | None = None,
                frame_shift: float | None = None) -> GreedySearch | BeamSearch:
    """``build_search(resolve_search(...))``: from method, options and tuned file to a search object."""
    return build_search(resolve_search(method, options, lm_params, model_path), tokenizer, frame_shift)

"""Any of lhotse's corpus recipes (``lhotse.recipes.prepare_NAME``: Common Voice, TED-LIUM, MLS, VoxPopuli,
GigaSpeech, WSJ, ...) mapped to the toolkit's manifests.

lhotse parses the corpus layout into recordings and supervisions; each supervision becomes an
``Utterance`` of ``custom.write_corpus`` (one cut per supervision, its id the supervision's), so the
text normalisation, header checks, character report and files written are those of ``asr prepare
table``. The parts keep lhotse's names (``train``, ``dev``, ``test``; ``LANG_PART`` when several
languages are prepared at once). Recordings must be audio files: a recipe whose sources are commands
or URLs is refused.

Text normalisation per corpus (``CORPUS_TEXT``; options given to ``prepare_lhotse`` override it):

- commonvoice: sentences in mixed case with punctuation: upper case, punctuation removed except
  word-internal ``'`` and ``-``;
- tedlium: lower case with ``<unk>`` for unknown words and ``[NOISE]``-style tags: both removed, upper case;
- any other corpus: the text as lhotse gives it, whitespace collapsed.

A supervision whose text is empty after normalisation is left out and counted (a corpus's own
quirk, not an error of the user's).
"""

from __future__ import annotations

import importlib
import inspect
import logging
import re
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from lhotse import CutSet
from lhotse.audio.backend import audio_backend

from ...config import CustomPrepareConfig
from .custom import Utterance, normalize_text, write_corpus

__all__ = ["CORPUS_TEXT", "TextRule", "lhotse_recipe", "prepare_lhotse"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TextRule:
    """How a corpus's transcripts become training text."""

    case: str  # "keep", "upper" or "lower"
    remove_punct: bool  # punctuation removed except word-internal ' and -
    drop: str = ""  # regular expression of tokens deleted first ("" = none)


CORPUS_TEXT: dict[str, TextRule] = {
    "commonvoice": TextRule(case="upper", remove_punct=True),
    "tedlium": TextRule(case="upper", remove_punct=False, drop=r"<unk>|\[\w+\]|\{\w+\}"),
}


def lhotse_recipe(name: str):
    """``lhotse.recipes.prepare_NAME``; an unknown name lists the known ones."""
    recipes = importlib.import_module("lhotse.recipes")
    function = getattr(recipes, f"prepare_{name}", None)
    if function is None:
        known = sorted(n[len("prepare_"):] for n in dir(recipes) if n.startswith("prepare_"))
        raise ValueError(f"lhotse has no recipe prepare_{name} (known: {', '.join(known)})")
    return function


def _parts(manifests: dict, path: tuple[str, ...] = ()):
    """(part name, {recordings, supervisions}) for the nested dict a lhotse recipe returns; levels with a
    single key (one language) leave no trace in the name."""
    if "recordings" in manifests:
        yield "_".join(path) or "all", manifests
        return
    for key, value in manifests.items():
        yield from _parts(value, path + ((str(key),) if len(manifests) > 1 else ()))


def _utterances(name: str, part: dict, rule: TextRule) -> tuple[list[Utterance], int]:
    """Utterances of one part, and the count of supervisions left out for an empty text."""
    recordings = {r.id: r for r in part["recordings"]}  # RecordingSet looks ids up by a linear scan
    utterances, empty = [], 0
    for sup in part["supervisions"]:
        source = recordings[sup.recording_id].sources[0]
        if source.type != "file":
            raise ValueError(f"lhotse recipe {name}: recording {sup.recording_id} has a {source.type!r} audio "
                             "source; only files are supported")
        text = re.sub(rule.drop, " ", sup.text or "") if rule.drop else sup.text or ""
        if not normalize_text(text, rule.case, rule.remove_punct):
            empty += 1
            continue
        utterances.append(Utterance(id=sup.id, audio=Path(source.source).resolve(), text=text, speaker=sup.speaker,
                                    origin=f"{name} supervision {sup.id}", start=sup.start, duration=sup.duration,
                                    recording_id=sup.recording_id))
    return utterances, empty


def prepare_lhotse(name: str, corpus_dir: str | Path, out_dir: str | Path, options: dict | None = None,
                   **overrides) -> dict[str, CutSet]:
    """Run ``lhotse.recipes.prepare_NAME(corpus_dir, output_dir, **options)`` and write the toolkit's
    manifests of every part it returns.

    Args:
        name: the recipe, e.g. ``commonvoice``, ``tedlium``, ``mls``.
        corpus_dir: the corpus as lhotse's recipe expects it (see its docstring).
        out_dir: where manifests go; lhotse's own manifests are written to a temporary directory.
        options: more keyword arguments of the lhotse recipe (e.g. ``{"languages": "en"}``).
        overrides: ``CustomPrepareConfig`` fields (the text normalisation defaults to ``CORPUS_TEXT[name]``);
            ``split``, ``dev_fraction`` and ``test_fraction`` do not apply: the parts are lhotse's.

    Returns:
        The cut sets by part name.
    """
    recipe = lhotse_recipe(name)
    rule = CORPUS_TEXT.get(name, TextRule(case="keep", remove_punct=False))
    cfg = replace(CustomPrepareConfig(case=rule.case, remove_punct=rule.remove_punct), **overrides)
    rule = replace(rule, case=cfg.case, remove_punct=cfg.remove_punct)
    options = dict(options or {})
    if "num_jobs" in inspect.signature(recipe).parameters:
        options.setdefault("num_jobs", cfg.num_jobs)
    # libsndfile, as the toolkit's loader: lhotse's default sends .sph files to a sph2pipe binary
    with tempfile.TemporaryDirectory(prefix=f"lhotse-{name}-") as scratch, audio_backend("LibsndfileBackend"):
        try:
            manifests = recipe(corpus_dir, output_dir=scratch, **options)
        except AssertionError as err:  # lhotse's recipes check the layout with bare asserts
            raise ValueError(f"lhotse recipe {name} on {corpus_dir}: {err or 'unexpected corpus layout'}") from None
    result = {}
    for part, manifest in _parts(manifests):
        utterances, empty = _utterances(name, manifest, rule)
        if empty:
            log.warning("%s %s: left out %d supervisions with no text after normalisation", name, part, empty)
        result.update(write_corpus(utterances, out_dir, replace(cfg, split=part)))
    return result

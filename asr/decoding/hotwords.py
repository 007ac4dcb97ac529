"""Hotwords: words the lexicon beam search favours, including words neither its lexicon nor its LM knows.

A hotword file holds one ``WORD [BOOST]`` per line (blank lines and ``#`` comments skipped); a line
without a boost takes ``HotwordConfig.boost``. Each word is spelled in the model's units (as
``asr lm lexicon`` spells words) and added to the search's lexicon when missing, and every time a
hypothesis ends a hotword its score rises by the boost, in the units of ``word_score`` (acoustic
log-probability). The boost goes through the language model: ``BoostedLM`` wraps flashlight's KenLM
(or the empty LM) and adds ``boost / lm_weight`` to the LM score of a hotword, since the decoder
multiplies LM scores by ``lm_weight``. A word KenLM does not know scores as its ``<unk>`` (plus the
boost), so a boost must outweigh the ``<unk>`` penalty for an out-of-LM word to win.

Cost: the decoder calls ``BoostedLM.score`` from C++ for every word a hypothesis ends, a Python
call each (``tools/bench/hotwords_an4.py`` times it against plain KenLM).
"""

from __future__ import annotations

import atexit
import logging
import math
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from torchaudio.models.decoder import CTCDecoderLM

from ..config import HotwordConfig
from .lexicon import spell

__all__ = ["Hotword", "read_hotwords", "spell_hotwords", "lexicon_with_hotwords", "BoostedLM"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Hotword:
    word: str  # as written in the file (and as the search emits it)
    boost: float  # added to a hypothesis' score per occurrence, like word_score
    units: tuple[str, ...]  # its spelling in the model's units (word separator included for characters)


def _spelled(word: str, boost: float, tokenizer, where: str) -> Hotword:
    units = spell(word, tokenizer)
    if units is None:
        try:
            tokenizer.encode(word)
            reason = "its units do not decode back to it"
        except ValueError as err:
            reason = str(err)
        raise ValueError(f"{where}: hotword {word!r} cannot be spelled with the model's units ({reason})")
    if not math.isfinite(boost):
        raise ValueError(f"{where}: hotword {word!r}: boost must be a finite number, got {boost}")
    return Hotword(word, float(boost), tuple(units))


def read_hotwords(path: str | Path, tokenizer, default_boost: float | None = None) -> list[Hotword]:
    """Read and spell a ``WORD [BOOST]`` file.

    Args:
        path: the hotword file.
        tokenizer: the model's tokenizer (spells the words).
        default_boost: boost of a line that gives none (default ``HotwordConfig.boost``).

    Raises:
        ValueError: ``FILE:LINE: ...`` for a malformed line, a bad boost, a repeated word or a word
            the model's units cannot spell; ``FILE:1: ...`` for a file without hotwords.
        FileNotFoundError: no such file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such hotword file")
    default = HotwordConfig().boost if default_boost is None else default_boost
    hotwords: dict[str, Hotword] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not UTF-8 text ({err.reason})") from None
    for lineno, line in enumerate(lines, 1):
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        where = f"{path}:{lineno}"
        if len(fields) > 2:
            raise ValueError(f"{where}: expected 'WORD [BOOST]', got {line.strip()[:60]!r}")
        try:
            boost = float(fields[1]) if len(fields) == 2 else default
        except ValueError:
            raise ValueError(f"{where}: boost of {fields[0]!r} is not a number: {fields[1]!r}") from None
        if fields[0] in hotwords:
            raise ValueError(f"{where}: hotword {fields[0]!r} is listed twice")
        hotwords[fields[0]] = _spelled(fields[0], boost, tokenizer, where)
    if not hotwords:
        raise ValueError(f"{path}:1: no hotwords in the file (expected 'WORD [BOOST]' lines)")
    return list(hotwords.values())


def spell_hotwords(hotwords: str | Path | Mapping[str, float] | list[Hotword], tokenizer) -> list[Hotword]:
    """Hotwords from a file, a ``{word: boost}`` mapping (the Python API) or already spelled ones."""
    if isinstance(hotwords, (str, Path)):
        return read_hotwords(hotwords, tokenizer)
    if isinstance(hotwords, Mapping):
        if not hotwords:
            raise ValueError("hotwords: expected at least one word")
        return [_spelled(w, float(b), tokenizer, "hotwords") for w, b in hotwords.items()]
    if not hotwords or not all(isinstance(h, Hotword) for h in hotwords):
        raise TypeError(f"hotwords: expected a file, a {{word: boost}} mapping or Hotword items, got {hotwords!r}")
    return list(hotwords)


_TEMP_DIR: Path | None = None


def _temp_dir() -> Path:
    """One directory per process for extended lexicons, removed at exit."""
    global _TEMP_DIR
    if _TEMP_DIR is None:
        _TEMP_DIR = Path(tempfile.mkdtemp(prefix="asr-hotwords-"))
        atexit.register(shutil.rmtree, _TEMP_DIR, True)
    return _TEMP_DIR


def lexicon_with_hotwords(lexicon: str | Path, hotwords: list[Hotword]) -> Path:
    """A copy of ``lexicon`` with the hotwords' spellings appended (a word already there gets its extra spelling)."""
    lines = Path(lexicon).read_text(encoding="utf-8").splitlines()
    known = {tuple(line.split()) for line in lines if line.split()}
    extra = [f"{h.word}\t{' '.join(h.units)}" for h in hotwords if (h.word, *h.units) not in known]
    out = Path(tempfile.mkstemp(suffix=".lexicon.txt", dir=_temp_dir())[1])
    out.write_text("".join(f"{line}\n" for line in lines + extra), encoding="utf-8")
    log.info("hotwords: %d of %d added to the lexicon %s", len(extra), len(hotwords), lexicon)
    return out


_UNK_FLOOR = -20.0  # log10 LM probability below which no sensible boost brings a word in


class BoostedLM(CTCDecoderLM):
    """A word LM (flashlight KenLM or ``ZeroLM``) whose score for each hotword is raised by ``boost / lm_weight``.

    Args:
        lm: flashlight LM over the decoder's word dictionary (unknown words score as ``<unk>``).
        word_dict: the decoder's word dictionary (built from the extended lexicon).
        hotwords: the words to boost; all must be in ``word_dict``.
        lm_weight: the decoder's LM weight (> 0), so that the boost lands unweighted.
    """

    def __init__(self, lm, word_dict, hotwords: list[Hotword], lm_weight: float):
        super().__init__()
        if not lm_weight > 0:
            raise ValueError(f"lm_weight: hotwords are boosted through the LM score and need lm_weight > 0, "
                             f"got {lm_weight}")
        self.lm = lm
        self.bonus = {word_dict.get_index(h.word): h.boost / lm_weight for h in hotwords}
        start = lm.start(False)
        hopeless = [h.word for h in hotwords if lm.score(start, word_dict.get_index(h.word))[1] < _UNK_FLOOR]
        if hopeless:  # e.g. an ARPA file without <unk>: KenLM then scores unknown words log10 p = -100
            log.warning("the LM gives hotword(s) %s log10 p < %g (no <unk> probability?): a boost cannot make "
                        "up for that; add them to the LM text", " ".join(hopeless), _UNK_FLOOR)

    def start(self, start_with_nothing: bool):
        return self.lm.start(start_with_nothing)

    def score(self, state, usr_token_idx: int):
        new_state, score = self.lm.score(state, usr_token_idx)
        return new_state, score + self.bonus.get(usr_token_idx, 0.0)

    def finish(self, state):
        return self.lm.finish(state)

"""A phrase list (Vosk's ``phrase_list``): a beam search that says only the listed words, in the listed orders.

The words of the phrases become a lexicon (spelled in the model's units, case folded to the units'
case when needed; the output keeps the phrase's spelling) and the phrases an n-gram model
(``asr.decoding.lm.build_lm``) weighted ``lm_weight``: word orders seen in the list score well,
others back off with a penalty. Vosk's ``[unk]`` entry (its garbage word) has no spelling here and
is dropped: speech outside the list maps to the closest listed words.

Cost: a few milliseconds per list of tens of phrases (two small files and a KenLM load); the files
live in a temporary directory that ``PhraseSearch.close`` removes.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path

from ..config import SearchConfig
from .lexicon import spell, write_lexicon
from .lm import build_lm
from .search import BeamSearch

__all__ = ["UNK_PHRASE", "phrase_lexicon", "PhraseSearch"]

log = logging.getLogger(__name__)

UNK_PHRASE = "[unk]"  # Vosk's garbage entry of a phrase list


def phrase_lexicon(phrases: list[str], tokenizer) -> tuple[dict[str, list[str]], list[str]]:
    """Spell the words of ``phrases``.

    Returns:
        (lexicon, unspellable): ``word -> units`` (a word the units cannot spell as written is
        tried in upper and lower case), and the words that could not be spelled at all.
    """
    lexicon: dict[str, list[str]] = {}
    unspellable: list[str] = []
    words = (w for phrase in phrases if phrase.strip() != UNK_PHRASE for w in phrase.split())
    for word in dict.fromkeys(words):
        units = spell(word, tokenizer) or spell(word.upper(), tokenizer) or spell(word.lower(), tokenizer)
        if units is None:
            unspellable.append(word)
        else:
            lexicon[word] = units
    return lexicon, unspellable


class PhraseSearch:
    """A lexicon beam search restricted to ``phrases`` (see the module docstring).

    Args:
        phrases: the phrase list; words the model cannot spell are dropped with a log line.
        tokenizer: the model's tokenizer.
        lm_weight: weight of the phrases' n-gram (high: the list dominates the acoustics).
        word_score: added per word: offsets the LM's cost of a word, which a high weight makes large.
        order: n-gram order of the phrases' model.
        beam_size, nbest, frame_shift: as for ``BeamSearch``.

    Raises:
        ValueError: no word of the list can be spelled with the model's units.
    """

    def __init__(self, phrases: list[str], tokenizer, lm_weight: float, word_score: float, order: int,
                 beam_size: int = SearchConfig.beam_size, nbest: int = SearchConfig.nbest,
                 frame_shift: float | None = None):
        lexicon, unspellable = phrase_lexicon(phrases, tokenizer)
        if not lexicon:
            raise ValueError(f"phrase_list: no word can be spelled with the model's units "
                             f"({', '.join(unspellable[:5]) or 'empty list'})")
        if unspellable:
            log.info("phrase_list: dropped %d word(s) the model cannot spell: %s", len(unspellable),
                     ", ".join(unspellable[:10]))
        self.dir = Path(tempfile.mkdtemp(prefix="asr-phrases-"))
        try:
            text = self.dir / "phrases.txt"
            text.write_text("".join(" ".join(w for w in p.split() if w in lexicon) + "\n" for p in phrases),
                            encoding="utf-8")
            build_lm(text, self.dir / "phrases.arpa", order=order)
            write_lexicon(lexicon, self.dir / "lexicon.txt")
            self.search = BeamSearch(tokenizer, beam_size, lexicon=self.dir / "lexicon.txt",
                                     lm=self.dir / "phrases.arpa", lm_weight=lm_weight, word_score=word_score, nbest=nbest,
                                     frame_shift=frame_shift)
        except Exception:
            self.close()
            raise

    def close(self) -> None:
        """Remove the lexicon and LM files (a search built from them before stays usable)."""
        shutil.rmtree(self.dir, ignore_errors=True)

"""Word lexicons: every word spelled in the acoustic model's units, one ``WORD<TAB>UNITS`` line each.

Character models spell ``HELLO`` as ``H E L L O |`` (the word separator closes the word, as
torchaudio's ``ctc_decoder`` expects); sentencepiece models as the word's pieces, ``▁HE LLO``.
A word the tokenizer cannot spell (a character or piece outside its units) is returned and
reported, never dropped silently.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

from .lm import arpa_words, read_sentences

__all__ = ["spell", "build_lexicon", "write_lexicon", "read_lexicon", "text_words", "lexicon_from_words"]

log = logging.getLogger(__name__)


def spell(word: str, tokenizer) -> list[str] | None:
    """The units that spell ``word``, or None when the tokenizer cannot spell it exactly."""
    try:
        ids = tokenizer.encode(word)
    except ValueError:
        return None
    if not ids or tokenizer.decode(ids) != word:  # e.g. a piece that decodes to sentencepiece's unknown
        return None
    units = [tokenizer.units[i] for i in ids]
    if tokenizer.sil_token != tokenizer.units[tokenizer.blank_id]:
        units.append(tokenizer.sil_token)
    return units


def build_lexicon(words: Iterable[str], tokenizer) -> tuple[dict[str, list[str]], list[str]]:
    """Spell every word.

    Returns:
        (lexicon, unspellable): ``word -> units`` in first-seen order, and the words that could not be spelled.
    """
    lexicon: dict[str, list[str]] = {}
    unspellable: list[str] = []
    for word in dict.fromkeys(words):
        units = spell(word, tokenizer)
        if units is None:
            unspellable.append(word)
        else:
            lexicon[word] = units
    return lexicon, unspellable


def write_lexicon(lexicon: dict[str, list[str]], path: str | Path) -> Path:
    """Write ``WORD<TAB>U N I T S`` lines."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(f"{word}\t{' '.join(units)}\n" for word, units in lexicon.items())
    return path


def read_lexicon(path: str | Path, tokenizer) -> dict[str, list[list[str]]]:
    """Read and check a lexicon against the model's units (a word may have several spellings).

    Raises:
        ValueError: ``FILE:LINE: ...`` for a line without a spelling or a unit the model does not have.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such lexicon file")
    units = set(tokenizer.units) - {tokenizer.units[tokenizer.blank_id]}
    lexicon: dict[str, list[list[str]]] = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                continue
            word, spelling = fields[0], fields[1:]
            if not spelling:
                raise ValueError(f"{path}:{lineno}: word {word!r} has no spelling (expected 'WORD<TAB>UNITS')")
            unknown = [u for u in spelling if u not in units]
            if unknown:
                raise ValueError(f"{path}:{lineno}: the model cannot spell {word!r}: "
                                 f"unit {unknown[0]!r} is not one of its {len(units)} units")
            lexicon.setdefault(word, []).append(spelling)
    if not lexicon:
        raise ValueError(f"{path}:1: empty lexicon")
    return lexicon


def text_words(path: str | Path, kaldi: bool = False) -> list[str]:
    """Distinct words of a text file (one sentence per line), sorted."""
    return sorted({w for _, s in read_sentences(path, kaldi) for w in s.split()})


def lexicon_from_words(tokenizer, out: str | Path, lm: str | Path | None = None, text: str | Path | None = None,
                       kaldi: bool = False) -> tuple[Path, list[str]]:
    """Write the lexicon of an LM's unigrams or a text's words; log and list the unspellable ones.

    Args:
        tokenizer: the acoustic model's tokenizer.
        out: lexicon file; unspellable words also go to ``OUT`` with suffix ``.unspellable.txt``.
        lm: ARPA file whose unigrams (without ``<s> </s> <unk>``) are the words; or
        text: a text file whose words are the words (``kaldi``: drop each line's first field).

    Returns:
        (lexicon path, unspellable words).
    """
    if (lm is None) == (text is None):
        raise ValueError("give exactly one word source: lm (an ARPA file) or text")
    source = Path(lm if lm is not None else text)
    words = arpa_words(source) if lm is not None else text_words(source, kaldi)
    lexicon, unspellable = build_lexicon(words, tokenizer)
    if not lexicon:
        raise ValueError(f"{source}: the model's units spell none of its {len(words)} words")
    out = write_lexicon(lexicon, out)
    rejects = out.with_suffix(".unspellable.txt")
    if unspellable:
        rejects.write_text("".join(f"{w}\n" for w in unspellable), encoding="utf-8")
        shown = " ".join(unspellable[:20]) + (" ..." if len(unspellable) > 20 else "")
        log.warning("%d of %d words of %s cannot be spelled in the model's units and are not in the lexicon "
                    "(listed in %s): %s", len(unspellable), len(words), source, rejects, shown)
    else:
        rejects.unlink(missing_ok=True)
    log.info("wrote %s: %d words", out, len(lexicon))
    return out, unspellable

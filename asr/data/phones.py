"""TIMIT phone sets and the standard foldings (Lee & Hon 1989): 61 -> 48 for training, 61 -> 39 for scoring.

The tables are plain dicts, the same as Kaldi's ``egs/timit/s5/conf/phones.60-48-39.map``. The
glottal stop ``q`` maps to ``""``: it is deleted, not replaced. ``TIMIT_TO_39`` also accepts the
48 and 39 labels (a model trained on 48 phones outputs ``cl``/``vcl``), for scoring.
"""

from collections.abc import Iterable

__all__ = ["TIMIT_61", "TIMIT_48", "TIMIT_39", "TIMIT_61_TO_48", "TIMIT_61_TO_39", "TIMIT_TO_39", "fold_phones"]

TIMIT_61_TO_48: dict[str, str] = {
    "aa": "aa", "ae": "ae", "ah": "ah", "ao": "ao", "aw": "aw", "ax": "ax", "ax-h": "ax", "axr": "er",
    "ay": "ay", "b": "b", "bcl": "vcl", "ch": "ch", "d": "d", "dcl": "vcl", "dh": "dh", "dx": "dx",
    "eh": "eh", "el": "el", "em": "m", "en": "en", "eng": "ng", "epi": "epi", "er": "er", "ey": "ey",
    "f": "f", "g": "g", "gcl": "vcl", "h#": "sil", "hh": "hh", "hv": "hh", "ih": "ih", "ix": "ix",
    "iy": "iy", "jh": "jh", "k": "k", "kcl": "cl", "l": "l", "m": "m", "n": "n", "ng": "ng", "nx": "n",
    "ow": "ow", "oy": "oy", "p": "p", "pau": "sil", "pcl": "cl", "q": "", "r": "r", "s": "s", "sh": "sh",
    "t": "t", "tcl": "cl", "th": "th", "uh": "uh", "uw": "uw", "ux": "uw", "v": "v", "w": "w", "y": "y",
    "z": "z", "zh": "zh",
}
"""The 61 TIMIT phones to the 48 of Lee & Hon; ``q`` is deleted."""

_48_TO_39 = {"ao": "aa", "ax": "ah", "ix": "ih", "el": "l", "en": "n", "zh": "sh",
             "cl": "sil", "vcl": "sil", "epi": "sil"}

TIMIT_61_TO_39: dict[str, str] = {p: _48_TO_39.get(q, q) for p, q in TIMIT_61_TO_48.items()}
"""The 61 TIMIT phones to the 39 scoring classes of Lee & Hon; ``q`` is deleted."""

TIMIT_61: tuple[str, ...] = tuple(sorted(TIMIT_61_TO_48))
TIMIT_48: tuple[str, ...] = tuple(sorted(set(TIMIT_61_TO_48.values()) - {""}))
TIMIT_39: tuple[str, ...] = tuple(sorted(set(TIMIT_61_TO_39.values()) - {""}))

TIMIT_TO_39: dict[str, str] = {**{p: _48_TO_39.get(p, p) for p in TIMIT_48}, **TIMIT_61_TO_39}
"""Any TIMIT 61, 48 or 39 label to the 39 scoring classes; ``q`` is deleted."""


def fold_phones(phones: Iterable[str], table: dict[str, str] = TIMIT_TO_39) -> list[str]:
    """Map each phone through ``table``, dropping those mapped to ``""``; unknown phones are an error.

    Raises:
        ValueError: naming the first phone missing from ``table``.
    """
    out = []
    for p in phones:
        if p not in table:
            raise ValueError(f"phone {p!r} is not in the folding table")
        if table[p]:
            out.append(table[p])
    return out

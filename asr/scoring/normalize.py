"""Explicit text normalisation for scoring: case, punctuation, hyphens, a GLM-like mapping, phone folding.

Every option is off by default and :meth:`Normalizer.describe` records what was applied, so a
report says exactly how its numbers were obtained. Steps run in this order on each transcript:
case, hyphen splitting, punctuation removal, whitespace tokenisation, mapping, phone folding.
"""

import functools
import hashlib
import re
import sys
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from ..config import ScoreConfig
from ..data.phones import TIMIT_TO_39, fold_phones

__all__ = ["CASES", "FOLDS", "Normalizer", "read_mapping"]

CASES = ("keep", "lower", "upper")
FOLDS = {"timit39": TIMIT_TO_39}
_EDGE_MARKS = re.compile(r"(?<!\w)['-]+|['-]+(?!\w)")
_CONTEXT = re.compile(r"\s/\s*\[\s*\]\s*__\s*\[\s*\]\s*$")



@functools.cache
def _punct_table() -> dict[int, None]:
    """``str.translate`` table deleting Unicode punctuation other than ``'`` and ``-``."""
    return {c: None for c in range(sys.maxunicode + 1)
            if unicodedata.category(chr(c)).startswith("P") and chr(c) not in "'-"}


def _side(text: str) -> str:
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    return text


def read_mapping(path: str | Path) -> list[tuple[int, str, str]]:
    """Read ``LEFT => RIGHT`` rules (sclite GLM style) as ``(line, left, right)`` text.

    ``LEFT`` is one or more words, ``RIGHT`` zero or more (an empty right side deletes); either
    side may be in square brackets, ``;;`` starts a comment (so does ``#`` at the start of a
    line), and the only context
    accepted is the empty one, ``/ [ ] __ [ ]``.

    Raises:
        ValueError: ``FILE:LINE: ...`` on a malformed rule.
    """
    rules = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.split(";;", 1)[0].strip()
            if not line or line.startswith("#"):
                continue
            where = f"{path}:{lineno}"
            line = _CONTEXT.sub("", line)
            if line.count("=>") != 1:
                raise ValueError(f"{where}: expected one rule 'LEFT => RIGHT'")
            left, right = (_side(s) for s in line.split("=>"))
            if not left.split():
                raise ValueError(f"{where}: empty left side")
            if any(c in left + right for c in "{}/[]"):
                raise ValueError(f"{where}: alternations and contexts are not supported")
            rules.append((lineno, left, right))
    return rules


@dataclass(frozen=True)
class Normalizer:
    """Text normalisation applied identically to references and hypotheses.

    Attributes:
        case: ``keep``, ``lower`` or ``upper`` (Python's Unicode case mapping).
        remove_punct: delete Unicode punctuation (categories P*), except apostrophes and hyphens
            inside a word (``don't``, ``x-ray``); ``U.S.A.`` becomes ``USA``.
        split_hyphens: ``x-ray`` becomes ``x ray`` (empty pieces are dropped).
        mapping: path of a ``LEFT => RIGHT`` file (:func:`read_mapping`), applied after the
            steps above (its words go through them too), longest match first, left to right.
        fold: phone folding table name (``timit39``: TIMIT 61 or 48 -> 39, Lee & Hon 1989).
    """

    case: str = ScoreConfig.case
    remove_punct: bool = ScoreConfig.remove_punct
    split_hyphens: bool = ScoreConfig.split_hyphens
    mapping: str | Path | None = None
    fold: str | None = None
    _rules: dict[tuple[str, ...], tuple[str, ...]] = field(init=False, repr=False, compare=False)
    _longest: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.case not in CASES:
            raise ValueError(f"unknown case option {self.case!r}, expected one of {CASES}")
        if self.fold is not None and self.fold not in FOLDS:
            raise ValueError(f"unknown phone folding {self.fold!r}, expected one of {tuple(FOLDS)}")
        rules: dict[tuple[str, ...], tuple[str, ...]] = {}
        for lineno, left, right in read_mapping(self.mapping) if self.mapping else []:
            key = tuple(self._basic(left))
            if not key:
                raise ValueError(f"{self.mapping}:{lineno}: left side is empty after normalisation")
            if key in rules:
                raise ValueError(f"{self.mapping}:{lineno}: duplicate rule for '{' '.join(key)}'")
            rules[key] = tuple(self._basic(right))
        object.__setattr__(self, "_rules", rules)
        object.__setattr__(self, "_longest", max(map(len, rules), default=0))

    def _basic(self, text: str) -> list[str]:
        if self.case == "lower":
            text = text.lower()
        elif self.case == "upper":
            text = text.upper()
        if self.split_hyphens:
            text = text.replace("-", " ")
        if self.remove_punct:
            text = _EDGE_MARKS.sub(" ", text).translate(_punct_table())
        return text.split()

    def _map(self, words: list[str]) -> list[str]:
        out, i = [], 0
        while i < len(words):
            for n in range(min(self._longest, len(words) - i), 0, -1):
                key = tuple(words[i:i + n])
                if key in self._rules:
                    out.extend(self._rules[key])
                    i += n
                    break
            else:
                out.append(words[i])
                i += 1
        return out

    @property
    def is_identity(self) -> bool:
        return (self.case == "keep" and not self.remove_punct and not self.split_hyphens
                and not self._rules and self.fold is None)

    def words(self, text: str) -> list[str]:
        """Normalised whitespace-separated tokens of ``text``.

        Raises:
            ValueError: when phone folding meets a phone outside its table.
        """
        words = self._basic(text)
        if self._rules:
            words = self._map(words)
        if self.fold is not None:
            words = fold_phones(words, FOLDS[self.fold])
        return words

    def describe(self) -> dict[str, object]:
        """The options as recorded in reports (with the mapping file's rule count and SHA-256)."""
        out: dict[str, object] = {"case": self.case, "remove_punct": self.remove_punct,
                                  "split_hyphens": self.split_hyphens, "mapping": None, "fold": self.fold}
        if self.mapping:
            digest = hashlib.sha256(Path(self.mapping).read_bytes()).hexdigest()
            out["mapping"] = {"path": str(self.mapping), "rules": len(self._rules), "sha256": digest}
        return out

"""Output units: characters, sentencepiece BPE pieces or phones, with the CTC blank at index 0.

A tokenizer serialises to a plain dict (``to_dict``) that is stored inside the model file.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterable

import sentencepiece as spm

from ..config import TokenizerConfig

__all__ = ["BLANK", "CharTokenizer", "BPETokenizer", "PhoneTokenizer", "build_tokenizer", "tokenizer_from_dict",
           "ctc_min_frames"]

log = logging.getLogger(__name__)

BLANK = "<blk>"  # unit 0 in every tokenizer
WORD_SEP = "|"  # character units: the space between words


class CharTokenizer:
    """Characters of the training text; spaces become ``|``."""

    kind = "char"
    blank_id = 0
    sil_token = WORD_SEP  # what ctc_decoder treats as the word boundary
    unit_words = False  # words are runs of units between separators

    def __init__(self, units: list[str]):
        if units[0] != BLANK or WORD_SEP not in units:
            raise ValueError(f"char units must start with {BLANK!r} and contain {WORD_SEP!r}")
        self.units = list(units)
        self._index = {u: i for i, u in enumerate(units)}

    @classmethod
    def train(cls, texts: Iterable[str]) -> CharTokenizer:
        chars = sorted({c for text in texts for c in text.replace(" ", "")} - {WORD_SEP})
        return cls([BLANK, WORD_SEP, *chars])

    def encode(self, text: str) -> list[int]:
        """Text -> unit ids; characters outside the vocabulary raise ``ValueError``."""
        try:
            return [self._index[c] for c in " ".join(text.split()).replace(" ", WORD_SEP)]
        except KeyError as err:
            raise ValueError(f"character {err.args[0]!r} is not in the tokenizer's units") from None

    def decode(self, ids: Iterable[int]) -> str:
        """Unit ids (blanks allowed, not collapsed) -> text."""
        text = "".join(self.units[i] for i in ids if i != self.blank_id)
        return " ".join(text.replace(WORD_SEP, " ").split())

    def to_dict(self) -> dict:
        return {"kind": self.kind, "units": self.units}


class BPETokenizer:
    """A sentencepiece model; unit ``i + 1`` is piece ``i``."""

    kind = "bpe"
    blank_id = 0
    sil_token = BLANK  # pieces carry their own word boundary ("▁")
    unit_words = False  # a word starts at each "▁" piece

    def __init__(self, model_proto: bytes):
        self.model_proto = model_proto
        self.sp = spm.SentencePieceProcessor(model_proto=model_proto)
        self.units = [BLANK] + [self.sp.id_to_piece(i) for i in range(self.sp.get_piece_size())]

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int) -> BPETokenizer:
        buffer = io.BytesIO()
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(list(texts)),
            model_writer=buffer,
            vocab_size=vocab_size,
            model_type="bpe",
            character_coverage=1.0,
            bos_id=-1,
            eos_id=-1,
            unk_id=0,
            minloglevel=2,
        )
        return cls(buffer.getvalue())

    def encode(self, text: str) -> list[int]:
        return [i + 1 for i in self.sp.encode(text)]

    def decode(self, ids: Iterable[int]) -> str:
        return self.sp.decode([i - 1 for i in ids if i != self.blank_id])

    def to_dict(self) -> dict:
        return {"kind": self.kind, "model_proto": self.model_proto}


class PhoneTokenizer:
    """Whitespace-separated labels (e.g. TIMIT phones): every label is one unit and one "word".

    The units are the blank and the sorted labels of the training text. There is no word
    separator unit, so, as for BPE, the blank stands in as ``ctc_decoder``'s ``sil_token``.
    """

    kind = "phone"
    blank_id = 0
    sil_token = BLANK  # no separator unit; ctc_decoder needs one of the units and never emits the blank
    unit_words = True  # each unit is a word of its own (word times are phone times)

    def __init__(self, units: list[str]):
        if not units or units[0] != BLANK or BLANK in units[1:] or len(set(units)) != len(units):
            raise ValueError(f"phone units must start with {BLANK!r} and be distinct, got {units[:5]!r}...")
        if any(not u or u != u.strip() or len(u.split()) != 1 for u in units):
            raise ValueError("phone units must be non-empty and free of whitespace")
        self.units = list(units)
        self._index = {u: i for i, u in enumerate(units)}

    @classmethod
    def train(cls, texts: Iterable[str]) -> PhoneTokenizer:
        labels = {label for text in texts for label in text.split()}
        if BLANK in labels:
            raise ValueError(f"the training text contains the blank label {BLANK!r}")
        return cls([BLANK, *sorted(labels)])

    def encode(self, text: str) -> list[int]:
        """Labels separated by whitespace -> unit ids; a label outside the units raises ``ValueError``."""
        ids = []
        for label in text.split():
            unit = self._index.get(label, self.blank_id)
            if unit == self.blank_id:  # the blank is no label either
                raise ValueError(f"phone {label!r} is not in the tokenizer's units")
            ids.append(unit)
        return ids

    def decode(self, ids: Iterable[int]) -> str:
        """Unit ids (blanks allowed, not collapsed) -> labels joined by single spaces."""
        return " ".join(self.units[i] for i in ids if i != self.blank_id)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "units": self.units}


def build_tokenizer(cfg: TokenizerConfig, texts: Iterable[str]) -> CharTokenizer | BPETokenizer | PhoneTokenizer:
    """Train the tokenizer named by ``cfg.kind`` on ``texts``."""
    if cfg.kind == "char":
        return CharTokenizer.train(texts)
    if cfg.kind == "bpe":
        return BPETokenizer.train(texts, cfg.vocab_size)
    if cfg.kind == "phone":
        return PhoneTokenizer.train(texts)
    raise ValueError(f"tokenizer.kind: expected 'char', 'bpe' or 'phone', got {cfg.kind!r}")


def tokenizer_from_dict(values: dict) -> CharTokenizer | BPETokenizer | PhoneTokenizer:
    """Inverse of ``to_dict``."""
    if values.get("kind") == "char":
        return CharTokenizer(values["units"])
    if values.get("kind") == "bpe":
        return BPETokenizer(values["model_proto"])
    if values.get("kind") == "phone":
        return PhoneTokenizer(values["units"])
    raise ValueError(f"unknown tokenizer kind {values.get('kind')!r}")


def ctc_min_frames(units) -> int:
    """Output frames CTC needs for the unit sequence ``units``: one per unit, plus a blank between repeats."""
    return len(units) + sum(a == b for a, b in zip(units, units[1:]))

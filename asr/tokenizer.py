"""Output units: characters or sentencepiece BPE pieces, with the CTC blank at index 0.

A tokenizer serialises to a plain dict (``to_dict``) that is stored inside the model file.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterable

import sentencepiece as spm

from .config import TokenizerConfig

__all__ = ["BLANK", "CharTokenizer", "BPETokenizer", "build_tokenizer", "tokenizer_from_dict"]

log = logging.getLogger(__name__)

BLANK = "<blk>"  # unit 0 in every tokenizer
WORD_SEP = "|"  # character units: the space between words


class CharTokenizer:
    """Characters of the training text; spaces become ``|``."""

    kind = "char"
    blank_id = 0
    sil_token = WORD_SEP  # what ctc_decoder treats as the word boundary

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


def build_tokenizer(cfg: TokenizerConfig, texts: Iterable[str]) -> CharTokenizer | BPETokenizer:
    """Train the tokenizer named by ``cfg.kind`` on ``texts``."""
    if cfg.kind == "char":
        return CharTokenizer.train(texts)
    if cfg.kind == "bpe":
        return BPETokenizer.train(texts, cfg.vocab_size)
    raise ValueError(f"tokenizer.kind: expected 'char' or 'bpe', got {cfg.kind!r}")


def tokenizer_from_dict(values: dict) -> CharTokenizer | BPETokenizer:
    """Inverse of ``to_dict``."""
    if values.get("kind") == "char":
        return CharTokenizer(values["units"])
    if values.get("kind") == "bpe":
        return BPETokenizer(values["model_proto"])
    raise ValueError(f"unknown tokenizer kind {values.get('kind')!r}")

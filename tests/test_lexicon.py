"""Lexicons spelled in the model's units (asr.decoding.lexicon)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from asr.model.checkpoint import model_package, save_atomic
from asr.cli import main
from asr.config import EncoderConfig, ModelConfig
from asr.decoding.lexicon import build_lexicon, lexicon_from_words, read_lexicon, spell, write_lexicon
from asr.decoding.lm import build_lm
from asr.model.ctc import CTCModel
from asr.data.tokenizer import BPETokenizer, CharTokenizer

CHARS = CharTokenizer.train(["HELLO WORLD", "GOOD BYE"])  # no apostrophe, no digits
TEXT = ["HELLO WORLD", "IT'S A GOOD DAY", "GOOD BYE WORLD", "CAFÉ"]


@pytest.fixture(scope="module")
def bpe() -> BPETokenizer:
    sentences = [f"{a} {b}" for a in ("HELLO", "WORLD", "GOOD", "BYE", "DAY") for b in ("THE", "A", "AN")]
    return BPETokenizer.train(sentences * 4, vocab_size=30)


def test_char_spelling_ends_with_the_word_separator():
    assert spell("HELLO", CHARS) == ["H", "E", "L", "L", "O", "|"]
    assert spell("IT'S", CHARS) is None  # I, T, S and the apostrophe are not units
    assert spell("WO|RD", CHARS) is None  # the separator cannot be spelled inside a word


def test_bpe_spelling_is_pieces_without_separator(bpe):
    pieces = spell("HELLO", bpe)
    assert pieces and pieces[0].startswith("▁") and "".join(pieces) == "▁HELLO"
    assert "|" not in pieces and bpe.units[0] not in pieces
    assert spell("QUIZ7", bpe) is None  # characters sentencepiece never saw decode to its unknown piece


def test_unspellable_words_are_returned_not_dropped():
    lexicon, unspellable = build_lexicon(["HELLO", "IT'S", "HELLO", "CAFÉ", "BYE"], CHARS)
    assert list(lexicon) == ["HELLO", "BYE"]
    assert unspellable == ["IT'S", "CAFÉ"]


def test_lexicon_from_text_reports_unspellable_words(tmp_path, caplog):
    (tmp_path / "t.txt").write_text("\n".join(TEXT))
    out, unspellable = lexicon_from_words(CHARS, tmp_path / "lexicon.txt", text=tmp_path / "t.txt")
    assert unspellable == ["A", "CAFÉ", "DAY", "IT'S"]  # A, D, Y, I, T, S, É are not units
    assert "4 of 8 words" in caplog.text and "IT'S" in caplog.text
    assert (tmp_path / "lexicon.unspellable.txt").read_text().split() == unspellable
    assert out.read_text().splitlines() == ["BYE\tB Y E |", "GOOD\tG O O D |", "HELLO\tH E L L O |",
                                            "WORLD\tW O R L D |"]


def test_lexicon_from_lm_unigrams(tmp_path):
    (tmp_path / "t.txt").write_text("\n".join(TEXT[:1] + TEXT[2:3]))
    build_lm(tmp_path / "t.txt", tmp_path / "lm.arpa", order=2)
    out, unspellable = lexicon_from_words(CHARS, tmp_path / "lexicon.txt", lm=tmp_path / "lm.arpa")
    assert unspellable == []
    assert [line.split("\t")[0] for line in out.read_text().splitlines()] == ["BYE", "GOOD", "HELLO", "WORLD"]
    assert not (tmp_path / "lexicon.unspellable.txt").exists()


def test_read_lexicon_roundtrip_and_variants(tmp_path):
    path = write_lexicon({"HELLO": spell("HELLO", CHARS), "BYE": spell("BYE", CHARS)}, tmp_path / "lex.txt")
    with open(path, "a") as f:
        f.write("HELLO H E L O |\n")  # a second spelling of the same word
    assert read_lexicon(path, CHARS) == {"HELLO": [list("HELLO") + ["|"], list("HELO") + ["|"]],
                                         "BYE": [list("BYE") + ["|"]]}


@pytest.mark.parametrize("line,message", [
    ("IT'S\tI T ' S |", "the model cannot spell \"IT'S\": unit 'I'"),
    ("HELLO\tH E L L O <blk>", "the model cannot spell 'HELLO': unit '<blk>'"),
    ("HELLO", "word 'HELLO' has no spelling"),
])
def test_bad_lexicon_line_names_file_and_line(tmp_path, line, message):
    path = tmp_path / "lex.txt"
    path.write_text(f"BYE\tB Y E |\n{line}\n")
    with pytest.raises(ValueError, match=rf"^{re.escape(str(path))}:2: {re.escape(message)}"):
        read_lexicon(path, CHARS)


def _tiny_model(tokenizer, path: Path) -> Path:
    torch.manual_seed(0)
    model = CTCModel(ModelConfig(encoder=EncoderConfig(num_layers=1, hidden_size=8)), len(tokenizer.units))
    save_atomic(model_package(model, tokenizer), path)
    return path


def test_cli_lm_lexicon(tmp_path, caplog):
    model = _tiny_model(CHARS, tmp_path / "m.pt")
    (tmp_path / "t.txt").write_text("".join(f"u{i} {s}\n" for i, s in enumerate(TEXT)))
    args = ["lm", "lexicon", str(model), "--text", str(tmp_path / "t.txt"), "--kaldi", "--out", str(tmp_path / "l.txt")]
    assert main(args) == 0
    assert len((tmp_path / "l.txt").read_text().splitlines()) == 4
    assert "cannot be spelled" in caplog.text

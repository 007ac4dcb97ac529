"""Tests for asr.data.tokenizer: CharTokenizer, BPETokenizer, PhoneTokenizer, build_tokenizer, tokenizer_from_dict."""

from __future__ import annotations

import random

import pytest
import torch

from asr.config import TokenizerConfig
from asr.data.tokenizer import BLANK, BPETokenizer, CharTokenizer, PhoneTokenizer, build_tokenizer, tokenizer_from_dict

TEXTS = ["hello world", "the quick brown fox", "jumps over the lazy dog"]

WORDS = (
    "the a of and to in is it that was for on are with as his they be at one have this "
    "from or had by word but what some we can out other were all there when up use your how "
    "said an each she which do their time if will way about many then them write would like"
).split()


def _sentences(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 12))) for _ in range(n)]


# ------------------------------------------------------------------------------- chars


@pytest.fixture(scope="module")
def chars() -> CharTokenizer:
    return CharTokenizer.train(TEXTS)


def test_char_units(chars):
    letters = sorted(set("".join(TEXTS).replace(" ", "")))
    assert chars.units == [BLANK, "|", *letters]
    assert chars.units[0] == "<blk>" and chars.blank_id == 0
    assert chars.sil_token == "|"
    assert chars.kind == "char"


def test_char_encode_decode_roundtrip(chars):
    ids = chars.encode("hello world")
    assert ids == [chars.units.index(c) for c in "hello|world"]
    assert ids[5] == chars.units.index("|") == 1
    assert 0 not in ids
    for text in TEXTS + ["dog fox the"]:
        assert chars.decode(chars.encode(text)) == text


def test_char_whitespace_is_normalised(chars):
    assert chars.encode("  hello   world ") == chars.encode("hello world")
    assert chars.decode(chars.encode("hello\tworld")) == "hello world"


def test_char_decode_skips_blanks_without_collapsing(chars):
    h, i, sep = chars.units.index("h"), chars.units.index("e"), chars.units.index("|")
    assert chars.decode([0, h, 0, 0, i, 0]) == "he"
    assert chars.decode([h, h, 0, h]) == "hhh"  # repeats are the CTC decoder's job
    assert chars.decode([sep, h, sep, sep, i, sep]) == "h e"
    assert chars.decode([]) == ""


def test_char_unknown_character_raises(chars):
    with pytest.raises(ValueError, match="'é'"):
        chars.encode("hello é")
    with pytest.raises(ValueError, match="'ö'"):
        chars.encode("hello wörld é")  # the first unknown one is reported
    with pytest.raises(ValueError) as err:
        chars.encode("HELLO")
    assert "'H'" in str(err.value)


def test_char_dict_roundtrip(chars):
    values = chars.to_dict()
    assert values == {"kind": "char", "units": chars.units}
    for restored in (CharTokenizer(values["units"]), tokenizer_from_dict(values)):
        assert isinstance(restored, CharTokenizer)
        assert restored.units == chars.units
        assert restored.encode("lazy fox") == chars.encode("lazy fox")


def test_char_units_must_have_blank_and_separator():
    with pytest.raises(ValueError):
        CharTokenizer(["a", BLANK, "|"])
    with pytest.raises(ValueError):
        CharTokenizer([BLANK, "a", "b"])


def test_char_pipe_in_training_text_is_not_a_second_unit():
    tok = CharTokenizer.train(["a|b c"])
    assert tok.units == [BLANK, "|", "a", "b", "c"]


# --------------------------------------------------------------------------------- BPE


@pytest.fixture(scope="module")
def bpe() -> BPETokenizer:
    return BPETokenizer.train(_sentences(200, seed=0), vocab_size=40)


def test_bpe_units(bpe):
    assert bpe.kind == "bpe" and bpe.blank_id == 0
    assert bpe.units[0] == BLANK
    assert len(bpe.units) == 41  # blank + 40 pieces
    assert bpe.units[1] == "<unk>"  # sentencepiece id 0 -> unit 1
    assert len(set(bpe.units)) == len(bpe.units)
    assert any(len(u) > 2 for u in bpe.units)  # some merges were learned


def test_bpe_encode_decode_roundtrip(bpe):
    for text in _sentences(20, seed=1) + ["the way they write"]:
        ids = bpe.encode(text)
        assert ids and min(ids) >= 1 and max(ids) < len(bpe.units)
        assert 1 not in ids  # every letter is known: no <unk>
        assert bpe.decode(ids) == text
        assert bpe.decode([0, *ids, 0]) == text  # blanks are skipped
        assert "".join(bpe.units[i] for i in ids).replace("\u2581", " ").strip() == text


def test_bpe_dict_roundtrip_and_torch_save(bpe, tmp_path):
    values = bpe.to_dict()
    assert values["kind"] == "bpe" and isinstance(values["model_proto"], bytes)
    path = tmp_path / "tok.pt"
    torch.save({"tokenizer": values}, path)
    loaded = torch.load(path, weights_only=True)["tokenizer"]
    assert loaded == values
    for restored in (tokenizer_from_dict(values), tokenizer_from_dict(loaded)):
        assert isinstance(restored, BPETokenizer)
        assert restored.units == bpe.units
        for text in _sentences(10, seed=2):
            assert restored.encode(text) == bpe.encode(text)


def test_char_dict_survives_torch_save(chars, tmp_path):
    path = tmp_path / "tok.pt"
    torch.save(chars.to_dict(), path)
    assert tokenizer_from_dict(torch.load(path, weights_only=True)).units == chars.units


# ------------------------------------------------------------------------------- phones

PHONE_TEXTS = ["sil sh iy hh ae cl d sil", "sil d ow n ae s sil", "ax-h q iy"]


@pytest.fixture(scope="module")
def phones() -> PhoneTokenizer:
    return PhoneTokenizer.train(PHONE_TEXTS)


def test_phone_units(phones):
    labels = sorted({p for text in PHONE_TEXTS for p in text.split()})
    assert phones.units == [BLANK, *labels]
    assert phones.kind == "phone" and phones.blank_id == 0
    assert phones.sil_token == BLANK and phones.unit_words  # no separator unit: the blank stands in
    assert "ax-h" in phones.units and "|" not in phones.units


def test_phone_encode_decode_roundtrip(phones):
    ids = phones.encode("sil sh iy")
    assert ids == [phones.units.index(p) for p in ("sil", "sh", "iy")]
    for text in PHONE_TEXTS + ["iy iy iy", ""]:
        assert phones.decode(phones.encode(text)) == text
    assert phones.encode("  sil\tsh  iy ") == ids
    assert phones.decode([0, ids[0], 0, 0, ids[0], 0]) == "sil sil"  # blanks skipped, repeats kept


def test_phone_unknown_label_raises(phones):
    with pytest.raises(ValueError, match="'zh'"):
        phones.encode("sil zh iy")
    with pytest.raises(ValueError, match="'<blk>'"):
        phones.encode("sil <blk>")
    with pytest.raises(ValueError, match="blank"):
        PhoneTokenizer.train(["a <blk> b"])


def test_phone_dict_roundtrip(phones, tmp_path):
    values = phones.to_dict()
    assert values == {"kind": "phone", "units": phones.units}
    torch.save(values, tmp_path / "tok.pt")
    loaded = torch.load(tmp_path / "tok.pt", weights_only=True)
    for restored in (tokenizer_from_dict(values), tokenizer_from_dict(loaded)):
        assert isinstance(restored, PhoneTokenizer) and restored.units == phones.units
        assert restored.encode("d ow n") == phones.encode("d ow n")


@pytest.mark.parametrize("units", [["a", BLANK], [BLANK, "a", "a"], [BLANK, "a b"], [BLANK, ""], []])
def test_phone_bad_units(units):
    with pytest.raises(ValueError):
        PhoneTokenizer(units)


# ------------------------------------------------------------------------------ builders


def test_build_tokenizer():
    texts = _sentences(200, seed=3)
    char = build_tokenizer(TokenizerConfig(kind="char"), texts)
    assert isinstance(char, CharTokenizer)
    assert char.units == [BLANK, "|", *sorted(set("".join(texts)) - {" "})]
    bpe = build_tokenizer(TokenizerConfig(kind="bpe", vocab_size=40), iter(texts))  # any iterable
    assert isinstance(bpe, BPETokenizer) and len(bpe.units) == 41
    phone = build_tokenizer(TokenizerConfig(kind="phone"), PHONE_TEXTS)
    assert isinstance(phone, PhoneTokenizer) and phone.units == PhoneTokenizer.train(PHONE_TEXTS).units
    with pytest.raises(ValueError, match="wordpiece"):
        build_tokenizer(TokenizerConfig(kind="wordpiece"), texts)


def test_tokenizer_from_dict_unknown_kind():
    with pytest.raises(ValueError, match="unknown tokenizer kind"):
        tokenizer_from_dict({"kind": "wordpiece", "units": [BLANK, "|"]})
    with pytest.raises(ValueError):
        tokenizer_from_dict({})

"""Tests for the scoring normalisation (asr.scoring.normalize) and the TIMIT phone tables (asr.data.phones)."""

import hashlib

import pytest

from asr.data.phones import TIMIT_39, TIMIT_48, TIMIT_61, TIMIT_61_TO_39, TIMIT_61_TO_48, TIMIT_TO_39, fold_phones
from asr.scoring.score import score
from asr.scoring.normalize import Normalizer, read_mapping


def test_default_changes_nothing_but_whitespace():
    n = Normalizer()
    assert n.is_identity
    assert n.words("  Hello,  World-Wide  x-ray ") == ["Hello,", "World-Wide", "x-ray"]


def test_case_punctuation_and_hyphens():
    assert Normalizer(case="lower").words("ÉCOLE Don't") == ["école", "don't"]
    assert Normalizer(case="upper").words("straße") == ["STRASSE"]
    punct = Normalizer(remove_punct=True)
    assert punct.words('"Don\'t," she said -- U.S.A.! x-ray \'quoted\' ¿qué?') == \
        ["Don't", "she", "said", "USA", "x-ray", "quoted", "qué"]
    assert Normalizer(split_hyphens=True).words("x-ray -well- a--b") == ["x", "ray", "well", "a", "b"]
    both = Normalizer(case="lower", remove_punct=True, split_hyphens=True)
    assert both.words("Twenty-One, Sir.") == ["twenty", "one", "sir"]


def test_mapping_rules_longest_match_and_deletion(tmp_path):
    glm = tmp_path / "en.glm"
    glm.write_text(";; a GLM-like file\n# comment line\n[GONNA] => [GOING TO] / [ ] __ [ ]\n"
                   "ALL RIGHT => ALRIGHT ;; two words to one\nUH =>\nALL => EVERY\n")
    n = Normalizer(case="upper", mapping=str(glm))
    assert n.words("uh all right we're gonna go all out uh") == \
        ["ALRIGHT", "WE'RE", "GOING", "TO", "GO", "EVERY", "OUT"]
    info = n.describe()["mapping"]
    assert info == {"path": str(glm), "rules": 4, "sha256": hashlib.sha256(glm.read_bytes()).hexdigest()}
    assert not n.is_identity


@pytest.mark.parametrize("text, message", [
    ("A => B\nA B C\n", r"en\.glm:2: expected one rule 'LEFT => RIGHT'"),
    ("A => B\n => B\n", r"en\.glm:2: empty left side"),
    ("{A / B} => C\n", r"en\.glm:1: alternations and contexts are not supported"),
    ("A => B / [X] __ [ ]\n", r"en\.glm:1: alternations and contexts are not supported"),
    ("A => B\nB => C\na => D\n", r"en\.glm:3: duplicate rule for 'A'"),
    ("A => B\n. => C\n", r"en\.glm:2: left side is empty after normalisation"),
])
def test_mapping_errors_name_file_and_line(tmp_path, text, message):
    glm = tmp_path / "en.glm"
    glm.write_text(text)
    with pytest.raises(ValueError, match=message):
        Normalizer(case="upper", remove_punct=True, mapping=str(glm))


def test_read_mapping_keeps_line_numbers(tmp_path):
    glm = tmp_path / "m.glm"
    glm.write_text("\n;; c\nX Y => Z\n")
    assert read_mapping(glm) == [(3, "X Y", "Z")]


def test_bad_options():
    with pytest.raises(ValueError, match="unknown case option 'title'"):
        Normalizer(case="title")
    with pytest.raises(ValueError, match="unknown phone folding 'timit48'"):
        Normalizer(fold="timit48")


def test_normalisation_is_recorded_and_applied_to_both_sides():
    r = score({"u": "Hello, World!"}, {"u": "hello world"}, normalizer=Normalizer(case="lower", remove_punct=True))
    assert r.errors == 0
    assert r.normalization == {"case": "lower", "remove_punct": True, "split_hyphens": False, "mapping": None,
                               "fold": None}


def test_timit_tables():
    assert (len(TIMIT_61), len(TIMIT_48), len(TIMIT_39)) == (61, 48, 39)
    assert set(TIMIT_61_TO_39) == set(TIMIT_61_TO_48) == set(TIMIT_61)
    assert set(TIMIT_TO_39) == set(TIMIT_61) | set(TIMIT_48) and set(TIMIT_39) <= set(TIMIT_48)
    assert [TIMIT_TO_39[p] for p in ("cl", "vcl", "sil", "ix", "zh")] == ["sil", "sil", "sil", "ih", "sh"]
    assert TIMIT_61_TO_39["q"] == "" and TIMIT_61_TO_48["q"] == ""
    assert {p for p, q in TIMIT_61_TO_39.items() if q == "sil"} == \
        {"bcl", "dcl", "gcl", "pcl", "tcl", "kcl", "h#", "pau", "epi"}
    assert [TIMIT_61_TO_39[p] for p in ("ao", "ax-h", "axr", "hv", "ix", "el", "em", "nx", "eng", "zh", "ux")] == \
        ["aa", "ah", "er", "hh", "ih", "l", "m", "n", "ng", "sh", "uw"]


def test_fold_phones_drops_q_and_rejects_unknown():
    assert fold_phones(["h#", "q", "ix", "dx", "pau"]) == ["sil", "ih", "dx", "sil"]
    with pytest.raises(ValueError, match="phone 'xx' is not in the folding table"):
        fold_phones(["aa", "xx"])


def test_per_with_folding():
    n = Normalizer(fold="timit39")
    r = score({"u": "h# sh ix q hv eh dcl"}, {"u": "sil sh ih hh ae"}, "phone", normalizer=n)
    assert r.utts[0].ref == ["sil", "sh", "ih", "hh", "eh", "sil"]
    assert r.summary_line() == "%PER 33.33 [ 2 / 6, 0 ins, 1 del, 1 sub ]"
    with pytest.raises(ValueError, match="utterance 'u': phone 'SIL' is not in the folding table"):
        score({"u": "sil"}, {"u": "SIL"}, "phone", normalizer=n)
    with pytest.raises(ValueError, match="phone folding applies to unit 'phone'"):
        score({"u": "aa"}, {"u": "aa"}, "word", normalizer=n)

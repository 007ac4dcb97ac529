"""Tests for asr.scoring.score."""

import json
import random

import pytest

from asr.scoring.report import score_files
from asr.scoring.score import ScoreResult, UttResult, read_transcripts, read_utt2spk, score, write_report


def _one(ref: str, hyp: str, unit: str = "word") -> ScoreResult:
    return score({"u": ref}, {"u": hyp}, unit)


def _levenshtein(a: list[str], b: list[str]) -> int:
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


def test_substitution_and_insertion():
    r = _one("A B C D", "A X C D E")
    assert (r.corr, r.sub, r.dele, r.ins, r.num_ref, r.errors) == (3, 1, 0, 1, 4, 2)
    assert r.err_rate == pytest.approx(50.0)
    assert r.utts[0].ops == [("C", "A", "A"), ("S", "B", "X"), ("C", "C", "C"), ("C", "D", "D"), ("I", None, "E")]


def test_deletion():
    r = _one("THE CAT SAT DOWN", "THE SAT DOWN")
    assert (r.corr, r.sub, r.dele, r.ins) == (3, 0, 1, 0)
    assert ("D", "CAT", None) in r.utts[0].ops
    assert r.err_rate == pytest.approx(25.0)


def test_all_correct():
    r = _one("one two three", "one  two\tthree")
    assert (r.corr, r.errors, r.sent_errors) == (3, 0, 0)
    assert r.err_rate == 0.0


def test_empty_hypothesis():
    r = _one("A B C", "")
    assert (r.dele, r.sub, r.ins, r.err_rate) == (3, 0, 0, 100.0)
    assert r.utts[0].ops == [("D", "A", None), ("D", "B", None), ("D", "C", None)]


def test_empty_reference_counts_insertions():
    r = score({"a": "X Y", "b": ""}, {"a": "X Y", "b": "P Q R"})
    assert (r.num_ref, r.ins, r.errors, r.sent_errors) == (2, 3, 3, 1)
    assert r.err_rate == pytest.approx(150.0)
    assert r.utts[1].ops == [("I", None, "P"), ("I", None, "Q"), ("I", None, "R")]


def test_cer_removes_spaces():
    r = _one("HELLO WORLD", "HELO WORLDS", unit="char")
    assert r.utts[0].ref == list("HELLOWORLD")
    assert r.utts[0].hyp == list("HELOWORLDS")
    assert (r.num_ref, r.dele, r.ins, r.sub) == (10, 1, 1, 0)
    assert r.summary_line() == "%CER 20.00 [ 2 / 10, 1 ins, 1 del, 0 sub ]"


def test_summary_line_exact():
    r = score({"a": "A B C D", "b": "E F G H"}, {"a": "A X C D E", "b": "E F"})
    assert r.summary_line() == "%WER 50.00 [ 4 / 8, 1 ins, 2 del, 1 sub ]"


def test_utterances_sorted_and_unit_checked():
    r = score({"z": "a", "b": "a", "m": "a"}, {"z": "a", "b": "a", "m": "a"})
    assert [u.id for u in r.utts] == ["b", "m", "z"]
    with pytest.raises(ValueError, match="unit"):
        score({"a": "x"}, {"a": "x"}, unit="syllable")


def test_read_kaldi_text(tmp_path):
    p = tmp_path / "text"
    p.write_text("utt1 HELLO   WORLD\n\nutt2\nutt3 (NOISE) OK\n")
    assert read_transcripts(p) == {"utt1": "HELLO WORLD", "utt2": "", "utt3": "(NOISE) OK"}


def test_read_trn(tmp_path):
    p = tmp_path / "hyp.trn"
    p.write_text("HELLO WORLD (spk1-utt1)\n\n(spk1-utt2)\nGOOD  BYE (spk2-utt3)\n")
    assert read_transcripts(p) == {"spk1-utt1": "HELLO WORLD", "spk1-utt2": "", "spk2-utt3": "GOOD BYE"}


def test_read_trn_malformed_line(tmp_path):
    p = tmp_path / "hyp.trn"
    p.write_text("HELLO (u1)\nNO ID HERE\n")
    with pytest.raises(ValueError, match=r"hyp\.trn:2: "):
        read_transcripts(p)


def test_read_jsonl(tmp_path):
    p = tmp_path / "hyp.jsonl"
    rows = [{"id": "u1", "text": "A B", "score": -1.5}, {"id": "u2", "text": ""}]
    p.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    assert read_transcripts(p) == {"u1": "A B", "u2": ""}


def test_duplicate_id_names_file_and_line(tmp_path):
    p = tmp_path / "hyp.txt"
    p.write_text("a X\nb Y\n\nan406-fcaw-b Z\nan406-fcaw-b W\n")
    with pytest.raises(ValueError) as err:
        read_transcripts(p)
    assert str(err.value) == f"{p}:5: duplicate utterance id 'an406-fcaw-b'"


def test_malformed_json_line(tmp_path):
    p = tmp_path / "hyp.jsonl"
    p.write_text('{"id": "u1", "text": "A"}\n{"id": "u2", "text": \n')
    with pytest.raises(ValueError, match=r"hyp\.jsonl:2: invalid JSON"):
        read_transcripts(p)


def test_json_line_without_text(tmp_path):
    p = tmp_path / "hyp.json"
    p.write_text('{"id": "u1", "text": "A"}\n{"id": "u2"}\n')
    with pytest.raises(ValueError, match=r"hyp\.json:2: .*'text'"):
        read_transcripts(p)


def test_missing_hypothesis_scored_as_deletions(caplog):
    with caplog.at_level("WARNING", logger="asr.scoring.score"):
        r = score({"a": "X Y", "b": "P Q R"}, {"a": "X Y"})
    assert r.missing == ["b"]
    assert (r.num_sents, r.dele, r.errors, r.num_ref) == (2, 3, 3, 5)
    assert r.utts[1].hyp == []
    assert "no hypothesis" in caplog.text


def test_hypothesis_without_reference_raises():
    with pytest.raises(ValueError, match="hypothesis 'x' has no reference"):
        score({"a": "A"}, {"a": "A", "x": "B", "y": "C"})


def test_report_alignment_block(tmp_path):
    r = ScoreResult("word", [UttResult("u1", ["THE", "cat", "SAT"], ["THE", "bat", "ON"],
                                       [("C", "THE", "THE"), ("S", "cat", "bat"), ("I", None, "ON"),
                                        ("D", "SAT", None)])], [])
    path = tmp_path / "errs.txt"
    write_report(r, path)
    lines = path.read_text().splitlines()
    assert lines[0] == "%WER 100.00 [ 3 / 3, 1 ins, 1 del, 1 sub ]"
    assert lines[1] == "Scored 1 sentences, 1 with errors (S.Err 100.00%)"
    i = lines.index("id: u1")
    assert lines[i + 1:i + 5] == [
        "Scores: (#C #S #D #I) 1 1 1 1",
        "REF:  THE cat *** SAT",
        "HYP:  THE bat ON  ***",
        "Eval:     S   I   D",
    ]


def test_report_columns_from_real_alignment(tmp_path):
    r = score({"u1": "A LONGWORD C"}, {"u1": "A X C EXTRA"})
    write_report(r, tmp_path / "errs.txt")
    lines = (tmp_path / "errs.txt").read_text().splitlines()
    i = lines.index("id: u1")
    assert lines[i + 1:i + 5] == [
        "Scores: (#C #S #D #I) 2 1 0 1",
        "REF:  A LONGWORD C ***",
        "HYP:  A X        C EXTRA",
        "Eval:   S          I",
    ]


def test_report_tables_and_missing(tmp_path):
    refs = {"a": "A B C", "b": "A B C", "c": "B Z", "d": "Q"}
    hyps = {"a": "A X C", "b": "A X C", "c": "Y Z W"}
    write_report(score(refs, hyps), tmp_path / "errs.txt")
    text = (tmp_path / "errs.txt").read_text()
    lines = text.splitlines()
    assert "Missing hypotheses (scored as deletions): d" in lines
    s = lines.index("SUBSTITUTIONS: count ref -> hyp")
    assert lines[s + 1:s + 4] == ["2   B -> X", "1   B -> Y", ""]
    d = lines.index("DELETIONS: count ref")
    assert lines[d + 1:d + 3] == ["1   Q", ""]
    i = lines.index("INSERTIONS: count hyp")
    assert lines[i + 1:] == ["1   W"]


def test_score_files(tmp_path):
    (tmp_path / "ref.txt").write_text("u1 A B C D\nu2 E F\n")
    (tmp_path / "hyp-bad.txt").write_text("u1 A\nu2 E F\n")
    (tmp_path / "hyp-good.jsonl").write_text(
        json.dumps({"id": "u1", "text": "A B C D"}) + "\n" + json.dumps({"id": "u2", "text": "E G"}) + "\n")
    out = tmp_path / "out" / "score"
    lines = score_files(tmp_path / "ref.txt", [tmp_path / "hyp-bad.txt", tmp_path / "hyp-good.jsonl"], out,
                        html=False)
    assert lines == [
        "hyp-good %WER 16.67 [ 1 / 6, 0 ins, 0 del, 1 sub ]",
        "hyp-bad %WER 50.00 [ 3 / 6, 0 ins, 3 del, 0 sub ]",
        "hyp-good %CER 16.67 [ 1 / 6, 0 ins, 0 del, 1 sub ]",
        "hyp-bad %CER 50.00 [ 3 / 6, 0 ins, 3 del, 0 sub ]",
    ]
    summary = (out / "wer-summary.txt").read_text().splitlines()
    assert summary == [line.replace(" ", "\t", 1) for line in lines]
    for stem in ("hyp-bad", "hyp-good"):
        for unit in ("word", "char"):
            assert (out / f"errs-{stem}-{unit}.txt").is_file()
    assert (out / "errs-hyp-bad-word.txt").read_text().startswith("%WER 50.00 [ 3 / 6,")


def test_score_files_rejects_same_stem(tmp_path):
    (tmp_path / "ref.txt").write_text("u1 A\n")
    (tmp_path / "h.txt").write_text("u1 A\n")
    (tmp_path / "h.jsonl").write_text('{"id": "u1", "text": "A"}\n')
    with pytest.raises(ValueError, match="'h'"):
        score_files(tmp_path / "ref.txt", [tmp_path / "h.txt", tmp_path / "h.jsonl"], tmp_path / "out")


def _sclite_cost(a: list[str], b: list[str]) -> int:
    """Minimum of 4 per substitution and 3 per insertion or deletion (sclite's weights)."""
    prev = [3 * j for j in range(len(b) + 1)]
    for i, x in enumerate(a, 1):
        cur = [3 * i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 3, cur[j - 1] + 3, prev[j - 1] + 4 * (x != y)))
        prev = cur
    return prev[-1]


def test_random_pairs_minimise_sclite_cost():
    rng = random.Random(1234)
    vocab = ["a", "b", "c", "d", "e"]
    refs, hyps = {}, {}
    for k in range(300):
        refs[f"u{k:03d}"] = " ".join(rng.choices(vocab, k=rng.randint(0, 12)))
        hyps[f"u{k:03d}"] = " ".join(rng.choices(vocab, k=rng.randint(0, 12)))
    r = score(refs, hyps)
    for u in r.utts:
        assert 4 * u.sub + 3 * (u.dele + u.ins) == _sclite_cost(u.ref, u.hyp)
        assert u.errors >= _levenshtein(u.ref, u.hyp)
        assert [t for _, t, _ in u.ops if t is not None] == u.ref
        assert [t for _, _, t in u.ops if t is not None] == u.hyp
        assert all((op == "C") == (x == y) for op, x, y in u.ops)
    assert sum(u.errors > _levenshtein(u.ref, u.hyp) for u in r.utts) > 0
    assert r.num_ref == sum(len(t.split()) for t in refs.values())


def test_sclite_weights_prefer_indels_over_two_substitutions():
    r = _one("A B", "B C")
    assert r.utts[0].ops == [("D", "A", None), ("C", "B", "B"), ("I", None, "C")]
    assert r.summary_line() == "%WER 100.00 [ 2 / 2, 1 ins, 1 del, 0 sub ]"
    r = _one("f d c e a b f f", "e a e b e a a c")
    assert (r.errors, _levenshtein(r.utts[0].ref, r.utts[0].hyp)) == (8, 7)


def test_phone_unit_and_per():
    r = score({"u": "sh iy hh ae d"}, {"u": "sh iy ae dx"}, "phone")
    assert r.summary_line() == "%PER 40.00 [ 2 / 5, 0 ins, 1 del, 1 sub ]"


def test_speakers_from_ids_and_utt2spk():
    refs = {"spk1-a": "x", "spk1-b": "x y", "s_2": "z"}
    r = score(refs, {"spk1-a": "x", "spk1-b": "x", "s_2": "q"})
    assert {s: (v.num_sents, v.num_ref, v.errors) for s, v in r.by_speaker().items()} == \
        {"s": (1, 1, 1), "spk1": (2, 3, 1)}
    r = score(refs, {}, utt2spk={"spk1-a": "A", "spk1-b": "B", "s_2": "A"})
    assert [(s, v.num_sents, v.missing) for s, v in r.by_speaker().items()] == \
        [("A", 2, ["s_2", "spk1-a"]), ("B", 1, ["spk1-b"])]
    with pytest.raises(ValueError, match="utterance 's_2' has no speaker in utt2spk"):
        score(refs, {}, utt2spk={"spk1-a": "A", "spk1-b": "B"})


def test_read_utt2spk_errors_name_file_and_line(tmp_path):
    p = tmp_path / "utt2spk"
    p.write_text("u1 s1\n\nu2 s2\n")
    assert read_utt2spk(p) == {"u1": "s1", "u2": "s2"}
    p.write_text("u1 s1\nu2\n")
    with pytest.raises(ValueError, match=r"utt2spk:2: expected 'uttid speaker'"):
        read_utt2spk(p)
    p.write_text("u1 s1\nu1 s2\n")
    with pytest.raises(ValueError, match=r"utt2spk:2: duplicate utterance id 'u1'"):
        read_utt2spk(p)


def test_trn_ids_with_parentheses_in_words(tmp_path):
    p = tmp_path / "ref.trn"
    p.write_text("(UH) HELLO (spk-1)\nBYE(spk-2)\nX (a b)\n")
    with pytest.raises(ValueError, match=r"ref\.trn:3: expected trn line"):
        read_transcripts(p)
    p.write_text("(UH) HELLO (spk-1)\nBYE(spk-2)\n")
    assert read_transcripts(p) == {"spk-1": "(UH) HELLO", "spk-2": "BYE"}

"""Tests for asr.scoring.report (sclite tables, JSON, Markdown, HTML) and the ``asr score`` command."""

import json

import pytest

from asr.cli import main
from asr.scoring.report import score_files
from asr.scoring.score import ScoreResult, UttResult, score
from asr.scoring.report import markdown_table, result_dict, sys_table, write_html
from asr.scoring.normalize import Normalizer

REFS = {"s1-1": "a b c d", "s2-1": "a b c", "s3-1": "a b", "s4-1": "a b c d e f g"}
HYPS = {"s1-1": "a x c d", "s2-1": "a", "s3-1": "x y z", "s4-1": "a b c d e f g"}

# sctk sclite -r ref.trn trn -h h4.trn trn -i rm -o sum stdout (its table lines, unindented)
SCLITE_SUM = """\
,----------------------------------------------------------------.
|                             h4.trn                             |
|----------------------------------------------------------------|
| SPKR   | # Snt # Wrd | Corr    Sub    Del    Ins    Err  S.Err |
|--------+-------------+-----------------------------------------|
| s1     |    1      4 | 75.0   25.0    0.0    0.0   25.0  100.0 |
|--------+-------------+-----------------------------------------|
| s2     |    1      3 | 33.3    0.0   66.7    0.0   66.7  100.0 |
|--------+-------------+-----------------------------------------|
| s3     |    1      2 |  0.0  100.0    0.0   50.0  150.0  100.0 |
|--------+-------------+-----------------------------------------|
| s4     |    1      7 |100.0    0.0    0.0    0.0    0.0    0.0 |
|================================================================|
| Sum/Avg|    4     16 | 68.8   18.8   12.5    6.3   37.5   75.0 |
|================================================================|
|  Mean  |  1.0    4.0 | 52.1   31.3   16.7   12.5   60.4   75.0 |
|  S.D.  |  0.0    2.2 | 44.3   47.3   33.3   25.0   65.7   50.0 |
| Median |  1.0    3.5 | 54.2   12.5    0.0    0.0   45.8  100.0 |
`----------------------------------------------------------------'
"""


def test_sys_table_is_sclites():
    table = sys_table(score(REFS, HYPS), "h4.trn")
    assert table.startswith("SYSTEM SUMMARY PERCENTAGES by SPEAKER\n\n")
    assert table.split("\n", 2)[2] == SCLITE_SUM


def test_raw_table_counts():
    lines = sys_table(score(REFS, HYPS), "h4", raw=True).splitlines()
    assert "| s3     |    1      2 |    0      2      0      1      3      1 |" in lines
    assert "| Sum    |    4     16 |   11      3      2      1      6      3 |" in lines
    assert "| Median |  1.0    3.5 |  2.0    0.5    0.0    0.0    1.5    1.0 |" in lines


def test_table_widens_for_large_counts():
    n = 400_000
    utts = [UttResult(f"s{k}-1", ["a"] * n, ["a"] * n, [("C", "a", "a")] * n, f"s{k}") for k in range(3)]
    lines = sys_table(ScoreResult("char", utts, []), "big").splitlines()[2:]
    assert len({len(line) for line in lines}) == 1
    assert "| SPKR   | # Snt   # Chr | Corr    Sub    Del    Ins    Err  S.Err |" in lines
    assert "| Sum/Avg|    3  1200000 |100.0    0.0    0.0    0.0    0.0    0.0 |" in lines


def test_markdown_and_json():
    r = score(REFS, HYPS, normalizer=Normalizer(case="lower"))
    md = markdown_table([("sys", r)])
    assert md.splitlines()[2] == "| sys | WER | 4 | 16 | 68.75 | 18.75 | 12.50 | 6.25 | **37.50** | 75.00 |"
    assert md.rstrip().endswith("Normalisation: case=lower remove_punct=False split_hyphens=False "
                                "mapping=None fold=None.")
    d = result_dict(r, "sys", {"ref": "r", "hyp": "h"})
    assert d["overall"] == {"snt": 4, "wrd": 16, "corr": 11, "sub": 3, "del": 2, "ins": 1, "err": 6, "s_err": 3,
                            "err_rate": 37.5, "s_err_rate": 75.0}
    assert d["speakers"]["s3"]["err"] == 3 and d["normalization"]["case"] == "lower"
    assert d["confusions"] == [["a", "y", 1], ["b", "x", 1], ["b", "z", 1]]
    assert d["deletions"] == [["b", 1], ["c", 1]] and d["insertions"] == [["x", 1]]
    assert d["utterances"][2] == {"id": "s3-1", "spk": "s3", "ref_len": 2, "corr": 0, "sub": 2, "del": 0, "ins": 1}
    json.dumps(d)


def test_html_has_plots_and_tables(tmp_path):
    r = score(REFS, HYPS)
    write_html([("sys", r)], tmp_path / "r.html", "t")
    page = (tmp_path / "r.html").read_text()
    assert page.count("<img src='data:image/png;base64,") == 3
    assert "WER per speaker" in page and "Error types per speaker" in page and "WER vs utterance length" in page
    assert "| Sum/Avg|    4     16 | 68.8   18.8   12.5    6.3   37.5   75.0 |" in page
    assert "<td>b -&gt; x</td>" in page


def test_score_files_writes_every_report(tmp_path):
    (tmp_path / "ref.trn").write_text("".join(f"{t} ({u})\n" for u, t in REFS.items()))
    (tmp_path / "hyp.jsonl").write_text("".join(json.dumps({"id": u, "text": t}) + "\n" for u, t in HYPS.items()
                                                if u != "s4-1"))
    (tmp_path / "utt2spk").write_text("s1-1 A\ns2-1 A\ns3-1 B\ns4-1 B\n")
    out = tmp_path / "out"
    lines = score_files(tmp_path / "ref.trn", [tmp_path / "hyp.jsonl"], out, ("word",),
                        utt2spk=tmp_path / "utt2spk", html=False)
    assert lines == ["hyp %WER 81.25 [ 13 / 16, 1 ins, 9 del, 3 sub ]"]
    assert sorted(p.name for p in out.iterdir()) == ["errs-hyp-word.txt", "results.md", "score-hyp-word.json",
                                                     "sys-hyp-word.txt", "wer-summary.txt"]
    sys_text = (out / "sys-hyp-word.txt").read_text()
    assert "| A      |    2      7 |" in sys_text and "SYSTEM SUMMARY COUNTS by SPEAKER" in sys_text
    data = json.loads((out / "score-hyp-word.json").read_text())
    assert data["missing"] == ["s4-1"] and data["files"]["utt2spk"] == str(tmp_path / "utt2spk")
    errs = (out / "errs-hyp-word.txt").read_text()
    assert "Missing hypotheses (scored as deletions): s4-1" in errs
    assert "Normalisation: case=keep" in errs


def test_cli_score_and_compare(tmp_path, capsys):
    for name, d in (("ref.txt", REFS), ("a.txt", HYPS), ("b.txt", dict(HYPS, **{"s2-1": "A B C"}))):
        (tmp_path / name).write_text("".join(f"{u} {t}\n" for u, t in d.items()))
    out = tmp_path / "out"
    assert main(["score", "--ref", str(tmp_path / "ref.txt"), "--hyp", str(tmp_path / "a.txt"),
                 str(tmp_path / "b.txt"), "--out-dir", str(out), "--units", "word", "--no-html",
                 "--case", "lower"]) == 0
    assert capsys.readouterr().out.splitlines() == ["b %WER 25.00 [ 4 / 16, 1 ins, 0 del, 3 sub ]",
                                                    "a %WER 37.50 [ 6 / 16, 1 ins, 2 del, 3 sub ]"]
    assert not (out / "report.html").exists()
    assert main(["score", "--case", "lower", "compare", str(tmp_path / "a.txt"), str(tmp_path / "b.txt"),
                 "--ref", str(tmp_path / "ref.txt"), "--bootstrap", "50", "--out-dir", str(out)]) == 0
    text = capsys.readouterr().out
    assert text.startswith("Comparison of 4 utterances (16 reference tokens), 50 bootstrap resamples (seed 0)\n")
    assert "\nB - A   -12.50  [" in text
    assert (out / "compare-a-vs-b-word.txt").read_text() == text


def test_cli_errors(tmp_path, capsys):
    (tmp_path / "ref.txt").write_text("u1 a\nu1 b\n")
    assert main(["score", "--ref", str(tmp_path / "ref.txt")]) == 1
    assert "--hyp and --out-dir are required" in capsys.readouterr().err
    assert main(["score", "--ref", str(tmp_path / "ref.txt"), "--hyp", str(tmp_path / "ref.txt"),
                 "--out-dir", str(tmp_path)]) == 1
    assert f"{tmp_path / 'ref.txt'}:2: duplicate utterance id 'u1'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["score", "compare", "a"])

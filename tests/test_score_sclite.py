"""Agreement with ``sctk sclite`` itself on real-looking sets: every utterance's alignment, the
per-speaker and overall counts, and every number of its ``sum`` table.

Skipped with a reason when sctk is not installed (``apt-get install sctk``), except under CI=true,
where a missing sctk fails. The corpus-based sets also need ``ASR_TEST_DATA`` (see helpers.py).
"""

import os
import random
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from asr.data.phones import TIMIT_61
from asr.scoring.score import ScoreResult, read_transcripts, sclite_speaker, score
from asr.scoring.report import sys_table
from asr.scoring.stats import mapsswe
from asr.scoring.normalize import Normalizer
from helpers import corpus_dir


@pytest.fixture(scope="module")
def sctk() -> str:
    path = shutil.which("sctk")
    if path is None:
        message = "sctk (sclite) is not installed: apt-get install sctk"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


def _corrupt(words: list[str], vocab: list[str], rng: random.Random, rate: float) -> list[str]:
    """Hypothesis-like edits: substitutions, deletions and insertions drawn from ``vocab``."""
    out = []
    for w in words:
        r = rng.random()
        if r < rate / 2:
            out.append(rng.choice(vocab))
        elif r >= rate * 3 / 4:
            out.append(w)
        if rng.random() < rate / 4:
            out.append(rng.choice(vocab))
    return out


def _table_rows(text: str) -> dict[str, tuple[tuple[str, ...], tuple[str, ...]]]:
    """``label -> (count cells, value cells)`` of a sclite sum/rsum table (or ours)."""
    rows = {}
    lines = [line.strip() for line in text.splitlines()]
    start = next(i for i, line in enumerate(lines) if "SPKR" in line)
    for line in lines[start + 1:]:
        if line.startswith("`"):
            break
        parts = line.split("|")
        if len(parts) == 5 and not re.fullmatch(r"[-=+|]*", line):
            rows[parts[1].strip()] = (tuple(parts[2].split()), tuple(parts[3].split()))
    return rows


def _sclite(sctk: str, tmp: Path, refs: dict[str, str], hyps: dict[str, str], spk: dict[str, str] | None,
            char: bool = False, case_sensitive: bool = True) -> dict[str, object]:
    """Run sclite on trn files of ``refs``/``hyps`` (a missing hypothesis is written empty)."""
    ids = {u: f"{spk[u]}-{u}" if spk else u for u in refs}
    (tmp / "ref.trn").write_text("".join(f"{refs[u]} ({ids[u]})\n" for u in refs))
    (tmp / "hyp.trn").write_text("".join(f"{hyps.get(u, '')} ({ids[u]})\n" for u in refs))
    out = tmp / "sclite"
    out.mkdir()
    cmd = [sctk, "sclite", "-r", str(tmp / "ref.trn"), "trn", "-h", str(tmp / "hyp.trn"), "trn", "-i", "rm",
           "-o", "sum", "rsum", "sgml", "-O", str(out), "-f", "0"]
    subprocess.run(cmd + (["-s"] if case_sensitive else []) + (["-c"] if char else []), check=True,
                   capture_output=True, timeout=60)
    back = {v: u for u, v in ids.items()}
    sgml = (out / "hyp.trn.sgml").read_text()
    ops = {}
    for path_id, body in re.findall(r'<PATH id="\((.*?)\)"[^>]*>\n(.*?)</PATH>', sgml, re.S):
        ops[back[path_id]] = [(op, r or None, h or None)
                              for op, r, h in re.findall(r'([CSDI]),(?:"([^"]*)")?,(?:"([^"]*)")?', body)]
    return {"ops": ops, "sum": _table_rows((out / "hyp.trn.sys").read_text()),
            "rsum": _table_rows((out / "hyp.trn.raw").read_text())}


def _assert_same(ours: ScoreResult, theirs: dict[str, object]) -> None:
    assert {u.id: u.ops for u in ours.utts} == theirs["ops"]
    assert _table_rows(sys_table(ours, "x", raw=True)) == theirs["rsum"]
    assert _table_rows(sys_table(ours, "x")) == theirs["sum"]


_WORDS = ("the a of to and in is it that was for on are with as i his they be at one have this from or had by "
          "word but what some we can out other were all there when up use your how said an each she which do "
          "their time if will way about many then them write would like so these her long make thing see him "
          "two has look more day could go come did number sound no most people my over know water than call "
          "first who may down side been now find any new work part take get place made live where after back "
          "little only round man year came show every good me give our under name very through just form "
          "sentence great think say help low line differ turn cause much mean before move right boy old too "
          "same tell does set three want air well also play small end put home read hand port large spell add "
          "even land here must big high such follow act why ask men change went light kind off need house").split()


def _synthetic(seed: int) -> tuple[dict[str, str], dict[str, str]]:
    """300 sentences from a small vocabulary at ~25% error (many equal-cost alignments), with empty
    references and hypotheses, missing hypotheses and a speaker without reference words."""
    rng = random.Random(seed)
    refs, hyps = {}, {}
    speakers = ["spk1", "spk2_b", "m_03", "f04"]
    for k in range(300):
        uid = f"{speakers[k % 4]}-{'a' if k % 3 else 'b'}_{k:04d}"
        words = [rng.choice(_WORDS[:30]) for _ in range(rng.randint(0, 14))]
        refs[uid] = " ".join(words)
        if k % 37 != 5:
            hyps[uid] = " ".join(_corrupt(words, _WORDS[:30], rng, 0.25))
    refs["zz_empty-1"], hyps["zz_empty-1"] = "", "oh no"
    refs["zz_empty-2"], hyps["zz_empty-2"] = "", ""
    return refs, hyps


def test_sclite_speaker_convention():
    assert [sclite_speaker(i) for i in ("fcaw-an406-b", "spk2_b-a_0001", "m_03", "plain")] == \
        ["fcaw", "spk2_b", "m", "plain"]


def test_synthetic_words_match_sclite(sctk, tmp_path):
    refs, hyps = _synthetic(11)
    ours = score(refs, hyps)
    theirs = _sclite(sctk, tmp_path, refs, hyps, None)
    _assert_same(ours, theirs)
    assert set(ours.by_speaker()) == {"spk1", "spk2_b", "m_03", "f04", "zz_empty"}
    assert len(ours.missing) == 8 and ours.by_speaker()["zz_empty"].num_ref == 0
    assert ours.sub > 0 and ours.dele > 0 and ours.ins > 0


def test_synthetic_chars_match_sclite_c(sctk, tmp_path):
    refs, hyps = _synthetic(12)
    _assert_same(score(refs, hyps, "char"), _sclite(sctk, tmp_path, refs, hyps, None, char=True))


def test_sclite_costs_differ_from_levenshtein(sctk, tmp_path):
    refs = {"s-1": "a b", "s-2": "f d c e a b f f", "s-3": "the cat sat"}
    hyps = {"s-1": "b c", "s-2": "e a e b e a a c", "s-3": "THE sat"}
    ours = score(refs, hyps)
    _assert_same(ours, _sclite(sctk, tmp_path, refs, hyps, None))
    assert [u.ops for u in ours.utts][0] == [("D", "a", None), ("C", "b", "b"), ("I", None, "c")]
    assert ours.utts[1].errors == 8


def _an4_sets(root: Path) -> tuple[dict[str, str], dict[str, str]]:
    refs = {}
    for name in ("an4_train.transcription", "an4_test.transcription"):
        refs.update(read_transcripts(root / "etc" / name))
    refs = {u: " ".join(w for w in t.split() if w not in ("<s>", "</s>")) for u, t in refs.items()}
    vocab = sorted({w for t in refs.values() for w in t.split()})
    rng = random.Random(4)
    return refs, {u: " ".join(_corrupt(t.split(), vocab, rng, 0.15)) for u, t in refs.items()}


def test_an4_matches_sclite(sctk, tmp_path):
    refs, hyps = _an4_sets(corpus_dir("an4"))
    spk = {u: u.split("-")[1] for u in refs}
    ours = score(refs, hyps, utt2spk=spk)
    _assert_same(ours, _sclite(sctk, tmp_path, refs, hyps, spk))
    assert len(ours.utts) == 1078 and len(ours.by_speaker()) == 84


def test_an4_lowercase_matches_sclite_case_folding(sctk, tmp_path):
    refs, hyps = _an4_sets(corpus_dir("an4"))
    rng = random.Random(5)
    hyps = {u: " ".join(w.lower() if rng.random() < 0.3 else w for w in t.split()) for u, t in hyps.items()}
    spk = {u: u.split("-")[1] for u in refs}
    ours = score(refs, hyps, utt2spk=spk, normalizer=Normalizer(case="lower"))
    theirs = _sclite(sctk, tmp_path, refs, hyps, spk, case_sensitive=False)
    _assert_same(ours, theirs)
    assert ours.errors < score(refs, hyps, utt2spk=spk).errors


def _timit(root: Path, suffix: str) -> dict[str, tuple[str, list[str]]]:
    """``uttid -> (speaker, lines)`` of the TIMIT sample's files with ``suffix``."""
    out = {}
    for path in sorted(root.glob(f"*/*{suffix}")):
        spk = path.parent.name.split("-")[1]
        out[f"{spk}_{path.stem}"] = (spk, path.read_text().splitlines())
    return out


def test_timit_words_normalised_match_sclite(sctk, tmp_path):
    data = _timit(corpus_dir("timit_sample"), ".txt")
    refs = {u: line[0].split(maxsplit=2)[2] for u, (_, line) in data.items()}
    vocab = sorted({w for t in refs.values() for w in t.split()})
    rng = random.Random(6)
    hyps = {u: " ".join(_corrupt(t.split(), vocab, rng, 0.2)).upper().replace(" ", "-", 1) for u, t in refs.items()}
    spk = {u: s for u, (s, _) in data.items()}
    norm = Normalizer(case="lower", remove_punct=True, split_hyphens=True)
    ours = score(refs, hyps, utt2spk=spk, normalizer=norm)
    flat = {u: " ".join(norm.words(t)) for u, t in refs.items()}, {u: " ".join(norm.words(t)) for u, t in hyps.items()}
    _assert_same(ours, _sclite(sctk, tmp_path, *flat, spk))
    assert len(ours.utts) == 160 and len(ours.by_speaker()) == 16
    assert not any(c in w for u in ours.utts for w in u.ref + u.hyp for c in ".,?-\"")


def test_timit_phones_folded_match_sclite(sctk, tmp_path):
    data = _timit(corpus_dir("timit_sample"), ".phn")
    refs = {u: " ".join(line.split()[2] for line in lines) for u, (_, lines) in data.items()}
    rng = random.Random(7)
    hyps = {u: " ".join(_corrupt(t.split(), list(TIMIT_61), rng, 0.25)) for u, t in refs.items()}
    spk = {u: s for u, (s, _) in data.items()}
    norm = Normalizer(fold="timit39")
    ours = score(refs, hyps, "phone", utt2spk=spk, normalizer=norm)
    folded = [{u: " ".join(norm.words(t)) for u, t in d.items()} for d in (refs, hyps)]
    _assert_same(ours, _sclite(sctk, tmp_path, *folded, spk))
    assert ours.summary_line().startswith("%PER ")
    assert {t for u in ours.utts for t in u.ref} <= set(Normalizer(fold="timit39").words(" ".join(TIMIT_61)))


def test_mapsswe_matches_sc_stats(sctk, tmp_path):
    refs, hyps_a = _synthetic(21)
    rng = random.Random(22)
    hyps_b = {u: " ".join(w if rng.random() > 0.08 else "zz" for w in t.split()) for u, t in hyps_a.items()}
    ids = {u: u for u in refs}
    (tmp_path / "ref.trn").write_text("".join(f"{refs[u]} ({ids[u]})\n" for u in refs))
    cmd = [sctk, "sclite", "-r", str(tmp_path / "ref.trn"), "trn", "-i", "rm", "-s", "-o", "sgml", "-O", str(tmp_path),
           "-f", "0"]
    for name, hyps in (("sysA", hyps_a), ("sysB", hyps_b)):
        (tmp_path / f"{name}.trn").write_text("".join(f"{hyps.get(u, '')} ({ids[u]})\n" for u in refs))
        cmd += ["-h", str(tmp_path / f"{name}.trn"), "trn", name]
    subprocess.run(cmd, check=True, capture_output=True, timeout=60)
    sgml = (tmp_path / "sysA.trn.sgml").read_text() + (tmp_path / "sysB.trn.sgml").read_text()
    subprocess.run([sctk, "sc_stats", "-p", "-t", "mapsswe", "-v", "-n", str(tmp_path / "stats")], input=sgml,
                   text=True, check=True, capture_output=True, timeout=60)
    line = next(x for x in (tmp_path / "stats.stats.mapsswe").read_text().splitlines() if x.startswith("MTCH_PR"))
    a, b = score(refs, hyps_a), score(refs, ({u: hyps_b.get(u, "") for u in refs}))
    m = mapsswe(a, b)
    pct_a, pct_b = 100 * m.errors_a / m.ref_words, 100 * m.errors_b / m.ref_words
    assert f"(# segs: {m.segments}) " in line
    assert f"(% Error: {pct_a:5.2f} {pct_b:5.2f}) (mean: {m.mean:5.3f}) (std dev: {m.std:5.3f}) " \
           f"(Z Stat: {m.z:5.3f})" in line
    assert m.segments > 50 and m.p_value < 0.05

"""Tests for asr.scoring.stats: bootstrap intervals, paired bootstrap and MAPSSWE."""

import math
import random

import numpy as np
import pytest

from asr.scoring.score import score
from asr.scoring.stats import bootstrap_rates, compare, compare_files, mapsswe, mapsswe_segments


def test_segments_are_cut_by_two_words_both_got_right():
    # a segment runs from the word before the last shared correct word to the second correct word after
    # the errors (boundary words are shared between segments), or to the end of the utterance
    assert mapsswe_segments("CSCCCDC", "CCCCSCC") == [(4, 1, 0), (5, 1, 1)]
    assert mapsswe_segments("CCCC", "CCCC") == []
    assert mapsswe_segments("CCICC", "CCCC") == [(4, 1, 0)]
    assert mapsswe_segments("SS", "CC") == [(2, 2, 0)]
    assert mapsswe_segments("CCCC", "CCCCI") == [(2, 0, 1)]
    assert mapsswe_segments("CCCCI", "CCCC") == [(2, 1, 0)]
    assert mapsswe_segments("", "II") == [(0, 0, 2)]


def test_mapsswe_statistics():
    refs = {f"u{k}": "a b c d e f g" for k in range(4)}
    hyps_a = {"u0": "a x c d e f g", "u1": "a b c d e f g", "u2": "a b c d e f", "u3": "x b c d e f g"}
    hyps_b = {"u0": "a b c d e f g", "u1": "a b c y e f g", "u2": "a b c d e f g", "u3": "a b c d e f g"}
    m = mapsswe(score(refs, hyps_a), score(refs, hyps_b))
    diffs = np.array([1, -1, 1, 1], dtype=float)
    assert (m.segments, m.errors_a, m.errors_b) == (4, 3, 1)
    assert m.mean == pytest.approx(diffs.mean())
    assert m.std == pytest.approx(diffs.std(ddof=1))
    assert m.z == pytest.approx(diffs.mean() / (diffs.std(ddof=1) / 2))
    assert m.p_value == pytest.approx(math.erfc(abs(m.z) / math.sqrt(2)))


def test_bootstrap_is_seeded_and_resamples_utterances():
    errors = np.array([[0, 1], [2, 2], [1, 0], [3, 4]])
    lens = np.array([5, 4, 6, 5])
    r1, r2 = bootstrap_rates(errors, lens, 200, seed=3), bootstrap_rates(errors, lens, 200, seed=3)
    assert r1.shape == (200, 2) and np.array_equal(r1, r2)
    assert not np.array_equal(r1, bootstrap_rates(errors, lens, 200, seed=4))
    assert r1.min() >= 0 and r1[:, 0].max() <= 100 * 3 / 4
    assert abs(r1[:, 0].mean() - 100 * 6 / 20) < 5


def _systems(seed: int, n: int, rate_a: float, rate_b: float):
    rng = random.Random(seed)
    refs, a, b = {}, {}, {}
    for k in range(n):
        words = [f"w{rng.randint(0, 50)}" for _ in range(rng.randint(3, 15))]
        refs[f"u{k}"] = " ".join(words)
        a[f"u{k}"] = " ".join(w if rng.random() > rate_a else "zz" for w in words)
        b[f"u{k}"] = " ".join(w if rng.random() > rate_b else "zz" for w in words)
    return refs, a, b


def test_compare_detects_a_real_difference():
    refs, a, b = _systems(1, 400, 0.20, 0.10)
    c = compare(score(refs, a), score(refs, b), "base", "new", n_boot=500)
    assert c.delta < 0 and c.ci_delta[1] < 0
    assert c.ci_a[0] < c.rate_a < c.ci_a[1] and c.ci_b[0] < c.rate_b < c.ci_b[1]
    assert c.prob_b_better == 1.0 and c.p_bootstrap == 0.0
    assert c.mapsswe.z > 5 and c.mapsswe.p_value < 1e-6
    text = c.report()
    assert "Significant at p < 0.05: bootstrap yes, MAPSSWE yes" in text
    assert "two-sided p < 0.002" in text


def test_compare_identical_systems():
    refs, a, _ = _systems(2, 100, 0.2, 0.2)
    c = compare(score(refs, a), score(refs, a), n_boot=100)
    assert (c.delta, c.ci_delta, c.p_bootstrap, c.prob_b_better) == (0.0, (0.0, 0.0), 1.0, 0.0)
    assert (c.mapsswe.z, c.mapsswe.p_value) == (0.0, 1.0)


def test_compare_rejects_different_references():
    refs, a, b = _systems(3, 20, 0.1, 0.1)
    other = dict(refs, u0="something else")
    with pytest.raises(ValueError, match="same references"):
        compare(score(refs, a), score(other, b))
    with pytest.raises(ValueError, match="same references"):
        compare(score(refs, a), score(refs, a, "char"))


def test_compare_files_writes_reports(tmp_path):
    refs, a, b = _systems(4, 50, 0.3, 0.1)
    for name, d in (("ref.txt", refs), ("hyp-a.txt", a), ("hyp-b.txt", b)):
        (tmp_path / name).write_text("".join(f"{k} {v}\n" for k, v in d.items()))
    c = compare_files(tmp_path / "ref.txt", tmp_path / "hyp-a.txt", tmp_path / "hyp-b.txt", n_boot=50,
                      out_dir=tmp_path / "out")
    assert (c.name_a, c.name_b, c.utterances) == ("hyp-a", "hyp-b", 50)
    assert (tmp_path / "out" / "compare-hyp-a-vs-hyp-b-word.txt").read_text() == c.report()
    assert '"n_boot": 50' in (tmp_path / "out" / "compare-hyp-a-vs-hyp-b-word.json").read_text()

"""Word confidences: correctness labels, ECE, fitted calibrators, the calibrate command and its use by transcribe."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from asr.cli import main
from asr.config import CalibrationConfig
from asr.data.cuts import load_cuts
from asr.decoding.confidence import (Calibrator, choose_calibrator, fit_calibrator, load_calibrator,
                                     word_samples)
from asr.decoding.words import Word
from asr.model.checkpoint import load_model
from asr.scoring.calibration import ece, reliability, word_correct, write_calibration_report
from helpers import random_letter_model


@pytest.mark.parametrize("ref, hyp, expected", [
    ("A B C", "A B C", [True, True, True]),
    ("A B C", "A X C", [True, False, True]),
    ("A B C", "A C", [True, True]),  # B deleted
    ("A C", "A B C", [True, False, True]),  # B inserted
    ("A B", "", []),
    ("", "A", [False]),
])
def test_word_correct(ref, hyp, expected):
    assert word_correct(ref.split(), hyp.split()) == expected


def test_ece_and_reliability_bins():
    # 10 words at 0.8 of which 8 correct: calibrated; 10 at 1.0 of which 5 correct: 50 points off
    confs = [0.8] * 10 + [1.0] * 10
    correct = [True] * 8 + [False] * 2 + [True] * 5 + [False] * 5
    assert ece(confs[:10], correct[:10]) == pytest.approx(0.0, abs=1e-9)
    assert ece(confs[10:], correct[10:]) == pytest.approx(50.0)
    assert ece(confs, correct) == pytest.approx(25.0)
    table = reliability(confs, correct, bins=5)
    assert [b.count for b in table] == [0, 0, 0, 0, 20]  # 0.8 and 1.0 share the last of 5 bins
    assert table[-1].accuracy == pytest.approx(13 / 20) and table[-1].conf == pytest.approx(0.9)
    assert ece(confs, correct, bins=5) == pytest.approx(100 * abs(13 / 20 - 0.9))


@pytest.mark.parametrize("confs, correct, message", [
    ([0.5, 1.2], [True, False], "expected values in"),
    ([0.5], [True, False], "the same length"),
    ([], [], "at least one word"),
])
def test_ece_rejects_bad_input(confs, correct, message):
    with pytest.raises(ValueError, match=message):
        ece(confs, correct)


def _overconfident(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Confidences in [0.3, 1] whose true probability of being right is conf ** 3."""
    rng = np.random.default_rng(seed)
    confs = rng.uniform(0.3, 1.0, n)
    return confs, rng.uniform(size=n) < confs ** 3


@pytest.mark.parametrize("method", ["temperature", "platt", "isotonic"])
def test_fitted_calibrator_lowers_held_out_ece_and_stays_monotone(method, tmp_path):
    confs, correct = _overconfident(4000, seed=0)
    test_confs, test_correct = _overconfident(4000, seed=1)
    calibrator = fit_calibrator(confs, correct, method)
    before, after = ece(test_confs, test_correct), ece(calibrator(test_confs), test_correct)
    assert before > 20
    assert after < before - 3 if method == "temperature" else after < 4  # no bias term: a partial fix only
    grid = calibrator(np.linspace(0, 1, 101))
    assert np.all(np.diff(grid) >= -1e-12) and grid.min() >= 0 and grid.max() <= 1
    loaded = load_calibrator(calibrator.save(tmp_path / "calibration.json"))
    assert loaded == calibrator
    np.testing.assert_allclose(loaded(test_confs), calibrator(test_confs))


def test_auto_scores_every_method_on_held_out_utterances():
    confs, correct = _overconfident(3000, seed=2)
    utterance = list(np.arange(3000) // 6)  # 500 utterances of 6 words
    calibrator = choose_calibrator(confs, correct, utterance, CalibrationConfig())
    held = calibrator.info["held_out_ece"]
    assert set(held) == {"identity", "temperature", "platt", "isotonic"}
    assert calibrator.method == min(("temperature", "platt", "isotonic"), key=held.__getitem__)
    assert calibrator.info["ece_after"] < calibrator.info["ece_before"] / 3
    with pytest.raises(ValueError, match="at least two utterances"):
        choose_calibrator(confs[:6], correct[:6], [0] * 6, CalibrationConfig())


def test_apply_maps_word_confidences():
    calibrator = Calibrator("platt", {"a": 1.0, "b": -1.0})
    words = [Word("A", 0.0, 0.3, 0.9), Word("B", 0.3, 0.6, 0.5)]
    mapped = calibrator.apply(words)
    assert [(w.word, w.start, w.end) for w in mapped] == [(w.word, w.start, w.end) for w in words]
    expected = 1 / (1 + np.exp(-(np.log(0.9 / 0.1) - 1)))
    assert mapped[0].conf == pytest.approx(expected, abs=1e-6) and mapped[1].conf < 0.5


@pytest.mark.parametrize("content, message", [
    ("{", "not a calibration file"),
    ('{"method": "platt", "params": {"a": 1}}', "expected parameters ['a', 'b']"),
    ('{"method": "cubic", "params": {}}', "expected one of"),
    ('{"method": "isotonic", "params": {"x": [0.5, 0.1], "y": [0, 1]}}', "x ascending"),
])
def test_bad_calibration_file_names_the_file(tmp_path, content, message):
    path = tmp_path / "calibration.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=re.escape(message)) as err:
        load_calibrator(path)
    assert str(err.value).startswith(f"{path}: ")


def test_report_files(tmp_path):
    confs, correct = _overconfident(500, seed=3)
    lines = write_calibration_report({"raw": (confs, correct)}, tmp_path, "dev", bins=10)
    assert lines == [f"%ECE {ece(confs, correct):.2f} [ 500 words, 10 bins ] raw"]
    table = (tmp_path / "calibration-dev.txt").read_text().splitlines()
    assert table[0] == lines[0] and len(table) == 12  # summary, header, 10 bins
    assert (tmp_path / "reliability-dev.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------ real audio, tiny random model, CLI


@pytest.fixture(scope="module")
def tiny(an4_manifests, tmp_path_factory):
    """A random 1x16 letter model and 6 + 4 AN4 cuts as dev and test."""
    out = tmp_path_factory.mktemp("tiny")
    random_letter_model(out)
    cuts = load_cuts(an4_manifests / "an4_cuts_test.jsonl.gz")
    cuts.subset(first=6).to_file(out / "dev.jsonl.gz")
    cuts.subset(first=10).subset(last=4).to_file(out / "test.jsonl.gz")
    return out


def test_word_samples_label_the_greedy_words(tiny):
    model, tokenizer = load_model(tiny / "model.pt")
    samples = word_samples(model, tokenizer, load_cuts(tiny / "dev.jsonl.gz"), max_duration=8)
    assert len(samples) == 6
    for s in samples:
        assert len(s.correct) == len(s.words)
        assert all(0 < w.conf <= 1 for w in s.words)
        assert s.correct == word_correct(s.ref.split(), [w.word for w in s.words])


def test_calibrate_command_then_transcribe_uses_it(tiny, an4_dir, tmp_path):
    report = tmp_path / "report"
    assert main(["calibrate", str(tiny / "model.pt"), str(tiny / "dev.jsonl.gz"), "--test",
                 str(tiny / "test.jsonl.gz"), "--report-dir", str(report), "--method", "platt"]) == 0
    calibrator = load_calibrator(tiny / "calibration.json")  # beside the model by default
    assert calibrator.method == "platt"
    assert {"ece_before", "ece_after", "test_ece_before", "test_ece_after"} <= set(calibrator.info)
    for name in ("dev", "test"):
        assert (report / f"calibration-{name}.txt").read_text().startswith("%ECE ")
        assert (report / f"reliability-{name}.png").stat().st_size > 0
    wav = next((an4_dir).rglob("*.wav"), None) or pytest.skip("no wav files in the AN4 copy")
    out = tmp_path / "out"
    assert main(["transcribe", str(tiny / "model.pt"), str(wav), "-f", "json", "-o", str(out)]) == 0
    calibrated = [w["conf"] for s in json.loads((out / f"{wav.stem}.json").read_text())["segments"]
                  for w in s["words"]]
    (tiny / "calibration.json").unlink()
    assert main(["transcribe", str(tiny / "model.pt"), str(wav), "-f", "json", "-o", str(out)]) == 0
    raw = [w["conf"] for s in json.loads((out / f"{wav.stem}.json").read_text())["segments"]
           for w in s["words"]]
    assert raw and len(raw) == len(calibrated)
    np.testing.assert_allclose(calibrated, calibrator(np.array(raw)), atol=2e-3)  # JSON rounds to 3 decimals


def test_calibrate_command_bad_input(tiny, tmp_path, capsys):
    assert main(["calibrate", str(tiny / "model.pt"), str(tmp_path / "missing.jsonl.gz")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("asr calibrate: error:") and "missing.jsonl.gz" in err[0]

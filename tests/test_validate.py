"""asr validate finds every fault planted in a manifest of real AN4 cuts, and --fix leaves out exactly the broken cuts."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asr.cli import main
from asr.config import ValidateConfig
from asr.data.validate import validate_manifests
from helpers import random_letter_model


def _rows(path: Path) -> list[dict]:
    with gzip.open(path, "rt") as f:
        return [json.loads(line) for line in f]


def _write(rows: list, path: Path) -> Path:
    with gzip.open(path, "wt") as f:
        for row in rows:
            f.write((row if isinstance(row, str) else json.dumps(row)) + "\n")
    return path


def _source(row: dict) -> str:
    return row["recording"]["sources"][0]["source"]


def _set_source(row: dict, path: Path) -> None:
    row["recording"]["sources"][0]["source"] = str(path)


@pytest.fixture
def planted(small_sets, tmp_path) -> tuple[Path, Path, dict[str, int]]:
    """(train manifest with one fault per kind, dev manifest sharing a speaker, expected line per error kind)."""
    rows = _rows(small_sets / "cuts20.jsonl.gz")
    good = [r for r in rows[:8]]
    faults: dict[str, dict | str] = {}
    faults["missing-audio"] = dict(rows[8], id="missing")
    _set_source(faults["missing-audio"], tmp_path / "gone.wav")
    truncated = tmp_path / "truncated.wav"
    shutil.copy(_source(rows[9]), truncated)
    with open(truncated, "r+b") as f:
        f.truncate(truncated.stat().st_size // 2)
    faults["truncated-audio"] = dict(rows[9], id="truncated")
    _set_source(faults["truncated-audio"], truncated)
    (tmp_path / "noise.wav").write_text("not audio at all\n")
    faults["unreadable-audio"] = dict(rows[10], id="unreadable")
    _set_source(faults["unreadable-audio"], tmp_path / "noise.wav")
    faults["empty-text"] = json.loads(json.dumps(rows[11]))
    faults["empty-text"]["supervisions"][0]["text"] = " "
    faults["duplicate-id"] = dict(rows[12], id=good[0]["id"])
    faults["duration-mismatch"] = json.loads(json.dumps(rows[13]))
    faults["duration-mismatch"]["recording"]["num_samples"] += 16000
    faults["too-short-for-ctc"] = json.loads(json.dumps(rows[14]))
    faults["too-short-for-ctc"]["supervisions"][0]["text"] = "A B C D E F G H I J K L M N O P Q R S T U V W " * 3
    faults["unknown-chars"] = json.loads(json.dumps(rows[15]))
    faults["unknown-chars"]["supervisions"][0]["text"] = "TWO 2"
    faults["zero-duration"] = dict(rows[16], duration=0.0)
    faults["bad-line"] = '{"id": "half a line'
    samples, rate = sf.read(_source(rows[17]), dtype="float32")
    sf.write(tmp_path / "at8k.wav", samples[::2], rate // 2)  # a fine cut at another rate: a warning only
    at8k = json.loads(json.dumps(rows[17]))
    _set_source(at8k, tmp_path / "at8k.wav")
    at8k["recording"].update(sampling_rate=rate // 2, num_samples=len(samples[::2]))
    train = _write(good + list(faults.values()) + [at8k], tmp_path / "train.jsonl.gz")
    lines = {kind: len(good) + 1 + i for i, kind in enumerate(faults)}
    dev = _write([dict(rows[18], id="dev-1"), rows[19]], tmp_path / "dev.jsonl.gz")
    return train, dev, lines


def test_validate_finds_every_planted_fault_and_fix_drops_the_broken_cuts(planted, tmp_path, capsys):
    train, dev, lines = planted
    model = random_letter_model(tmp_path)
    fixed = tmp_path / "fixed"
    status = main(["validate", str(train), str(dev), "--units", str(model), "--fix", str(fixed), "--report",
                   str(tmp_path / "report.json"), "--max-utt-duration", "2.5"])
    assert status == 1
    captured = capsys.readouterr()
    report = json.loads((tmp_path / "report.json").read_text())
    errors = {(p["kind"], p["line"]) for p in report["problems"] if p["severity"] == "error"}
    assert errors == set(lines.items())
    warnings = {p["kind"] for p in report["problems"] if p["severity"] == "warning"}
    assert {"rate-mix", "shared-speakers", "too-long"} <= warnings
    for kind, line in lines.items():  # one stderr line per problem, naming manifest and line
        assert any(f"{train}:{line}:" in row and kind in row for row in captured.err.splitlines()), kind
    assert "train.jsonl.gz" in captured.out and "too-short-for-ctc" in captured.out  # the summary table
    kept = [json.loads(line)["id"] for line in gzip.open(fixed / "train.jsonl.gz", "rt")]
    assert len(kept) == 8 + 1 and "missing" not in kept and "truncated" not in kept
    assert main(["validate", str(fixed / "train.jsonl.gz"), "--units", str(model), "--max-utt-duration", "60"]) == 0


def test_without_units_characters_count_and_any_character_is_allowed(planted, tmp_path):
    train, _, lines = planted
    report = validate_manifests([train], cfg=ValidateConfig(audio_check="none"))
    kinds = {p.kind for p in report.problems}
    assert "unknown-chars" not in kinds and "missing-audio" not in kinds  # no units, no audio reads
    assert {"too-short-for-ctc", "empty-text", "duplicate-id", "bad-line", "zero-duration"} <= kinds
    assert report.manifests[0].cuts == len(lines) + 8  # the bad line is no cut


def test_decode_level_finds_a_flac_whose_header_promises_more(small_sets, tmp_path):
    """A truncated FLAC keeps its header's sample count: only reading the cut's end finds it."""
    row = _rows(small_sets / "cuts12.jsonl.gz")[0]
    samples, rate = sf.read(_source(row), dtype="int16")
    flac = tmp_path / "cut.flac"
    sf.write(flac, np.concatenate([samples] * 4), rate)
    with open(flac, "r+b") as f:
        f.truncate(flac.stat().st_size // 3)
    _set_source(row, flac)
    row["recording"]["num_samples"] = 4 * len(samples)
    row["duration"] = row["recording"]["duration"] = 4 * len(samples) / rate
    row["supervisions"][0]["duration"] = row["duration"]
    manifest = _write([row], tmp_path / "m.jsonl.gz")
    assert validate_manifests([manifest]).num_errors == 0
    report = validate_manifests([manifest], cfg=ValidateConfig(audio_check="decode"))
    assert [p.kind for p in report.problems] == ["truncated-audio"]

"""AN4 preparation on the real corpus."""

from __future__ import annotations

import pytest

from asr.data.corpora.an4 import parse_transcription, prepare_an4
from asr.data.cuts import load_cuts


def _speakers(cuts):
    return {c.supervisions[0].speaker for c in cuts}


def test_an4_counts_and_speaker_split(an4_manifests):
    train = load_cuts(an4_manifests / "an4_cuts_train.jsonl.gz")
    dev = load_cuts(an4_manifests / "an4_cuts_dev.jsonl.gz")
    test = load_cuts(an4_manifests / "an4_cuts_test.jsonl.gz")
    assert len(train) + len(dev) == 948
    assert len(test) == 130
    assert len(_speakers(train)) + len(_speakers(dev)) == 74
    assert len(_speakers(dev)) == 5
    assert len(_speakers(test)) == 10
    assert not _speakers(train) & _speakers(dev), "dev speakers must not appear in train"
    assert 40 * 60 < sum(c.duration for c in train) + sum(c.duration for c in dev) < 45 * 60


def test_an4_transcripts_parsed_from_both_formats(an4_manifests):
    train = {c.id: c.supervisions[0].text for c in load_cuts(an4_manifests / "an4_cuts_train.jsonl.gz")}
    test = {c.id: c.supervisions[0].text for c in load_cuts(an4_manifests / "an4_cuts_test.jsonl.gz")}
    assert all("<s>" not in t and "</s>" not in t and "(" not in t for t in [*train.values(), *test.values()])
    assert test["an406-fcaw-b"] == "RUBOUT G M E F THREE NINE"
    lines = (an4_manifests / "text_test").read_text().splitlines()
    assert "an406-fcaw-b RUBOUT G M E F THREE NINE" in lines


def test_an4_audio_metadata(an4_manifests):
    cut = load_cuts(an4_manifests / "an4_cuts_test.jsonl.gz")[0]
    assert cut.sampling_rate == 16000
    assert cut.recording.sources[0].source.endswith(".wav")


def test_parse_transcription_error_names_file_and_line(tmp_path):
    path = tmp_path / "an4_train.transcription"
    path.write_text("<s> YES </s> (an251-fash-b)\nNO ID HERE\n")
    with pytest.raises(ValueError, match=r"an4_train.transcription:2:"):
        parse_transcription(path)


def test_parse_transcription_duplicate_id(tmp_path):
    path = tmp_path / "t.transcription"
    path.write_text("YES (a-b-c)\nNO (a-b-c)\n")
    with pytest.raises(ValueError, match=r"t.transcription:2: duplicate"):
        parse_transcription(path)


def test_prepare_rejects_non_an4_dir(tmp_path):
    with pytest.raises(FileNotFoundError, match="not an AN4 directory"):
        prepare_an4(tmp_path, tmp_path / "out")

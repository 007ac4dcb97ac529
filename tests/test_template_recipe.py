"""recipes/template/run.sh end to end: a folder of recordings with a CSV of transcripts to a scored model."""

from __future__ import annotations

import csv
import os
import subprocess

from asr.data.corpora.an4 import parse_transcription
from helpers import REPO, TINY_RECIPE_CONFIG, run_recipe


def test_template_recipe_from_a_csv_to_a_score(an4_dir, tmp_path):
    """6 AN4 speakers x 4 utterances as my_recordings/*.wav and transcripts.csv; every stage runs."""
    texts = parse_transcription(an4_dir / "etc" / "an4_train.transcription")
    recordings = tmp_path / "my_recordings"
    recordings.mkdir()
    per: dict[str, int] = {}
    with open(tmp_path / "transcripts.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["file", "transcript", "speaker"])
        for fileid in (an4_dir / "etc" / "an4_train.fileids").read_text().split():
            speaker, utt = fileid.split("/")[1:]
            if per.get(speaker, 0) >= 4 or (speaker not in per and len(per) == 6):
                continue
            per[speaker] = per.get(speaker, 0) + 1
            (recordings / f"{utt}.wav").symlink_to(an4_dir / "wav" / f"{fileid}.wav")
            writer.writerow([f"my_recordings/{utt}.wav", texts[utt].lower(), speaker])
    (tmp_path / "tiny.yaml").write_text(TINY_RECIPE_CONFIG)
    work = tmp_path / "work"
    work.mkdir()
    result = run_recipe("template", [
        "--importer", "table", "--input", tmp_path / "transcripts.csv", "--config", tmp_path / "tiny.yaml",
        "--prepare-opts", "--audio file --text transcript --speaker speaker --case upper --dev-fraction 0.2 "
        "--test-fraction 0.2", "--avg", "2", "--tune-points", "3"], work)
    for stage in range(1, 10):
        assert f"Stage {stage}:" in result.stdout
    manifests = work / "data/manifests"
    assert {p.name for p in manifests.glob("*.jsonl.gz")} == {f"data_cuts_{s}.jsonl.gz" for s in ("train", "dev", "test")}
    assert (manifests / "text_test").read_text().splitlines()[0].split(" ", 1)[1].isupper()
    assert "errors" in (manifests / "validate.json").read_text()
    hyps = (work / "exp/decode/hyp-test-beam-lm.txt").read_text().splitlines()
    assert len(hyps) == 4  # one held-out test speaker
    summary = (work / "exp/decode/wer-summary.txt").read_text()
    assert "%WER" in summary and "beam-lm" in summary


def test_template_recipe_passes_importer_options_and_fine_tuning_through(tmp_path):
    """With a recording ``asr`` first on PATH: "lhotse NAME" and --prepare-opts are split into words,
    --units and --init-from reach the training command, and each stage runs one command."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "asr").write_text('#!/bin/sh\necho "asr $*" >> "$ASR_LOG"\n')
    (bin_dir / "asr").chmod(0o755)
    (tmp_path / "data/manifests").mkdir(parents=True)  # what the real `asr prepare` makes
    result = subprocess.run(
        ["bash", str(REPO / "recipes/template/run.sh"), "--importer", "lhotse commonvoice", "--input", "cv dir",
         "--prepare-opts", "--opt languages=en", "--units", "bpe", "--init-from", "an4/model.pt", "--stop-stage", "3"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
        env=dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", ASR_LOG=str(tmp_path / "log")))
    assert result.returncode == 0, result.stderr
    cuts = [f"data/manifests/data_cuts_{s}.jsonl.gz" for s in ("train", "dev", "test")]
    assert (tmp_path / "log").read_text().splitlines() == [
        "asr prepare lhotse commonvoice cv dir data/manifests --corpus data --opt languages=en",
        f"asr validate {' '.join(cuts)} --report data/manifests/validate.json",
        f"asr train --config {REPO}/recipes/template/../../conf/an4.yaml --train {cuts[0]} --dev {cuts[1]} "
        "--exp-dir exp tokenizer.kind=bpe init_from=an4/model.pt init_units=data"]

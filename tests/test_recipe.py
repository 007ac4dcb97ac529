"""Smoke run of every AN4 recipe stage on a tiny corpus in the real AN4 layout."""

from __future__ import annotations

import subprocess
from pathlib import Path

from helpers import REPO, run_recipe

TINY_CONFIG = """\
model:
  encoder: {num_layers: 1, hidden_size: 32}
data: {max_duration: 30.0, num_buckets: 2}
optim: {warmup_steps: 2}
epochs: 2
"""


def _tiny_an4(an4_dir: Path, root: Path, speakers_per_split: dict[str, int], utts_per_speaker: int = 3) -> Path:
    """Copy of the AN4 layout with a few speakers per split; audio files are symlinks."""
    corpus = root / "an4"
    (corpus / "etc").mkdir(parents=True)
    for split, num_speakers in speakers_per_split.items():
        lines = (an4_dir / "etc" / f"an4_{split}.fileids").read_text().split()
        by_speaker: dict[str, list[str]] = {}
        for fileid in lines:
            by_speaker.setdefault(fileid.split("/")[1], []).append(fileid)
        chosen = [f for spk in sorted(by_speaker)[:num_speakers] for f in by_speaker[spk][:utts_per_speaker]]
        ids = {Path(f).name for f in chosen}
        transcripts = [
            line for line in (an4_dir / "etc" / f"an4_{split}.transcription").read_text().splitlines()
            if line.strip() and line.rstrip().rsplit("(", 1)[1].rstrip(")") in ids
        ]
        (corpus / "etc" / f"an4_{split}.fileids").write_text("\n".join(chosen) + "\n")
        (corpus / "etc" / f"an4_{split}.transcription").write_text("\n".join(transcripts) + "\n")
        for fileid in chosen:
            link = corpus / "wav" / f"{fileid}.wav"
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(an4_dir / "wav" / f"{fileid}.wav")
    return corpus


def test_an4_recipe_stages_end_to_end(an4_dir, tmp_path):
    corpus = _tiny_an4(an4_dir, tmp_path / "corpus", {"train": 8, "test": 2})
    (tmp_path / "tiny.yaml").write_text(TINY_CONFIG)
    work = tmp_path / "work"
    work.mkdir()
    result = run_recipe("an4", ["--data-dir", corpus, "--config", tmp_path / "tiny.yaml", "--avg", "2"], work)
    for stage in range(1, 6):
        assert f"Stage {stage}:" in result.stdout
    manifests = work / "data/manifests"
    assert {p.name for p in manifests.glob("*.jsonl.gz")} == {
        "an4_cuts_train.jsonl.gz", "an4_cuts_dev.jsonl.gz", "an4_cuts_test.jsonl.gz"}
    exp = work / "exp"
    assert [p.name for p in sorted(exp.glob("checkpoints/epoch-*.pt"))] == ["epoch-001.pt", "epoch-002.pt"]
    assert (exp / "model.pt").is_file()
    hyps = (exp / "decode/hyp-test-greedy.txt").read_text().splitlines()
    assert len(hyps) == 6
    summary = (exp / "decode/wer-summary.txt").read_text()
    assert "%WER" in summary and "%CER" in summary
    assert "%WER" in result.stdout


def test_recipe_rejects_unknown_option(tmp_path):
    result = subprocess.run(["bash", str(REPO / "recipes/an4/run.sh"), "--bogus", "1"],
                            cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 2
    assert "unknown option --bogus" in result.stderr

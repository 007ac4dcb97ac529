"""Recipe scripts: every AN4 stage on a tiny corpus in the real AN4 layout, the shared option parser,
and the encoder study's conf files."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from asr.config import load_config
from asr.data.cuts import load_cuts
from asr.data.corpora.an4 import parse_transcription
from asr.data.tokenizer import CharTokenizer
from asr.model.checkpoint import model_package, save_atomic
from asr.model.ctc import CTCModel
from helpers import REPO, TINY, TINY_RECIPE_CONFIG, run_recipe

SCRIPTS = ["an4/run.sh", "an4/compare.sh", "an4/streaming.sh", "timit/run.sh", "librispeech/run.sh", "template/run.sh"]


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


@pytest.mark.slow  # 255 s with load average 10 on 2 cores
def test_an4_recipe_stages_end_to_end(an4_dir, tmp_path):
    corpus = _tiny_an4(an4_dir, tmp_path / "corpus", {"train": 8, "test": 2})
    (tmp_path / "tiny.yaml").write_text(TINY_RECIPE_CONFIG)
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


def _run(script: str, args: list, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(REPO / "recipes" / script), *map(str, args)], cwd=cwd,
                          env=dict(os.environ, **env), capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("script", SCRIPTS)
def test_parse_options_help_lists_every_declared_option(script, tmp_path):
    text = (REPO / "recipes" / script).read_text()
    declared = re.findall(r"^([a-z][a-z0-9_]*)=.*\s#", text.split("parse_options.sh")[0], flags=re.M)
    assert "stage" in declared and "stop_stage" in declared
    result = _run(script, ["--help"], tmp_path)
    assert result.returncode == 0, result.stderr
    listed = re.findall(r"^  --([a-z0-9-]+) ", result.stdout, flags=re.M)
    assert listed == [name.replace("_", "-") for name in declared]
    assert not any(tmp_path.iterdir())  # --help runs no stage


@pytest.mark.parametrize("script", SCRIPTS)
@pytest.mark.parametrize("args, message", [
    (["--bogus", "1"], "unknown option --bogus"),
    (["--recipe-dir", "x"], "unknown option --recipe-dir"),  # a variable without a help comment is no option
    (["stray"], "unknown option stray"),
    (["--stage"], "option --stage needs a value"),
])
def test_parse_options_rejects_bad_arguments(script, args, message, tmp_path):
    result = _run(script, args, tmp_path)
    assert result.returncode == 2
    assert message in result.stderr
    assert "--stop-stage" in result.stderr or "needs a value" in result.stderr  # names the known options


def test_parse_options_values_reach_the_commands(tmp_path):
    """With a recording ``asr`` first on PATH: ``--name value`` and ``--name=value`` set what the stages run."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "asr").write_text('#!/bin/sh\necho "asr $*" >> "$ASR_LOG"\n')
    (bin_dir / "asr").chmod(0o755)
    work = tmp_path / "work"
    work.mkdir()
    result = _run("an4/run.sh", ["--config", "my conf.yaml", "--exp-dir=e x", "--avg", "3", "--stage=2",
                                 "--stop-stage", "3", "--seed", "2", "--threads=1"], work,
                  PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", ASR_LOG=str(tmp_path / "log"))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "log").read_text().splitlines() == [
        "asr train --config my conf.yaml --train data/manifests/an4_cuts_train.jsonl.gz "
        "--dev data/manifests/an4_cuts_dev.jsonl.gz --exp-dir e x seed=2 num_threads=1",
        "asr average e x --last 3 --out e x/model.pt",
    ]
    stages, times = result.stdout.split("Wall time per stage:\n")
    assert [line.split(" ", 2)[2] for line in stages.splitlines()] == [
        "Stage 2: train with my conf.yaml into e x", "Stage 3: average the last 3 epoch checkpoints"]
    assert re.fullmatch(r"  stage  2  train with my conf.yaml into e x +\d+ s\n"
                        r"  stage  3  average the last 3 epoch checkpoints +\d+ s\n"
                        r"  all stages +\d+ s \(\d+ min \d\d s\)\n", times)


def test_stage_times_are_printed_when_a_stage_fails(tmp_path):
    """A failing stage ends the recipe with its status, after the time of every stage begun."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "asr").write_text('#!/bin/sh\nsleep 1\n[ "$1" != average ]\n')
    (bin_dir / "asr").chmod(0o755)
    result = _run("an4/run.sh", ["--stage", "2"], tmp_path, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    assert result.returncode == 1
    times = result.stdout.split("Wall time per stage:\n")[1].splitlines()
    assert [line.split()[:2] for line in times[:2]] == [["stage", "2"], ["stage", "3"]]
    seconds = [int(line.split()[-2]) for line in times[:2]]
    assert min(seconds) >= 1  # each stage ran a one-second asr
    assert times[2].split()[:3] == ["all", "stages", str(sum(seconds))]


def test_streaming_recipe_trains_each_chunk_size_and_scores_all(tmp_path):
    """streaming.sh: one uni system, one LC-BLSTM per chunk size and one fine-tuned from the offline model per
    fine-tuning chunk size, each decoded, all scored with the offline one."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "asr").write_text('#!/bin/sh\necho "asr $*" >> "$ASR_LOG"\n')
    (bin_dir / "asr").chmod(0o755)
    result = _run("an4/streaming.sh", ["--chunks", "8 4", "--right-context=3", "--epochs", "7", "--stop-stage", "1"],
                  tmp_path, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", ASR_LOG=str(tmp_path / "log"))
    assert result.returncode == 0, result.stderr
    trains = (tmp_path / "log").read_text().splitlines()
    assert [line.split("--exp-dir ")[1] for line in trains] == [
        "exp-uni epochs=7 seed=0 num_threads=0 distill_from=exp/model.pt",  # shift and weight: its yaml's
        "exp-lcblstm-c8-r3 epochs=7 model.encoder.chunk_frames=8 model.encoder.right_context=3 seed=0 num_threads=0",
        "exp-lcblstm-c4-r3 epochs=7 model.encoder.chunk_frames=4 model.encoder.right_context=3 seed=0 num_threads=0",
        "exp-lcblstm-ft-c5-r8 init_from=exp/model.pt model.encoder.chunk_frames=5 model.encoder.right_context=8 "
        "seed=0 num_threads=0"]
    configs = ["an4_uni.yaml", "an4_lcblstm.yaml", "an4_lcblstm.yaml", "an4_lcblstm_ft.yaml"]
    assert all(f"/{conf} " in line for line, conf in zip(trains, configs))
    (tmp_path / "log").unlink()
    result = _run("an4/streaming.sh", ["--uni", "false", "--chunks", "", "--offline-exp", "exp-s1", "--seed", "1",
                                       "--distill-weight", "0.5", "--distill-shift", "2", "--ft-epochs", "12",
                                       "--stop-stage", "1"],
                  tmp_path, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", ASR_LOG=str(tmp_path / "log"))
    assert result.returncode == 0, result.stderr
    (taught,) = (tmp_path / "log").read_text().splitlines()
    assert taught.split("--exp-dir ")[1] == (
        "exp-lcblstm-ft-c5-r8-kd2-s1 init_from=exp-s1/model.pt model.encoder.chunk_frames=5 "
        "model.encoder.right_context=8 epochs=12 seed=1 num_threads=0 distill_from=exp-s1/model.pt distill_weight=0.5 "
        "distill_temperature=1.0 distill_shift=2")
    (tmp_path / "log").unlink()
    result = _run("an4/streaming.sh", ["--uni-teacher", "false", "--chunks", "", "--ft-chunks", "", "--stop-stage", "1"],
                  tmp_path, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", ASR_LOG=str(tmp_path / "log"))
    assert result.returncode == 0, result.stderr
    (alone,) = (tmp_path / "log").read_text().splitlines()
    assert alone.split("--exp-dir ")[1] == "exp-uni-ctc epochs=40 seed=0 num_threads=0"
    (tmp_path / "log").unlink()
    result = _run("an4/streaming.sh", ["--chunks", "8", "--ft-chunks", "", "--stage", "6"], tmp_path,
                  PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", ASR_LOG=str(tmp_path / "log"))
    assert result.returncode == 0, result.stderr
    (score,) = (tmp_path / "log").read_text().splitlines()
    hyps = score.split("--hyp ")[1].split()
    assert hyps == ["exp-streaming/hyp-test-exp-uni-greedy.txt", "exp-streaming/hyp-test-exp-uni-beam-lm.txt",
                    "exp-streaming/hyp-test-exp-lcblstm-c8-r2-greedy.txt",
                    "exp-streaming/hyp-test-exp-lcblstm-c8-r2-beam-lm.txt",
                    "exp/decode/hyp-test-greedy.txt", "exp/decode/hyp-test-beam-lm.txt"]


def test_study_trains_every_variant_with_valid_overrides(tmp_path):
    """study.sh stages 0-1 with a recording ``asr``: the study split, then one training per variant whose
    overrides of conf/an4.yaml all load (a misspelt key fails here, not after an hour of training)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "asr").write_text('#!/bin/sh\necho "asr $*" >> "$ASR_LOG"\n')
    (bin_dir / "asr").chmod(0o755)
    (tmp_path / "exp/study/manifests").mkdir(parents=True)  # what the real `asr prepare` makes
    variants = re.findall(r"^  \[([a-z0-9-]+)\]=", (REPO / "recipes/an4/study.sh").read_text(), re.M)
    assert len(variants) >= 9
    result = _run("an4/study.sh", ["--stop-stage", "1", "--data-dir", "an4", "--variants", " ".join(variants)],
                  tmp_path, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", ASR_LOG=str(tmp_path / "log"))
    assert result.returncode == 0, result.stderr
    prepare, *trains = (tmp_path / "log").read_text().splitlines()
    assert prepare == "asr prepare an4 an4 exp/study/manifests --dev-fraction 0.15"
    assert [line.split("--exp-dir exp/study/exp/")[1].split()[0] for line in trains] == variants
    for line in trains:
        overrides = line.split("--exp-dir ")[1].split()[1:]
        assert overrides[0] == "num_threads=1"
        load_config(REPO / "conf/an4.yaml", overrides)


# compare.sh: every cell at about 4.19M parameters with AN4's 28 character units on x3 frames (the rate the
# study was run at); the rest as conf/an4.yaml.
COMPARE = [("rnn", 528, 4_192_348), ("gru", 298, 4_186_332), ("lstm", 256, 4_188_188)]


@pytest.mark.parametrize("cell, hidden_size, num_params", COMPARE)
def test_compare_conf_differs_from_an4_only_in_cell_size_and_epochs(cell, hidden_size, num_params, an4_dir):
    conf = REPO / "conf"
    cfg = load_config(conf / f"an4_{cell}.yaml")
    assert cfg == load_config(conf / "an4.yaml", [f"model.encoder.cell={cell}", "model.subsampling.factor=3",
                                                   f"model.encoder.hidden_size={hidden_size}", "epochs=30"])
    tokenizer = CharTokenizer.train(parse_transcription(an4_dir / "etc" / "an4_train.transcription").values())
    assert len(tokenizer.units) == 28
    assert sum(p.numel() for p in CTCModel(cfg.model, len(tokenizer.units)).parameters()) == num_params


def test_seed_table_gives_each_seed_and_the_mean_and_sample_deviation(tmp_path):
    """local/seed_table.py on three run folders as run.sh and asr score leave them."""
    wers = [10.0, 12.0, 14.0]
    for seed, wer in enumerate(wers):
        decode = tmp_path / f"exp-s{seed}" / "decode"
        decode.mkdir(parents=True)
        for method in ("greedy", "beam-lm"):
            for unit, rate in (("word", wer), ("char", wer / 2)):
                (decode / f"score-hyp-test-{method}-{unit}.json").write_text(json.dumps({"overall": {"err_rate": rate}}))
        (tmp_path / f"exp-s{seed}" / "log.csv").write_text("epoch,seconds\n1,60\n2," + str(60 * seed) + "\n")
    (tmp_path / "exp-s1" / "lm-params.yaml").write_text("lm_weight: 0.75\nword_score: 1.0\n")
    result = subprocess.run([sys.executable, str(REPO / "recipes/an4/local/seed_table.py"), "exp-s0", "exp-s1",
                             "exp-s2"], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    rows = result.stdout.splitlines()
    assert rows[3] == "| exp-s1 | 12.00 | 6.00 | 12.00 | 6.00 | 0.75 / 1.0 | 2.0 |"
    assert rows[5] == ("| **mean ± sd of 3** | **12.00 ± 2.00** | **6.00 ± 1.00** | **12.00 ± 2.00** | **6.00 ± 1.00** "
                       "| | **2.00 ± 1.00** |")


def _peaks(frames: int, spikes: dict[int, int]) -> np.ndarray:
    """(frames, 4) log-probs: blank (0) everywhere but ``spikes`` {frame: unit}."""
    probs = np.full((frames, 4), 0.01, dtype=np.float32)
    probs[:, 0] = 0.97
    for frame, unit in spikes.items():
        probs[frame] = 0.01
        probs[frame, unit] = 0.97
    return np.log(probs)


def test_spike_delay_measures_how_many_frames_later_a_student_emits(small_sets, tmp_path):
    """local/spike_delay.py: delays of known spikes, then the command on a real manifest."""
    spec = importlib.util.spec_from_file_location("spike_delay", REPO / "recipes/an4/local/spike_delay.py")
    spike_delay = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(spike_delay)
    teacher = [_peaks(12, {2: 2, 3: 2, 6: 3}), _peaks(8, {1: 1})]  # a token's spike: the first frame of its span
    student = [_peaks(12, {4: 2, 5: 2, 6: 2, 9: 3}), _peaks(8, {1: 1})]
    assert spike_delay.spike_delays(teacher, student, [[2, 3], [1]], blank=0) == [2, 3, 0]

    cuts = small_sets / "cuts12.jsonl.gz"
    tokenizer = CharTokenizer.train(c.supervisions[0].text for c in load_cuts(cuts))
    model = CTCModel(load_config(None, TINY).model, len(tokenizer.units))  # untrained: any alignment will do
    save_atomic(model_package(model, tokenizer), tmp_path / "model.pt")
    result = subprocess.run([sys.executable, str(REPO / "recipes/an4/local/spike_delay.py"), "model.pt", "model.pt",
                             str(cuts)], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "of 12 utterances: student minus teacher spike frame mean 0.00, median 0" in result.stdout
    assert result.stdout.splitlines()[1].split()[::2] == ["+0", "100.0%"]
    fewer = CharTokenizer(tokenizer.units[:-1])
    save_atomic(model_package(CTCModel(load_config(None, TINY).model, len(fewer.units)), fewer), tmp_path / "other.pt")
    result = subprocess.run([sys.executable, str(REPO / "recipes/an4/local/spike_delay.py"), "model.pt", "other.pt",
                             str(cuts)], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == f"other.pt: its {len(fewer.units)} units differ from the teacher's {len(tokenizer.units)}\n"

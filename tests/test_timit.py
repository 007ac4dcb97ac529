"""TIMIT: preparation from the LDC layout, the phone foldings, and the recipe end to end.

The 160-utterance NLTK sample (flat ``drN-speaker/utt.{wav,phn,wrd,txt}``) is arranged into the
LDC layout (``TRAIN|TEST/DRn/SPEAKER/UTT.WAV``) with symlinks; none of its 16 speakers is on the
standard dev or core test lists, so the tests name their own.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import re
import subprocess
from pathlib import Path

import pytest
from helpers import REPO, corpus_dir, run_recipe

from asr.data.corpora.timit import (TIMIT_CORE_TEST_SPEAKERS, TIMIT_DEV_SPEAKERS, prepare_timit, read_phn,
                               read_speaker_list)
from asr.data.cuts import cut_audio
from asr.data.phones import TIMIT_48, TIMIT_61, TIMIT_61_TO_39, TIMIT_61_TO_48, TIMIT_TO_39

DEV = ["fvmh0", "marc0"]  # moved under TEST/ by _arrange
TEST = ["falk0", "maeb0"]
UNLISTED = ["ftlg0"]  # under TEST/ but in neither list: not used


@pytest.fixture(scope="session")
def timit_sample() -> Path:
    return corpus_dir("timit_sample")


def _arrange(sample: Path, root: Path, test_speakers=(*DEV, *TEST, *UNLISTED), train_speakers=None,
             lower: bool = False) -> Path:
    """The sample in the LDC layout under ``root`` (symlinks); ``train_speakers`` None: all the others."""
    case = str.lower if lower else str.upper
    for directory in sorted(sample.glob("dr*-*")):
        region, speaker = directory.name.split("-")
        if speaker in test_speakers:
            part = "test"
        elif train_speakers is None or speaker in train_speakers:
            part = "train"
        else:
            continue
        target = root / case(part) / case(region) / case(speaker)
        target.mkdir(parents=True)
        for path in directory.iterdir():
            if path.suffix in (".wav", ".phn", ".wrd", ".txt"):
                (target / case(path.name)).symlink_to(path)
    return root


@pytest.fixture(scope="module")
def prepared(timit_sample, tmp_path_factory):
    tree = _arrange(timit_sample, tmp_path_factory.mktemp("timit") / "TIMIT")
    out = tmp_path_factory.mktemp("timit_manifests")
    return prepare_timit(tree, out, dev_speakers=DEV, test_speakers=TEST), out


# ------------------------------------------------------------------------------ preparation


def test_prepare_splits_ids_and_files(prepared):
    splits, out = prepared
    assert {p.name for p in out.glob("*.jsonl.gz")} == {f"timit_cuts_{s}.jsonl.gz" for s in ("train", "dev", "test")}
    speakers = {name: sorted({c.supervisions[0].speaker for c in cuts}) for name, cuts in splits.items()}
    assert speakers["dev"] == sorted(DEV) and speakers["test"] == sorted(TEST)
    assert len(speakers["train"]) == 16 - 5 and not set(speakers["train"]) & {*DEV, *TEST, *UNLISTED}
    for name, cuts in splits.items():
        assert len(cuts) == 8 * len(speakers[name])  # 10 sentences a speaker, SA1 and SA2 left out
        ids = [c.id for c in cuts]
        assert len(set(ids)) == len(ids)
        assert all(re.fullmatch(r"[fm][a-z]{3}\d_s[ix]\d+", i) for i in ids), ids[:3]
        assert all(c.id.split("_")[0] == c.supervisions[0].speaker for c in cuts)
        text = dict(line.split(" ", 1) for line in (out / f"text_{name}").read_text().splitlines())
        utt2spk = dict(line.split() for line in (out / f"utt2spk_{name}").read_text().splitlines())
        assert sorted(text) == sorted(utt2spk) == sorted(ids)
        assert all(text[c.id] == c.supervisions[0].text for c in cuts)
    assert "fvmh0_si1466" in {c.id for c in splits["dev"]}
    assert not any("_sa" in c.id for cuts in splits.values() for c in cuts)


def test_prepare_maps_61_to_48_from_the_phn_offsets(prepared, timit_sample):
    splits, _ = prepared
    cut = next(c for c in splits["dev"] if c.id == "fvmh0_si1466")
    rows = read_phn(timit_sample / "dr1-fvmh0" / "si1466.phn")
    assert rows[:3] == [(0, 8920, "h#"), (8920, 9399, "q"), (9399, 9760, "ix")]
    labels = cut.supervisions[0].text.split()
    assert labels[:5] == ["sil", "ix", "n", "s", "ih"]  # h# -> sil, q deleted
    assert labels == [TIMIT_61_TO_48[p] for _, _, p in rows if p != "q"]
    assert set(labels) <= set(TIMIT_48) and "cl" in labels  # pcl/tcl/kcl -> cl
    assert cut.start == 0.0 and cut.duration == pytest.approx(rows[-1][1] / 16000)
    alignment = cut.supervisions[0].alignment["phone"]
    assert [a.symbol for a in alignment] == labels
    assert alignment[1].start == pytest.approx(9399 / 16000) and alignment[1].duration == pytest.approx(361 / 16000)
    audio = cut_audio(cut, 16000)  # the NIST SPHERE file stays the source
    assert abs(audio.numel() - rows[-1][1]) <= 1
    assert cut.recording.sources[0].type == "file" and cut.recording.sources[0].source.endswith("si1466.wav")


@pytest.mark.parametrize("phones, allowed", [(61, set(TIMIT_61)), (39, set(TIMIT_61_TO_39.values()) - {""})])
def test_prepare_other_phone_sets_and_lower_case_layout(timit_sample, tmp_path, phones, allowed):
    tree = _arrange(timit_sample, tmp_path / "timit", test_speakers=("fvmh0", "falk0"), train_speakers=("mcpm0",),
                    lower=True)
    splits = prepare_timit(tree, tmp_path / "out", phones=phones, dev_speakers=["FVMH0"], test_speakers=["falk0"])
    assert [len(splits[s]) for s in ("train", "dev", "test")] == [8, 8, 8]
    cut = next(c for c in splits["dev"] if c.id == "fvmh0_si1466")
    rows = read_phn(timit_sample / "dr1-fvmh0" / "si1466.phn")
    expected = [p for _, _, p in rows] if phones == 61 else [TIMIT_61_TO_39[p] for _, _, p in rows if p != "q"]
    assert cut.supervisions[0].text.split() == expected
    assert {p for c in splits["train"] for p in c.supervisions[0].text.split()} <= allowed


def test_malformed_phn_line_names_file_and_line(timit_sample, tmp_path):
    tree = _arrange(timit_sample, tmp_path / "timit", test_speakers=("fvmh0", "falk0"), train_speakers=("mcpm0",))
    phn = tree / "TRAIN/DR1/MCPM0/SX114.PHN"
    lines = phn.read_text().splitlines()
    phn.unlink()
    phn.write_text("\n".join(lines[:2] + ["2200 oops"] + lines[3:]) + "\n")
    with pytest.raises(ValueError, match=rf"^{re.escape(str(phn))}:3: expected 'START END PHONE'"):
        prepare_timit(tree, tmp_path / "out", dev_speakers=["fvmh0"], test_speakers=["falk0"])
    phn.write_text("\n".join(lines[:1] + ["100 200 zz"]) + "\n")
    with pytest.raises(ValueError, match=rf"{re.escape(str(phn))}:2: 'zz' is not one of the 61"):
        read_phn(phn)


def test_missing_listed_speakers_warn_with_count(timit_sample, tmp_path, caplog):
    tree = _arrange(timit_sample, tmp_path / "timit", test_speakers=("fvmh0", "falk0"), train_speakers=("mcpm0",))
    with caplog.at_level(logging.WARNING, logger="asr.data.corpora.timit"):
        splits = prepare_timit(tree, tmp_path / "out", dev_speakers=["fvmh0", "faks0", "fdac1"],
                               test_speakers=["falk0"])
    assert len(splits["dev"]) == 8
    assert "timit dev: 2 of 3 listed speakers not found" in caplog.text
    with pytest.raises(ValueError, match="none of the 24 listed speakers"):  # the standard test set is absent
        prepare_timit(tree, tmp_path / "out2", dev_speakers=["fvmh0"])
    with pytest.raises(ValueError, match="both the dev and the test list: falk0"):
        prepare_timit(tree, tmp_path / "out3", dev_speakers=["falk0"], test_speakers=["falk0"])
    with pytest.raises(FileNotFoundError, match="not a TIMIT directory"):
        prepare_timit(tmp_path / "out", tmp_path / "out4")


def test_standard_speaker_lists():
    assert len(set(TIMIT_DEV_SPEAKERS)) == 50 and len(set(TIMIT_CORE_TEST_SPEAKERS)) == 24
    assert not set(TIMIT_DEV_SPEAKERS) & set(TIMIT_CORE_TEST_SPEAKERS)
    assert all(re.fullmatch(r"[fm][a-z]{3}\d", s) for s in TIMIT_DEV_SPEAKERS + TIMIT_CORE_TEST_SPEAKERS)
    # the core test set: 2 men and 1 woman from each of the 8 dialect regions
    assert sum(s.startswith("f") for s in TIMIT_CORE_TEST_SPEAKERS) == 8


def test_cli_prepare_timit_with_speaker_files(timit_sample, tmp_path):
    from asr.cli import main

    tree = _arrange(timit_sample, tmp_path / "timit", test_speakers=("fvmh0", "falk0"), train_speakers=("mcpm0",))
    (tmp_path / "dev.list").write_text("# dev\nFVMH0\n")
    (tmp_path / "test.list").write_text("falk0\n")
    assert read_speaker_list(tmp_path / "dev.list") == ["fvmh0"]
    assert main(["prepare", "timit", str(tree), str(tmp_path / "out"), "--phones", "61",
                 "--dev-speakers", str(tmp_path / "dev.list"), "--test-speakers", str(tmp_path / "test.list")]) == 0
    assert "h#" in (tmp_path / "out/text_dev").read_text()
    assert main(["prepare", "an4", str(tree), str(tmp_path / "out"), "--phones", "61"]) == 1


# ------------------------------------------------------------------------------ phone foldings

# Lee & Hon (1989), table of the 39 folded classes: every other phone is a class of its own, q is deleted.
LEE_HON_39_GROUPS = [
    {"aa", "ao"}, {"ah", "ax", "ax-h"}, {"er", "axr"}, {"hh", "hv"}, {"ih", "ix"}, {"l", "el"}, {"m", "em"},
    {"n", "en", "nx"}, {"ng", "eng"}, {"sh", "zh"}, {"uw", "ux"},
    {"sil", "pcl", "tcl", "kcl", "bcl", "dcl", "gcl", "h#", "pau", "epi"},
]
# Lee & Hon's 48 training phones: these groups merge, the closures become cl (voiceless) and vcl.
LEE_HON_48_GROUPS = [{"ax", "ax-h"}, {"er", "axr"}, {"hh", "hv"}, {"m", "em"}, {"n", "nx"}, {"ng", "eng"},
                     {"uw", "ux"}, {"cl", "pcl", "tcl", "kcl"}, {"vcl", "bcl", "dcl", "gcl"}, {"sil", "h#", "pau"}]
STANDARD_61 = set("""aa ae ah ao aw ax ax-h axr ay b bcl ch d dcl dh dx eh el em en eng epi er ey f g gcl h# hh hv
ih ix iy jh k kcl l m n ng nx ow oy p pau pcl q r s sh t tcl th uh uw ux v w y z zh""".split())


def _partition(groups: list[set[str]]) -> set[frozenset[str]]:
    """Classes over the 61 phones (q excluded): the groups' members, every other phone alone."""
    grouped = set().union(*groups)
    classes = {frozenset(g & STANDARD_61) for g in groups}
    return classes | {frozenset({p}) for p in STANDARD_61 - grouped - {"q"}}


def _classes(table: dict[str, str]) -> set[frozenset[str]]:
    inverse: dict[str, set[str]] = {}
    for phone, target in table.items():
        if target:
            inverse.setdefault(target, set()).add(phone)
    return {frozenset(members) for members in inverse.values()}


def test_folding_tables_match_lee_and_hon():
    assert set(TIMIT_61) == STANDARD_61 and len(STANDARD_61) == 61
    assert TIMIT_61_TO_39["q"] == "" and TIMIT_61_TO_48["q"] == ""
    assert _classes(TIMIT_61_TO_39) == _partition(LEE_HON_39_GROUPS)
    assert len(_partition(LEE_HON_39_GROUPS)) == 39 == len(set(TIMIT_61_TO_39.values()) - {""})
    assert _classes(TIMIT_61_TO_48) == _partition(LEE_HON_48_GROUPS)
    assert len(TIMIT_48) == 48 and {"cl", "vcl", "sil", "epi"} <= set(TIMIT_48)
    # scoring folds a 48-phone model's output the same way as the 61 references it came from
    assert all(TIMIT_TO_39[TIMIT_61_TO_48[p]] == TIMIT_61_TO_39[p] for p in STANDARD_61 - {"q"})
    assert {TIMIT_TO_39[p] for p in ("cl", "vcl", "epi", "h#", "pau")} == {"sil"}


# ------------------------------------------------------------------------------ phone models


@pytest.mark.filterwarnings("ignore:`torch.jit.*` is deprecated:FutureWarning")
def test_phone_model_greedy_export_and_transcribe_agree(timit_sample):
    """Phones stay space-separated words through greedy search, the TorchScript export and transcribe."""
    import torch

    from asr.audio.io import load_audio
    from asr.config import EncoderConfig, ModelConfig
    from asr.data.cuts import collate_feats
    from asr.decoding.search import greedy_search
    from asr.inference.export import script_model
    from asr.audio.features import LogMel
    from asr.model.ctc import CTCModel
    from asr.data.tokenizer import PhoneTokenizer
    from asr.inference.transcribe import Transcriber

    torch.manual_seed(0)
    tokenizer = PhoneTokenizer(["<blk>", *TIMIT_48])
    model = CTCModel(ModelConfig(encoder=EncoderConfig(num_layers=1, hidden_size=16)), len(tokenizer.units)).eval()
    with torch.no_grad():
        model.output.bias[0] = -50.0  # an untrained model that never emits the blank emits many phones
    wav = timit_sample / "dr1-fvmh0" / "si1466.wav"
    feats, lens = collate_feats([LogMel(model.cfg.features)(load_audio(wav))])
    with torch.no_grad():
        hyp = greedy_search(*model(feats, lens), tokenizer, frame_shift=0.03)[0]
    phones = hyp.text.split()
    assert len(phones) > 10 and set(phones) <= set(TIMIT_48)
    assert [w.word for w in hyp.words] == phones
    assert script_model(model, tokenizer).greedy_text(load_audio(wav)) == hyp.text
    (_, transcript), = Transcriber(model, tokenizer)([wav])
    assert transcript.text == hyp.text and [w.word for w in transcript.words] == phones


# ------------------------------------------------------------------------------ recipe

TINY_CONFIG = """\
model:
  encoder: {num_layers: 1, hidden_size: 32}
tokenizer: {kind: phone}
data: {max_duration: 30.0, num_buckets: 2}
optim: {warmup_steps: 2}
epochs: 2
num_threads: 1
"""


def test_timit_recipe_end_to_end(timit_sample, tmp_path):
    tree = _arrange(timit_sample, tmp_path / "timit", test_speakers=("fvmh0", "falk0"),
                    train_speakers=("mcpm0", "faem0", "madc0", "falr0"))
    (tmp_path / "dev.list").write_text("fvmh0\n")
    (tmp_path / "test.list").write_text("falk0\n")
    (tmp_path / "tiny.yaml").write_text(TINY_CONFIG)
    work = tmp_path / "work"
    work.mkdir()
    # one thread per process: the decode and score commands would otherwise use every core
    result = run_recipe("timit", ["--data-dir", tree, "--config", tmp_path / "tiny.yaml", "--avg", "2",
                                  "--dev-speakers", tmp_path / "dev.list", "--test-speakers", tmp_path / "test.list"],
                        work, OMP_NUM_THREADS="1")
    for stage in range(1, 6):
        assert f"Stage {stage}:" in result.stdout
    manifests = work / "data/manifests"
    assert {p.name for p in manifests.glob("*.jsonl.gz")} == {
        "timit_cuts_train.jsonl.gz", "timit_cuts_dev.jsonl.gz", "timit_cuts_test.jsonl.gz"}
    with gzip.open(manifests / "timit_cuts_train.jsonl.gz", "rt") as f:
        assert sum(1 for _ in f) == 32
    exp = work / "exp"
    assert [p.name for p in sorted(exp.glob("checkpoints/epoch-*.pt"))] == ["epoch-001.pt", "epoch-002.pt"]
    for part, speaker in (("dev", "fvmh0"), ("test", "falk0")):
        refs = dict(line.split(" ", 1) for line in (manifests / f"text_{part}").read_text().splitlines())
        assert len(refs) == 8 and all(i.startswith(f"{speaker}_") for i in refs)
        for method in ("greedy", "beam"):
            hyps = (exp / f"decode/hyp-{part}-{method}.txt").read_text().splitlines()
            assert sorted(line.split(" ", 1)[0] for line in hyps) == sorted(refs)
            for line in (exp / f"decode/hyp-{part}-{method}.jsonl").read_text().splitlines():
                row = json.loads(line)
                assert set(row["text"].split()) <= set(TIMIT_48)
                assert [w["word"] for w in row.get("words", [])] == row["text"].split()  # phones are the words
        summary = (exp / f"decode/scores-{part}/wer-summary.txt").read_text().splitlines()
        assert len(summary) == 2 and all(re.search(r"\t%PER \d+\.\d\d \[ \d+ / \d+,", line) for line in summary)
        errs = (exp / f"decode/scores-{part}/errs-hyp-{part}-greedy-phone.txt").read_text()
        assert "fold=timit39" in errs
        ref_tokens = {t for line in errs.splitlines() if line.startswith("REF:") for t in line[4:].split()}
        assert ref_tokens and ref_tokens <= set(TIMIT_61_TO_39.values()) | {"***"}  # folded to 39
    assert "%PER" in result.stdout


def test_recipe_requires_data_dir(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TIMIT_DIR"}
    result = subprocess.run(["bash", str(REPO / "recipes/timit/run.sh")], cwd=tmp_path, env=env,
                            capture_output=True, text=True)
    assert result.returncode == 2 and "LDC licence" in result.stderr
    result = subprocess.run(["bash", str(REPO / "recipes/timit/run.sh"), "--bogus", "1"], cwd=tmp_path,
                            capture_output=True, text=True)
    assert result.returncode == 2 and "unknown option --bogus" in result.stderr


def test_prepare_rejects_an4_only_options_for_timit(tmp_path, capsys):
    from asr.cli import main

    assert main(["prepare", "timit", str(tmp_path), str(tmp_path / "out"), "--dev-fraction", "0.1"]) == 1
    assert capsys.readouterr().err.strip() == "asr prepare: error: --dev-fraction: an4, kaldi, table, jsonl, folder only, not for timit"

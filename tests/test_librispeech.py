"""LibriSpeech: preparation, speed perturbation, and every recipe stage on a stand-in corpus.

The stand-in is a few dozen AN4 utterances in the exact LibriSpeech layout (FLAC files, numeric
speaker/chapter ids, ``SPEAKER-CHAPTER.trans.txt``), built in ``tmp_path``, plus a tiny LM
directory shaped like openslr SLR11 (``3-gram.pruned.1e-7.arpa.gz``, ``librispeech-lm-norm.txt.gz``,
``librispeech-vocab.txt``, ``librispeech-lexicon.txt``).
"""

from __future__ import annotations

import gzip
import shutil
import subprocess
from pathlib import Path

import pytest
import soundfile as sf
import torch
import torchaudio.functional as AF

from helpers import REPO, run_recipe

TINY_CONFIG = """\
model:
  encoder: {num_layers: 1, hidden_size: 32}
tokenizer: {kind: bpe, vocab_size: 40}
data: {max_duration: 30.0, num_buckets: 2}
optim: {warmup_steps: 2}
epochs: 2
num_threads: 1
"""

# AN4 split and speakers taken per LibriSpeech part, utterances per speaker
PARTS = {
    "train-clean-100": ("train", 8, 3),
    "dev-clean": ("test", 2, 2),
    "dev-other": ("test", 2, 2),
    "test-clean": ("test", 2, 2),
    "test-other": ("test", 2, 2),
}


def _an4_utterances(an4_dir: Path, split: str) -> dict[str, list[tuple[str, str]]]:
    """AN4 speaker -> [(wav path, words)] in file-id order."""
    from asr.data.corpora.an4 import parse_transcription

    texts = parse_transcription(an4_dir / "etc" / f"an4_{split}.transcription")
    by_speaker: dict[str, list[tuple[str, str]]] = {}
    for fileid in (an4_dir / "etc" / f"an4_{split}.fileids").read_text().split():
        by_speaker.setdefault(fileid.split("/")[1], []).append((str(an4_dir / "wav" / f"{fileid}.wav"),
                                                               texts[Path(fileid).name]))
    return by_speaker


def make_librispeech(an4_dir: Path, root: Path, parts: dict[str, tuple[str, int, int]] = PARTS) -> Path:
    """``root/LibriSpeech/PART/SPEAKER/CHAPTER/SPEAKER-CHAPTER-UTT.flac`` + ``.trans.txt`` from AN4 audio.

    ``parts`` maps each part to (AN4 split, speakers, utterances per speaker). AN4 speakers become
    numeric speakers 100, 101, ... each with one chapter (speaker * 10 + 1).
    """
    corpus = root / "LibriSpeech"
    speakers = {split: _an4_utterances(an4_dir, split) for split in ("train", "test")}
    unused = {split: sorted(by_speaker) for split, by_speaker in speakers.items()}
    number = 100
    for part, (split, num_speakers, per_speaker) in parts.items():
        for _ in range(num_speakers):
            an4_speaker = unused[split].pop(0)
            speaker, chapter = str(number), str(number * 10 + 1)
            number += 1
            chapter_dir = corpus / part / speaker / chapter
            chapter_dir.mkdir(parents=True)
            lines = []
            for i, (wav, words) in enumerate(speakers[split][an4_speaker][:per_speaker]):
                utt = f"{speaker}-{chapter}-{i:04d}"
                samples, rate = sf.read(wav, dtype="int16")
                sf.write(chapter_dir / f"{utt}.flac", samples, rate, format="FLAC", subtype="PCM_16")
                lines.append(f"{utt} {words}\n")
            (chapter_dir / f"{speaker}-{chapter}.trans.txt").write_text("".join(lines))
    return corpus


def make_lm_dir(an4_dir: Path, root: Path) -> Path:
    """SLR11-shaped directory: LM text = AN4 training transcripts, a 3-gram of it, vocabulary, lexicon."""
    from asr.data.corpora.an4 import parse_transcription
    from asr.decoding.lm import build_lm

    lm_dir = root / "lm"
    lm_dir.mkdir()
    sentences = list(parse_transcription(an4_dir / "etc" / "an4_train.transcription").values())
    with gzip.open(lm_dir / "librispeech-lm-norm.txt.gz", "wt") as f:
        f.writelines(f"{s}\n" for s in sentences)
    arpa = root / "3-gram.pruned.1e-7.arpa"
    build_lm(lm_dir / "librispeech-lm-norm.txt.gz", arpa, order=3)
    with open(arpa, "rb") as src, gzip.open(lm_dir / "3-gram.pruned.1e-7.arpa.gz", "wb") as dst:
        shutil.copyfileobj(src, dst)
    words = sorted({w for s in sentences for w in s.split()})
    (lm_dir / "librispeech-vocab.txt").write_text("".join(f"{w}\n" for w in words))
    (lm_dir / "librispeech-lexicon.txt").write_text("".join(f"{w}\t{' '.join(w)}\n" for w in words))
    return lm_dir


@pytest.fixture(scope="module")
def tiny_corpus(an4_dir, tmp_path_factory) -> Path:
    return make_librispeech(an4_dir, tmp_path_factory.mktemp("librispeech"))


# ---------------------------------------------------------------- preparation


def test_prepare_writes_cuts_text_utt2spk(tiny_corpus, tmp_path):
    from asr.data.corpora.librispeech import prepare_librispeech
    from asr.data.cuts import load_cuts

    splits = prepare_librispeech(tiny_corpus.parent, tmp_path, num_jobs=1)  # the directory above works too
    assert list(splits) == ["train-clean-100", "dev-clean", "dev-other", "test-clean", "test-other"]
    assert {p.name for p in tmp_path.glob("*.jsonl.gz")} == {f"librispeech_cuts_{p}.jsonl.gz" for p in PARTS}
    cuts = load_cuts(tmp_path / "librispeech_cuts_train-clean-100.jsonl.gz")
    assert len(cuts) == 24
    first = cuts[0]
    assert first.id == "100-1001-0000" == first.supervisions[0].id == first.recording.id
    assert first.supervisions[0].speaker == "100"
    assert first.recording.sources[0].type == "file"
    assert first.recording.sources[0].source == str(tiny_corpus / "train-clean-100/100/1001/100-1001-0000.flac")
    trans = (tiny_corpus / "train-clean-100/100/1001/100-1001.trans.txt").read_text().splitlines()
    assert first.supervisions[0].text == trans[0].split(maxsplit=1)[1]
    assert first.duration == pytest.approx(sf.info(first.recording.sources[0].source).duration)
    text = (tmp_path / "text_dev-other").read_text().splitlines()
    utt2spk = (tmp_path / "utt2spk_dev-other").read_text().splitlines()
    assert len(text) == len(utt2spk) == 4
    assert [line.split()[0] for line in text] == [line.split()[0] for line in utt2spk]
    assert all(line.split()[1] == line.split("-")[0] for line in utt2spk)


def test_prepare_train_960_needs_all_training_parts(tiny_corpus, tmp_path):
    from asr.data.corpora.librispeech import prepare_librispeech

    with pytest.raises(FileNotFoundError, match="train-clean-360"):
        prepare_librispeech(tiny_corpus, tmp_path, train_960=True)
    with pytest.raises(ValueError, match="unknown LibriSpeech part 'train-clean-50'"):
        prepare_librispeech(tiny_corpus, tmp_path, parts=["train-clean-50"])


@pytest.mark.parametrize("line, message", [
    ("100-1001-0001\n", "expected 'SPEAKER-CHAPTER-UTT WORDS'"),
    ("\n", "expected 'SPEAKER-CHAPTER-UTT WORDS'"),
    ("100_1001_0001 HELLO\n", "expected 'SPEAKER-CHAPTER-UTT WORDS'"),
    ("101-1001-0001 HELLO\n", "not of speaker 100"),
    ("100-1001-0000 AGAIN\n", "duplicate utterance id"),
    ("100-1001-0099 NO AUDIO\n", "no audio file"),
])
def test_bad_transcript_line_names_file_and_line(tiny_corpus, tmp_path, line, message):
    from asr.data.corpora.librispeech import prepare_librispeech

    corpus = tmp_path / "LibriSpeech"
    shutil.copytree(tiny_corpus / "dev-clean", corpus / "dev-clean")
    shutil.copytree(tiny_corpus / "train-clean-100/100", corpus / "train-clean-100/100")
    trans = corpus / "train-clean-100/100/1001/100-1001.trans.txt"
    lines = trans.read_text().splitlines(keepends=True)
    trans.write_text("".join(lines[:1] + [line] + lines[2:]))
    with pytest.raises((ValueError, FileNotFoundError)) as err:
        prepare_librispeech(corpus, tmp_path / "out", parts=["dev-clean", "train-clean-100"])
    assert str(err.value).startswith(f"{trans}:2: ") and message in str(err.value)
    assert "\n" not in str(err.value)


def test_cli_prepare_rejects_options_of_other_corpora(tiny_corpus, tmp_path):
    from asr.cli import main

    assert main(["prepare", "an4", str(tmp_path), str(tmp_path / "out"), "--train-960"]) == 1
    assert main(["prepare", "librispeech", str(tiny_corpus), str(tmp_path / "out"), "--phones", "39"]) == 1
    assert main(["download", "an4", str(tmp_path), "--files", "4-gram.arpa.gz"]) == 1


def test_download_librispeech_lm_skips_present_files(tmp_path, monkeypatch):
    import lhotse.utils

    from asr.data.corpora.librispeech import LM_FILES, download_librispeech_lm

    fetched = []

    def fake_download(url, filename, **kwargs):
        fetched.append(url)
        Path(filename).write_text("data")

    monkeypatch.setattr(lhotse.utils, "resumable_download", fake_download)
    (tmp_path / "librispeech-vocab.txt").write_text("A\n")
    (tmp_path / "3-gram.arpa.gz.part").write_text("half")  # an interrupted download is not a file
    assert download_librispeech_lm(tmp_path, ["librispeech-vocab.txt", "3-gram.arpa.gz"]) == tmp_path
    assert fetched == ["https://www.openslr.org/resources/11/3-gram.arpa.gz"]
    assert (tmp_path / "3-gram.arpa.gz").read_text() == "data" and not (tmp_path / "3-gram.arpa.gz.part").exists()
    assert (tmp_path / "librispeech-vocab.txt").read_text() == "A\n"
    with pytest.raises(ValueError, match="unknown LM resource '5-gram.arpa.gz'"):
        download_librispeech_lm(tmp_path, ["5-gram.arpa.gz"])
    assert len(LM_FILES) == 6


def test_download_librispeech_parts(tmp_path, monkeypatch):
    import lhotse.recipes

    from asr.data.corpora.librispeech import download_librispeech

    calls = []
    monkeypatch.setattr(lhotse.recipes, "download_librispeech",
                        lambda target, dataset_parts, base_url: calls.append(dataset_parts) or Path(target))
    download_librispeech(tmp_path)
    download_librispeech(tmp_path, train_960=True)
    assert calls == [["train-clean-100", "dev-clean", "dev-other", "test-clean", "test-other"],
                     ["train-clean-100", "train-clean-360", "train-other-500",
                      "dev-clean", "dev-other", "test-clean", "test-other"]]


# ---------------------------------------------------------------- speed perturbation


def test_speed_perturbed_cut_is_read_resampled(tiny_corpus, tmp_path):
    from lhotse import CutSet

    from asr.config import FeatureConfig
    from asr.data.corpora.librispeech import prepare_librispeech
    from asr.data.cuts import cut_audio, load_cuts
    from asr.audio.features import LogMel
    from asr.audio.perturb import speed_perturb

    prepare_librispeech(tiny_corpus, tmp_path, parts=["dev-clean"], num_jobs=1)
    cuts = load_cuts(tmp_path / "librispeech_cuts_dev-clean.jsonl.gz")
    both = speed_perturb(cuts, [0.9, 1.0, 1.1])
    assert len(both) == 3 * len(cuts)
    assert [c.id for c in both][:len(cuts)] == [c.id for c in cuts]  # originals first
    both.to_file(tmp_path / "sp.jsonl.gz")  # transforms survive a manifest round trip (as dicts)
    fast = next(c for c in load_cuts(tmp_path / "sp.jsonl.gz") if c.id == f"{cuts[0].id}_sp1.1")
    original = cut_audio(cuts[0], 16000)
    wave = cut_audio(fast, 16000)
    assert wave.numel() == fast.num_samples == round(original.numel() / 1.1)
    expected = AF.resample(original, 17600, 16000)  # speed 1.1: 16 kHz audio played as 17.6 kHz
    assert torch.allclose(wave, expected[: wave.numel()], atol=1e-4)
    assert torch.allclose(wave, torch.from_numpy(fast.load_audio()[0]), atol=1e-5)  # lhotse's own reader
    logmel = LogMel(FeatureConfig())
    feats, ref = logmel(wave), logmel(expected[: wave.numel()])
    assert feats.shape == ref.shape
    assert torch.allclose(feats, ref, atol=1e-2)
    slow = next(c for c in both if c.id.endswith("_sp0.9"))
    assert cut_audio(slow, 16000).numel() == slow.num_samples == round(cut_audio(cuts[0], 16000).numel() / 0.9)
    assert speed_perturb(cuts, []) is cuts
    with pytest.raises(ValueError, match="speed_perturb"):
        speed_perturb(cuts, [0.0])
    assert isinstance(both, CutSet)


def test_speed_perturb_config_field():
    from asr.config import DataConfig, TrainConfig, from_dict, load_config, to_dict

    assert DataConfig().speed_perturb == []
    cfg = load_config(None, ["data.speed_perturb=[0.9,1.1]"])
    assert cfg.data.speed_perturb == [0.9, 1.1]
    assert from_dict(TrainConfig, to_dict(cfg)) == cfg
    assert load_config(None, ["data.speed_perturb=[1, 1.1]"]).data.speed_perturb == [1.0, 1.1]
    with pytest.raises(ValueError, match=r"data\.speed_perturb: expected a list"):
        load_config(None, ["data.speed_perturb=1.1"])
    with pytest.raises(ValueError, match=r"data\.speed_perturb\[1\]: expected float"):
        load_config(None, ["data.speed_perturb=[0.9, fast]"])


# ---------------------------------------------------------------- the recipe


def test_librispeech_recipe_stages_end_to_end(an4_dir, tiny_corpus, tmp_path):
    lm_dir = make_lm_dir(an4_dir, tmp_path)
    (tmp_path / "tiny.yaml").write_text(TINY_CONFIG)
    work = tmp_path / "work"
    work.mkdir()
    # one thread per process: on a busy 2-core machine two spinning OpenMP threads make a tiny decode 3x slower
    result = run_recipe("librispeech", ["--data-dir", tiny_corpus, "--lm-dir", lm_dir, "--config", tmp_path / "tiny.yaml",
                                        "--ngpu", "0", "--speed-perturb", "0.9,1.1", "--avg", "2", "--nj", "0"],
                        work, OMP_NUM_THREADS="1")
    for stage in (1, 2, 3, 4, 5, 8, 9, 10, 11):
        assert f"Stage {stage}:" in result.stdout
    assert "Stage 0:" not in result.stdout and "Stage 6:" not in result.stdout and "Stage 7:" not in result.stdout
    manifests = work / "data/manifests"
    assert {p.name for p in manifests.glob("*.jsonl.gz")} == {f"librispeech_cuts_{p}.jsonl.gz" for p in PARTS}
    exp = work / "exp"
    assert [p.name for p in sorted(exp.glob("checkpoints/epoch-*.pt"))] == ["epoch-001.pt", "epoch-002.pt"]
    log_text = (exp / "train.log").read_text()  # training reads its manifest lazily: the copies are counted, not held
    assert "speed perturbation [0.9, 1.1]: 2 copies of every cut" in log_text
    assert ": 24 training cuts (72 with speed perturbation)" in log_text
    assert "speed_perturb:\n  - 0.9\n  - 1.1" in (exp / "config.yaml").read_text()
    for name in ("dev-clean", "dev-other", "test-clean", "test-other"):
        for method in ("greedy", "beam"):
            hyps = (exp / f"decode/hyp-{name}-{method}.txt").read_text().splitlines()
            assert sorted(line.split()[0] for line in hyps) == sorted(
                line.split()[0] for line in (manifests / f"text_{name}").read_text().splitlines())
        assert "%WER" in (exp / f"decode/{name}/wer-summary.txt").read_text()
        assert len((exp / f"lm-3-gram.pruned.1e-7/decode/hyp-{name}-beam-lm.txt").read_text().splitlines()) == 4
        summary = (exp / f"lm-3-gram.pruned.1e-7/{name}/wer-summary.txt").read_text()
        assert all(f"hyp-{name}-{m}\t%WER" in summary for m in ("greedy", "beam", "beam-lm"))
    lexicon = (exp / "lm-3-gram.pruned.1e-7/lexicon.txt").read_text().splitlines()
    assert lexicon and all("\t▁" in line for line in lexicon)  # words spelled in BPE pieces
    assert "lm_weight" in (exp / "lm-3-gram.pruned.1e-7/lm-params.yaml").read_text()
    assert "%WER" in result.stdout

    run_recipe("librispeech", ["--data-dir", tiny_corpus, "--lm-dir", lm_dir, "--lm", "own", "--stage", "7",
                               "--stop-stage", "7"], work, OMP_NUM_THREADS="1")
    arpa = (work / "data/lm/own-3gram.arpa").read_text()
    assert arpa.startswith("\\data\\\nngram 1=") and "\\3-grams:" in arpa


@pytest.mark.parametrize("args, message", [
    (["--bogus", "1"], "unknown option --bogus"),
    (["--train-set", "500"], "--train-set must be clean-100 or 960"),
    (["--lm", "5-gram"], "--lm must be"),
])
def test_recipe_rejects_bad_options(tmp_path, args, message):
    result = subprocess.run(["bash", str(REPO / "recipes/librispeech/run.sh"), *args],
                            cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 2
    assert message in result.stderr

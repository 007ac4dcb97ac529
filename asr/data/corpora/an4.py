"""CMU AN4 (alphanumeric census) database.

948 training utterances (74 speakers) and 130 test utterances (10 speakers) of spelled
words, digits and short commands, 16 kHz close-talking microphone, about 42 + 6 minutes.
A dev set is split off the training *speakers* (never utterances of a training speaker).

Expected layout (the CMU tarball ``an4_sphere.tar.gz``, or the WAV conversion)::

    an4/etc/an4_train.transcription   "<s> WORDS </s> (an251-fash-b)"
    an4/etc/an4_test.transcription    "WORDS (an406-fcaw-b)"
    an4/etc/an4_{train,test}.fileids  "an4_clstk/fash/an251-fash-b"
    an4/wav/an4_clstk/SPEAKER/UTT.{wav,sph}, an4/wav/an4test_clstk/SPEAKER/UTT.{wav,sph}
"""

from __future__ import annotations

import logging
import re
import tarfile
import urllib.request
from pathlib import Path

from lhotse import CutSet, MonoCut, Recording, SupervisionSegment
from lhotse.audio import AudioSource

from ...audio.io import audio_info
from ...config import An4PrepareConfig
from .splits import hold_out, write_split

__all__ = ["AN4_URL", "download_an4", "parse_transcription", "prepare_an4"]

log = logging.getLogger(__name__)

AN4_URL = "http://www.speech.cs.cmu.edu/databases/an4/an4_sphere.tar.gz"

_LINE = re.compile(r"^\s*(?:<s>\s+)?(?P<text>.*?)\s*(?:</s>\s*)?\((?P<id>[^()\s]+)\)\s*$")


def download_an4(target_dir: str | Path, url: str = AN4_URL) -> Path:
    """Download and unpack the AN4 tarball into ``target_dir``; returns the ``an4`` directory."""
    target_dir = Path(target_dir)
    corpus = target_dir / "an4"
    if (corpus / "etc" / "an4_train.transcription").is_file():
        log.info("AN4 already present in %s", corpus)
        return corpus
    target_dir.mkdir(parents=True, exist_ok=True)
    archive = target_dir / Path(url).name
    if not archive.is_file():
        log.info("downloading %s", url)
        partial = archive.with_suffix(".part")
        urllib.request.urlretrieve(url, partial)
        partial.rename(archive)
    with tarfile.open(archive) as tar:
        tar.extractall(target_dir, filter="data")
    return corpus


def parse_transcription(path: str | Path) -> dict[str, str]:
    """Utterance id -> words, from either AN4 transcription format."""
    texts: dict[str, str] = {}
    with open(path) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            match = _LINE.match(line)
            if match is None:
                raise ValueError(f"{path}:{number}: expected 'WORDS (utterance-id)', got {line.strip()!r}")
            utt = match["id"]
            if utt in texts:
                raise ValueError(f"{path}:{number}: duplicate utterance id {utt!r}")
            texts[utt] = " ".join(match["text"].split())
    return texts


def _find_audio(wav_dir: Path, fileid: str) -> Path | None:
    for suffix in (".wav", ".sph", ".WAV", ".SPH"):
        path = wav_dir / (fileid + suffix)
        if path.is_file():
            return path
    return None


def _split_cuts(corpus: Path, split: str) -> CutSet:
    etc = corpus / "etc"
    texts = parse_transcription(etc / f"an4_{split}.transcription")
    fileids_path = etc / f"an4_{split}.fileids"
    cuts = []
    for number, line in enumerate(fileids_path.read_text().splitlines(), 1):
        fileid = line.strip()
        if not fileid:
            continue
        utt = Path(fileid).name
        speaker = Path(fileid).parent.name
        if utt not in texts:
            raise ValueError(f"{fileids_path}:{number}: {utt!r} has no transcription")
        audio = _find_audio(corpus / "wav", fileid)
        if audio is None:
            raise FileNotFoundError(f"{fileids_path}:{number}: no audio for {fileid!r} under {corpus / 'wav'}")
        info = audio_info(audio)
        duration = info.frames / info.samplerate
        recording = Recording(
            id=utt,
            sources=[AudioSource(type="file", channels=[0], source=str(audio.resolve()))],
            sampling_rate=info.samplerate,
            num_samples=info.frames,
            duration=duration,
        )
        supervision = SupervisionSegment(
            id=utt, recording_id=utt, start=0.0, duration=duration, channel=0,
            text=texts[utt], speaker=speaker, language="English",
        )
        cuts.append(MonoCut(id=utt, start=0.0, duration=duration, channel=0,
                            recording=recording, supervisions=[supervision]))
    if len(cuts) != len(texts):
        raise ValueError(f"{fileids_path}: {len(cuts)} file ids but {len(texts)} transcriptions")
    return CutSet.from_cuts(cuts)


def _speaker(cut) -> str:
    return cut.supervisions[0].speaker


def prepare_an4(
    corpus_dir: str | Path, out_dir: str | Path, dev_fraction: float = An4PrepareConfig.dev_fraction,
    seed: int = An4PrepareConfig.seed,
) -> dict[str, CutSet]:
    """Write ``an4_cuts_{train,dev,test}.jsonl.gz`` and Kaldi-style ``text_{split}``, ``utt2spk_{split}``.

    Args:
        corpus_dir: the ``an4`` directory (holding ``etc/`` and ``wav/``).
        out_dir: where manifests go.
        dev_fraction: share of training speakers (at least one) held out as dev.
        seed: picks the dev speakers.

    Returns:
        The three cut sets by split name.
    """
    corpus, out_dir = Path(corpus_dir), Path(out_dir)
    if not (corpus / "etc" / "an4_train.transcription").is_file():
        raise FileNotFoundError(f"{corpus}: not an AN4 directory (no etc/an4_train.transcription)")
    train_all = _split_cuts(corpus, "train")
    try:
        (dev_speakers,) = hold_out([_speaker(c) for c in train_all], [dev_fraction], seed)
    except ValueError as err:
        raise ValueError(f"{corpus}: training speakers: {err}") from None
    splits = {
        "train": train_all.filter(lambda c: _speaker(c) not in dev_speakers).to_eager(),
        "dev": train_all.filter(lambda c: _speaker(c) in dev_speakers).to_eager(),
        "test": _split_cuts(corpus, "test"),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, cuts in splits.items():
        write_split(cuts, out_dir, "an4", name)
    return splits

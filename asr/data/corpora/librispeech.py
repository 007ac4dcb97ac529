"""LibriSpeech ASR corpus (Panayotov et al., ICASSP 2015; openslr.org SLR12) and its LM resources (SLR11).

Read English audiobooks (LibriVox), 16 kHz FLAC, one utterance per file, upper-case transcripts
with apostrophes. The parts (hours / speakers / utterances, from the corpus paper and its files):

- train-clean-100 (100.6 h / 251 / 28,539), train-clean-360 (363.6 h / 921 / 104,014) and
  train-other-500 (496.7 h / 1166 / 148,688); the three together are "train-960";
- dev-clean (5.4 h / 40 / 2,703), dev-other (5.3 h / 33 / 2,864),
  test-clean (5.4 h / 40 / 2,620), test-other (5.1 h / 33 / 2,939).

Speakers of different parts never overlap. Expected layout (the openslr tarballs unpacked)::

    LibriSpeech/PART/SPEAKER/CHAPTER/SPEAKER-CHAPTER-UTT.flac
    LibriSpeech/PART/SPEAKER/CHAPTER/SPEAKER-CHAPTER.trans.txt   "SPEAKER-CHAPTER-UTT WORDS" per line

Recordings come from lhotse's ``prepare_librispeech`` (file audio sources); the cuts are built
here, one ``MonoCut`` per utterance whose id is the utterance id, because lhotse's cut ids carry
a ``-N`` suffix and its transcript parser names neither file nor line for a bad line.

The LM resources (``download_librispeech_lm``) are the official n-grams trained on 14,500 books
of ``librispeech-lm-norm.txt.gz`` (about 800M words, vocabulary of the 200k most frequent words).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path

from lhotse import CutSet, MonoCut, SupervisionSegment

from ...config import LibriSpeechPrepareConfig
from .splits import write_split

__all__ = [
    "LIBRISPEECH_PARTS",
    "TRAIN_960_PARTS",
    "EVAL_PARTS",
    "LM_URL",
    "LM_FILES",
    "librispeech_parts",
    "read_transcripts",
    "download_librispeech",
    "download_librispeech_lm",
    "prepare_librispeech",
]

log = logging.getLogger(__name__)

TRAIN_960_PARTS = ("train-clean-100", "train-clean-360", "train-other-500")
EVAL_PARTS = ("dev-clean", "dev-other", "test-clean", "test-other")
LIBRISPEECH_PARTS = TRAIN_960_PARTS + EVAL_PARTS
TRAIN_960 = "train-960"  # name of the three training parts' combined manifest
CORPUS_URL = "http://www.openslr.org/resources"  # lhotse appends /12/PART.tar.gz
LM_URL = "https://www.openslr.org/resources/11"
LM_FILES = (
    "3-gram.pruned.1e-7.arpa.gz",  # 34 MB: the usual first-pass LM
    "3-gram.arpa.gz",  # 759 MB
    "4-gram.arpa.gz",  # 1.3 GB
    "librispeech-lexicon.txt",  # 5 MB: CMUdict + g2p pronunciations of the 200k words (phones)
    "librispeech-lm-norm.txt.gz",  # 1.4 GB: the normalised LM training text
    "librispeech-vocab.txt",  # 1.7 MB: the 200k words
)

_UTT_ID = re.compile(r"^(\d+)-(\d+)-(\d+)$")


def librispeech_parts(train_960: bool = False) -> list[str]:
    """train-clean-100 (or all three training parts with ``train_960``) and the four dev/test parts."""
    return [*(TRAIN_960_PARTS if train_960 else TRAIN_960_PARTS[:1]), *EVAL_PARTS]


def _check_parts(parts: Sequence[str]) -> list[str]:
    unknown = [p for p in parts if p not in LIBRISPEECH_PARTS]
    if unknown:
        raise ValueError(f"parts: unknown LibriSpeech part {unknown[0]!r} (known: {', '.join(LIBRISPEECH_PARTS)})")
    return list(dict.fromkeys(parts))


def download_librispeech(target_dir: str | Path, parts: Sequence[str] | None = None, train_960: bool = False,
                         base_url: str = CORPUS_URL) -> Path:
    """Download and unpack LibriSpeech parts into ``target_dir/LibriSpeech`` (lhotse's downloader).

    A part whose ``.completed`` marker exists is skipped; the ``PART.tar.gz`` archives stay in ``target_dir``.

    Args:
        target_dir: where the archives and ``LibriSpeech/`` go.
        parts: part names; default ``librispeech_parts(train_960)``.
        train_960: default parts include train-clean-360 and train-other-500.
        base_url: openslr resources URL (a mirror such as ``https://us.openslr.org/resources`` works).

    Returns:
        The ``LibriSpeech`` directory.
    """
    from lhotse.recipes import download_librispeech as lhotse_download

    parts = _check_parts(parts if parts is not None else librispeech_parts(train_960))
    return lhotse_download(target_dir, dataset_parts=parts, base_url=base_url)


def download_librispeech_lm(target_dir: str | Path, files: Sequence[str] = LM_FILES, base_url: str = LM_URL) -> Path:
    """Download the official LibriSpeech LM resources (openslr SLR11) into ``target_dir``.

    Files already there are skipped; a download goes to ``NAME.part`` (resumed if interrupted)
    and is renamed when complete, so a present ``NAME`` is always whole.

    Args:
        target_dir: directory for the files.
        files: names out of ``LM_FILES``.
        base_url: where the files are (a mirror: ``https://us.openslr.org/resources/11``).

    Returns:
        ``target_dir``.
    """
    from lhotse.utils import resumable_download

    unknown = [name for name in files if name not in LM_FILES]
    if unknown:
        raise ValueError(f"files: unknown LM resource {unknown[0]!r} (known: {', '.join(LM_FILES)})")
    target_dir = Path(target_dir)
    target_dir.mkdir(parents=True, exist_ok=True)
    for name in files:
        path = target_dir / name
        if path.is_file():
            log.info("%s already present", path)
            continue
        partial = path.with_name(name + ".part")
        log.info("downloading %s/%s", base_url, name)
        resumable_download(f"{base_url}/{name}", filename=partial)
        partial.rename(path)
    return target_dir


def read_transcripts(part_dir: str | Path) -> dict[str, tuple[str, str]]:
    """Utterance id -> (speaker, words) from every ``SPEAKER/CHAPTER/SPEAKER-CHAPTER.trans.txt`` of a part.

    Every line must be ``SPEAKER-CHAPTER-UTT WORDS`` with the file's speaker and chapter, and its
    FLAC file must exist; blank lines are errors as well. Words are upper-cased (they already are in the release).

    Raises:
        ValueError: ``FILE:LINE: ...`` for a malformed line, a foreign or duplicate id.
        FileNotFoundError: no transcript files, or ``FILE:LINE: ...`` for a missing FLAC file.
    """
    part_dir = Path(part_dir)
    paths = sorted(part_dir.glob("*/*/*.trans.txt"))
    if not paths:
        raise FileNotFoundError(f"{part_dir}: no SPEAKER/CHAPTER/SPEAKER-CHAPTER.trans.txt files")
    texts: dict[str, tuple[str, str]] = {}
    for path in paths:
        speaker, chapter = path.parent.parent.name, path.parent.name
        if path.name != f"{speaker}-{chapter}.trans.txt":
            raise ValueError(f"{path}: expected the name {speaker}-{chapter}.trans.txt in {speaker}/{chapter}/")
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                fields = line.split(maxsplit=1)  # a blank line is an error too: lhotse's parser fails on it
                match = _UTT_ID.match(fields[0]) if fields else None
                if len(fields) != 2 or match is None:
                    raise ValueError(f"{path}:{number}: expected 'SPEAKER-CHAPTER-UTT WORDS', got {line.strip()!r}")
                utt = fields[0]
                if match.group(1, 2) != (speaker, chapter):
                    raise ValueError(f"{path}:{number}: utterance {utt!r} is not of speaker {speaker}, "
                                     f"chapter {chapter}")
                if utt in texts:
                    raise ValueError(f"{path}:{number}: duplicate utterance id {utt!r}")
                if not (path.parent / f"{utt}.flac").is_file():
                    raise FileNotFoundError(f"{path}:{number}: no audio file {path.parent / (utt + '.flac')}")
                texts[utt] = (speaker, " ".join(fields[1].split()).upper())
    return texts


def _part_cuts(corpus: Path, part: str, num_jobs: int) -> CutSet:
    from lhotse.recipes import prepare_librispeech as lhotse_prepare

    texts = read_transcripts(corpus / part)
    manifests = lhotse_prepare(corpus, dataset_parts=[part], num_jobs=num_jobs)[part]
    recordings = {r.id: r for r in manifests["recordings"]}  # RecordingSet looks ids up by a linear scan
    cuts = []
    for utt, (speaker, text) in sorted(texts.items()):
        if utt not in recordings:
            raise ValueError(f"{corpus / part}: lhotse made no recording for {utt}")
        recording = recordings[utt]
        if recording.sources[0].type != "file":
            raise ValueError(f"{utt}: expected a file audio source, lhotse gave {recording.sources[0].type!r}")
        supervision = SupervisionSegment(
            id=utt, recording_id=utt, start=0.0, duration=recording.duration, channel=0,
            text=text, speaker=speaker, language="English",
        )
        cuts.append(MonoCut(id=utt, start=0.0, duration=recording.duration, channel=0,
                            recording=recording, supervisions=[supervision]))
    if len(recordings) != len(cuts):
        raise ValueError(f"{corpus / part}: {len(recordings)} recordings for {len(cuts)} transcript lines")
    return CutSet.from_cuts(cuts)


def _corpus_root(corpus_dir: Path) -> Path:
    """``corpus_dir`` itself, or its ``LibriSpeech`` child when the parts live there (the download layout)."""
    if not any((corpus_dir / part).is_dir() for part in LIBRISPEECH_PARTS) and (corpus_dir / "LibriSpeech").is_dir():
        return corpus_dir / "LibriSpeech"
    return corpus_dir


def prepare_librispeech(corpus_dir: str | Path, out_dir: str | Path, parts: Sequence[str] | None = None,
                        train_960: bool = False,
                        num_jobs: int = LibriSpeechPrepareConfig.num_jobs) -> dict[str, CutSet]:
    """Write ``librispeech_cuts_{part}.jsonl.gz`` and Kaldi-style ``text_{part}``, ``utt2spk_{part}``.

    Cut and supervision ids are the utterance ids (``103-1240-0000``), the speaker is the numeric
    speaker id, the text the upper-case transcript; audio stays in the FLAC files.

    Args:
        corpus_dir: the ``LibriSpeech`` directory holding the parts (or the directory above it).
        out_dir: where manifests go.
        parts: part names; default ``librispeech_parts(train_960)``.
        train_960: also write ``train-960``, the three training parts in one manifest (all three are
            then prepared).
        num_jobs: threads reading the FLAC headers (lhotse).

    Returns:
        The cut sets by part name (with ``train-960`` when asked for).
    """
    corpus, out_dir = _corpus_root(Path(corpus_dir)), Path(out_dir)
    parts = _check_parts(list(parts if parts is not None else librispeech_parts(train_960))
                         + (list(TRAIN_960_PARTS) if train_960 else []))
    missing = [part for part in parts if not (corpus / part).is_dir()]
    if missing:
        raise FileNotFoundError(f"{corpus}: no LibriSpeech part {missing[0]} (expected {corpus / missing[0]}/)")
    splits = {part: _part_cuts(corpus.resolve(), part, num_jobs) for part in parts}
    if train_960:
        splits[TRAIN_960] = CutSet.from_cuts([cut for part in TRAIN_960_PARTS for cut in splits[part]])
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, cuts in splits.items():
        write_split(cuts, out_dir, "librispeech", name)
    return splits

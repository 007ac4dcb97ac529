"""TIMIT acoustic-phonetic continuous speech corpus (LDC93S1) for phone recognition.

630 speakers of 8 American English dialect regions read 10 sentences each: 16 kHz NIST SPHERE
audio with time-aligned 61-phone transcriptions (``.PHN``, sample offsets). The standard split
(Lee & Hon 1989; Halberstadt 1998; Kaldi ``egs/timit/s5``), with the two dialect sentences SA1
and SA2 that every speaker reads left out everywhere:

- train: all of TRAIN: 462 speakers, 3696 utterances (about 3.1 h);
- dev: the 50 TEST speakers of ``TIMIT_DEV_SPEAKERS``, 400 utterances;
- test: the 24-speaker core test set ``TIMIT_CORE_TEST_SPEAKERS``, 192 utterances.

The other 94 TEST speakers are not used. Labels are the 61 phones folded to 48 for training
(``asr.phones``); PER is scored after folding to 39. TIMIT is licensed by the LDC: there is no
download, the corpus must be on disk.

Expected layout (the LDC release; copies that are all lower case work too)::

    TIMIT_DIR/TRAIN/DR1/FCJF0/SI1027.{WAV,PHN,WRD,TXT}
    TIMIT_DIR/TEST/DR1/FAKS0/SX13.{WAV,PHN,WRD,TXT}

``TIMIT_DIR`` may also be the directory above, holding ``TIMIT/`` or ``data/`` (the layout of
some redistributions). Not lhotse's ``prepare_timit``: it keeps the SA sentences, accepts only
``data/TRAIN`` in upper case, and its supervision text is the words, not the phones.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from pathlib import Path

from lhotse import CutSet, MonoCut, Recording, SupervisionSegment
from lhotse.audio import AudioSource
from lhotse.supervision import AlignmentItem

from ...audio.io import audio_info
from ...config import TimitPrepareConfig
from ..phones import TIMIT_61, TIMIT_61_TO_39, TIMIT_61_TO_48
from .splits import write_split

__all__ = ["TIMIT_DEV_SPEAKERS", "TIMIT_CORE_TEST_SPEAKERS", "PHONE_SETS", "read_phn", "read_speaker_list",
           "prepare_timit"]

log = logging.getLogger(__name__)

# Halberstadt's 50-speaker development set, as in Kaldi's egs/timit/s5/conf/dev_spk.list.
TIMIT_DEV_SPEAKERS: tuple[str, ...] = (
    "faks0", "fdac1", "fjem0", "mgwt0", "mjar0", "mmdb1", "mmdm2", "mpdf0", "fcmh0", "fkms0",
    "mbdg0", "mbwm0", "mcsh0", "fadg0", "fdms0", "fedw0", "mgjf0", "mglb0", "mrtk0", "mtaa0",
    "mtdt0", "mthc0", "mwjg0", "fnmr0", "frew0", "fsem0", "mbns0", "mmjr0", "mdls0", "mdlf0",
    "mdvc0", "mers0", "fmah0", "fdrw0", "mrcs0", "mrjm4", "fcal1", "mmwh0", "fjsj0", "majc0",
    "mjsw0", "mreb0", "fgjd0", "fjmg0", "mroa0", "mteb0", "mjfc0", "mrjr0", "fmml0", "mrws1",
)

# The 24-speaker core test set (2 men, 1 woman per dialect region), Kaldi's conf/test_spk.list.
TIMIT_CORE_TEST_SPEAKERS: tuple[str, ...] = (
    "mdab0", "mwbt0", "felc0", "mtas1", "mwew0", "fpas0", "mjmp0", "mlnt0", "fpkt0", "mlll0",
    "mtls0", "fjlm0", "mbpm0", "mklt0", "fnlp0", "mcmj0", "mjdh0", "fmgd0", "mgrt0", "mnjm0",
    "fdhc0", "mjln0", "mpam0", "fmld0",
)

PHONE_SETS: dict[int, dict[str, str]] = {61: {p: p for p in TIMIT_61}, 48: TIMIT_61_TO_48, 39: TIMIT_61_TO_39}
"""Training label set -> map from the 61 TIMIT phones (``q`` maps to ``""``, deleted, for 48 and 39)."""

_DIALECT = re.compile(r"^dr[1-8]$", re.IGNORECASE)
_UTTERANCE = re.compile(r"^(s[aix]\d+)\.(wav|phn)$", re.IGNORECASE)  # SA1, SI1027, SX13


def read_phn(path: str | Path) -> list[tuple[int, int, str]]:
    """``(start, end, phone)`` rows of a ``.PHN`` file: sample offsets and one of the 61 TIMIT phones.

    Raises:
        ValueError: ``FILE:LINE: ...`` for a line that is not ``START END PHONE`` with
            ``0 <= START < END``, starts before the previous phone, or holds an unknown phone;
            ``FILE: ...`` for a file without phones.
    """
    rows: list[tuple[int, int, str]] = []
    with open(path, encoding="ascii", errors="replace") as f:
        for number, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                continue
            where = f"{path}:{number}"
            if len(fields) != 3 or not fields[0].isdigit() or not fields[1].isdigit():
                raise ValueError(f"{where}: expected 'START END PHONE' (sample offsets), got {line.strip()!r}")
            start, end, phone = int(fields[0]), int(fields[1]), fields[2]
            if end <= start:
                raise ValueError(f"{where}: phone {phone!r} ends at sample {end}, not after its start {start}")
            if rows and start < rows[-1][0]:
                raise ValueError(f"{where}: starts at sample {start}, before the previous phone ({rows[-1][0]})")
            if phone not in PHONE_SETS[61]:
                raise ValueError(f"{where}: {phone!r} is not one of the 61 TIMIT phones")
            rows.append((start, end, phone))
    if not rows:
        raise ValueError(f"{path}: no phones")
    return rows


def read_speaker_list(path: str | Path) -> list[str]:
    """Speaker ids (e.g. ``faks0``) from a file, whitespace-separated, lower-cased; ``#`` starts a comment.

    Raises:
        ValueError: naming the file when it lists no speaker.
    """
    with open(path) as f:
        speakers = [s.lower() for line in f for s in line.split("#", 1)[0].split()]
    if not speakers:
        raise ValueError(f"{path}: no speaker ids")
    return speakers


def _child(directory: Path, name: str) -> Path | None:
    """The entry of ``directory`` called ``name`` in any letter case."""
    matches = [p for p in directory.iterdir() if p.name.lower() == name] if directory.is_dir() else []
    return matches[0] if len(matches) == 1 else None


def _find_root(corpus_dir: Path) -> Path:
    """The directory that holds TRAIN and TEST: ``corpus_dir`` itself, or its TIMIT/ or data/."""
    for root in (corpus_dir, _child(corpus_dir, "timit"), _child(corpus_dir, "data")):
        if root is not None and _child(root, "train") and _child(root, "test"):
            return root
    raise FileNotFoundError(f"{corpus_dir}: not a TIMIT directory (no TRAIN/ and TEST/, nor TIMIT/TRAIN/, "
                            "data/TRAIN/, in any letter case)")


def _speaker_dirs(part_dir: Path) -> dict[str, Path]:
    """Lower-case speaker id -> directory, over the dialect region folders DR1..DR8 of ``part_dir``."""
    speakers: dict[str, Path] = {}
    for region in sorted(p for p in part_dir.iterdir() if p.is_dir() and _DIALECT.match(p.name)):
        for directory in sorted(p for p in region.iterdir() if p.is_dir()):
            speaker = directory.name.lower()
            if speaker in speakers:
                raise ValueError(f"speaker {speaker!r} appears twice: {speakers[speaker]} and {directory}")
            speakers[speaker] = directory
    if not speakers:
        raise FileNotFoundError(f"{part_dir}: no speaker directories under DR1..DR8")
    return speakers


def _utterances(speaker_dir: Path) -> dict[str, dict[str, Path]]:
    """Lower-case utterance name (``si1027``) -> {"wav": path, "phn": path}, SA sentences left out."""
    files: dict[str, dict[str, Path]] = {}
    for path in speaker_dir.iterdir():
        match = _UTTERANCE.match(path.name)
        if match and not match[1].lower().startswith("sa"):
            files.setdefault(match[1].lower(), {})[match[2].lower()] = path
    for utt, found in sorted(files.items()):
        for kind in ("wav", "phn"):
            if kind not in found:
                raise FileNotFoundError(f"{speaker_dir}: utterance {utt!r} has no .{kind} file")
    return files


def _cut(utt_id: str, speaker: str, wav: Path, phn: Path, table: dict[str, str]) -> MonoCut:
    """One utterance: the span of its phone transcription (first start to last end) as a cut."""
    rows = read_phn(phn)
    info = audio_info(wav)
    rate, frames = info.samplerate, info.frames
    start, end = rows[0][0], min(rows[-1][1], frames)
    if end <= start:
        raise ValueError(f"{phn}: the phones start at sample {start}, after the end of {wav} ({frames} samples)")
    recording = Recording(id=utt_id, sources=[AudioSource(type="file", channels=[0], source=str(wav.resolve()))],
                          sampling_rate=rate, num_samples=frames, duration=frames / rate)
    labels = [(s, min(e, end), table[p]) for s, e, p in rows if table[p]]
    alignment = [AlignmentItem(symbol=label, start=(s - start) / rate, duration=max(e - s, 0) / rate)
                 for s, e, label in labels]  # times relative to the cut, which starts at ``start``
    duration = (end - start) / rate
    supervision = SupervisionSegment(
        id=utt_id, recording_id=utt_id, start=0.0, duration=duration, channel=0,
        text=" ".join(label for _, _, label in labels), speaker=speaker, language="English",
        gender="female" if speaker.startswith("f") else "male", alignment={"phone": alignment},
    )
    return MonoCut(id=utt_id, start=start / rate, duration=duration, channel=0, recording=recording,
                   supervisions=[supervision])


def _split_cuts(speakers: dict[str, Path], table: dict[str, str]) -> CutSet:
    cuts = []
    for speaker, directory in sorted(speakers.items()):
        for utt, files in sorted(_utterances(directory).items()):
            cuts.append(_cut(f"{speaker}_{utt}", speaker, files["wav"], files["phn"], table))
    return CutSet.from_cuts(cuts)


def _pick(name: str, wanted: Iterable[str], available: dict[str, Path], part: str) -> dict[str, Path]:
    """The listed speakers found under ``part``; a warning counts the missing ones."""
    wanted = list(dict.fromkeys(s.lower() for s in wanted))
    missing = [s for s in wanted if s not in available]
    if missing:
        log.warning("timit %s: %d of %d listed speakers not found under %s (e.g. %s)", name, len(missing),
                    len(wanted), part, ", ".join(missing[:5]))
    found = {s: available[s] for s in wanted if s in available}
    if not found:
        raise ValueError(f"timit {name}: none of the {len(wanted)} listed speakers is under {part}; "
                         f"give the {name} speakers of this corpus")
    return found


def prepare_timit(
    corpus_dir: str | Path,
    out_dir: str | Path,
    phones: int = TimitPrepareConfig.phones,
    dev_speakers: Iterable[str] | None = None,
    test_speakers: Iterable[str] | None = None,
) -> dict[str, CutSet]:
    """Write ``timit_cuts_{train,dev,test}.jsonl.gz`` and Kaldi-style ``text_{split}``, ``utt2spk_{split}``.

    Utterance ids are ``speaker_sentence`` in lower case (``faks0_si1573``); a cut spans the
    utterance's ``.PHN`` transcription, its text is the phones (``q`` deleted for 48 and 39), and
    its supervision carries the phone times as the ``phone`` alignment.

    Args:
        corpus_dir: the TIMIT directory holding TRAIN/ and TEST/ (or TIMIT/ or data/ holding them).
        out_dir: where manifests go.
        phones: training label set: 48 (Lee & Hon), 61 (as transcribed) or 39 (the scoring classes).
        dev_speakers: TEST speakers of the dev set; default ``TIMIT_DEV_SPEAKERS``.
        test_speakers: TEST speakers of the test set; default ``TIMIT_CORE_TEST_SPEAKERS``.

    Returns:
        The three cut sets by split name.

    Raises:
        FileNotFoundError: no TIMIT layout under ``corpus_dir``, or an utterance lacks its audio or phones.
        ValueError: an unknown phone set, overlapping dev and test lists, no listed speaker
            present, or a malformed ``.PHN`` line (``FILE:LINE: ...``).
    """
    if phones not in PHONE_SETS:
        raise ValueError(f"phones: expected one of {tuple(PHONE_SETS)}, got {phones!r}")
    dev_speakers = TIMIT_DEV_SPEAKERS if dev_speakers is None else tuple(dev_speakers)
    test_speakers = TIMIT_CORE_TEST_SPEAKERS if test_speakers is None else tuple(test_speakers)
    overlap = sorted({s.lower() for s in dev_speakers} & {s.lower() for s in test_speakers})
    if overlap:
        raise ValueError(f"speakers in both the dev and the test list: {', '.join(overlap)}")
    root = _find_root(Path(corpus_dir))
    train_dir, test_dir = _child(root, "train"), _child(root, "test")
    train_available, test_available = _speaker_dirs(train_dir), _speaker_dirs(test_dir)
    both = sorted(set(train_available) & set(test_available))
    if both:
        raise ValueError(f"{root}: speakers under both TRAIN and TEST: {', '.join(both[:5])}")
    table = PHONE_SETS[phones]
    splits = {
        "train": _split_cuts(train_available, table),
        "dev": _split_cuts(_pick("dev", dev_speakers, test_available, str(test_dir)), table),
        "test": _split_cuts(_pick("test", test_speakers, test_available, str(test_dir)), table),
    }
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, cuts in splits.items():
        write_split(cuts, out_dir, "timit", name, f", {phones} phones")
    return splits

"""Corpora the toolkit did not write: Kaldi data directories, CSV/TSV tables, NeMo-style JSON lines and
folders of audio files with a transcript beside each, turned into the corpus recipes' manifests.

Every importer reads its input into ``Utterance`` rows (each remembering the ``FILE:LINE`` that named
it), then ``write_corpus`` does the rest the same way for all of them: text normalisation (case,
punctuation, a character whitelist) with a report of every character seen, audio headers read in
parallel (any format, rate and channel count libsndfile reads; the loader resamples and downmixes),
a speaker-disjoint dev/test hold-out, and per split ``CORPUS_cuts_SPLIT.jsonl.gz``, ``text_SPLIT``,
``utt2spk_SPLIT`` (``splits.write_split``) plus ``CORPUS_chars.txt``.

Bad input stops the import with one line naming the file and line (a missing column, a file without
a header, a path outside the root, a missing audio file, text that is not UTF-8, an empty transcript,
a duplicate id); everything is read and checked before the first file is written.

The readers are written here rather than taken from lhotse: ``lhotse.kaldi.load_kaldi_data_dir``
checks with bare asserts that name neither file nor line, gives every recording one sampling rate,
drops unreadable recordings with a warning (up to 20% of them) and keeps piped ``wav.scp`` commands,
which the toolkit's loader does not run (they are run once here, into FLAC files); lhotse has no
reader for generic tables, NeMo manifests or MFA folders.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import subprocess
import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import soundfile as sf
from lhotse import CutSet, MonoCut, Recording, SupervisionSegment
from lhotse.audio import AudioSource

from ...audio.io import AudioError, audio_info
from ...config import CustomPrepareConfig
from .splits import hold_out, write_split

__all__ = ["Utterance", "normalize_text", "write_corpus", "prepare_kaldi", "prepare_table", "prepare_jsonl",
           "prepare_folder"]

log = logging.getLogger(__name__)

_TOLERANCE = 0.025  # seconds a segment may pass its file's end (lhotse's tolerance for rounding)
_AUDIO_SUFFIXES = {f".{name.lower()}" for name in sf.available_formats()} | {".sph", ".wv", ".opus", ".mp3"}
_PUNCT_INSIDE = {"'", "-"}  # kept between two letters: "don't", "x-ray"


@dataclass
class Utterance:
    """One transcribed stretch of audio, as an importer read it."""

    id: str  # cut and supervision id
    audio: Path  # audio file
    text: str  # transcript as written in the input
    speaker: str | None  # None: unknown (the utterance id stands in)
    origin: str  # "FILE:LINE" (or "FILE") that named it, for error messages
    start: float = 0.0  # seconds into the file
    duration: float | None = None  # seconds; None: to the end of the file
    recording_id: str | None = None  # None: the utterance id for a whole file, the file's stem for a segment


def normalize_text(text: str, case: str = CustomPrepareConfig.case,
                   remove_punct: bool = CustomPrepareConfig.remove_punct) -> str:
    """Whitespace collapsed; ``case`` "keep", "upper" or "lower"; with ``remove_punct`` every punctuation
    character deleted except ``'`` and ``-`` between two letters (``don't``, ``x-ray`` stay)."""
    if case not in ("keep", "upper", "lower"):
        raise ValueError(f"case: expected keep, upper or lower, got {case!r}")
    text = unicodedata.normalize("NFC", text)
    if remove_punct:
        kept = []
        for i, char in enumerate(text):
            if unicodedata.category(char).startswith("P"):
                inside = 0 < i < len(text) - 1 and text[i - 1].isalpha() and text[i + 1].isalpha()
                if not (char in _PUNCT_INSIDE and inside):
                    kept.append(" ")
                    continue
            kept.append(char)
        text = "".join(kept)
    text = " ".join(text.split())
    return text.upper() if case == "upper" else text.lower() if case == "lower" else text


# ---- shared back end ------------------------------------------------------------------------------


def _probe(path: Path) -> sf._SoundFileInfo | AudioError:
    try:
        return audio_info(path)
    except AudioError as err:
        return err


def _headers(utterances: list[Utterance], num_jobs: int) -> dict[Path, sf._SoundFileInfo]:
    """Header of every audio file, read by ``num_jobs`` threads; the first unreadable one is an error."""
    first = {}
    for utt in utterances:
        first.setdefault(utt.audio, utt.origin)
    with ThreadPoolExecutor(max(1, num_jobs)) as pool:
        infos = dict(zip(first, pool.map(_probe, first)))
    for path, info in infos.items():
        if isinstance(info, AudioError):
            raise ValueError(f"{first[path]}: {info}")
    return infos


def _cut(utt: Utterance, info: sf._SoundFileInfo, text: str) -> MonoCut:
    file_duration = info.frames / info.samplerate
    duration = file_duration - utt.start if utt.duration is None else utt.duration
    if duration <= 0:
        raise ValueError(f"{utt.origin}: utterance {utt.id!r} lasts {duration:.3f} s (start {utt.start} s in "
                         f"{utt.audio}, {file_duration:.3f} s long)")
    if utt.start + duration > file_duration + _TOLERANCE:
        raise ValueError(f"{utt.origin}: utterance {utt.id!r} ends at {utt.start + duration:.3f} s, after the end "
                         f"of {utt.audio} ({file_duration:.3f} s)")
    duration = min(duration, file_duration - utt.start)
    whole = utt.start == 0 and utt.duration is None
    recording_id = utt.recording_id or (utt.id if whole else utt.audio.stem)
    recording = Recording(
        id=recording_id,
        sources=[AudioSource(type="file", channels=list(range(info.channels)), source=str(utt.audio))],
        sampling_rate=info.samplerate, num_samples=info.frames, duration=file_duration,
    )
    speaker = utt.speaker or utt.id
    supervision = SupervisionSegment(id=utt.id, recording_id=recording_id, start=0.0, duration=duration, channel=0,
                                     text=text, speaker=speaker)
    return MonoCut(id=utt.id, start=utt.start, duration=duration, channel=0, recording=recording,
                   supervisions=[supervision])


def _texts(utterances: list[Utterance], cfg: CustomPrepareConfig) -> tuple[dict[str, str], Counter]:
    """Normalised transcript per kept utterance id, and the count of every character seen.

    Raises:
        ValueError: ``FILE:LINE`` of an empty transcript or a duplicate id.
    """
    seen: dict[str, str] = {}
    texts: dict[str, str] = {}
    chars: Counter = Counter()
    allowed = set(cfg.chars) | {" "} if cfg.chars else None
    for utt in utterances:
        if utt.id in seen:
            raise ValueError(f"{utt.origin}: duplicate utterance id {utt.id!r} (first at {seen[utt.id]})")
        seen[utt.id] = utt.origin
        text = normalize_text(utt.text, cfg.case, cfg.remove_punct)
        if not text:
            raise ValueError(f"{utt.origin}: empty transcript for {utt.id!r}")
        chars.update(text)
        if allowed is None or set(text) <= allowed:
            texts[utt.id] = text
    return texts, chars


def _write_chars(path: Path, chars: Counter, allowed: str) -> None:
    """``CHAR<TAB>COUNT<TAB>U+CODE NAME`` per character seen, most frequent first; ``*`` marks those outside
    the whitelist."""
    with open(path, "w", encoding="utf-8") as f:
        for char, count in chars.most_common():
            mark = "\t*" if allowed and char not in allowed and char != " " else ""
            name = unicodedata.name(char, "?")
            f.write(f"{char if char != ' ' else '<space>'}\t{count}\tU+{ord(char):04X} {name}{mark}\n")


def _split(cuts: list[MonoCut], cfg: CustomPrepareConfig, known_speakers: bool) -> dict[str, list[MonoCut]]:
    """``{cfg.split: all}``, or train/dev/test with speakers (utterances when unknown) held out."""
    if cfg.split:
        return {cfg.split: cuts}
    speakers = [c.supervisions[0].speaker for c in cuts]
    if not known_speakers:
        log.warning("no speakers given: dev and test hold out utterances, each its own speaker")
    try:
        dev, test = hold_out(speakers, [cfg.dev_fraction, cfg.test_fraction], cfg.seed)
    except ValueError as err:
        raise ValueError(f"dev/test split: {err}; lower --dev-fraction/--test-fraction or give --split") from None
    splits = {"train": [c for c, s in zip(cuts, speakers) if s not in dev and s not in test],
              "dev": [c for c, s in zip(cuts, speakers) if s in dev],
              "test": [c for c, s in zip(cuts, speakers) if s in test]}
    return {name: part for name, part in splits.items() if part or name == "train"}


def write_corpus(utterances: Iterable[Utterance], out_dir: str | Path, cfg: CustomPrepareConfig | None = None
                 ) -> dict[str, CutSet]:
    """Normalise, check and split ``utterances``; write the manifests and Kaldi files of every split.

    Writes ``CORPUS_cuts_SPLIT.jsonl.gz``, ``text_SPLIT`` and ``utt2spk_SPLIT`` per split, and
    ``CORPUS_chars.txt`` (every character of the normalised transcripts with its count; ``CORPUS_chars_SPLIT.txt``
    when ``cfg.split`` names the one split). Utterances
    with characters outside ``cfg.chars`` are left out and counted. Nothing is written unless every
    utterance passed. Holds every utterance in memory (about 3 kB of cut each).

    Returns:
        The cut sets by split name.
    """
    cfg = cfg or CustomPrepareConfig()
    utterances = list(utterances)
    if not utterances:
        raise ValueError("no utterances found")
    texts, chars = _texts(utterances, cfg)
    dropped = len(utterances) - len(texts)
    kept = [u for u in utterances if u.id in texts]
    infos = _headers(kept, cfg.num_jobs)
    cuts = [_cut(u, infos[u.audio], texts[u.id]) for u in kept]
    if not cuts:
        raise ValueError(f"every utterance has characters outside --chars {cfg.chars!r}")
    splits = _split(cuts, cfg, any(u.speaker for u in kept))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    result = {}
    for name, part in splits.items():
        result[name] = CutSet.from_cuts(part)
        write_split(result[name], out_dir, cfg.corpus, name)
    report = out_dir / (f"{cfg.corpus}_chars_{cfg.split}.txt" if cfg.split else f"{cfg.corpus}_chars.txt")
    _write_chars(report, chars, cfg.chars)
    rates = Counter(info.samplerate for info in infos.values())
    log.info("%d utterances, %d audio files; %s; characters: %s", len(cuts), len(infos),
             ", ".join(f"{n} at {r} Hz" for r, n in rates.most_common()), report)
    if dropped:
        log.warning("left out %d utterances with characters outside %r (marked * in %s)", dropped, cfg.chars,
                    report)
    return result


# ---- reading the inputs ---------------------------------------------------------------------------


def _decode(path: Path) -> str:
    """The UTF-8 text of ``path`` (a byte-order mark allowed); ``FILE:LINE`` of the first undecodable byte."""
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise ValueError(f"{path}:{line}: not UTF-8 text (byte 0x{raw[err.start]:02x}); convert the file, e.g. "
                         f"iconv -f latin1 -t utf-8") from None


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, line) of a UTF-8 text file, blank lines left out."""
    for number, line in enumerate(_decode(path).splitlines(), 1):
        if line.strip():
            yield number, line


def _absolute(path: Path) -> Path:
    """``path`` made absolute and ``..`` folded, symbolic links kept (a corpus of links stays inside its root)."""
    return Path(os.path.abspath(path))


def _inside(root: Path, name: str, origin: str) -> Path:
    """``root/name`` as an absolute path; a relative ``name`` that leads out of ``root`` is an error; must exist."""
    path = _absolute(root / name)
    if not Path(name).is_absolute() and not path.is_relative_to(_absolute(root)):
        raise ValueError(f"{origin}: audio path {name!r} leads outside the root {root}")
    if not path.is_file():
        raise ValueError(f"{origin}: no audio file {path}")
    return path


def _utterance_id(path: Path, root: Path) -> str:
    """The audio file's path below ``root`` without suffix, ``/`` as ``-`` (its stem when outside ``root``)."""
    try:
        return path.relative_to(_absolute(root)).with_suffix("").as_posix().replace("/", "-")
    except ValueError:
        return path.stem


# ---- Kaldi data directory -------------------------------------------------------------------------


def _kaldi_map(path: Path, required: bool = True, empty_value: bool = False) -> dict[str, tuple[str, str]]:
    """``ID REST`` lines of a Kaldi file -> {id: (rest, "FILE:LINE")}."""
    if not path.is_file():
        if required:
            raise FileNotFoundError(f"{path}: no such file (a Kaldi data directory needs wav.scp and text)")
        return {}
    table: dict[str, tuple[str, str]] = {}
    for number, line in _lines(path):
        key, *value = line.split(maxsplit=1)
        origin = f"{path}:{number}"
        rest = value[0].strip() if value else ""
        if not rest and not empty_value:
            raise ValueError(f"{origin}: expected 'ID VALUE', got {line.strip()!r}")
        if key in table:
            raise ValueError(f"{origin}: duplicate id {key!r} (first at {table[key][1]})")
        table[key] = (rest, origin)
    return table


def _run_command(command: str, origin: str, out: Path) -> Path:
    """Run a piped ``wav.scp`` command once; its audio goes to ``out`` (FLAC)."""
    done = subprocess.run(command, shell=True, capture_output=True)
    if done.returncode != 0:
        reason = done.stderr.decode(errors="replace").strip().splitlines()
        raise ValueError(f"{origin}: command failed with status {done.returncode}: {command!r}"
                         f"{' (' + reason[-1] + ')' if reason else ''}")
    try:
        samples, rate = sf.read(io.BytesIO(done.stdout), dtype="int16", always_2d=True)
    except (RuntimeError, sf.LibsndfileError) as err:
        raise ValueError(f"{origin}: the command's output is no audio libsndfile reads ({err})") from None
    out.parent.mkdir(parents=True, exist_ok=True)
    sf.write(out, samples, rate, format="FLAC")
    return out


def _kaldi_audio(wav_scp: dict[str, tuple[str, str]], audio_dir: Path, num_jobs: int) -> dict[str, Path]:
    """Recording id -> audio file: paths as they are (relative ones from the current directory), piped
    commands run into ``audio_dir/ID.flac`` by ``num_jobs`` threads (once: an existing file is kept)."""
    files, commands = {}, {}
    for rec, (value, origin) in wav_scp.items():
        if value.endswith("|"):
            commands[rec] = (value[:-1].strip(), origin)
            continue
        path = _absolute(Path(value))
        if not path.is_file():
            raise ValueError(f"{origin}: no audio file {value}")
        files[rec] = path

    def run(item):
        rec, (command, origin) = item
        out = audio_dir / f"{rec}.flac"
        return rec, out if out.is_file() else _run_command(command, origin, out)

    with ThreadPoolExecutor(max(1, num_jobs)) as pool:
        files.update(pool.map(run, commands.items()))
    return files


def _kaldi_segments(data_dir: Path) -> dict[str, tuple[str, float, float | None, str]]:
    """``segments``: utterance -> (recording, start, duration or None for ``-1``, "FILE:LINE")."""
    segments = {}
    for utt, (rest, origin) in _kaldi_map(data_dir / "segments", required=False).items():
        fields = rest.split()
        try:
            rec, start, end = fields[0], float(fields[1]), float(fields[2])
            if len(fields) != 3:
                raise ValueError
        except (ValueError, IndexError):
            raise ValueError(f"{origin}: expected 'UTTERANCE RECORDING START END', got {utt} {rest!r}") from None
        if start < 0 or (end != -1 and end <= start):
            raise ValueError(f"{origin}: segment {utt!r} has start {start} and end {end}")
        segments[utt] = (rec, start, None if end == -1 else end - start, origin)
    return segments


def prepare_kaldi(data_dir: str | Path, out_dir: str | Path, cfg: CustomPrepareConfig | None = None
                  ) -> dict[str, CutSet]:
    """A Kaldi data directory: ``wav.scp`` (paths or piped commands), ``text``, optional ``segments``
    and ``utt2spk``.

    Relative paths and commands in ``wav.scp`` are taken from the current directory, as Kaldi does.
    A piped command (``sph2pipe -f wav x.sph |``) runs once, its audio stored as ``out_dir/audio/ID.flac``
    (after the transcripts passed their checks, before the audio headers are; a rerun reuses the file).
    Without ``utt2spk`` the speakers are unknown. Every utterance of ``text`` needs a recording
    (``segments`` or ``wav.scp``), and every utterance of ``segments`` a transcript.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"{data_dir}: no such directory")
    cfg = cfg or CustomPrepareConfig()
    wav_scp = _kaldi_map(data_dir / "wav.scp")
    texts = _kaldi_map(data_dir / "text", empty_value=True)
    speakers = _kaldi_map(data_dir / "utt2spk", required=False)
    segments = _kaldi_segments(data_dir)
    for utt, (rec, _, _, origin) in segments.items():
        if rec not in wav_scp:
            raise ValueError(f"{origin}: recording {rec!r} is not in {data_dir / 'wav.scp'}")
        if utt not in texts:
            raise ValueError(f"{origin}: utterance {utt!r} has no line in {data_dir / 'text'}")
    known = segments or wav_scp
    for utt, (_, origin) in texts.items():
        if utt not in known:
            raise ValueError(f"{origin}: utterance {utt!r} is in neither segments nor wav.scp")
        if speakers and utt not in speakers:
            raise ValueError(f"{origin}: utterance {utt!r} has no line in {data_dir / 'utt2spk'}")
    utterances = []
    for utt, (text, origin) in texts.items():
        rec, start, duration, _ = segments.get(utt, (utt, 0.0, None, origin))
        utterances.append(Utterance(id=utt, audio=Path(rec), text=text, speaker=speakers.get(utt, (None,))[0],
                                    origin=origin, start=start, duration=duration, recording_id=rec))
    _texts(utterances, cfg)  # transcript errors before any command runs
    audio = _kaldi_audio(wav_scp, Path(out_dir) / "audio", cfg.num_jobs)
    for utt in utterances:
        utt.audio = audio[utt.recording_id]
    return write_corpus(utterances, out_dir, cfg)


# ---- CSV/TSV tables -------------------------------------------------------------------------------


def _column(spec: str, header: list[str] | None, path: Path) -> int:
    """0-based index of a column given by name (needs a header) or by 1-based number."""
    if spec.isdigit():
        return int(spec) - 1
    if header is None:
        raise ValueError(f"{path}: column {spec!r} is a name, but the file has no header (--no-header): give "
                         f"column numbers (1 = first)")
    if spec not in header:
        raise ValueError(f"{path}:1: no column {spec!r} in the header ({', '.join(header)}); a file without a "
                         f"header takes column numbers and --no-header")
    return header.index(spec)


def _delimiter(path: Path, delimiter: str | None) -> str:
    if delimiter:
        return "\t" if delimiter in ("\\t", "tab") else delimiter
    return "\t" if path.suffix.lower() == ".tsv" else ","


def prepare_table(table: str | Path, out_dir: str | Path, audio: str, text: str, speaker: str | None = None, *,
                  root: str | Path | None = None, delimiter: str | None = None, header: bool = True,
                  audio_suffix: str = "", cfg: CustomPrepareConfig | None = None) -> dict[str, CutSet]:
    """A CSV/TSV table with one utterance per row: Common Voice's ``validated.tsv`` (``--audio path
    --text sentence --speaker client_id --root clips``), LJSpeech's ``metadata.csv`` (``--delimiter '|'
    --no-header --audio 1 --text 3 --root wavs --audio-suffix .wav``), a spreadsheet export.

    Args:
        table: the file, UTF-8.
        out_dir: where manifests go.
        audio, text, speaker: columns, by header name or 1-based number.
        root: relative audio paths start here (default: the table's directory); none may lead out of it.
        delimiter: field separator (default: tab for ``.tsv``, else comma). Quotes are parsed only in
            comma-separated files (Common Voice and LJSpeech texts hold unbalanced quotes).
        header: the first row names the columns.
        audio_suffix: appended to every audio value (LJSpeech gives ids, not file names).
        cfg: text normalisation, split and corpus name.
    """
    table = Path(table)
    root = Path(root) if root is not None else table.parent
    sep = _delimiter(table, delimiter)
    reader = csv.reader(io.StringIO(_decode(table)), delimiter=sep,
                        quoting=csv.QUOTE_MINIMAL if sep == "," else csv.QUOTE_NONE)
    names = next(reader, None) if header else None
    if header and names is None:
        raise ValueError(f"{table}: empty file")
    columns = [_column(c, names, table) if c is not None else None for c in (audio, text, speaker)]
    needed = max(c for c in columns if c is not None) + 1
    utterances = []
    for row in reader:
        origin = f"{table}:{reader.line_num}"
        if not any(field.strip() for field in row):
            continue
        if len(row) < needed:
            raise ValueError(f"{origin}: {len(row)} fields, column {needed} needed (delimiter {sep!r})")
        path = _inside(root, row[columns[0]].strip() + audio_suffix, origin)
        who = row[columns[2]].strip() or None if columns[2] is not None else None
        utterances.append(Utterance(id=_utterance_id(path, root), audio=path, text=row[columns[1]], speaker=who,
                                    origin=origin))
    return write_corpus(utterances, out_dir, cfg)


# ---- NeMo-style JSON lines ------------------------------------------------------------------------


def prepare_jsonl(manifest: str | Path, out_dir: str | Path, *, root: str | Path | None = None,
                  cfg: CustomPrepareConfig | None = None) -> dict[str, CutSet]:
    """NeMo-style JSON lines: ``audio_filepath``, ``text``, optional ``duration``, ``offset`` and ``speaker``.

    Relative paths start at ``root`` (default: the manifest's directory). The utterance id is the
    file's path below the root without suffix, with ``-OFFSET`` in centiseconds for a line with an offset.
    """
    manifest = Path(manifest)
    root = Path(root) if root is not None else manifest.parent
    utterances = []
    for number, line in _lines(manifest):
        origin = f"{manifest}:{number}"
        try:
            item = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{origin}: not JSON ({err.msg} at column {err.colno})") from None
        missing = [key for key in ("audio_filepath", "text") if not isinstance(item, dict) or key not in item]
        if missing:
            raise ValueError(f"{origin}: no {missing[0]!r} field")
        path = _inside(root, str(item["audio_filepath"]), origin)
        utt_id = _utterance_id(path, root)
        if "offset" in item:
            utt_id += f"-{round(float(item['offset']) * 100):07d}"
        duration = item.get("duration")
        utterances.append(Utterance(id=utt_id, audio=path, text=str(item["text"]), speaker=item.get("speaker"),
                                    origin=origin, start=float(item.get("offset", 0.0)),
                                    duration=float(duration) if duration is not None else None,
                                    recording_id=_utterance_id(path, root)))
    return write_corpus(utterances, out_dir, cfg)


# ---- folders of audio with transcripts beside ----------------------------------------------------


def prepare_folder(folder: str | Path, out_dir: str | Path, cfg: CustomPrepareConfig | None = None
                   ) -> dict[str, CutSet]:
    """Audio files with a same-named ``.lab`` or ``.txt`` transcript beside each (the Montreal Forced
    Aligner layout); searched recursively. A file's first directory below ``folder`` is its speaker
    (files directly in ``folder`` have none)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such directory")
    utterances = []
    for path in sorted(p for p in folder.rglob("*") if p.suffix.lower() in _AUDIO_SUFFIXES and p.is_file()):
        transcript = next((t for t in (path.with_suffix(".lab"), path.with_suffix(".txt")) if t.is_file()), None)
        if transcript is None:
            raise ValueError(f"{path}: no transcript {path.with_suffix('.lab').name} or "
                             f"{path.with_suffix('.txt').name} beside it")
        relative = path.relative_to(folder)
        utterances.append(Utterance(id=_utterance_id(_absolute(path), folder), audio=_absolute(path),
                                    text=" ".join(line for _, line in _lines(transcript)),
                                    speaker=relative.parts[0] if len(relative.parts) > 1 else None,
                                    origin=f"{transcript}:1"))
    if not utterances:
        raise ValueError(f"{folder}: no audio files ({', '.join(sorted(_AUDIO_SUFFIXES))})")
    return write_corpus(utterances, out_dir, cfg)


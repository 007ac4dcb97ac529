"""Check cut manifests before training, in the spirit of Kaldi's ``validate_data_dir.sh`` / ``fix_data_dir.sh``.

One streaming pass per manifest reads each line as JSON (no lhotse Cut objects) and reports, one
line per problem naming manifest, line, cut and audio file:

errors (the cut is left out by ``fix``): a line that is no cut, a duplicate id, an empty transcript,
a zero or negative duration, missing, unreadable or truncated audio, a recording whose length
disagrees with its file, an utterance too short for CTC (fewer frames after subsampling than units
plus repeated units), characters outside the model's units;

warnings: an utterance longer than training keeps (``data.max_utt_duration``), a mix of sampling
rates or channel counts (the loader resamples and downmixes, but the mix is often a mistake),
speakers of a later manifest (dev, test) found in the first (train).

Memory: per cut, 8 bytes (a hash of its id, for duplicates); the speakers, the counts and the first
``MAX_KEPT_PROBLEMS`` problems besides. Audio checks run in ``num_jobs`` threads over blocks of lines.
"""

from __future__ import annotations

import functools
import gzip
import json
import logging
import math
import time
from array import array
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from itertools import islice
from pathlib import Path

import numpy as np
import soundfile as sf

from ..audio.features import LogMel
from ..audio.io import AudioError, audio_info
from ..config import DataConfig, FeatureConfig, SubsamplingConfig, ValidateConfig
from .tokenizer import ctc_min_frames

__all__ = ["Problem", "ManifestSummary", "ValidationReport", "validate_manifests", "AUDIO_CHECKS", "MAX_KEPT_PROBLEMS"]

log = logging.getLogger(__name__)

AUDIO_CHECKS = ("none", "exists", "header", "decode")
MAX_KEPT_PROBLEMS = 10000  # problems kept for the JSON report (all are counted and passed to on_problem)
_BLOCK = 2048  # lines parsed, then checked in parallel, at a time
_SLICE = 64  # cuts per task of a checking thread (one task per cut costs more than a check without audio)
_WARNINGS = {"too-long", "rate-mix", "channel-mix", "shared-speakers"}


@dataclass
class Problem:
    """One finding about one cut (or, for a manifest-wide warning, line 0 and no cut)."""

    kind: str  # e.g. "missing-audio", "too-short-for-ctc"
    manifest: str
    line: int
    cut: str
    audio: str
    detail: str

    @property
    def severity(self) -> str:
        return "warning" if self.kind in _WARNINGS else "error"

    def __str__(self) -> str:
        where = f"{self.manifest}:{self.line}" if self.line else self.manifest
        cut = f" cut {self.cut}" if self.cut else ""
        audio = f" ({self.audio})" if self.audio else ""
        return f"{self.severity}: {where}:{cut}{audio}: {self.kind}: {self.detail}"


@dataclass
class ManifestSummary:
    """Counts of one manifest's pass."""

    path: str
    cuts: int = 0
    hours: float = 0.0
    speakers: int = 0
    sampling_rates: dict = field(default_factory=dict)  # Hz -> cuts
    channels: dict = field(default_factory=dict)  # channel count -> cuts
    errors: dict = field(default_factory=dict)  # kind -> count
    warnings: dict = field(default_factory=dict)  # kind -> count
    seconds: float = 0.0  # wall time of the pass

    @property
    def cuts_per_second(self) -> float:
        return self.cuts / self.seconds if self.seconds else 0.0


@dataclass
class ValidationReport:
    manifests: list[ManifestSummary]
    problems: list[Problem]  # the first MAX_KEPT_PROBLEMS
    audio_check: str  # the audio check level

    @property
    def num_errors(self) -> int:
        return sum(sum(m.errors.values()) for m in self.manifests)

    def table(self) -> str:
        """The summary: one row per manifest, then one per problem kind."""
        rows = [f"{'manifest':<40} {'cuts':>9} {'hours':>8} {'speakers':>8} {'errors':>7} {'warnings':>8} "
                f"{'cuts/s':>9}"]
        for m in self.manifests:
            rows.append(f"{Path(m.path).name:<40} {m.cuts:>9} {m.hours:>8.2f} {m.speakers:>8} "
                        f"{sum(m.errors.values()):>7} {sum(m.warnings.values()):>8} {m.cuts_per_second:>9.0f}")
        kinds = Counter()
        for m in self.manifests:
            kinds.update(m.errors)
            kinds.update(m.warnings)
        rows += [f"  {kind:<38} {count:>9}" for kind, count in sorted(kinds.items())]
        rates = Counter()
        for m in self.manifests:
            rates.update(m.sampling_rates)
        rows.append(f"  sampling rates: {', '.join(f'{r} Hz x {n}' for r, n in sorted(rates.items()))}; "
                    f"audio checks: {self.audio_check}")
        return "\n".join(rows)

    def to_json(self) -> dict:
        return {"audio_check": self.audio_check, "errors": self.num_errors,
                "manifests": [dict(asdict(m), cuts_per_second=round(m.cuts_per_second, 1)) for m in self.manifests],
                "problems": [dict(asdict(p), severity=p.severity) for p in self.problems]}


@dataclass
class _Cut:
    """What the checks need of one manifest line."""

    line: int
    id: str
    start: float
    duration: float
    text: str
    speaker: str | None
    audio: str
    rate: int
    channels: int
    recording_samples: int


def _open(path: Path):
    return gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else open(path, encoding="utf-8")


def _parse(number: int, line: str) -> _Cut:
    """A manifest line -> ``_Cut``; ``ValueError`` (the reason) for a line that is no lhotse cut of a file."""
    try:
        cut = json.loads(line)
    except json.JSONDecodeError as err:
        raise ValueError(f"not JSON ({err.msg} at column {err.colno})") from None
    try:
        recording = cut["recording"]
        source = recording["sources"][0]
        supervisions = cut.get("supervisions") or []
        return _Cut(line=number, id=str(cut["id"]), start=float(cut.get("start", 0.0)),
                    duration=float(cut["duration"]),
                    text=" ".join(" ".join((s.get("text") or "").split()) for s in supervisions).strip(),
                    speaker=supervisions[0].get("speaker") if supervisions else None,
                    audio=str(source["source"]) if source.get("type", "file") == "file" else "",
                    rate=int(recording["sampling_rate"]), channels=len(source.get("channels") or [0]),
                    recording_samples=int(recording["num_samples"]))
    except (KeyError, IndexError, TypeError, ValueError) as err:
        raise ValueError(f"not a cut with a recording ({type(err).__name__}: {err})") from None


@functools.lru_cache(maxsize=64)  # the segments of one long recording come one after another
def _header(path: str):
    return audio_info(path)


class _AudioChecker:
    """Audio checks of one cut at a level of ``AUDIO_CHECKS``; returns (kind, detail) problems."""

    def __init__(self, level: str, tolerance: float):
        self.level = level
        self.tolerance = tolerance

    def __call__(self, cut: _Cut) -> list[tuple[str, str]]:
        if self.level == "none":
            return []
        if not cut.audio:
            return [("unreadable-audio", "not a file audio source (the loader reads files only)")]
        if self.level == "exists":
            return [] if Path(cut.audio).is_file() else [("missing-audio", "no such file")]
        if not Path(cut.audio).exists():
            return [("missing-audio", "no such file")]
        try:
            info = _header(cut.audio)
        except AudioError as err:
            return [("unreadable-audio", str(err).removeprefix(f"{cut.audio}: "))]
        return self._lengths(cut, info)

    def _lengths(self, cut: _Cut, info) -> list[tuple[str, str]]:
        problems = []
        file_seconds = info.frames / info.samplerate
        end = cut.start + cut.duration
        if end > file_seconds + self.tolerance:
            problems.append(("truncated-audio", f"the cut ends at {end:.3f} s, the file holds {file_seconds:.3f} s"))
        elif abs(cut.recording_samples / cut.rate - file_seconds) > self.tolerance:
            problems.append(("duration-mismatch", f"the manifest says {cut.recording_samples / cut.rate:.3f} s, "
                             f"the file holds {file_seconds:.3f} s"))
        if info.samplerate != cut.rate:
            problems.append(("duration-mismatch", f"the manifest says {cut.rate} Hz, the file is {info.samplerate} Hz"))
        if self.level == "decode" and not problems:
            problems += self._decode_end(cut, info)
        return problems

    def _decode_end(self, cut: _Cut, info) -> list[tuple[str, str]]:
        """Read the cut's last 0.1 s: a file whose header promises more than it holds fails here."""
        last = max(0, math.floor((cut.start + cut.duration) * info.samplerate) - info.samplerate // 10)
        wanted = min(info.samplerate // 10, info.frames - last)
        try:
            with sf.SoundFile(cut.audio) as f:
                f.seek(last)
                got = len(f.read(wanted, dtype="int16"))
        except (RuntimeError, sf.LibsndfileError) as err:
            return [("truncated-audio", f"the header promises {info.frames} samples, reading at "
                     f"{last / info.samplerate:.2f} s fails ({str(err).strip()})")]
        if got < wanted:  # libsndfile stops early where the data ends
            return [("truncated-audio", f"{got} of {wanted} samples readable before {cut.start + cut.duration:.3f} s")]
        return []


class _TextChecker:
    """Transcript checks: empty, characters outside the units, too short for CTC."""

    def __init__(self, tokenizer, features: FeatureConfig, subsampling: int):
        self.tokenizer = tokenizer
        self.logmel = LogMel(features)
        self.sample_rate = features.sample_rate
        self.subsampling = subsampling

    def __call__(self, cut: _Cut) -> list[tuple[str, str]]:
        if not cut.text:
            return [("empty-text", "no transcript")]
        if self.tokenizer is None:
            units = list(cut.text.replace(" ", "|"))
        else:
            try:
                units = self.tokenizer.encode(cut.text)
            except ValueError as err:
                return [("unknown-chars", str(err))]
        if cut.duration <= 0:  # reported as zero-duration
            return []
        needed = ctc_min_frames(units)
        samples = round(cut.duration * self.sample_rate)
        frames = self.logmel.num_frames(samples) // self.subsampling
        if frames < needed:
            return [("too-short-for-ctc", f"{frames} frames after subsampling for {needed} units and repeats "
                     f"({cut.duration:.2f} s)")]
        return []


class _Pass:
    """One manifest's pass: parse blocks of lines, check them, count and report."""

    def __init__(self, path: Path, checks: list[Callable], pool: ThreadPoolExecutor, max_utt_duration: float,
                 report: Callable[[Problem], None]):
        self.path, self.checks, self.pool = path, checks, pool
        self.max_utt_duration = max_utt_duration
        self.report = report
        self.summary = ManifestSummary(path=str(path))
        self.speakers: set[str] = set()
        self.id_hashes = array("q")
        self.bad_lines: set[int] = set()
        self.rates: Counter = Counter()
        self.channels: Counter = Counter()

    def problem(self, kind: str, line: int, cut: str, audio: str, detail: str) -> None:
        counts = self.summary.warnings if kind in _WARNINGS else self.summary.errors
        counts[kind] = counts.get(kind, 0) + 1
        if kind not in _WARNINGS and line:
            self.bad_lines.add(line)
        self.report(Problem(kind, str(self.path), line, cut, audio, detail))

    def run(self) -> None:
        started = time.time()
        with _open(self.path) as f:
            numbered = ((n, line) for n, line in enumerate(f, 1) if line.strip())
            while block := list(islice(numbered, _BLOCK)):
                self._block(block)
        self._duplicates()
        self._mixes()
        self.summary.speakers = len(self.speakers)
        self.summary.sampling_rates, self.summary.channels = dict(self.rates), dict(self.channels)
        self.summary.seconds = time.time() - started

    def _block(self, block: list[tuple[int, str]]) -> None:
        cuts = []
        for number, line in block:
            try:
                cuts.append(_parse(number, line))
            except ValueError as err:
                self.problem("bad-line", number, "", "", str(err))
        slices = [cuts[i:i + _SLICE] for i in range(0, len(cuts), _SLICE)]
        for part, found in zip(slices, self.pool.map(self._check, slices)):
            for cut, problems in zip(part, found):
                self._count(cut)
                for kind, detail in problems:
                    self.problem(kind, cut.line, cut.id, cut.audio, detail)

    def _check(self, cuts: list[_Cut]) -> list[list[tuple[str, str]]]:
        """(kind, detail) problems of each cut (in a worker thread)."""
        return [[p for check in self.checks for p in check(cut)] for cut in cuts]

    def _count(self, cut: _Cut) -> None:
        s = self.summary
        s.cuts += 1
        s.hours += cut.duration / 3600
        self.id_hashes.append(hash(cut.id))
        self.rates[cut.rate] += 1
        self.channels[cut.channels] += 1
        if cut.speaker is not None:
            self.speakers.add(cut.speaker)
        if cut.duration <= 0:
            self.problem("zero-duration", cut.line, cut.id, cut.audio, f"duration {cut.duration}")
        elif cut.duration > self.max_utt_duration:
            self.problem("too-long", cut.line, cut.id, cut.audio, f"{cut.duration:.1f} s: training drops cuts "
                         f"over {self.max_utt_duration:g} s (data.max_utt_duration)")

    def _duplicates(self) -> None:
        """Ids whose hash occurs twice are confirmed by a second pass; every repeat after the first is an error."""
        hashes = np.frombuffer(self.id_hashes, dtype=np.int64) if len(self.id_hashes) else np.zeros(0, np.int64)
        values, counts = np.unique(hashes, return_counts=True)
        suspects = set(values[counts > 1].tolist())
        if not suspects:
            return
        first: dict[str, int] = {}
        with _open(self.path) as f:
            for number, line in enumerate(f, 1):
                try:
                    cut_id = str(json.loads(line)["id"])
                except (json.JSONDecodeError, KeyError, TypeError):  # blank or bad lines: reported already
                    continue
                if hash(cut_id) not in suspects:
                    continue
                if cut_id in first:
                    self.problem("duplicate-id", number, cut_id, "", f"first at line {first[cut_id]}")
                else:
                    first[cut_id] = number

    def _mixes(self) -> None:
        for kind, counts, unit in (("rate-mix", self.rates, "Hz"), ("channel-mix", self.channels, "channel(s)")):
            if len(counts) > 1:
                self.problem(kind, 0, "", "", ", ".join(f"{n} cuts at {v} {unit}" for v, n in counts.most_common()))


def _write_fixed(path: Path, bad_lines: set[int], out_dir: Path) -> Path:
    """Copy of the manifest without ``bad_lines``, written under ``out_dir`` with the same name."""
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / path.name
    opener = gzip.open if out.suffix == ".gz" else open
    with _open(path) as f, opener(out, "wt", encoding="utf-8") as w:
        for number, line in enumerate(f, 1):
            if line.strip() and number not in bad_lines:
                w.write(line)
    return out


def validate_manifests(paths: Sequence[str | Path], tokenizer=None, cfg: ValidateConfig | None = None, *,
                       features: FeatureConfig | None = None, subsampling: int = SubsamplingConfig.factor,
                       max_utt_duration: float = DataConfig.max_utt_duration,
                       on_problem: Callable[[Problem], None] | None = None,
                       fix_dir: str | Path | None = None) -> ValidationReport:
    """Check each manifest in one streaming pass (two when ids repeat); the first is the training set.

    Args:
        paths: cut manifests (``.jsonl`` or ``.jsonl.gz``); speakers of the later ones are looked up in the first.
        tokenizer: the model's units (``encode`` raises ``ValueError`` for an unknown character); None counts
            characters, with ``|`` between words, for the CTC length check.
        cfg: audio check level, tolerance, threads.
        features, subsampling: the model's frontend and frame-rate reduction (CTC length check).
        max_utt_duration: longer cuts are reported (warning).
        on_problem: called with every problem as it is found (default: logged).
        fix_dir: write each manifest without its cuts with errors here, under the same name.

    Returns:
        The report; ``num_errors`` > 0 means at least one cut is broken.
    """
    cfg = cfg or ValidateConfig()
    if cfg.audio_check not in AUDIO_CHECKS:
        raise ValueError(f"audio: expected one of {', '.join(AUDIO_CHECKS)}, got {cfg.audio_check!r}")
    kept: list[Problem] = []

    def report(problem: Problem) -> None:
        if len(kept) < MAX_KEPT_PROBLEMS:
            kept.append(problem)
        (on_problem or (lambda p: log.warning("%s", p)))(problem)

    checks = [_TextChecker(tokenizer, features or FeatureConfig(), subsampling),
              _AudioChecker(cfg.audio_check, cfg.duration_tolerance)]
    summaries, train_speakers = [], None
    with ThreadPoolExecutor(max(1, cfg.num_jobs)) as pool:
        for path in map(Path, paths):
            if not path.is_file():
                raise FileNotFoundError(f"{path}: no such cut manifest")
            one = _Pass(path, checks, pool, max_utt_duration, report)
            one.run()
            if train_speakers is None:
                train_speakers = one.speakers
            elif shared := sorted(one.speakers & train_speakers):
                one.problem("shared-speakers", 0, "", "", f"{len(shared)} speaker(s) also in {paths[0]}: "
                            f"{', '.join(shared[:5])}{' ...' if len(shared) > 5 else ''}")
            if fix_dir is not None:
                log.info("wrote %s (%d cuts left out)", _write_fixed(path, one.bad_lines, Path(fix_dir)),
                         len(one.bad_lines))
            summaries.append(one.summary)
    return ValidationReport(manifests=summaries, problems=kept, audio_check=cfg.audio_check)


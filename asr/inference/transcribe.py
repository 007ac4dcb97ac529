"""``asr transcribe``: audio files of any format, rate, channel count and length -> transcripts.

Pipeline, one file after another with bounded memory:

1. ``find_audio`` expands the inputs: files, directories (recursively, by audio suffix), glob
   patterns and list files. Each input that yields nothing is reported, the rest go on.
2. A file up to ``SegmentConfig.max_segment`` seconds is decoded whole, exactly as ``asr decode``
   decodes a cut. A longer one is segmented on silence (``asr.segment``, one pass over the file)
   and its segments are read in a second forward pass (``asr.audio.read_spans``), so memory
   holds a few batches of segments, never the file: an hour of audio adds about 60 MB.
3. Segments from consecutive files are sorted by length inside a window of a few batches
   (little padding; padding never changes an output) and decoded ``batch_size`` at a time,
   greedily or with ``asr.decode.BeamSearch`` and its options (LM, lexicon, ...).
4. Word times come from a CTC alignment: the best path (greedy), or the forced alignment of the
   beam search's text. Output frame ``t`` covers input frames ``[t*k, t*k+k)``, so a frame lasts
   ``k * hop`` seconds (30 ms for the AN4 model). A word's confidence is the mean posterior of
   its units over the frames aligned to them, mapped by ``calibration.json`` beside the model
   when ``asr calibrate`` wrote one.
5. Results come back per file, in input order; ``transcribe`` writes them as text, JSON, SRT or
   WebVTT and reports every file that failed in one line naming it.
"""

from __future__ import annotations

import glob
import logging
import sys
import time
import zipfile
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TextIO

import torch
import torchaudio.functional as AF
from torch import Tensor
from tqdm import tqdm

from ..audio.io import AudioError, audio_info, load_audio, read_spans
from ..model.checkpoint import CheckpointError, load_model
from ..data.cuts import collate_feats
from ..decoding.confidence import default_calibration_path, load_calibrator
from ..decoding.search import BeamSearch, frame_shift, greedy_search
from ..audio.features import LogMel
from ..audio.segment import SegmentConfig, segment_file
from .outputs import FORMATS, Segment, Transcript, Word

__all__ = [
    "AUDIO_SUFFIXES",
    "AudioInput",
    "TranscribeSummary",
    "find_audio",
    "load_transcription_model",
    "search_setup",
    "Transcriber",
    "transcribe",
]

log = logging.getLogger(__name__)

# what a directory is searched for; files named explicitly may have any suffix
AUDIO_SUFFIXES = frozenset(
    {".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".sph", ".nist", ".aif", ".aiff", ".aifc",
     ".au", ".snd", ".w64", ".rf64", ".caf"}
)
_WINDOW_BATCHES = 4  # segments sorted by length together: this many batches (bounds memory too)


@dataclass
class AudioInput:
    path: Path  # the audio file
    name: Path  # its outputs' path without suffix, relative to the output directory


def find_audio(inputs: Sequence[str | Path], list_file: str | Path | None = None) -> tuple[list[AudioInput], list[str]]:
    """Expand files, directories (recursive), glob patterns and a list file into audio files.

    Args:
        inputs: paths or patterns as typed. A directory contributes every file below it whose
            suffix is in ``AUDIO_SUFFIXES``; a file is taken whatever its suffix.
        list_file: a text file with one input per line (blank lines and ``#`` comments skipped).

    Returns:
        (audio, errors): the files in input order without duplicates, and one message per
        input that yielded no file.
    """
    items = [str(i) for i in inputs]
    errors: list[str] = []
    if list_file is not None:
        try:
            with open(list_file, encoding="utf-8") as f:
                items += [line.strip() for line in f if line.strip() and not line.lstrip().startswith("#")]
        except (OSError, UnicodeDecodeError) as err:
            errors.append(f"{list_file}: cannot read list file ({err.strerror or err})")
    found: list[AudioInput] = []
    seen: set[Path] = set()
    names: set[Path] = set()

    def add(path: Path, name: Path) -> None:
        key = path.resolve()
        if key in seen:
            return
        seen.add(key)
        unique, n = name, 1
        while unique in names:  # two inputs called x.wav and x.flac, or a/x.wav and b/x.wav
            unique = name.with_name(f"{name.name}{path.suffix}" + (f"-{n}" if n > 1 else ""))
            n += 1
        names.add(unique)
        found.append(AudioInput(path, unique))

    def add_dir(directory: Path) -> None:
        files = sorted(p for p in directory.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
        if not files:
            errors.append(f"{directory}: directory holds no audio files ({', '.join(sorted(AUDIO_SUFFIXES))})")
        for p in files:
            add(p, p.relative_to(directory).with_suffix(""))

    for item in items:
        path = Path(item)
        if path.is_dir():
            add_dir(path)
        elif path.exists():
            add(path, Path(path.stem))
        elif glob.has_magic(item):
            matches = sorted(Path(m) for m in glob.glob(item, recursive=True))
            if not matches:
                errors.append(f"{item}: no file matches this pattern")
            for match in matches:
                if match.is_dir():
                    add_dir(match)
                else:
                    add(match, Path(match.stem))
        else:
            errors.append(f"{path}: no such file or directory")
    return found, errors


def _is_torchscript(path: str | Path) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            return any(name.endswith("/constants.pkl") or "/code/" in name for name in archive.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def load_transcription_model(path: str | Path):
    """``asr.checkpoint.load_model`` with every failure, however odd the file, as a ``CheckpointError``."""
    if _is_torchscript(path):
        raise CheckpointError(f"{path}: a TorchScript export ('asr export'), not a model file; give the model "
                              "file it was exported from")
    try:
        return load_model(path)
    except CheckpointError:
        raise
    except (TypeError, AttributeError, IndexError, KeyError, ValueError, RuntimeError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"{path}: incompatible model file ({reason})") from None


_LM_KEYS = ("lm", "lexicon", "lm_weight", "word_score", "hotwords")  # beam-lm only, as in ``asr decode``


def search_setup(method: str, model_path: str | Path, options: dict | None = None,
                 lm_params: str | Path | None = None) -> tuple[str, dict]:
    """The search ``asr decode --method`` would run: ``("greedy" | "beam", BeamSearch keyword arguments)``.

    Args:
        method: ``"greedy"``, ``"beam"`` (lexicon-free, no LM) or ``"beam-lm"`` (LM and/or lexicon).
        model_path: the model file; its directory's ``lm-params.yaml`` (``asr tune``) completes beam-lm options.
        options: beam_size, beam_threshold, nbest, and for beam-lm lm, lexicon, lm_weight, word_score
            (None values count as not given).
        lm_params: a tuned ``lm-params.yaml`` to use instead of the one next to the model.
    """
    given = {k: v for k, v in (options or {}).items() if v is not None}
    if method == "greedy":
        if given:
            raise ValueError(f"{', '.join(sorted(given))}: only for --method beam or beam-lm")
        return "greedy", {}
    if method == "beam":
        lm_given = sorted(k for k in given if k in _LM_KEYS)
        if lm_given or lm_params is not None:
            raise ValueError(f"{', '.join(lm_given) or 'lm_params'}: only for --method beam-lm")
        return "beam", given
    if method == "beam-lm":
        from ..decoding.tune import beam_lm_options, default_params_path

        return "beam", beam_lm_options(lm_params or default_params_path(model_path), given,
                                       explicit=lm_params is not None)
    raise ValueError(f"method: expected 'greedy', 'beam' or 'beam-lm', got {method!r}")


@dataclass
class _FileState:
    path: Path
    duration: float  # seconds, from the header
    segments: list[Segment] = field(default_factory=list)
    expected: int | None = None  # number of chunks; None while still being read
    done: int = 0
    error: AudioError | None = None
    reported: float = 0.0  # seconds already counted by the progress callback

    @property
    def finished(self) -> bool:
        return self.error is not None or (self.expected is not None and self.done >= self.expected)


@dataclass
class _Chunk:
    state: _FileState
    offset: float  # seconds from the start of the file
    seconds: float  # audio seconds in the chunk
    feats: Tensor  # (T, F) log-mel


class Transcriber:
    """Decodes audio files in batches; yields one ``Transcript`` (or ``AudioError``) per file.

    Args:
        model: a ``CTCModel`` (put in eval mode).
        tokenizer: its tokenizer.
        method: ``"greedy"`` or ``"beam"``.
        batch_size: segments per forward pass.
        segment: segmentation thresholds for long files.
        channel: keep this channel instead of averaging them all.
        search_options: keyword arguments for ``asr.decode.BeamSearch`` (beam_size, LM, ...).
        on_progress: called with seconds of audio whenever some are done.
    """

    def __init__(
        self,
        model,
        tokenizer,
        method: str = "greedy",
        batch_size: int = 16,
        segment: SegmentConfig | None = None,
        channel: int | None = None,
        search_options: dict | None = None,
        on_progress: Callable[[float], None] | None = None,
    ):
        if method not in ("greedy", "beam"):
            raise ValueError(f"method: expected 'greedy' or 'beam', got {method!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size: expected >= 1, got {batch_size}")
        if channel is not None and channel < 0:
            raise ValueError(f"channel: expected >= 0, got {channel}")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.segment = segment or SegmentConfig()
        self.channel = channel
        self.on_progress = on_progress
        features = model.cfg.features
        self.sample_rate = features.sample_rate
        self.logmel = LogMel(features)
        self.frame_seconds = frame_shift(model)  # output frame t covers input frames [t*k, t*k+k)
        self.min_samples = self._min_samples()
        self.search = BeamSearch(tokenizer, **(search_options or {})) if method == "beam" else None
        self.calibrator = None  # maps word confidences (``asr.decoding.confidence``); ``transcribe`` sets it
        units = tokenizer.units
        if tokenizer.kind == "char":  # "|" between words
            self._separator = [u == tokenizer.sil_token for u in units]
            self._starts_word = [False] * len(units)
        elif tokenizer.unit_words:  # phones: every unit is a word
            self._separator = [False] * len(units)
            self._starts_word = [True] * len(units)
        else:  # sentencepiece: "▁" opens a word
            self._separator = [u == "\u2581" for u in units]
            self._starts_word = [u.startswith("\u2581") for u in units]

    def _min_samples(self) -> int:
        """Fewest samples that give the model one output frame."""
        frames = 1
        while int(self.model.output_lengths(torch.tensor([frames]))[0]) < 1:
            frames += 1
        return self.logmel.win + (frames - 1) * self.logmel.hop

    # ---- reading -------------------------------------------------------------------------

    def _check_length(self, state: _FileState, samples: int) -> None:
        if samples == 0:
            raise AudioError(f"{state.path}: no audio samples (zero-length audio)")
        if samples < self.min_samples:
            raise AudioError(
                f"{state.path}: audio too short ({samples / self.sample_rate:.3f} s; the model needs at least "
                f"{self.min_samples / self.sample_rate:.3f} s for one output frame)"
            )

    def _chunks(self, state: _FileState) -> Iterator[_Chunk]:
        """Read, segment and featurise one file; sets ``state.expected`` once it is known."""
        info = audio_info(state.path)
        state.duration = info.frames / info.samplerate if info.samplerate > 0 else 0.0
        if info.frames == 0:
            self._check_length(state, 0)
        if state.duration <= self.segment.max_segment:
            wave = load_audio(state.path, self.sample_rate, channel=self.channel)
            self._check_length(state, wave.numel())
            state.expected = 1
            yield _Chunk(state, 0.0, wave.numel() / self.sample_rate, self.logmel(wave))
            return
        rate = info.samplerate
        spans, total = segment_file(state.path, rate, self.segment, self.channel)
        state.duration = total / rate
        self._check_length(state, round(total * self.sample_rate / rate))
        # segments too short for one output frame (a click) are dropped: they cannot hold a word
        need = self.min_samples * rate / self.sample_rate
        spans = [(s, e) for s, e in spans if e - s >= need]
        state.expected = len(spans)
        for (start, end), wave in zip(spans, read_spans(state.path, spans, self.sample_rate, self.channel)):
            if wave.numel() < self.min_samples:  # resampling rounded it below the minimum
                state.expected -= 1
                continue
            yield _Chunk(state, start / rate, (end - start) / rate, self.logmel(wave))

    # ---- decoding ------------------------------------------------------------------------

    def _words(self, labels: Tensor, log_probs: Tensor, offset: float) -> list[Word]:
        """Words of one aligned segment.

        Args:
            labels (Tensor): (T,) int64, the unit aligned to each frame (blank = 0).
            log_probs (Tensor): (T, V) float32.
            offset: seconds from the start of the file to frame 0.
        """
        if labels.numel() == 0:
            return []
        posts = log_probs.gather(1, labels[:, None]).squeeze(1).exp()  # (T,) posterior of the aligned unit
        units, counts = torch.unique_consecutive(labels, return_counts=True)
        ends = counts.cumsum(0)
        starts = ends - counts
        words: list[Word] = []
        current: list[tuple[int, int, int]] = []  # (unit, first frame, end frame) of the open word

        def close() -> None:
            if current:
                text = self.tokenizer.decode([u for u, _, _ in current])
                frames = torch.cat([posts[s:e] for _, s, e in current])
                start, end = current[0][1], current[-1][2]
                words.append(Word(text, offset + start * self.frame_seconds, offset + end * self.frame_seconds,
                                  float(frames.mean())))
                current.clear()

        for unit, start, end in zip(units.tolist(), starts.tolist(), ends.tolist()):
            if unit == self.tokenizer.blank_id:
                continue
            if self._separator[unit]:
                close()
                continue
            if self._starts_word[unit]:
                close()
            current.append((unit, start, end))
        close()
        return [w for w in words if w.word]

    def _align(self, text: str, log_probs: Tensor) -> Tensor | None:
        """Frame labels (T,) of the CTC forced alignment of ``text``; None if it cannot be aligned."""
        try:
            targets = self.tokenizer.encode(text)
        except ValueError:
            return None
        if not targets:
            return torch.zeros(log_probs.size(0), dtype=torch.int64)
        try:
            labels, _ = AF.forced_align(
                log_probs[None].contiguous(),  # (1, T, V)
                torch.tensor([targets], dtype=torch.int32),
                blank=self.tokenizer.blank_id,
            )
        except RuntimeError:  # more units than frames allow
            return None
        return labels[0].long()

    def _even_words(self, text: str, offset: float, seconds: float) -> list[Word]:
        """Last resort when an alignment fails: words spread evenly, confidence unknown (0)."""
        parts = text.split()
        step = seconds / max(len(parts), 1)
        return [Word(w, offset + i * step, offset + (i + 1) * step, 0.0) for i, w in enumerate(parts)]

    @torch.inference_mode()
    def _decode(self, chunks: list[_Chunk]) -> None:
        """Run the model and the search over ``chunks``; their segments go into their file states."""
        chunks = sorted(chunks, key=lambda c: c.feats.size(0), reverse=True)
        for first in range(0, len(chunks), self.batch_size):
            batch = chunks[first : first + self.batch_size]
            feats, feat_lens = collate_feats([c.feats for c in batch])
            log_probs, out_lens = self.model(feats, feat_lens)  # (B, T', V), (B,)
            if self.search is None:
                hyps = greedy_search(log_probs, out_lens, self.tokenizer)
                best = log_probs.argmax(dim=-1)  # (B, T')
            else:
                hyps = self.search(log_probs, out_lens)
            for b, (chunk, hyp) in enumerate(zip(batch, hyps)):
                frames = int(out_lens[b])
                lp = log_probs[b, :frames]  # (T', V)
                labels = best[b, :frames] if self.search is None else self._align(hyp.text, lp)
                if labels is None:
                    words = self._even_words(hyp.text, chunk.offset, chunk.seconds)
                else:
                    words = self._words(labels, lp, chunk.offset)
                    if self.calibrator is not None:
                        words = [replace(w, confidence=self.calibrator(w.confidence)) for w in words]
                state = chunk.state
                if hyp.text:
                    nbest = [(h.text, h.score) for h in hyp.nbest]
                    state.segments.append(Segment(chunk.offset, chunk.offset + chunk.seconds, hyp.text, words, nbest))
                state.done += 1
                if self.on_progress is not None and state.error is None:
                    self.on_progress(chunk.seconds)
                    state.reported += chunk.seconds

    # ---- driver --------------------------------------------------------------------------

    def _finish(self, state: _FileState) -> tuple[Path, Transcript | AudioError]:
        if self.on_progress is not None and state.duration > state.reported:
            self.on_progress(state.duration - state.reported)  # skipped silence and failures
        if state.error is not None:
            return state.path, state.error
        state.segments.sort(key=lambda s: s.start)
        return state.path, Transcript(str(state.path), state.duration, state.segments)

    def __call__(self, paths: Sequence[str | Path]) -> Iterator[tuple[Path, Transcript | AudioError]]:
        """Yield ``(path, Transcript)`` or ``(path, AudioError)`` for every path, in order."""
        window: list[_Chunk] = []
        pending: deque[_FileState] = deque()
        capacity = self.batch_size * _WINDOW_BATCHES

        def flush() -> Iterator[tuple[Path, Transcript | AudioError]]:
            self._decode(window)
            window.clear()
            while pending and pending[0].finished:
                yield self._finish(pending.popleft())

        for path in paths:
            state = _FileState(Path(path), 0.0)
            pending.append(state)
            try:
                for chunk in self._chunks(state):
                    window.append(chunk)
                    if len(window) >= capacity:
                        yield from flush()
            except AudioError as err:
                state.error = err
                window[:] = [c for c in window if c.state is not state]
            while pending and pending[0].finished:
                yield self._finish(pending.popleft())
        yield from flush()
        assert not pending, "every file is finished once the last window is decoded"


@dataclass
class TranscribeSummary:
    files: int  # audio files found
    transcribed: int  # of which transcribed
    failed: list[str]  # one message per failed input or file
    audio_seconds: float  # audio transcribed (successful files)
    wall_seconds: float  # reading, decoding and writing, model loading excluded
    cpu_seconds: float  # CPU time of this process (all threads) over the same stretch
    load_seconds: float  # model loading

    @property
    def rtf(self) -> float:
        """Real-time factor: wall time over audio time."""
        return self.wall_seconds / self.audio_seconds if self.audio_seconds > 0 else float("nan")

    def line(self) -> str:
        """``transcribed N of M files, K failed: A s of audio (H h) in W s (C s CPU), real-time factor R``."""
        failed = f", {len(self.failed)} failed" if self.failed else ""
        return (f"transcribed {self.transcribed} of {self.files} files{failed}: {self.audio_seconds:.1f} s of audio "
                f"({self.audio_seconds / 3600:.2f} h) in {self.wall_seconds:.2f} s ({self.cpu_seconds:.2f} s CPU), "
                f"real-time factor {self.rtf:.4f}")


def _output_path(item: AudioInput, fmt: str, output_dir: Path | None) -> Path:
    if output_dir is None:
        return item.path.parent / f"{item.name.name}.{fmt}"
    return output_dir / item.name.parent / f"{item.name.name}.{fmt}"


def transcribe(
    model_path: str | Path,
    inputs: Sequence[str | Path],
    list_file: str | Path | None = None,
    formats: Sequence[str] = ("txt",),
    output_dir: str | Path | None = None,
    method: str = "greedy",
    search_options: dict | None = None,
    lm_params: str | Path | None = None,
    batch_size: int = 16,
    threads: int | None = None,
    channel: int | None = None,
    segment: SegmentConfig | None = None,
    stdout: TextIO | None = None,
    on_error: Callable[[str], None] | None = None,
    progress: bool | None = None,
) -> TranscribeSummary:
    """Transcribe audio files and write the results.

    Args:
        model_path: a model file (``asr average``) or training checkpoint.
        inputs: files, directories, glob patterns (see ``find_audio``).
        list_file: a file with one more input per line.
        formats: any of ``FORMATS`` (txt, json, srt, vtt). ``txt`` goes to ``stdout`` unless
            ``output_dir`` is given (one line per file, ``PATH<TAB>TEXT`` when there are several);
            the others are written next to each input, or into ``output_dir``.
        output_dir: where output files go; a directory input's tree is kept below it.
        method: ``"greedy"``, ``"beam"`` or ``"beam-lm"`` (see ``search_setup``).
        search_options: keyword arguments for ``asr.decode.BeamSearch`` (beam_size, beam_threshold,
            nbest; lm, lexicon, lm_weight, word_score for beam-lm); None values are not given.
        lm_params: beam-lm: a tuned ``lm-params.yaml`` (default: the one next to the model, if any).
        batch_size: segments per forward pass.
        threads: torch intra-op threads; None keeps torch's default.
        channel: keep this channel (0-based) instead of averaging all of them.
        segment: long-audio segmentation settings.
        stdout: where text goes (default ``sys.stdout``).
        on_error: called with one line per failure (default: logged as an error).
        progress: show a progress bar on stderr; None shows one on a terminal only.

    Returns:
        TranscribeSummary: counts, failures, audio and wall seconds.
    """
    for fmt in formats:
        if fmt not in FORMATS:
            raise ValueError(f"formats: expected some of {sorted(FORMATS)}, got {fmt!r}")
    stdout = stdout or sys.stdout
    report = on_error or log.error
    if threads is not None:
        if threads < 1:
            raise ValueError(f"threads: expected >= 1, got {threads}")
        torch.set_num_threads(threads)
    out_dir = Path(output_dir) if output_dir is not None else None
    search, options = search_setup(method, model_path, search_options, lm_params)
    begin = time.perf_counter()
    model, tokenizer = load_transcription_model(model_path)
    transcriber = Transcriber(model, tokenizer, search, batch_size, segment, channel, options)
    calibration = default_calibration_path(model_path)
    if calibration.is_file():  # from 'asr calibrate'
        transcriber.calibrator = load_calibrator(calibration)
        log.info("word confidences calibrated by %s (%s)", calibration, transcriber.calibrator.method)
    load_seconds = time.perf_counter() - begin

    begin, begin_cpu = time.perf_counter(), time.process_time()
    items, failed = find_audio(inputs, list_file)
    for message in failed:
        report(message)  # inputs that name no file: before the progress bar starts
    if not items and not failed:
        failed.append("no audio inputs given")
        report(failed[-1])
    total = 0.0
    for item in items:
        try:
            info = audio_info(item.path)
            total += info.frames / info.samplerate if info.samplerate > 0 else 0.0
        except AudioError:
            pass  # reported when its turn comes
    bar = tqdm(total=total, unit="s", desc="transcribe", file=sys.stderr,
               disable=None if progress is None else not progress,
               bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s of audio [{elapsed}<{remaining}{postfix}]")
    transcriber.on_progress = bar.update
    by_path = {item.path: item for item in items}
    audio_seconds, done, transcribed = 0.0, 0, 0
    several = len(items) > 1

    def fail(message: str) -> None:
        failed.append(message)
        with tqdm.external_write_mode(file=sys.stderr):  # keep the line clear of the bar
            report(message)

    try:
        for path, result in transcriber([item.path for item in items]):
            done += 1
            bar.set_postfix_str(f"{done}/{len(items)} files")
            if isinstance(result, AudioError):
                fail(str(result))
                continue
            audio_seconds += result.duration
            transcribed += 1
            item = by_path[path]
            for fmt in formats:
                if fmt == "txt" and out_dir is None:
                    with tqdm.external_write_mode(file=stdout):
                        stdout.write(f"{path}\t{result.text}\n" if several else f"{result.text}\n")
                        stdout.flush()
                    continue
                target = _output_path(item, fmt, out_dir)
                try:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_text(FORMATS[fmt](result), encoding="utf-8")
                except OSError as err:
                    fail(f"{target}: cannot write output ({err.strerror or err})")
        bar.update(max(0.0, bar.total - bar.n))  # float sums of the parts fall a hair short
    finally:
        bar.close()
    return TranscribeSummary(len(items), transcribed, failed, audio_seconds, time.perf_counter() - begin,
                             time.process_time() - begin_cpu, load_seconds)

"""Audio files or waveforms of any format, rate, channel count and length -> transcripts (the engine).

Pipeline, one input after another with bounded memory:

1. ``find_audio`` expands command-line inputs: files, directories (recursively, by audio suffix),
   glob patterns and list files. Each input that yields nothing is reported, the rest go on.
2. Audio up to ``SegmentConfig.max_segment`` seconds is decoded whole, exactly as ``asr decode``
   decodes a cut. A longer file is segmented on silence (``asr.audio.segment``, one pass over the
   file) and its segments are read in a second forward pass (``asr.audio.io.read_spans``), so memory
   holds a few batches of segments, never the file: an hour of audio adds about 60 MB.
3. Segments from consecutive inputs are sorted by length inside a window of a few batches
   (little padding; padding never changes an output) and decoded ``batch_size`` at a time by a
   search object from ``asr.decoding.resolve`` (greedy, beam, beam with LM and lexicon).
4. Words come from the search (``asr.decoding.words``): times from the CTC path of the
   hypothesis's units, shifted by the segment's start. Output frame ``t`` covers input frames
   ``[t*k, t*k+k)``, so a frame lasts ``k * hop`` seconds (30 ms for the AN4 model). A word's
   confidence is mapped by a calibrator (``calibration.json`` beside the model, from ``asr calibrate``).
5. Results come back per input, in input order, as ``Transcript`` or ``AudioError``.

``asr.inference.recognizer.Recognizer`` holds a ``Transcriber``; ``asr transcribe`` writes its results.
"""

from __future__ import annotations

import glob
import logging
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from ..audio.features import LogMel
from ..audio.io import AudioError, audio_info, load_audio, read_spans
from ..audio.segment import segment_file, segment_wave
from ..config import SegmentConfig, TranscribeConfig
from ..data.cuts import collate_feats
from ..decoding.confidence import Calibrator
from ..decoding.search import BeamSearch, GreedySearch, frame_shift
from ..decoding.words import Word
from ..model.files import model_device
from .outputs import Segment, Transcript

__all__ = [
    "AUDIO_SUFFIXES",
    "AudioInput",
    "Waveform",
    "TranscribeSummary",
    "find_audio",
    "Transcriber",
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


@dataclass
class Waveform:
    label: str  # how results and errors name it, e.g. "<array>"
    samples: Tensor  # (N,) float32 mono at the model's sample rate


@dataclass
class _FileState:
    path: Path | str  # the audio file, or a waveform's label
    duration: float  # seconds, from the header
    wave: Tensor | None = None  # (N,) samples of a waveform input
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


def _shifted(word: Word, offset: float) -> Word:
    return Word(word.word, round(word.start + offset, 6), round(word.end + offset, 6), word.conf)


class Transcriber:
    """Decodes audio files or waveforms in batches; yields one ``Transcript`` (or ``AudioError``) per input.

    Memory: ``batch_size * 4`` segments of features at a time (the length-sorting window), plus
    one segment's samples being read; a waveform input is held whole by its caller.

    Args:
        model: a ``CTCModel`` (put in eval mode); it runs on the device its weights are on.
        tokenizer: its tokenizer.
        search: a ``GreedySearch`` or ``BeamSearch`` (``asr.decoding.resolve.make_search``);
            default greedy. It is given the model's frame shift if it has none, for word times.
        batch_size: segments per forward pass.
        segment: segmentation thresholds for long audio.
        channel: keep this channel of a file instead of averaging them all.
        on_progress: called with seconds of audio whenever some are done.
        calibrator: maps word confidences (``asr.decoding.confidence``, from ``asr calibrate``).
    """

    def __init__(
        self,
        model,
        tokenizer,
        search: GreedySearch | BeamSearch | None = None,
        batch_size: int = TranscribeConfig.batch_size,
        segment: SegmentConfig | None = None,
        channel: int | None = None,
        on_progress: Callable[[float], None] | None = None,
        calibrator: Calibrator | None = None,
    ):
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
        self.calibrator = calibrator
        features = model.cfg.features
        self.sample_rate = features.sample_rate
        self.logmel = LogMel(features)
        self.device = model_device(model)
        self.frame_seconds = frame_shift(model)  # output frame t covers input frames [t*k, t*k+k)
        self.min_samples = self._min_samples()
        self.search = self._with_words(search or GreedySearch(tokenizer))

    def _with_words(self, search):
        if isinstance(search, GreedySearch):
            return search if search.frame_shift is not None else GreedySearch(search.tokenizer, self.frame_seconds)
        if isinstance(search, BeamSearch):
            return search if search.options["frame_shift"] is not None else search.replace(
                frame_shift=self.frame_seconds)
        raise TypeError(f"search: expected a GreedySearch or BeamSearch, got {type(search).__name__}")

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
        """Read, segment and featurise one input; sets ``state.expected`` once it is known."""
        if state.wave is not None:
            yield from self._wave_chunks(state)
            return
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

    def _wave_chunks(self, state: _FileState) -> Iterator[_Chunk]:
        """``_chunks`` of samples in memory (already mono at the model's rate)."""
        wave, rate = state.wave, self.sample_rate
        state.duration = wave.numel() / rate
        self._check_length(state, wave.numel())
        if state.duration <= self.segment.max_segment:
            spans = [(0, wave.numel())]
        else:
            spans = [(s, e) for s, e in segment_wave(wave.numpy(), rate, self.segment) if e - s >= self.min_samples]
        state.expected = len(spans)
        for start, end in spans:
            yield _Chunk(state, start / rate, (end - start) / rate, self.logmel(wave[start:end]))

    # ---- decoding ------------------------------------------------------------------------

    @torch.inference_mode()
    def _decode(self, chunks: list[_Chunk]) -> None:
        """Run the model and the search over ``chunks``; their segments go into their file states."""
        chunks = sorted(chunks, key=lambda c: c.feats.size(0), reverse=True)
        for first in range(0, len(chunks), self.batch_size):
            batch = chunks[first : first + self.batch_size]
            feats, feat_lens = collate_feats([c.feats for c in batch])
            log_probs, out_lens = self.model(feats.to(self.device), feat_lens.to(self.device))  # (B, T', V), (B,)
            for chunk, hyp in zip(batch, self.search(log_probs, out_lens)):
                state = chunk.state
                if hyp.text:
                    words = [_shifted(w, chunk.offset) for w in hyp.words]
                    if self.calibrator is not None:
                        words = self.calibrator.apply(words)
                    nbest = [(h.text, h.score) for h in hyp.nbest]
                    state.segments.append(Segment(chunk.offset, chunk.offset + chunk.seconds, hyp.text, words, nbest,
                                                  hyp.score))
                state.done += 1
                if self.on_progress is not None and state.error is None:
                    self.on_progress(chunk.seconds)
                    state.reported += chunk.seconds

    # ---- driver --------------------------------------------------------------------------

    def _finish(self, state: _FileState, item) -> tuple[object, Transcript | AudioError]:
        if self.on_progress is not None and state.duration > state.reported:
            self.on_progress(state.duration - state.reported)  # skipped silence and failures
        if state.error is not None:
            return item, state.error
        state.segments.sort(key=lambda s: s.start)
        return item, Transcript(str(state.path), state.duration, state.segments)

    def __call__(self, inputs: Sequence[str | Path | Waveform]) -> Iterator[tuple[object, Transcript | AudioError]]:
        """Yield ``(input, Transcript)`` or ``(input, AudioError)`` for every input (a path or a
        ``Waveform``), in order."""
        window: list[_Chunk] = []
        pending: deque[tuple[_FileState, object]] = deque()
        capacity = self.batch_size * _WINDOW_BATCHES

        def flush() -> Iterator[tuple[object, Transcript | AudioError]]:
            self._decode(window)
            window.clear()
            while pending and pending[0][0].finished:
                yield self._finish(*pending.popleft())

        for item in inputs:
            if isinstance(item, Waveform):
                state = _FileState(item.label, 0.0, item.samples)
            else:
                state = _FileState(Path(item), 0.0)
            pending.append((state, item))
            try:
                for chunk in self._chunks(state):
                    window.append(chunk)
                    if len(window) >= capacity:
                        yield from flush()
            except AudioError as err:
                state.error = err
                window[:] = [c for c in window if c.state is not state]
            while pending and pending[0][0].finished:
                yield self._finish(*pending.popleft())
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



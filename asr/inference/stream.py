"""Live recognition: audio in as it comes, partial and final results out, one ``Stream`` per stream.

    stream = Stream.from_pretrained("exp/model.pt")       # or Stream(model, tokenizer, StreamConfig(...), search)
    for block in microphone_blocks():                     # float32 samples, any block size
        if stream.accept_waveform(block, 16000):          # True: a segment was finalized
            for segment in stream.result():
                print(segment.text, segment.words)        # words: asr.decoding.words.Word, seconds from the start
        print(stream.partial(), end="\r")
    for segment in stream.finish():
        print(segment.text)

What runs per block, incrementally, giving what the whole file gives (log-probs to ~1e-6):

1. resampling to the model's rate, exact across blocks (torchaudio's sinc kernel, group by group);
2. log-mel frames (``LogMel`` has no centre padding: frame t is samples [t*hop, t*hop + win));
3. global CMVN, subsampling (``SubsamplingStream``: stacking or convolution, across block
   boundaries) and the encoder (``EncoderStream``: a unidirectional model carries its (h, c)
   per layer; an LC-BLSTM runs each chunk once its window of Nc + Nr frames is in);
4. the search of ``asr.decoding.resolve.make_search`` (methods greedy, beam, beam-lm, as
   ``asr transcribe``): greedy (argmax, collapse), or a ``BeamSearch`` (LM, lexicon, hotwords
   included) fed frame blocks through its ``begin`` / ``step`` / ``partial`` / ``final``.
   Words come from ``asr.decoding.words`` as in the whole-file search (the best path for greedy,
   the forced alignment of the hypothesis for beam search), mapped by the model's calibrator if any.

Endpointing (``StreamConfig``): a segment ends once the best path has been blank for
``endpoint_silence_ms`` after some speech, or after ``max_segment_s`` of audio. Then its result is
fixed and the *search* restarts; the *encoder state carries on*, so the log-probs of a stream are
those of the whole file whatever the endpoints, and the model keeps its context. A full-utterance
bidirectional model cannot stream and is refused.

Cost: a stream holds its segment's log-probs (``max_segment_s`` bounds them), a few frames of
buffered audio and features, and one recurrent state per layer. Threads: one ``Stream`` per
thread; streams share the model (only read, under ``torch.no_grad``) and a ``BeamSearch``'s loaded
LM, but each has its own decoder state (``BeamSearch.fork``). ``accept_waveforms`` feeds several
streams at once and runs their encoder steps as one batched forward (``asr serve`` does); a
stream fed alone is a batch of one, through the same code.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torchaudio.functional as AF
from torch import Tensor

from ..audio.features import LogMel
from ..audio.io import audio_info, read_blocks
from ..config import SearchConfig, StreamConfig
from ..decoding.confidence import Calibrator
from ..decoding.search import BeamSearch, GreedySearch, frame_shift
from ..decoding.words import Word
from ..model.encoder import EncoderStream
from ..model.files import model_device
from ..model.onnx_model import OnnxModel
from ..model.subsampling import SubsamplingStream
from .recognizer import load_pretrained, resolve_device

__all__ = ["StreamResult", "ModelStream", "Endpointer", "Stream", "accept_waveforms", "stream_audio"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StreamResult:
    text: str  # the segment's transcript
    words: tuple[Word, ...]  # words with times (seconds from the start of the stream) and confidences
    start: float  # seconds from the start of the stream: the segment's first output frame
    end: float  # seconds: end of its last output frame
    nbest: tuple[tuple[str, float], ...] = ()  # (text, score) best first, from a beam search asked for n > 1


class _Resampler:
    """``torchaudio.functional.resample`` of a growing signal, block by block, equal to resampling it whole.

    The sinc resampler maps each group of ``orig`` input samples (rates divided by their gcd) to
    ``new`` output samples, reading ``width`` more input samples on each side; a group is
    computed once its right side has arrived, with its left side kept from the previous call.
    """

    def __init__(self, orig: int, new: int):
        gcd = math.gcd(orig, new)
        self.orig_freq, self.new_freq = orig, new
        self.orig, self.new = orig // gcd, new // gcd
        self.width = math.ceil(6 * self.orig / (min(self.orig, self.new) * 0.99))  # torchaudio's defaults
        self.buf = torch.zeros(0)
        self.start = 0  # input index of buf[0], a multiple of ``orig``
        self.done = 0  # output groups given out

    def __call__(self, samples: Tensor, final: bool = False) -> Tensor:
        buf = torch.cat([self.buf, samples])
        received = self.start + buf.numel()
        if final:
            ready_samples = math.ceil(self.new * received / self.orig)
            ready = math.ceil(received / self.orig)
        else:
            ready = max(received - self.width, 0) // self.orig
            ready_samples = ready * self.new
        first = self.start // self.orig
        out = torch.zeros(0)
        if ready > self.done and buf.numel():
            out = AF.resample(buf, self.orig_freq, self.new_freq)[(self.done - first) * self.new: ready_samples
                                                                  - first * self.new]
            self.done = ready
        keep = max(self.done - math.ceil(self.width / self.orig), 0) * self.orig
        self.buf, self.start = buf[keep - self.start:], keep
        return out


class ModelStream:
    """Log-mel frames in, log-probs out, incrementally: CMVN, subsampling, encoder, output layer."""

    def __init__(self, model):
        if isinstance(model, OnnxModel):
            raise ValueError("an ONNX model cannot stream (its graph runs whole utterances); stream the model it "
                             "was exported from (.pt or a safetensors model folder, int8 included)")
        self.model = model
        self.subsampling = SubsamplingStream(model.subsampling)
        self.encoder = EncoderStream(model.encoder)  # refuses a full-utterance bidirectional encoder

    @torch.no_grad()
    def step(self, feats: Tensor, final: bool = False) -> Tensor:
        """feats (N, F) new log-mel frames -> (N', V) float32 log-probs of the output frames now fixed."""
        return ModelStream.step_batch([self], [feats], [final])[0]

    @staticmethod
    @torch.no_grad()
    def step_batch(streams: list[ModelStream], feats: list[Tensor], finals: list[bool]) -> list[Tensor]:
        """``step`` of several streams of one model: CMVN and subsampling per stream, the encoder
        batched (``EncoderStream.step_batch``), one output layer call for all -> (N'_i, V) each."""
        model = streams[0].model
        if any(m.model is not model for m in streams):
            raise ValueError("step_batch: expected streams of one model")
        xs = []
        for stream, frames, final in zip(streams, feats, finals):
            x = model.cmvn(frames[None], torch.tensor([frames.size(0)]))  # (1, N, F)
            xs.append(stream.subsampling.step(x, final))  # (1, N // k, D), roughly
        encoded = EncoderStream.step_batch([m.encoder for m in streams], xs, finals)  # (1, N''_i, H) each
        log_probs = model.output(torch.cat(encoded, dim=1)[0]).float().log_softmax(dim=-1)  # (sum N''_i, V)
        return list(log_probs.split([e.size(1) for e in encoded]))


class Endpointer:
    """Says at which output frame a segment ends (``StreamConfig``'s two rules), one frame at a time."""

    def __init__(self, cfg: StreamConfig, shift: float, blank_id: int):
        # frames, rounded up; the 1e-6 keeps 90 ms at 30 ms a frame at 3 frames despite float noise
        self.silence_frames = math.ceil(cfg.endpoint_silence_ms / 1000 / shift - 1e-6) if cfg.endpoint_silence_ms > 0 \
            else 0
        self.max_frames = math.ceil(cfg.max_segment_s / shift - 1e-6) if cfg.max_segment_s > 0 else 0
        self.blank_id = blank_id
        self.reset()

    def reset(self) -> None:
        self.frames = 0  # in the open segment
        self.speech = False  # a non-blank frame seen in it
        self.trailing = 0  # blank frames since the last non-blank one

    def push(self, label: int) -> bool:
        """Add one frame's best label; True when the segment ends with it (and the counts restart)."""
        self.frames += 1
        if label != self.blank_id:
            self.speech, self.trailing = True, 0
        else:
            self.trailing += 1
        end = (self.speech and 0 < self.silence_frames <= self.trailing) or 0 < self.max_frames <= self.frames
        if end:
            self.reset()
        return end


class Stream:
    """Incremental recognition of one audio stream (see the module docstring).

    Args:
        model: a loaded ``CTCModel`` (unidirectional or LC-BLSTM); put in eval mode.
        tokenizer: its tokenizer.
        cfg: endpointing and partial interval.
        search: a ``GreedySearch`` or ``BeamSearch`` (``asr.decoding.resolve.make_search``; default
            greedy); a beam search is forked (own decoder state, the loaded LM shared).
        keep_log_probs: keep every output frame's log-probs (``log_probs()``), for checks.
        calibrator: maps word confidences (``Stream.from_pretrained`` reads ``calibration.json``).
    """

    def __init__(self, model, tokenizer, cfg: StreamConfig | None = None,
                 search: GreedySearch | BeamSearch | None = None, keep_log_probs: bool = False,
                 calibrator: Calibrator | None = None):
        if search is not None and not isinstance(search, (GreedySearch, BeamSearch)):
            raise TypeError(f"search: expected a GreedySearch or BeamSearch, got {type(search).__name__}")
        if model_device(model).type != "cpu":
            raise ValueError(f"device: a stream runs its model on the CPU, got {model_device(model)}")
        cfg = cfg or StreamConfig()
        self.cfg = cfg
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.sample_rate = model.cfg.features.sample_rate
        self.shift = frame_shift(model)
        self.calibrator = calibrator
        self._model = ModelStream(model)
        self._logmel = LogMel(model.cfg.features)
        self._samples = torch.zeros(0)  # audio not yet turned into frames
        self._resampler: _Resampler | None = None
        self._endpointer = Endpointer(cfg, self.shift, tokenizer.blank_id)
        self._greedy = GreedySearch(tokenizer, self.shift)
        # an independent decoder (its own state, the same options and loaded LM) with word times
        self._search = search.replace(frame_shift=self.shift) if isinstance(search, BeamSearch) else None
        self._frames = 0  # output frames so far
        self._segment: list[Tensor] = []  # log-probs (n, V) of the open segment
        self._segment_start = 0  # its first output frame
        self._results: list[StreamResult] = []
        self._partial = ("", -1)  # (text, frame count it was computed at)
        self._kept: list[Tensor] | None = [] if keep_log_probs else None
        self._finished = False
        self._begin_segment()

    @classmethod
    def from_pretrained(cls, path: str | Path, method: str = SearchConfig.method, *,
                        lm_params: str | Path | None = None, cfg: StreamConfig | None = None,
                        device: str | None = None, **search_options) -> Stream:
        """A stream on a model as ``asr.Recognizer.from_pretrained`` loads it (the same code:
        ``load_pretrained``): a folder's LM and tuned values for beam-lm, ``calibration.json``.

        Args:
            path: a streamable model: folder, model file, checkpoint or hub id (PyTorch, float or int8; an
                ONNX graph runs whole utterances only and is refused).
            method: ``"greedy"``, ``"beam"`` or ``"beam-lm"``; ``search_options`` as for the Recognizer.
            lm_params: beam-lm: a tuned ``lm-params.yaml`` (default: the one next to the model, if any).
            cfg: endpointing and partial interval.
            device: None or one naming the CPU: only the CPU runs streams (``"auto"`` picks it without a GPU).
        """
        if device is not None and resolve_device(device).type != "cpu":
            raise ValueError(f"device: a stream runs its model on the CPU, got {device!r}")
        loaded = load_pretrained(path, method, lm_params, search_options, "cpu")
        try:
            return cls(loaded.model, loaded.tokenizer, cfg, loaded.search, calibrator=loaded.calibrator)
        except ValueError as err:  # a model that cannot stream: say which
            raise ValueError(f"{path}: {err}") from None

    @property
    def search(self) -> BeamSearch | None:
        """The beam search of this stream (None: greedy)."""
        return self._search

    def fork(self, search: GreedySearch | BeamSearch | None = None) -> Stream:
        """A new stream (from the start) on the same model, settings and calibrator, and the same
        search options unless ``search`` is given."""
        return Stream(self.model, self.tokenizer, self.cfg, search if search is not None else self._search,
                      calibrator=self.calibrator)

    # -- audio in ---------------------------------------------------------------------------------
    def accept_waveform(self, samples, sample_rate: int) -> bool:
        """Feed mono samples (float in [-1, 1], or int16 PCM values); True when new final results wait in ``result()``."""
        (outcome,) = accept_waveforms([self], [samples], [sample_rate])
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def _block_features(self, samples, sample_rate: int) -> Tensor:
        """A block of samples -> the new log-mel frames (N, F); raises ValueError for a block refused."""
        if self._finished:
            raise ValueError("accept_waveform: the stream is finished")
        wave = self._as_tensor(samples)
        if sample_rate != self.sample_rate:
            if self._resampler is None:
                self._resampler = _Resampler(sample_rate, self.sample_rate)
            elif self._resampler.orig_freq != sample_rate:
                raise ValueError(f"sample_rate: the stream started at {self._resampler.orig_freq} Hz, got {sample_rate}")
            wave = self._resampler(wave)
        return self._features(wave)

    def _accept_log_probs(self, log_probs: Tensor) -> bool:
        before = len(self._results)
        self._consume(log_probs)
        return len(self._results) > before

    @staticmethod
    def _as_tensor(samples) -> Tensor:
        wave = torch.as_tensor(np.asarray(samples))
        if wave.dtype == torch.int16:
            wave = wave.float() / 32768.0
        if wave.ndim != 1 or not wave.is_floating_point():
            raise ValueError(f"samples: expected a 1-D float or int16 array, got {tuple(wave.shape)} {wave.dtype}")
        return wave.float()

    def _features(self, wave: Tensor, final: bool = False) -> Tensor:
        """New samples -> the log-mel frames whose window is complete, (N, F)."""
        samples = torch.cat([self._samples, wave])
        count = self._logmel.num_frames(samples.numel())
        feats = self._logmel(samples[: (count - 1) * self._logmel.hop + self._logmel.win]) if count else \
            samples.new_zeros(0, self.model.cfg.features.num_mels)
        self._samples = samples[count * self._logmel.hop:]
        return feats

    # -- search -----------------------------------------------------------------------------------
    def _begin_segment(self) -> None:
        self._segment = []
        self._segment_start = self._frames
        self._partial = ("", -1)
        if self._search is not None:
            self._search.begin()

    def _consume(self, log_probs: Tensor) -> None:
        """Decode new output frames (N, V), ending segments where the endpointer says."""
        if self._kept is not None:
            self._kept.append(log_probs)
        start = 0
        for i, label in enumerate(log_probs.argmax(dim=-1).tolist()):
            if self._endpointer.push(label):
                self._decode(log_probs[start : i + 1])
                self._end_segment()
                start = i + 1
        self._decode(log_probs[start:])

    def _decode(self, log_probs: Tensor) -> None:
        if log_probs.size(0) == 0:
            return
        self._segment.append(log_probs)
        self._frames += log_probs.size(0)
        if self._search is not None:
            self._search.step(log_probs)

    def _end_segment(self) -> None:
        if self._segment:
            result = self._segment_result()
            if result.text:
                self._results.append(result)
        self._begin_segment()

    def _segment_result(self) -> StreamResult:
        log_probs = torch.cat(self._segment)  # (T, V)
        frames = log_probs.size(0)
        if self._search is None:
            hyp = self._greedy(log_probs[None], torch.tensor([frames]))[0]
        else:
            hyp = self._search.final(log_probs)
        offset = self._segment_start * self.shift
        words = [Word(w.word, round(w.start + offset, 6), round(w.end + offset, 6), w.conf) for w in hyp.words]
        if self.calibrator is not None:
            words = self.calibrator.apply(words)
        return StreamResult(hyp.text, tuple(words), round(offset, 6), round(offset + frames * self.shift, 6),
                            tuple((h.text, h.score) for h in hyp.nbest))

    # -- results out ------------------------------------------------------------------------------
    def partial(self) -> str:
        """Text of the open segment so far; recomputed when new frames came, at most every ``partial_interval_ms``."""
        text, at = self._partial
        interval = self.cfg.partial_interval_ms / 1000 / self.shift
        if at >= 0 and (self._frames == at or self._frames - at < interval):
            return text
        if not self._segment:
            text = ""
        elif self._search is None:
            ids = torch.unique_consecutive(torch.cat(self._segment).argmax(dim=-1))
            text = self.tokenizer.decode(ids[ids != self.tokenizer.blank_id].tolist())
        else:
            text = self._search.partial()
        self._partial = (text, self._frames)
        return text

    def result(self) -> list[StreamResult]:
        """The segments finalized since the last call (oldest first), each once."""
        results, self._results = self._results, []
        return results

    def finish(self) -> list[StreamResult]:
        """End of audio: flush every buffer, finalize the open segment; returns what ``result()`` would."""
        if not self._finished:
            if self._resampler is not None:
                self._consume(self._model.step(self._features(self._resampler(torch.zeros(0), final=True))))
            self._consume(self._model.step(self._features(torch.zeros(0)), final=True))
            self._end_segment()
            self._finished = True
        return self.result()

    def log_probs(self) -> Tensor:
        """(T', V) every output frame so far (only with ``keep_log_probs=True``)."""
        if self._kept is None:
            raise ValueError("log_probs: create the stream with keep_log_probs=True")
        return torch.cat(self._kept) if self._kept else torch.zeros(0, len(self.tokenizer.units))


def accept_waveforms(streams: list[Stream], blocks: list, sample_rates: list[int]) -> list[bool | Exception]:
    """``Stream.accept_waveform`` of several streams at once, their model steps batched.

    Features and the search run per stream; the encoder runs one batched forward per group of
    streams with input of the same shape (``ModelStream.step_batch``). Each stream ends as if
    its block had been fed alone (log-probs equal to float rounding, ~1e-6).

    Args:
        streams: distinct streams of one model.
        blocks: one block of samples per stream (as ``accept_waveform`` takes them).
        sample_rates: their rates in Hz.

    Returns:
        Per stream: ``accept_waveform``'s answer, or the exception it raised (a refused block,
        ``ValueError``; or a failure of that stream's search); the other streams are served all the same.

    Raises:
        ValueError: the arguments do not match up (before any stream is touched).
    """
    if not len(streams) == len(blocks) == len(sample_rates):
        raise ValueError(f"accept_waveforms: expected as many blocks and rates as streams, got {len(streams)} "
                         f"streams, {len(blocks)} blocks, {len(sample_rates)} rates")
    if len({id(s) for s in streams}) < len(streams) or any(s.model is not streams[0].model for s in streams):
        raise ValueError("accept_waveforms: expected distinct streams of one model")
    outcomes: list[bool | Exception] = [False] * len(streams)
    feats: dict[int, Tensor] = {}
    for i, (stream, block, rate) in enumerate(zip(streams, blocks, sample_rates)):
        try:
            feats[i] = stream._block_features(block, rate)
        except ValueError as err:
            outcomes[i] = err
    live = list(feats)
    if not live:
        return outcomes
    log_probs = ModelStream.step_batch([streams[i]._model for i in live], list(feats.values()), [False] * len(live))
    for i, frames in zip(live, log_probs):
        try:
            outcomes[i] = streams[i]._accept_log_probs(frames)
        except Exception as err:  # a failing search costs its own stream only
            outcomes[i] = err
    return outcomes


def _pcm_blocks(source, block_samples: int):
    """Raw 16-bit little-endian PCM from a binary file object, in blocks of ``block_samples`` (int16 arrays)."""
    rest = b""
    while True:
        data = source.read(2 * block_samples)
        if not data:
            break
        data = rest + data
        usable = len(data) - len(data) % 2
        rest = data[usable:]
        yield np.frombuffer(data[:usable], dtype="<i2")


def _event_lines(fmt: str, results: list[StreamResult]) -> list[str]:
    if fmt == "json":
        return [json.dumps({"result": [{"word": w.word, "start": w.start, "end": w.end, "conf": round(w.conf, 6)}
                                       for w in r.words], "text": r.text}) for r in results]
    return [r.text for r in results]


def stream_audio(model_path: str | Path, source: str | Path, cfg: StreamConfig | None = None, fmt: str = "text",
                 realtime: bool = False, out=None, partial_out=None, method: str = SearchConfig.method,
                 lm_params: str | Path | None = None, **search_options) -> int:
    """``asr stream``: recognize a file (``source``) or raw PCM on stdin (``"-"``) as a live stream.

    Final results go to ``out`` (default stdout) as they are fixed: one line of text each, or with
    ``fmt="json"`` one JSON object per event, the shapes of Vosk: ``{"partial": TEXT}`` whenever the
    partial text changes and ``{"result": [{"word", "start", "end", "conf"}, ...], "text": TEXT}``.
    In text mode partial results rewrite one line of ``partial_out`` (default stderr) with ``\r``.

    Args:
        model_path: a streamable model (folder, file, checkpoint or hub id).
        source: an audio file (any format libsndfile reads, any rate) or ``"-"`` for raw 16-bit
            little-endian mono PCM at ``cfg.pcm_sample_rate`` on stdin.
        cfg: the stream's settings (endpointing, block size ...).
        fmt: ``"text"`` or ``"json"``.
        realtime: feed a file no faster than real time (as a microphone would).
        method, lm_params, search_options: the search, as for ``Stream.from_pretrained``.

    Returns:
        The number of final results.
    """
    cfg = cfg or StreamConfig()
    if fmt not in ("text", "json"):
        raise ValueError(f"format: expected 'text' or 'json', got {fmt!r}")
    out = out or sys.stdout
    partial_out = partial_out or sys.stderr
    if str(source) == "-":
        rate = cfg.pcm_sample_rate
        blocks = _pcm_blocks(sys.stdin.buffer, max(1, int(rate * cfg.block_ms / 1000)))
    else:
        rate = audio_info(source).samplerate  # one clear error for a missing or unreadable file
        blocks = read_blocks(source, max(1, int(rate * cfg.block_ms / 1000)))
    stream = Stream.from_pretrained(model_path, method, lm_params=lm_params, cfg=cfg, **search_options)
    shown, count, started, fed = "", 0, time.monotonic(), 0

    def emit(results: list[StreamResult]) -> None:
        nonlocal shown, count
        for line in _event_lines(fmt, results):
            if fmt == "text" and shown:
                partial_out.write("\r" + " " * len(shown) + "\r")
                partial_out.flush()
            out.write(line + "\n")
            out.flush()
            shown = ""
            count += 1

    for block in blocks:
        if realtime and str(source) != "-":
            time.sleep(max(0.0, started + fed / rate - time.monotonic()))
        fed += len(block)
        if stream.accept_waveform(block, rate):
            emit(stream.result())
        text = stream.partial()
        if text != shown:
            if fmt == "json":
                out.write(json.dumps({"partial": text}) + "\n")
                out.flush()
            else:
                partial_out.write("\r" + text + " " * max(len(shown) - len(text), 0))
                partial_out.flush()
            shown = text
    emit(stream.finish())
    if fmt == "text" and shown:
        partial_out.write("\r" + " " * len(shown) + "\r")
    return count

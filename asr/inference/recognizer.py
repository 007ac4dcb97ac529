"""``Recognizer``: the one object that turns audio into words, for Python, ``asr transcribe`` and ``asr decode``.

    from asr import Recognizer
    r = Recognizer.from_pretrained("exp/model.pt", method="beam-lm", lm="data/lm/3gram.arpa")
    result = r.transcribe("speech.wav")          # or a list of paths, or samples with sample_rate=
    print(result.text, [(w.word, w.start, w.end, w.conf) for w in result.words])

A recognizer holds the model (on its device), the tokenizer, the log-mel frontend and one search
object (``asr.decoding.resolve``); long audio is segmented on silence and segments of several
inputs are batched together (``asr.inference.transcribe.Transcriber``). ``transcribe`` at the end of
this module is ``asr transcribe``: it finds the files, runs a recognizer over them and writes the outputs.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple, TextIO

import numpy as np
import torch
import torchaudio.functional as AF
from tqdm import tqdm

from ..audio.io import AudioError, audio_info
from ..config import DecodeConfig, SearchConfig, SegmentConfig, TranscribeConfig
from ..data.cuts import load_cuts
from ..decoding.confidence import Calibrator, default_calibration_path, load_calibrator
from ..decoding.resolve import check_options, make_search, method_options
from ..decoding.search import BeamSearch, GreedySearch, decode_cuts, frame_shift, hypothesis_lines
from ..model.files import ModelExtras, load_acoustic_model
from .outputs import FORMATS, Transcript, write_outputs
from .shards import open_shard, run_key
from .transcribe import TranscribeSummary, Transcriber, Waveform, find_audio

__all__ = ["Pretrained", "load_pretrained", "load_placed", "place_model", "resolve_device", "Recognizer", "decode",
           "transcribe"]

log = logging.getLogger(__name__)


def resolve_device(device: str | torch.device) -> torch.device:
    """``torch.device`` of a name; ``"auto"`` is CUDA when available, else the CPU."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except RuntimeError as err:
        raise ValueError(f"device: {err}") from None


def _cpu_only(extras: ModelExtras) -> bool:
    """ONNX graphs and int8 models run on the CPU only."""
    return extras.kind == "onnx" or extras.quantization is not None


def place_model(model, extras: ModelExtras, device: str | torch.device, path: str | Path):
    """``model`` (loaded from ``path``) on ``device``.

    ONNX and int8 models run on the CPU only (ONNX Runtime's CPU provider; PyTorch's dynamic int8
    kernels and packed weights); ``"auto"`` picks the CPU for them, another device is a ``ValueError``.
    """
    if not _cpu_only(extras):
        return model.to(resolve_device(device))
    if str(device) != "auto" and resolve_device(device).type != "cpu":
        what = "an ONNX model runs on ONNX Runtime's CPU provider" if extras.kind == "onnx" else \
            "an int8 model runs on PyTorch's CPU int8 kernels"
        raise ValueError(f"{path}: {what} only, not on device {str(device)!r} (use device cpu or auto, or a "
                         "float .pt / safetensors model for a GPU)")
    return model


class Pretrained(NamedTuple):
    model: Any  # the CTCModel, on its device
    tokenizer: Any
    search: GreedySearch | BeamSearch  # with the model's frame shift (words carry times)
    calibrator: Calibrator | None  # from calibration.json beside the model, if any
    model_path: Path | None  # the model file (its lm-params.yaml lies beside it); None for a folder
    folder_options: dict  # a folder's LM, lexicon and tuned values for beam-lm (``ModelExtras.beam_lm_options``)


def _origin(path: str | Path, extras: ModelExtras) -> tuple[Path | None, dict]:
    """(the model file, None for a folder; the folder's beam-lm options, empty for a file)."""
    if extras.source.is_dir():
        return None, extras.beam_lm_options()
    return Path(path), {}


def _search(tokenizer, method: str, search_options: dict, lm_params: str | Path | None, model_path: Path | None,
            folder_options: dict, shift: float) -> GreedySearch | BeamSearch:
    """``make_search``; a beam-lm without ``lm_params`` takes a folder's LM and tuned values under the options given."""
    if method == "beam-lm" and folder_options and lm_params is None:
        search_options = {**folder_options, **{k: v for k, v in search_options.items() if v is not None}}
    return make_search(tokenizer, method, search_options, lm_params, model_path=model_path, frame_shift=shift)


def load_pretrained(path: str | Path, method: str = SearchConfig.method, lm_params: str | Path | None = None,
                    search_options: dict | None = None,
                    device: str | torch.device = TranscribeConfig.device) -> Pretrained:
    """Model, tokenizer, search and calibrator of ``path`` as ``Recognizer.from_pretrained`` and
    ``Stream.from_pretrained`` both build them (see the former for the arguments)."""
    search_options = dict(search_options or {})
    check_options(method, search_options, lm_params)  # before the (slow) model load
    model, tokenizer, extras = load_acoustic_model(path)
    model = place_model(model, extras, device, path)
    model_path, folder_options = _origin(path, extras)
    search = _search(tokenizer, method, search_options, lm_params, model_path, folder_options, frame_shift(model))
    calibration = default_calibration_path(model_path or extras.source)  # beside the file, inside the folder
    calibrator = load_calibrator(calibration) if calibration.is_file() else None  # from 'asr calibrate'
    return Pretrained(model, tokenizer, search, calibrator, model_path, folder_options)


class Recognizer:
    """Audio to words with one model and one search.

    Args:
        model: a ``CTCModel``; it stays on the device it is on.
        tokenizer: its tokenizer.
        search: a ``GreedySearch`` or ``BeamSearch`` (``asr.decoding.resolve.make_search``); default greedy.
        batch_size: segments per forward pass.
        segment: how long audio is cut into segments.
        channel: the channel of multi-channel files to use (default: their average).
        model_path: the file the model came from (its ``lm-params.yaml`` serves ``with_search``).
        calibrator: maps word confidences; ``from_pretrained`` reads ``calibration.json`` beside the model.
        folder_options: a model folder's LM, lexicon and tuned values, for ``with_search("beam-lm")``.
    """

    def __init__(self, model, tokenizer, search: GreedySearch | BeamSearch | None = None, *,
                 batch_size: int = TranscribeConfig.batch_size, segment: SegmentConfig | None = None,
                 channel: int | None = None, model_path: str | Path | None = None,
                 calibrator: Calibrator | None = None, folder_options: dict | None = None):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.model_path = Path(model_path) if model_path is not None else None
        self.folder_options = dict(folder_options or {})
        self.frame_shift = frame_shift(model)
        self.calibrator = calibrator
        self._transcriber = Transcriber(model, tokenizer, search, batch_size, segment, channel, calibrator=calibrator)
        self.search = self._transcriber.search  # with the model's frame shift: words carry times
        self.frontend = self._transcriber.logmel
        self.sample_rate = self._transcriber.sample_rate

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str | torch.device = TranscribeConfig.device,
                        method: str = SearchConfig.method, *, lm_params: str | Path | None = None,
                        batch_size: int = TranscribeConfig.batch_size, segment: SegmentConfig | None = None,
                        channel: int | None = None, **search_options: Any) -> Recognizer:
        """Load a model file or training checkpoint and build the search.

        Args:
            path: a model folder (``asr package``), an ``.onnx`` export, a model file (``asr average``),
                a training checkpoint, or a hub id ``owner/name`` (``asr.model.files.load_acoustic_model``).
                A folder's LM, lexicon and tuned values serve beam-lm, its ``calibration.json`` the
                word confidences.
            device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ... or ``"auto"``; ONNX and int8 models run on the
                CPU only (``place_model``).
            method: ``"greedy"``, ``"beam"`` or ``"beam-lm"``.
            lm_params: beam-lm: a tuned ``lm-params.yaml`` (default: the one next to the model, if any).
            batch_size, segment, channel: as for ``Recognizer``.
            search_options: ``SearchConfig`` fields: beam_size, beam_threshold, nbest, sil_score,
                and for beam-lm lm, lexicon, lm_weight, word_score. An option the method does not
                use is a ``ValueError``.
        """
        loaded = load_pretrained(path, method, lm_params, search_options, device)
        return cls(loaded.model, loaded.tokenizer, loaded.search, batch_size=batch_size, segment=segment,
                   channel=channel, model_path=loaded.model_path, calibrator=loaded.calibrator,
                   folder_options=loaded.folder_options)

    def with_search(self, method: str, lm_params: str | Path | None = None, **search_options: Any) -> Recognizer:
        """The same model (not copied) with another search, e.g. ``r.with_search("beam", beam_size=32)``."""
        search = _search(self.tokenizer, method, search_options, lm_params, self.model_path, self.folder_options,
                         self.frame_shift)
        t = self._transcriber
        return Recognizer(self.model, self.tokenizer, search, batch_size=t.batch_size, segment=t.segment,
                          channel=t.channel, model_path=self.model_path, calibrator=self.calibrator,
                          folder_options=self.folder_options)

    def _transcriber_for(self, batch_size: int | None, nbest: int | None) -> Transcriber:
        t = self._transcriber
        if batch_size is None and nbest is None:
            return t
        search = self.search
        if nbest is not None:
            check_options("beam" if isinstance(search, BeamSearch) else "greedy", {"nbest": nbest})
            search = search.replace(nbest=nbest)
        return Transcriber(self.model, self.tokenizer, search, batch_size or t.batch_size, t.segment, t.channel,
                           calibrator=self.calibrator)

    def _waveform(self, samples, sample_rate: int | None, label: str) -> Waveform:
        """1-D float samples (numpy or torch) -> mono float32 at the model's rate."""
        if sample_rate is None:
            raise ValueError(f"{label}: sample_rate is required with samples in memory")
        wave = torch.as_tensor(np.asarray(samples) if not isinstance(samples, torch.Tensor) else samples)
        if wave.ndim != 1:
            raise ValueError(f"{label}: expected 1-D samples (N,), got shape {tuple(wave.shape)}")
        if not wave.is_floating_point():
            raise TypeError(f"{label}: expected float samples in [-1, 1], got {wave.dtype}")
        wave = wave.detach().to("cpu", torch.float32)
        if not torch.isfinite(wave).all():
            raise AudioError(f"{label}: audio contains NaN or infinite samples")
        if sample_rate != self.sample_rate:
            wave = AF.resample(wave, int(sample_rate), self.sample_rate)
        return Waveform(label, wave.contiguous())

    def transcribe(self, x, sample_rate: int | None = None, batch_size: int | None = None,
                   nbest: int | None = None, errors: str = "raise") -> Transcript | list:
        """Transcribe a file, a list of files, or samples in memory.

        Args:
            x: a path; a list of paths and/or arrays; or a 1-D float numpy array / torch tensor of samples.
            sample_rate: Hz of samples in memory (resampled to the model's rate); unused for files.
            batch_size: segments per forward pass for this call (default: the recognizer's).
            nbest: alternatives per segment for this call (beam search only; ``Transcript.nbest``).
            errors: ``"raise"``: a bad input raises its ``AudioError`` (one line naming it);
                ``"keep"``: a list gets the ``AudioError`` in that input's place.

        Returns:
            A ``Transcript`` (text, words, segments, nbest, duration), or a list of them for a list.
        """
        if errors not in ("raise", "keep"):
            raise ValueError(f"errors: expected 'raise' or 'keep', got {errors!r}")
        single = not isinstance(x, (list, tuple))
        items = [x] if single else list(x)
        inputs = []
        for i, item in enumerate(items):
            if isinstance(item, (str, Path)):
                inputs.append(Path(item))
            else:
                inputs.append(self._waveform(item, sample_rate, "<array>" if single else f"<array {i}>"))
        results = []
        for _, result in self._transcriber_for(batch_size, nbest)(inputs):
            if isinstance(result, AudioError) and errors == "raise":
                raise result
            results.append(result)
        return results[0] if single else results

    def transcribe_files(self, paths: Sequence[str | Path],
                         on_progress: Callable[[float], None] | None = None
                         ) -> Iterator[tuple[Path, Transcript | AudioError]]:
        """``(path, Transcript)`` or ``(path, AudioError)`` per file, in order, as each is done.

        Memory: a few batches of segments; files of any length (see ``Transcriber``).
        """
        t = self._transcriber
        t.on_progress = on_progress
        try:
            yield from t([Path(p) for p in paths])
        finally:
            t.on_progress = None

    def decode_cuts(self, cuts, max_duration: float = DecodeConfig.max_duration,
                    num_workers: int = DecodeConfig.num_workers, shard: tuple[int, int] = (0, 1)):
        """(cut id, reference, ``Hypothesis``) per cut of a manifest (or of shard I/N of its batches):
        ``asr.decoding.search.decode_cuts`` with this recognizer's model and search (words carry times)."""
        return decode_cuts(self.model, cuts, self.search, max_duration, num_workers, shard)


def load_placed(model_path: str | Path, device: str, part) -> tuple[Any, Any, ModelExtras]:
    """(model, tokenizer, extras) of ``model_path``, the model on the device of this process's share ``part``
    (``open_shard``); ONNX and int8 models stay on the CPU ("auto" is the CPU for them)."""
    model, tokenizer, extras = load_acoustic_model(model_path)
    rank_device = device if _cpu_only(extras) else part.device(device)
    return place_model(model, extras, rank_device, model_path), tokenizer, extras


def decode(model_path: str | Path, cuts_path: str | Path, out_dir: str | Path,
           methods: Sequence[str] = (SearchConfig.method,), search_options: dict | None = None,
           lm_params: str | Path | None = None, name: str = DecodeConfig.name,
           max_duration: float = DecodeConfig.max_duration, num_workers: int = DecodeConfig.num_workers,
           device: str = TranscribeConfig.device, shard: str | None = None) -> list[Path]:
    """``asr decode``: decode a cut manifest with each method; writes ``hyp-NAME-METHOD.{txt,jsonl}``.

    The model is loaded once; each method gets its search from ``asr.decoding.resolve`` with the
    options it takes (an option no method takes is a ``ValueError``). Under torchrun, or with
    ``shard`` "I/N" (a job of a job array), the processes decode a share each and one writes the
    merged files (``asr.inference.shards``). Returns the text files this process wrote.
    """
    check_options(methods, search_options, lm_params)
    given = {k: v for k, v in (search_options or {}).items() if v is not None}
    part = open_shard(shard, run_key([model_path, cuts_path], methods=list(methods), options=given,
                                     lm_params=lm_params, max_duration=max_duration))
    model, tokenizer, extras = load_placed(model_path, device, part)
    cuts = load_cuts(cuts_path)
    file_path, folder_options = _origin(model_path, extras)
    recognizer = Recognizer(model, tokenizer, model_path=file_path, folder_options=folder_options)
    written = []
    for method in methods:
        options = {k: v for k, v in given.items() if k in method_options(method)}
        search = recognizer.with_search(method, lm_params if method == "beam-lm" else None, **options)
        results = search.decode_cuts(cuts, max_duration, num_workers, part.part)
        path = part.merge_hypotheses(hypothesis_lines(results), out_dir, f"{name}-{method}")
        if path is not None:
            written.append(path)
            log.info("wrote %s", path)
    part.close()
    return written


def transcribe(
    model_path: str | Path,
    inputs: Sequence[str | Path],
    list_file: str | Path | None = None,
    formats: Sequence[str] = TranscribeConfig.formats,
    output_dir: str | Path | None = None,
    method: str = SearchConfig.method,
    search_options: dict | None = None,
    lm_params: str | Path | None = None,
    batch_size: int = TranscribeConfig.batch_size,
    threads: int | None = None,
    channel: int | None = None,
    segment: SegmentConfig | None = None,
    stdout: TextIO | None = None,
    on_error: Callable[[str], None] | None = None,
    progress: bool | None = None,
    device: str = TranscribeConfig.device,
) -> TranscribeSummary:
    """``asr transcribe``: find audio files, recognize them with a ``Recognizer``, write the outputs.

    Args:
        model_path: a model file (``asr average``) or training checkpoint.
        inputs: files, directories, glob patterns (see ``find_audio``).
        list_file: a file with one more input per line.
        formats: any of ``FORMATS`` (txt, json, srt, vtt). ``txt`` goes to ``stdout`` unless
            ``output_dir`` is given (one line per file, ``PATH<TAB>TEXT`` when there are several);
            the others are written next to each input, or into ``output_dir``.
        output_dir: where output files go; a directory input's tree is kept below it.
        method, search_options, lm_params: the search (``asr.decoding.resolve.resolve_search``);
            None values in ``search_options`` are not given.
        batch_size, channel, segment, device: as for ``Recognizer.from_pretrained``.
        threads: torch intra-op threads; None keeps torch's default.
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
    begin = time.perf_counter()
    recognizer = Recognizer.from_pretrained(model_path, device, method, lm_params=lm_params, batch_size=batch_size,
                                            segment=segment, channel=channel, **(search_options or {}))
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
    names = {item.path: item.name for item in items}
    audio_seconds, done, transcribed = 0.0, 0, 0

    def fail(message: str) -> None:
        failed.append(message)
        with tqdm.external_write_mode(file=sys.stderr):  # keep the line clear of the bar
            report(message)

    try:
        for path, result in recognizer.transcribe_files([item.path for item in items], on_progress=bar.update):
            done += 1
            bar.set_postfix_str(f"{done}/{len(items)} files")
            if isinstance(result, AudioError):
                fail(str(result))
                continue
            audio_seconds += result.duration
            transcribed += 1
            with tqdm.external_write_mode(file=stdout):
                for message in write_outputs(result, names[path], formats, out_dir, stdout, label=len(items) > 1):
                    fail(message)
        bar.update(max(0.0, bar.total - bar.n))  # float sums of the parts fall a hair short
    finally:
        bar.close()
    return TranscribeSummary(len(items), transcribed, failed, audio_seconds, time.perf_counter() - begin,
                             time.process_time() - begin_cpu, load_seconds)

"""Audio input: any file libsndfile reads -> mono float32 at the requested rate.

``load_audio`` reads a whole file (or an ``offset``/``duration`` slice of it); ``read_blocks``
streams a file of any length in fixed-size blocks, and ``read_spans`` reads chosen stretches of it
in one forward pass, so an hour of audio never sits in memory.
Both downmix by averaging the channels, or keep the one named by ``channel``. Every failure is
an ``AudioError`` whose message starts with the file name and says what is wrong in one line.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF
from torch import Tensor

from ..config import FeatureConfig

__all__ = ["AudioError", "MAX_DOWNMIX_CHANNELS", "load_audio", "audio_info", "read_blocks", "read_spans"]

# Averaging is a sensible downmix for mono..7.1 recordings; averaging a microphone array of
# more channels smears the phase differences into comb filtering, so there one is picked.
MAX_DOWNMIX_CHANNELS = 8
# Seeking in these lands on a frame without its predecessors (MP3's bit reservoir): the first
# samples come out wrong and mpg123 complains on stderr. They are read through instead.
_READ_THROUGH_FORMATS = frozenset({"MP3", "OGG"})
_SKIP_BLOCK = 1 << 16  # samples read at once while reading through a gap


class AudioError(ValueError):
    """An audio file that cannot be used; the message names the file."""


def _reason(err: Exception) -> str:
    """libsndfile's own words without its "Error opening 'PATH': " prefix."""
    text = getattr(err, "error_string", None) or str(err)
    return text.strip().rstrip(".") or type(err).__name__


def _check_file(path: str | Path) -> None:
    """What libsndfile would only call a "System error" or "Format not recognised"."""
    path = Path(path)
    if not path.exists():
        raise AudioError(f"{path}: no such file")
    if path.is_dir():
        raise AudioError(f"{path}: is a directory, not an audio file")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: empty file (0 bytes)")


def _libsndfile(path: str | Path, call):
    """``call(str(path))`` after the file checks; libsndfile failures become one ``AudioError``."""
    _check_file(path)
    try:
        return call(str(path))
    except (RuntimeError, sf.LibsndfileError) as err:
        raise AudioError(f"{path}: not a readable audio file ({_reason(err)})") from None


def _open(path: str | Path) -> sf.SoundFile:
    """``sf.SoundFile`` for reading, with one clear ``AudioError`` for each way it can fail."""
    return _libsndfile(path, sf.SoundFile)


def _check_channel(path: str | Path, channels: int, channel: int | None) -> None:
    if channels < 1:
        raise AudioError(f"{path}: unsupported channel count {channels}")
    if channel is None:
        if channels > MAX_DOWNMIX_CHANNELS:
            raise AudioError(
                f"{path}: unsupported channel count {channels} for downmixing "
                f"(at most {MAX_DOWNMIX_CHANNELS}); pick one channel (--channel N)"
            )
    elif not 0 <= channel < channels:
        raise AudioError(f"{path}: channel {channel} requested, the file has {channels} (0 to {channels - 1})")


def _mono(data: np.ndarray, channel: int | None) -> np.ndarray:
    """(N, C) float32 -> (N,) float32: the mean over channels or channel ``channel``."""
    if channel is not None:
        return np.ascontiguousarray(data[:, channel])
    return data[:, 0].copy() if data.shape[1] == 1 else data.mean(axis=1, dtype=np.float32)


def audio_info(path: str | Path) -> sf._SoundFileInfo:
    """Header of ``path`` (rate, frames, channels) without reading samples."""
    return _libsndfile(path, sf.info)


def load_audio(
    path: str | Path,
    sample_rate: int = FeatureConfig.sample_rate,
    offset: float = 0.0,
    duration: float | None = None,
    channel: int | None = None,
) -> Tensor:
    """Read ``path`` as mono float32 samples at ``sample_rate``.

    Args:
        path: any format libsndfile reads (WAV, FLAC, OGG, MP3, NIST SPHERE).
        sample_rate: target rate in Hz; other rates are resampled.
        offset: start, in seconds.
        duration: seconds to read; None reads to the end.
        channel: keep this channel (0-based); None averages all channels (at most
            ``MAX_DOWNMIX_CHANNELS``).

    Returns:
        Tensor: (N,) float32.
    """
    with _open(path) as f:
        _check_channel(path, f.channels, channel)
        start = int(round(offset * f.samplerate))
        frames = -1 if duration is None else int(round(duration * f.samplerate))
        try:
            f.seek(start)
            data = f.read(frames, dtype="float32", always_2d=True)  # (N, C)
        except (RuntimeError, sf.LibsndfileError) as err:
            raise AudioError(f"{path}: cannot read audio ({_reason(err)})") from None
        rate = f.samplerate
    wave = torch.from_numpy(_mono(data, channel))
    if not torch.isfinite(wave).all():
        raise AudioError(f"{path}: audio contains NaN or infinite samples")
    if rate != sample_rate:
        wave = AF.resample(wave, rate, sample_rate)
    return wave


def read_blocks(path: str | Path, block_frames: int, channel: int | None = None) -> Iterator[np.ndarray]:
    """Stream ``path`` at its own sample rate as mono float32 blocks of ``block_frames`` samples.

    Only one block is in memory at a time; the last block may be shorter. A block with a NaN or
    infinite sample raises ``AudioError`` giving the time of the first one.

    Args:
        path: any format libsndfile reads.
        block_frames: samples per block (at the file's rate).
        channel: as in ``load_audio``.

    Yields:
        np.ndarray: (n,) float32, ``n <= block_frames``.
    """
    if block_frames < 1:
        raise ValueError(f"block_frames: expected >= 1, got {block_frames}")
    with _open(path) as f:
        _check_channel(path, f.channels, channel)
        done = 0
        while True:
            try:
                data = f.read(block_frames, dtype="float32", always_2d=True)  # (n, C)
            except (RuntimeError, sf.LibsndfileError) as err:
                raise AudioError(f"{path}: cannot read audio ({_reason(err)})") from None
            if len(data) == 0:
                return
            block = _mono(data, channel)
            finite = np.isfinite(block)
            if not finite.all():
                at = (done + int(np.argmin(finite))) / f.samplerate
                raise AudioError(f"{path}: audio contains NaN or infinite samples (first at {at:.2f} s)")
            done += len(block)
            yield block


def read_spans(
    path: str | Path, spans: list[tuple[int, int]], sample_rate: int = FeatureConfig.sample_rate,
    channel: int | None = None,
) -> Iterator[Tensor]:
    """Read the ``[start, end)`` sample ranges ``spans`` of ``path`` in one forward pass.

    Gaps are skipped by seeking, or for MP3 and OGG, where a seek does not land cleanly, by reading
    through them; only one span (and one gap block) is in memory at a time.

    Args:
        path: any format libsndfile reads.
        spans: sorted, non-overlapping ranges in samples at the file's own rate.
        sample_rate: rate of the returned samples; others are resampled per span.
        channel: as in ``load_audio``.

    Yields:
        Tensor: (N,) float32 per span (shorter where the file ends early).
    """
    with _open(path) as f:
        _check_channel(path, f.channels, channel)
        rate, seek = f.samplerate, f.format not in _READ_THROUGH_FORMATS
        pos = 0
        for start, end in spans:
            if start < pos or end < start:
                raise ValueError(f"spans: expected sorted, non-overlapping ranges, got ({start}, {end}) at {pos}")
            try:
                if seek and start > pos:
                    pos = f.seek(start)
                while pos < start:
                    skipped = len(f.read(min(_SKIP_BLOCK, start - pos), dtype="float32", always_2d=True))
                    if skipped == 0:
                        break
                    pos += skipped
                data = f.read(end - start, dtype="float32", always_2d=True)  # (N, C)
            except (RuntimeError, sf.LibsndfileError) as err:
                raise AudioError(f"{path}: cannot read audio ({_reason(err)})") from None
            pos += len(data)
            wave = torch.from_numpy(_mono(data, channel))
            if not torch.isfinite(wave).all():
                raise AudioError(f"{path}: audio contains NaN or infinite samples")
            yield wave if rate == sample_rate else AF.resample(wave, rate, sample_rate)

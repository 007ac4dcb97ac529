"""Audio input: any file libsndfile reads -> mono float32 at the requested rate."""

from __future__ import annotations

from pathlib import Path

import soundfile as sf
import torch
import torchaudio.functional as AF
from torch import Tensor

__all__ = ["AudioError", "load_audio", "audio_info"]


class AudioError(ValueError):
    """An audio file that cannot be used; the message names the file."""


def audio_info(path: str | Path) -> sf._SoundFileInfo:
    """Header of ``path`` (rate, frames, channels) without reading samples."""
    try:
        return sf.info(str(path))
    except (RuntimeError, sf.LibsndfileError) as err:
        raise AudioError(f"{path}: cannot read audio header ({err})") from None


def load_audio(
    path: str | Path,
    sample_rate: int = 16000,
    offset: float = 0.0,
    duration: float | None = None,
) -> Tensor:
    """Read ``path`` as mono float32 samples at ``sample_rate``.

    Args:
        path: any format libsndfile reads (WAV, FLAC, OGG, MP3, NIST SPHERE).
        sample_rate: target rate in Hz; other rates are resampled.
        offset: start, in seconds.
        duration: seconds to read; None reads to the end.

    Returns:
        Tensor: (N,) float32; channels are averaged.
    """
    try:
        with sf.SoundFile(str(path)) as f:
            start = int(round(offset * f.samplerate))
            frames = -1 if duration is None else int(round(duration * f.samplerate))
            f.seek(start)
            data = f.read(frames, dtype="float32", always_2d=True)  # (N, C)
            rate = f.samplerate
    except (RuntimeError, sf.LibsndfileError) as err:
        raise AudioError(f"{path}: cannot read audio ({err})") from None
    wave = torch.from_numpy(data).mean(dim=1)  # (N, C) -> (N,)
    if not torch.isfinite(wave).all():
        raise AudioError(f"{path}: audio contains NaN or infinite samples")
    if rate != sample_rate:
        wave = AF.resample(wave, rate, sample_rate)
    return wave

"""Long-audio segmentation: an energy voice-activity detector with a fixed-window fallback.

A file longer than ``SegmentConfig.max_segment`` is read once in blocks (``asr.audio.read_blocks``)
to get one energy value per 10 ms frame: 360,000 floats for an hour, the only per-file state.
Frames louder than the file's noise floor (its quietest 10 %) by ``threshold_db`` are speech, or,
in a file with no quiet stretch to measure a floor on, every audible frame. Speech runs closer than
``min_silence`` are joined; each run is a segment, padded with up to ``pad`` seconds of the
silence around it, and the rest of the silence is never decoded. A run longer than ``max_segment``
(music, babble, a speaker who never pauses) falls back to fixed windows of at most
``max_segment`` seconds, each cut at its quietest 10 ms in the second half of the window.

Segments never overlap, so their words stitch together by adding each segment's start time.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..config import SegmentConfig
from .io import read_blocks

__all__ = ["frame_energies", "wave_energies", "plan_segments", "segment_file", "segment_wave"]

FRAME_SECONDS = 0.01  # energy frame; also the resolution of every cut
_BLOCK_SECONDS = 30.0  # audio read at once while measuring energies (~5 MB at 44.1 kHz stereo)
_FLOOR_DB = -100.0  # digital silence is clamped here instead of -inf
_NOISE_PERCENTILE = 10  # the noise floor: quietest 10 % of frames (speech is rarely > 90 % of a file)
_LOUD_PERCENTILE = 99  # the speech level, robust to a few clicks
_INAUDIBLE_DB = -70.0  # frames below this (dBFS) are silence whatever the floor; 16-bit LSB is -90


def frame_energies(path: str | Path, sample_rate: int, channel: int | None = None) -> tuple[np.ndarray, int]:
    """Energy in dB of every 10 ms frame of ``path``, read block by block.

    Args:
        path: an audio file at rate ``sample_rate``.
        sample_rate: the file's rate (from its header).
        channel: as in ``asr.audio.load_audio``.

    Returns:
        (energies, num_samples): (F,) float32 dB with F = ceil(num_samples / frame); the
        file's length in samples as actually read (headers can overstate it).
    """
    frame = max(1, int(round(sample_rate * FRAME_SECONDS)))
    block = frame * max(1, int(_BLOCK_SECONDS / FRAME_SECONDS))  # whole frames per block
    parts, total = [], 0
    for samples in read_blocks(path, block, channel):
        total += len(samples)
        parts.append(_block_energies(samples, frame))
    energies = np.concatenate(parts) if parts else np.zeros(0, np.float32)
    return energies, total


def _block_energies(samples: np.ndarray, frame: int) -> np.ndarray:
    """(n,) samples -> (ceil(n / frame),) float32 dB; a final partial frame is zero-padded."""
    pad = -len(samples) % frame
    if pad:
        samples = np.concatenate([samples, np.zeros(pad, np.float32)])
    power = np.square(samples, dtype=np.float64).reshape(-1, frame).mean(axis=1)  # (n*frame,) -> (n,)
    return 10 * np.log10(np.maximum(power, 10 ** (_FLOOR_DB / 10))).astype(np.float32)


def wave_energies(wave: np.ndarray, sample_rate: int) -> np.ndarray:
    """``frame_energies`` of mono samples in memory: (N,) float32 at ``sample_rate`` -> (F,) dB."""
    return _block_energies(np.asarray(wave, np.float32), max(1, int(round(sample_rate * FRAME_SECONDS))))


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) of every run of True in a 1-D bool array."""
    edges = np.flatnonzero(np.diff(np.concatenate(([0], mask.astype(np.int8), [0]))))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist()))


def _split_long(start: int, end: int, energies: np.ndarray, max_len: int) -> list[tuple[int, int]]:
    """Fixed-window fallback: cut [start, end) into pieces of at most ``max_len`` frames, each cut
    at the quietest frame in the second half of its window."""
    pieces = []
    while end - start > max_len:
        lo, hi = start + max_len // 2, start + max_len
        cut = lo + int(np.argmin(energies[lo:hi]))
        pieces.append((start, cut))
        start = cut
    pieces.append((start, end))
    return pieces


def plan_segments(energies: np.ndarray, cfg: SegmentConfig) -> list[tuple[int, int]]:
    """Segments as [start, end) frame ranges (10 ms frames), in order and non-overlapping.

    Args:
        energies: (F,) dB per frame, from ``frame_energies``.
        cfg: thresholds and lengths.

    Returns:
        list of (start, end) frame indices; empty when the audio holds no speech.
    """
    num = len(energies)
    max_len = max(1, int(cfg.max_segment / FRAME_SECONDS))
    if num == 0:
        return []
    if num <= max_len:
        return [(0, num)]
    floor, loud = np.percentile(energies, [_NOISE_PERCENTILE, _LOUD_PERCENTILE]).tolist()
    if loud - floor < cfg.threshold_db:
        # no quiet stretch to tell speech from background (steady noise, music, non-stop speech):
        # every audible frame counts, and long runs become fixed windows
        speech = energies > _INAUDIBLE_DB
    else:
        speech = energies > max(floor + cfg.threshold_db, _INAUDIBLE_DB)
    if not speech.any():
        return []
    # join speech runs separated by less than min_silence
    min_gap = int(round(cfg.min_silence / FRAME_SECONDS))
    regions: list[list[int]] = []
    for start, end in _runs(speech):
        if regions and start - regions[-1][1] < min_gap:
            regions[-1][1] = end
        else:
            regions.append([start, end])
    # each region is a segment (fixed windows if it is too long), so the model sees pieces of the
    # length it was trained on: packing several regions into 30 s segments raised the WER of the
    # AN4 model on an hour of test audio from 10 % to 17 % (tools/bench/transcribe_rtf.py)
    pad = int(round(cfg.pad / FRAME_SECONDS))
    body_len = max(1, max_len - 2 * pad)  # room for the padding on both sides
    packed = [piece for start, end in regions for piece in _split_long(start, end, energies, body_len)]
    # pad with silence, never into the neighbours (half of each gap at most)
    segments = []
    for i, (start, end) in enumerate(packed):
        prev_end = packed[i - 1][1] if i > 0 else -2 * pad
        next_start = packed[i + 1][0] if i + 1 < len(packed) else num + 2 * pad
        lo = max(0, start - min(pad, (start - prev_end) // 2))
        hi = min(num, end + min(pad, (next_start - end) // 2))
        segments.append((lo, hi))
    return segments


def segment_file(
    path: str | Path, sample_rate: int, cfg: SegmentConfig, channel: int | None = None
) -> tuple[list[tuple[int, int]], int]:
    """Segments of an audio file as [start, end) sample ranges at the file's own rate.

    Returns:
        (segments, num_samples): sample ranges in order, and the samples actually read.
    """
    energies, total = frame_energies(path, sample_rate, channel)
    frame = max(1, int(round(sample_rate * FRAME_SECONDS)))
    segments = [(start * frame, min(end * frame, total)) for start, end in plan_segments(energies, cfg)]
    return [(s, e) for s, e in segments if e > s], total


def segment_wave(wave: np.ndarray, sample_rate: int, cfg: SegmentConfig) -> list[tuple[int, int]]:
    """``segment_file`` for mono samples in memory: [start, end) sample ranges, in order."""
    frame = max(1, int(round(sample_rate * FRAME_SECONDS)))
    total = len(wave)
    segments = [(start * frame, min(end * frame, total))
                for start, end in plan_segments(wave_energies(wave, sample_rate), cfg)]
    return [(s, e) for s, e in segments if e > s]

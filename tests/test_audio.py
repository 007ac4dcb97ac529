"""Tests for asr.audio.io: load_audio, audio_info, AudioError (synthetic files in tmp_path)."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from asr.audio.io import AudioError, audio_info, load_audio

LSB = 1.0 / 32768  # one int16 step in float samples
# libsndfile's float -> PCM_16 write is off by up to ~1 LSB (scale 32767, read 32768)
INT16_ATOL = 1.5 * LSB


def _noise(n: int, channels: int | None = None, seed: int = 0) -> np.ndarray:
    shape = (n,) if channels is None else (n, channels)
    return np.random.default_rng(seed).uniform(-0.9, 0.9, shape).astype(np.float32)


def _sine(freq: float, rate: int, seconds: float, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_mono_wav_roundtrip(tmp_path):
    samples = _noise(16000)
    path = tmp_path / "mono.wav"
    sf.write(path, samples, 16000, subtype="PCM_16")
    wave = load_audio(path)
    assert isinstance(wave, torch.Tensor)
    assert wave.dtype == torch.float32 and wave.shape == (16000,)
    np.testing.assert_allclose(wave.numpy(), samples, rtol=0, atol=INT16_ATOL)


def test_int16_samples_are_exact(tmp_path):
    ints = (np.arange(-20000, 20000, 7)).astype(np.int16)
    path = tmp_path / "ints.wav"
    sf.write(path, ints, 16000, subtype="PCM_16")
    wave = load_audio(str(path))  # str paths work too
    np.testing.assert_array_equal(wave.numpy(), ints.astype(np.float32) / 32768)


def test_stereo_is_averaged(tmp_path):
    left = _sine(300, 16000, 0.5)
    right = _noise(8000, seed=1) * 0.5
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, right], axis=1), 16000, subtype="PCM_16")
    assert audio_info(path).channels == 2
    wave = load_audio(path)
    assert wave.shape == (8000,)
    np.testing.assert_allclose(wave.numpy(), (left + right) / 2, rtol=0, atol=INT16_ATOL)
    # opposite channels cancel
    sf.write(path, np.stack([left, -left], axis=1), 16000, subtype="FLOAT")
    assert torch.equal(load_audio(path), torch.zeros(8000))


def test_8k_is_resampled_to_16k_keeping_frequency(tmp_path):
    path = tmp_path / "tone8k.wav"
    tone = _sine(440, 8000, 1.0)
    sf.write(path, tone, 8000, subtype="PCM_16")
    info = audio_info(path)
    assert (info.samplerate, info.frames, info.channels) == (8000, 8000, 1)

    wave = load_audio(path, sample_rate=16000)
    assert abs(wave.numel() - 2 * 8000) <= 1
    spectrum = np.abs(np.fft.rfft(wave.numpy()))
    freqs = np.fft.rfftfreq(wave.numel(), d=1 / 16000)
    assert abs(freqs[spectrum.argmax()] - 440) <= 2
    # nothing above the old Nyquist, amplitude kept (RMS of a 0.5 sine)
    assert spectrum[freqs > 4100].max() < 1e-2 * spectrum.max()
    core = wave[1000:-1000]  # skip the resampler's edge effects
    assert float(core.pow(2).mean().sqrt()) == pytest.approx(0.5 / np.sqrt(2), rel=0.01)


def test_same_rate_is_not_resampled(tmp_path):
    path = tmp_path / "8k.wav"
    samples = _noise(4000)
    sf.write(path, samples, 8000, subtype="FLOAT")
    wave = load_audio(path, sample_rate=8000)
    np.testing.assert_array_equal(wave.numpy(), samples)


def test_flac(tmp_path):
    samples = _noise(12345, seed=3)
    path = tmp_path / "a.flac"
    sf.write(path, samples, 16000, subtype="PCM_16", format="FLAC")
    assert audio_info(path).format == "FLAC"
    wave = load_audio(path)
    assert wave.shape == (12345,)
    np.testing.assert_allclose(wave.numpy(), samples, rtol=0, atol=INT16_ATOL)


@pytest.mark.parametrize(
    "offset, duration, start, stop",
    [(0.25, 0.5, 4000, 12000), (0.0, 0.1, 0, 1600), (1.5, None, 24000, 32000), (0.0, None, 0, 32000)],
)
def test_offset_and_duration(tmp_path, offset, duration, start, stop):
    ints = (np.arange(32000) % 30000 - 15000).astype(np.int16)  # every position distinct
    path = tmp_path / "ramp.wav"
    sf.write(path, ints, 16000, subtype="PCM_16")
    wave = load_audio(path, offset=offset, duration=duration)
    np.testing.assert_array_equal(wave.numpy(), ints[start:stop].astype(np.float32) / 32768)


def test_offset_with_resampling_counts_source_seconds(tmp_path):
    path = tmp_path / "tone8k.wav"
    sf.write(path, _sine(440, 8000, 2.0), 8000, subtype="FLOAT")
    wave = load_audio(path, sample_rate=16000, offset=0.5, duration=1.0)
    assert abs(wave.numel() - 16000) <= 1


def test_random_bytes_raise_audio_error_naming_path(tmp_path):
    path = tmp_path / "garbage.wav"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(AudioError) as err:
        load_audio(path)
    assert str(path) in str(err.value)
    with pytest.raises(AudioError, match="garbage.wav"):
        audio_info(path)


def test_missing_file_raises_audio_error_naming_path(tmp_path):
    path = tmp_path / "missing" / "nope.flac"
    with pytest.raises(AudioError) as err:
        load_audio(path)
    assert str(path) in str(err.value)
    with pytest.raises(AudioError) as err:
        audio_info(path)
    assert str(path) in str(err.value)
    assert issubclass(AudioError, ValueError)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_samples_raise(tmp_path, bad):
    samples = _noise(1600)
    samples[777] = bad
    path = tmp_path / "bad.wav"
    sf.write(path, samples, 16000, subtype="FLOAT")
    with pytest.raises(AudioError) as err:
        load_audio(path)
    assert str(path) in str(err.value)
    assert "NaN" in str(err.value)

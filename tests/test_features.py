"""Tests for asr.audio.features: LogMel (against librosa), GlobalCMVN, SpecAugment."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from asr.config import FeatureConfig, SpecAugmentConfig
from asr.audio.features import GlobalCMVN, LogMel, SpecAugment

SR = 16000

# Measured max |LogMel - librosa| in the log domain is ~9e-5 (float32 filterbank
# construction inside torchaudio; the float64 frontend gives ~7e-5) for mel energies within
# 60 dB of their frame's peak. Below that, float32's 24-bit mantissa sets the floor: the chirp
# has bins 84 dB under the peak, where torch 2.14.1 / torchaudio 2.11.1 differ by 6.6e-4 (the
# float64 frontend by 1.4e-4). A wrong window, mel scale, filter normalisation or centring is
# off by >= 1e-2 everywhere.
LOG_ATOL = 3e-4
LOG_ATOL_LOW = 3e-3  # bins more than 60 dB under their frame's peak


def _signal(kind: str, n: int = SR, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / SR
    if kind == "tones+noise":
        y = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 2500 * t)
        y = y + 0.05 * rng.standard_normal(n)
    elif kind == "noise":
        y = 0.1 * rng.standard_normal(n)
    elif kind == "chirp":
        y = 0.5 * np.sin(2 * np.pi * (100 * t + 3000 * t**2)) + 0.01 * rng.standard_normal(n)
    else:
        raise AssertionError(kind)
    return y.astype(np.float32)


def _librosa_logmel(y: np.ndarray) -> np.ndarray:
    librosa = pytest.importorskip("librosa")
    mel = librosa.feature.melspectrogram(
        y=y.astype(np.float64),
        sr=SR,
        n_fft=400,
        win_length=400,
        hop_length=160,
        n_mels=80,
        center=False,
        power=2.0,
        htk=True,
        norm=None,
    )
    return np.log(mel + 1e-6).T  # (T, F)


@pytest.fixture(scope="module")
def logmel() -> LogMel:
    return LogMel(FeatureConfig())


@pytest.mark.parametrize("kind", ["tones+noise", "noise", "chirp"])
def test_logmel_matches_librosa(logmel, kind):
    y = _signal(kind)
    ref = _librosa_logmel(y)
    out = logmel(torch.from_numpy(y))
    assert out.dtype == torch.float32
    assert tuple(out.shape) == ref.shape == (98, 80)
    err = np.abs(out.numpy().astype(np.float64) - ref)
    low = ref < ref.max(axis=1, keepdims=True) - 6 * np.log(10)  # > 60 dB under the frame's peak
    high_err = np.where(low, 0.0, err)
    assert high_err.max() < LOG_ATOL, f"max |diff| {high_err.max():.3g} at {np.unravel_index(high_err.argmax(), err.shape)}"
    assert err.max() < LOG_ATOL_LOW, f"max |diff| {err.max():.3g} at {np.unravel_index(err.argmax(), err.shape)}"


def test_logmel_window_and_hop_from_config(logmel):
    assert (logmel.win, logmel.hop) == (400, 160)
    other = LogMel(FeatureConfig(sample_rate=8000, num_mels=40, win_ms=32.0, hop_ms=8.0))
    assert (other.win, other.hop) == (256, 64)
    assert tuple(other(torch.zeros(8000)).shape) == (other.num_frames(8000), 40)
    assert other.num_frames(8000) == 1 + (8000 - 256) // 64


def test_logmel_silence_is_log_floor(logmel):
    out = logmel(torch.zeros(800))
    assert tuple(out.shape) == (3, 80)
    torch.testing.assert_close(out, torch.full((3, 80), math.log(1e-6)), rtol=0, atol=1e-5)


def test_logmel_frame_t_covers_its_own_window(logmel):
    """No centre padding: frame t depends only on samples [t*160, t*160+400)."""
    y = torch.from_numpy(_signal("noise", 2000))
    base = logmel(y)
    changed = y.clone()
    changed[1200:] = 0.0  # frames 0..5 end at <= 5*160+400 = 1200
    out = logmel(changed)
    assert torch.equal(out[:6], base[:6])
    assert not torch.allclose(out[6:], base[6:])


@pytest.mark.parametrize(
    "n, frames",
    [(0, 0), (1, 0), (399, 0), (400, 1), (401, 1), (559, 1), (560, 2), (561, 2), (16000, 98), (16160, 99)],
)
def test_logmel_frame_count(logmel, n, frames):
    assert logmel.num_frames(n) == frames
    out = logmel(torch.from_numpy(_signal("noise", n)) if n else torch.zeros(0))
    assert tuple(out.shape) == (frames, 80)
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()


# --------------------------------------------------------------------------- GlobalCMVN


def test_cmvn_defaults_are_identity():
    cmvn = GlobalCMVN(4)
    feats = torch.randn(2, 5, 4)
    lens = torch.tensor([5, 5])
    assert torch.equal(cmvn(feats, lens), feats)
    assert set(cmvn.state_dict()) == {"mean", "std"}  # stats travel in the model file


def test_cmvn_normalises_valid_frames_and_zeroes_padding():
    gen = torch.Generator().manual_seed(0)
    dim = 8
    scale = torch.linspace(0.5, 20.0, dim)
    offset = torch.linspace(-30.0, 7.0, dim)
    lens = torch.tensor([300, 120, 1, 257])
    feats = torch.randn(4, 300, dim, generator=gen) * scale + offset
    pad = torch.arange(300)[None, :] >= lens[:, None]
    feats[pad] = 1e6  # garbage in the padding must not leak through
    valid = feats[~pad].double()  # (frames, dim)

    cmvn = GlobalCMVN(dim)
    cmvn.set_stats(valid.shape[0], valid.sum(0), (valid**2).sum(0))
    torch.testing.assert_close(cmvn.mean, valid.mean(0).float())
    torch.testing.assert_close(cmvn.std, valid.std(0, unbiased=False).float())

    out = cmvn(feats, lens)
    assert out.shape == feats.shape
    assert torch.all(out[pad] == 0.0)
    norm = out[~pad].double()
    torch.testing.assert_close(norm.mean(0), torch.zeros(dim, dtype=torch.float64), rtol=0, atol=1e-4)
    torch.testing.assert_close(norm.std(0, unbiased=False), torch.ones(dim, dtype=torch.float64), rtol=0, atol=1e-4)


def test_cmvn_constant_channel_does_not_divide_by_zero():
    cmvn = GlobalCMVN(2)
    data = torch.tensor([[3.0, 1.0], [3.0, -1.0]], dtype=torch.float64)
    cmvn.set_stats(2, data.sum(0), (data**2).sum(0))
    assert cmvn.std[0] > 0 and torch.isclose(cmvn.std[1], torch.tensor(1.0))
    out = cmvn(data.float()[None], torch.tensor([2]))
    assert torch.isfinite(out).all()
    assert torch.equal(out[0, :, 0], torch.zeros(2))
    torch.testing.assert_close(out[0, :, 1], torch.tensor([1.0, -1.0]))


# -------------------------------------------------------------------------- SpecAugment

LENS = [200, 150, 37, 1]


def _batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    feats = torch.randn(len(LENS), max(LENS), 80, generator=gen) + 5.0  # never 0 by chance
    return feats, torch.tensor(LENS)


def _num_runs(flags: torch.Tensor) -> int:
    """Number of contiguous True runs in a 1-D bool tensor."""
    return int(flags[0]) + int((flags[1:] & ~flags[:-1]).sum())


def test_specaugment_eval_is_identity():
    sa = SpecAugment(SpecAugmentConfig()).eval()
    feats, lens = _batch()
    torch.manual_seed(0)
    assert torch.equal(sa(feats, lens), feats)


def test_specaugment_train_only_zeroes_within_limits():
    cfg = SpecAugmentConfig()
    sa = SpecAugment(cfg).train()
    feats, lens = _batch()
    saw_freq = saw_time = False
    for seed in range(25):
        torch.manual_seed(seed)
        out = sa(feats, lens)
        assert out.shape == feats.shape
        assert torch.all((out == feats) | (out == 0)), "SpecAugment changed a value other than to 0"
        for b, length in enumerate(LENS):
            zero = out[b, :length] == 0  # (T, F), valid frames only
            freq_masked = zero.all(dim=0)  # bins zero over the whole utterance
            time_masked = zero.all(dim=1)  # frames zero over all bins
            max_time = min(cfg.time_width, int(length * cfg.time_max_ratio))
            assert int(freq_masked.sum()) <= cfg.freq_masks * cfg.freq_width
            assert int(time_masked.sum()) <= cfg.time_masks * max_time
            # masks are bands: at most one contiguous run per mask drawn
            assert _num_runs(freq_masked) <= cfg.freq_masks
            assert _num_runs(time_masked) <= cfg.time_masks
            # every zero is explained by a frequency or a time mask
            assert torch.equal(zero, freq_masked[None, :] | time_masked[:, None])
            saw_freq |= bool(freq_masked.any())
            saw_time |= bool(time_masked.any())
        assert not (out[3, 0] == 0).all()  # length-1 utterance: no time mask possible
    assert saw_freq and saw_time, "SpecAugment never masked anything in 25 draws"


def test_specaugment_seeds():
    sa = SpecAugment(SpecAugmentConfig()).train()
    feats, lens = _batch()
    masks = []
    for seed in (0, 1, 0):
        torch.manual_seed(seed)
        masks.append(sa(feats, lens) == 0)
    assert torch.equal(masks[0], masks[2]), "same seed, different masks"
    assert not torch.equal(masks[0], masks[1]), "different seeds, same masks"
    # masks are drawn per utterance: the two long utterances get different frequency bands
    freq0, freq1 = masks[0][0, :150].all(0), masks[0][1, :150].all(0)
    assert not torch.equal(freq0, freq1), "every utterance got the same frequency mask"


def test_specaugment_respects_config_counts():
    feats, lens = _batch()
    none = SpecAugment(SpecAugmentConfig(freq_masks=0, time_masks=0)).train()
    assert torch.equal(none(feats, lens), feats)
    # freq only: no frame is fully masked; time only: no bin is fully masked
    freq_only = SpecAugment(SpecAugmentConfig(time_masks=0, freq_width=80)).train()
    time_only = SpecAugment(SpecAugmentConfig(freq_masks=0)).train()
    for seed in range(10):
        torch.manual_seed(seed)
        out = freq_only(feats, lens)
        zero = out[0] == 0
        assert torch.equal(zero, zero[:1].expand_as(zero))  # same bins in every frame
        torch.manual_seed(seed)
        out = time_only(feats, lens)
        zero = out[0, :200] == 0
        assert torch.equal(zero, zero[:, :1].expand_as(zero))  # whole frames only
        for b, length in enumerate(LENS):
            assert not (out[b, length:] == 0).any(), "time mask beyond the utterance length"


def test_specaugment_length_one_batch():
    sa = SpecAugment(SpecAugmentConfig()).train()
    feats = torch.randn(1, 1, 80) + 5.0
    for seed in range(10):
        torch.manual_seed(seed)
        out = sa(feats, torch.tensor([1]))
        assert out.shape == (1, 1, 80)
        assert torch.all((out == feats) | (out == 0))
        assert int((out == 0).sum()) <= 2 * 15

"""Frontend: log-mel features, global mean/variance normalisation, SpecAugment."""

from __future__ import annotations

import torch
import torchaudio
from torch import Tensor, nn

from ..config import FeatureConfig, SpecAugmentConfig
from ..masks import make_pad_mask

__all__ = ["LogMel", "GlobalCMVN", "SpecAugment"]


class LogMel(nn.Module):
    """Waveform -> log-mel frames (no centre padding: frame t covers [t*hop, t*hop+win))."""

    def __init__(self, cfg: FeatureConfig):
        super().__init__()
        self.win = int(cfg.sample_rate * cfg.win_ms / 1000)
        self.hop = int(cfg.sample_rate * cfg.hop_ms / 1000)
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=cfg.sample_rate,
            n_fft=self.win,
            win_length=self.win,
            hop_length=self.hop,
            n_mels=cfg.num_mels,
            center=False,
        )

    def num_frames(self, num_samples: int) -> int:
        """Frames produced for ``num_samples`` samples (0 when shorter than a window)."""
        return 0 if num_samples < self.win else 1 + (num_samples - self.win) // self.hop

    def forward(self, wave: Tensor) -> Tensor:
        """wave (N,) float32 -> feats (T, F) with T = ``num_frames(N)``."""
        if wave.numel() < self.win:
            return wave.new_zeros(0, self.mel.n_mels)
        return (self.mel(wave) + 1e-6).log().T  # (F, T) -> (T, F)


class GlobalCMVN(nn.Module):
    """Normalise every feature channel with training-set mean and standard deviation.

    The statistics are buffers, so they travel inside the model file.
    """

    def __init__(self, dim: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    @torch.no_grad()
    def set_stats(self, count: int, total: Tensor, total_sq: Tensor) -> None:
        """Set from frame count, per-channel sum and sum of squares (float64)."""
        mean = total / count
        var = (total_sq / count - mean**2).clamp_min(1e-8)
        self.mean.copy_(mean.float())
        self.std.copy_(var.sqrt().float())

    def forward(self, feats: Tensor, feat_lens: Tensor) -> Tensor:
        """feats (B, T, F) -> normalised (B, T, F), padding frames set to 0."""
        out = (feats - self.mean) / self.std
        return out.masked_fill(make_pad_mask(feat_lens, feats.size(1))[..., None], 0.0)


class SpecAugment(nn.Module):
    """Frequency and time masks (Park et al. 2019), drawn per utterance inside its length.

    Masked values are 0, the mean after CMVN. Identity in eval mode.
    """

    def __init__(self, cfg: SpecAugmentConfig):
        super().__init__()
        self.cfg = cfg

    def forward(self, feats: Tensor, feat_lens: Tensor) -> Tensor:
        """feats (B, T, F) normalised -> masked copy (training) or feats (eval)."""
        if not self.training:
            return feats
        batch, frames, dim = feats.shape
        cfg = self.cfg
        keep = torch.ones_like(feats, dtype=torch.bool)
        bins = torch.arange(dim, device=feats.device)
        for _ in range(cfg.freq_masks):
            width = torch.randint(0, cfg.freq_width + 1, (batch, 1), device=feats.device)
            start = (torch.rand(batch, 1, device=feats.device) * (dim - width + 1)).long()
            keep &= ~((bins >= start) & (bins < start + width))[:, None, :]
        steps = torch.arange(frames, device=feats.device)
        max_width = torch.minimum(
            torch.full_like(feat_lens, cfg.time_width), (feat_lens * cfg.time_max_ratio).long()
        )[:, None]
        for _ in range(cfg.time_masks):
            width = (torch.rand(batch, 1, device=feats.device) * (max_width + 1)).long()
            start = (torch.rand(batch, 1, device=feats.device) * (feat_lens[:, None] - width + 1)).long()
            keep &= ~((steps >= start) & (steps < start + width))[:, :, None]
        return feats * keep

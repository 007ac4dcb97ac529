"""Frame-rate reduction before the recurrent encoder: frame stacking or strided convolution.

Both keep the output for an utterance independent of the batch padding: an output frame
only reads input frames inside the utterance (or zeros, which is what padding holds after
CMVN), and ``out_lens = feat_lens // factor``.
"""

from __future__ import annotations

from torch import Tensor, nn

from ..config import SubsamplingConfig

__all__ = ["StackSubsampling", "ConvSubsampling", "build_subsampling"]


class StackSubsampling(nn.Module):
    """Concatenate ``factor`` consecutive frames: (B, T, F) -> (B, T // k, k * F)."""

    def __init__(self, input_dim: int, factor: int):
        super().__init__()
        self.factor = factor
        self.output_dim = input_dim * factor

    def output_lengths(self, lens: Tensor) -> Tensor:
        return lens // self.factor

    def forward(self, x: Tensor, lens: Tensor) -> tuple[Tensor, Tensor]:
        batch, frames, dim = x.shape
        k = self.factor
        out_frames = frames // k
        x = x[:, : out_frames * k].reshape(batch, out_frames, k * dim)  # (B, T, F) -> (B, T//k, k*F)
        return x, self.output_lengths(lens)


class ConvSubsampling(nn.Module):
    """A same-padded 3-tap convolution, then a ``factor``-tap convolution with stride ``factor``."""

    def __init__(self, input_dim: int, factor: int, channels: int):
        super().__init__()
        self.factor = factor
        self.output_dim = channels
        self.conv = nn.Sequential(
            nn.Conv1d(input_dim, channels, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv1d(channels, channels, kernel_size=factor, stride=factor),
            nn.ReLU(),
        )

    def output_lengths(self, lens: Tensor) -> Tensor:
        return lens // self.factor

    def forward(self, x: Tensor, lens: Tensor) -> tuple[Tensor, Tensor]:
        x = self.conv(x.transpose(1, 2))  # (B, T, F) -> (B, F, T) -> (B, C, T//k)
        return x.transpose(1, 2), self.output_lengths(lens)  # (B, T//k, C)


def build_subsampling(cfg: SubsamplingConfig, input_dim: int) -> nn.Module:
    """Subsampling module named by ``cfg.kind``; has ``output_dim`` and ``output_lengths``."""
    if not 1 <= cfg.factor <= 4:
        raise ValueError(f"subsampling.factor: expected 1 to 4, got {cfg.factor}")
    if cfg.kind == "stack":
        return StackSubsampling(input_dim, cfg.factor)
    if cfg.kind == "conv":
        return ConvSubsampling(input_dim, cfg.factor, cfg.conv_channels)
    raise ValueError(f"subsampling.kind: expected 'stack' or 'conv', got {cfg.kind!r}")

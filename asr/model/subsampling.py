"""Frame-rate reduction before the recurrent encoder: frame stacking or strided convolution.

All three keep the output for an utterance independent of the batch padding: an output frame
only reads input frames inside the utterance (or zeros, which is what padding holds after
CMVN), and ``out_lens = feat_lens // factor``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..config import SubsamplingConfig

__all__ = ["StackSubsampling", "ConvSubsampling", "Conv2dSubsampling", "SubsamplingStream", "build_subsampling"]


class StackSubsampling(nn.Module):
    """Concatenate ``factor`` consecutive frames: (B, T, F) -> (B, T // k, k * F)."""

    def __init__(self, input_dim: int, factor: int):
        super().__init__()
        self.factor = factor
        self.output_dim = input_dim * factor
        self.context = (0, 0)  # input frames read before / after an output frame's own k frames

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
        self.context = (1, 1)  # the 3-tap convolution reads one frame on each side
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


class Conv2dSubsampling(nn.Module):
    """Two 3x3 convolutions over (time, frequency), as ESPnet's Conv2dSubsampling and deepspeech.pytorch.

    Both halve the frequency axis; the first keeps the frame rate (same-padded in time), the second
    reads ``factor`` of its frames with stride ``factor``, like ``ConvSubsampling``, so an output
    frame reads one input frame on each side of its own ``factor`` frames. The channels of each
    output frame are flattened with its frequency bins: (B, T, F) -> (B, T // k, C * ceil(ceil(F / 2) / 2)).
    ``norm`` adds a LayerNorm over each output frame, which reads that frame alone.
    """

    def __init__(self, input_dim: int, factor: int, channels: int, norm: bool = False):
        super().__init__()
        self.factor = factor
        self.output_dim = channels * (((input_dim + 1) // 2 + 1) // 2)  # bins after two stride-2 convolutions
        self.context = (1, 1)
        self.conv = nn.Sequential(
            nn.Conv2d(1, channels, kernel_size=3, stride=(1, 2), padding=1),
            nn.ReLU(),
            nn.Conv2d(channels, channels, kernel_size=(factor, 3), stride=(factor, 2), padding=(0, 1)),
            nn.ReLU(),
        )
        self.norm = nn.LayerNorm(self.output_dim) if norm else nn.Identity()

    def output_lengths(self, lens: Tensor) -> Tensor:
        return lens // self.factor

    def forward(self, x: Tensor, lens: Tensor) -> tuple[Tensor, Tensor]:
        x = self.conv(x.unsqueeze(1))  # (B, T, F) -> (B, 1, T, F) -> (B, C, T//k, F')
        batch, channels, frames, freq = x.shape
        x = x.transpose(1, 2).reshape(batch, frames, channels * freq)  # (B, T//k, C*F')
        return self.norm(x), self.output_lengths(lens)


class SubsamplingStream:
    """Runs a subsampling module incrementally on one stream; outputs equal the module's on the whole input.

    Output frame j reads input frames [j*k - left, (j+1)*k + right) (zeros outside the input), so
    it comes out once frame (j+1)*k + right - 1 has arrived, or at the end (``final``). Each call
    re-runs the module on the few frames kept for the left context.
    """

    def __init__(self, module: nn.Module):
        self.module = module
        self.buf: Tensor | None = None  # (1, n, F) input frames from stream index ``start``
        self.start = 0  # a multiple of k
        self.emitted = 0  # output frames given out so far

    @torch.no_grad()
    def step(self, x: Tensor, final: bool = False) -> Tensor:
        """x (1, N, F) new input frames -> (1, N', D) new output frames."""
        k = self.module.factor
        left, right = self.module.context
        buf = x if self.buf is None else torch.cat([self.buf, x], dim=1)
        received = self.start + buf.size(1)
        ready = received // k if final else max(received - right, 0) // k  # output frames [0, ready) are final
        if ready <= self.emitted:
            self.buf = buf
            return buf.new_zeros(1, 0, self.module.output_dim)
        out, _ = self.module(buf, torch.tensor([buf.size(1)]))  # output i is frame start // k + i
        first = self.start // k
        new = out[:, self.emitted - first : ready - first]
        self.emitted = ready
        keep = max(ready - (-(-left // k)), 0) * k  # left context rounded up to whole output frames
        self.buf, self.start = buf[:, keep - self.start :], keep
        return new


def build_subsampling(cfg: SubsamplingConfig, input_dim: int) -> nn.Module:
    """Subsampling module named by ``cfg.kind``; has ``output_dim`` and ``output_lengths``."""
    if not 1 <= cfg.factor <= 4:
        raise ValueError(f"subsampling.factor: expected 1 to 4, got {cfg.factor}")
    if cfg.kind == "stack":
        return StackSubsampling(input_dim, cfg.factor)
    if cfg.kind == "conv":
        return ConvSubsampling(input_dim, cfg.factor, cfg.conv_channels)
    if cfg.kind == "conv2d":
        return Conv2dSubsampling(input_dim, cfg.factor, cfg.conv2d_channels, cfg.conv2d_norm)
    raise ValueError(f"subsampling.kind: expected 'stack', 'conv' or 'conv2d', got {cfg.kind!r}")

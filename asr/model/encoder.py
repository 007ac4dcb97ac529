"""Stacked recurrent encoders (LSTM, GRU, vanilla tanh RNN), uni- or bidirectional.

Each direction is its own single-layer cuDNN/oneDNN module fed *padded* input, which takes
the fused kernels (packed sequences do not on CPU). The backward direction reads every
utterance reversed within its own length (``reverse_padded``), so it starts at the last
real frame and never sees padding: an utterance's output does not depend on the batch.
"""

from __future__ import annotations

from functools import partial

import torch
from torch import Tensor, nn

from ..config import EncoderConfig
from ..masks import make_pad_mask

__all__ = ["CELLS", "reverse_padded", "RecurrentLayer", "Dropout", "RecurrentEncoder", "build_encoder"]

CELLS = {
    "lstm": nn.LSTM,
    "gru": nn.GRU,
    "rnn": partial(nn.RNN, nonlinearity="tanh"),
}


def reverse_padded(x: Tensor, lens: Tensor) -> Tensor:
    """Reverse the first ``lens[b]`` frames of every sequence; padding stays where it is.

    Applying it twice is the identity.

    Args:
        x (Tensor): (B, T, D).
        lens (Tensor): (B,) int64.
    """
    batch, frames, dim = x.shape
    steps = torch.arange(frames, device=x.device)[None, :]  # (1, T)
    index = lens.to(x.device)[:, None] - 1 - steps  # (B, T)
    index = torch.where(index >= 0, index, steps)
    rows = index + frames * torch.arange(batch, device=x.device)[:, None]  # (B, T) rows of (B*T, D)
    # Row selection: about 3x faster than a 3-D gather, forward and backward, on CPU.
    return x.reshape(batch * frames, dim).index_select(0, rows.reshape(-1)).reshape(batch, frames, dim)


class RecurrentLayer(nn.Module):
    """One layer: a forward module and, if bidirectional, a backward one on reversed input."""

    def __init__(self, cell: str, input_size: int, hidden_size: int, bidirectional: bool):
        super().__init__()
        make = CELLS[cell]
        self.fwd = make(input_size, hidden_size, batch_first=True)
        self.bwd = make(input_size, hidden_size, batch_first=True) if bidirectional else None
        self.output_dim = hidden_size * (2 if bidirectional else 1)

    def forward(self, x: Tensor, lens: Tensor) -> Tensor:
        """x (B, T, D) -> (B, T, H) or (B, T, 2H); frames past ``lens`` are unspecified."""
        out, _ = self.fwd(x)
        if self.bwd is None:
            return out
        back, _ = self.bwd(reverse_padded(x, lens))
        return torch.cat([out, reverse_padded(back, lens)], dim=-1)  # (B, T, 2H)


class Dropout(nn.Module):
    """Inverted dropout, as ``nn.Dropout``, with the mask drawn by ``rand_like``.

    On the CPU ``nn.Dropout``'s ``bernoulli_`` took 5% of an AN4 training step; a uniform draw
    and a comparison do the same job in about 60% of the time (``tools/bench/train_profile.py``).
    """

    def __init__(self, p: float):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout: expected 0 <= p < 1, got {p}")
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = (torch.rand_like(x) >= self.p).to(x.dtype).mul_(1.0 / (1.0 - self.p))  # (B, T, D)
        return x * keep


class RecurrentEncoder(nn.Module):
    """``num_layers`` recurrent layers, each followed by dropout and an optional projection."""

    def __init__(self, cfg: EncoderConfig, input_dim: int):
        super().__init__()
        if cfg.cell not in CELLS:
            raise ValueError(f"encoder.cell: expected one of {sorted(CELLS)}, got {cfg.cell!r}")
        if cfg.num_layers < 1:
            raise ValueError(f"encoder.num_layers: expected >= 1, got {cfg.num_layers}")
        self.layers = nn.ModuleList()
        self.projections = nn.ModuleList()
        dim = input_dim
        for _ in range(cfg.num_layers):
            layer = RecurrentLayer(cfg.cell, dim, cfg.hidden_size, cfg.bidirectional)
            self.layers.append(layer)
            dim = layer.output_dim
            if cfg.projection_size > 0:
                self.projections.append(nn.Linear(dim, cfg.projection_size))
                dim = cfg.projection_size
            else:
                self.projections.append(nn.Identity())
        self.dropout = Dropout(cfg.dropout)
        self.output_dim = dim

    def forward(self, x: Tensor, lens: Tensor) -> tuple[Tensor, Tensor]:
        """x (B, T, D), lens (B,) -> enc_out (B, T, output_dim) with padding zeroed, lens."""
        for layer, proj in zip(self.layers, self.projections):
            x = proj(self.dropout(layer(x, lens)))
        return x.masked_fill(make_pad_mask(lens, x.size(1))[..., None], 0.0), lens


def build_encoder(cfg: EncoderConfig, input_dim: int) -> RecurrentEncoder:
    """The encoder registry: ``cfg.cell`` picks LSTM, GRU or RNN."""
    return RecurrentEncoder(cfg, input_dim)

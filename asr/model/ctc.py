"""The CTC acoustic model: CMVN -> SpecAugment -> subsampling -> recurrent encoder -> linear."""

from __future__ import annotations

from torch import Tensor, nn

from ..config import ModelConfig
from .encoder import build_encoder
from ..audio.features import GlobalCMVN, SpecAugment
from .subsampling import build_subsampling

__all__ = ["CTCModel"]


class CTCModel(nn.Module):
    """Log-mel frames in, per-frame log-probabilities over units (index 0 = blank) out."""

    def __init__(self, cfg: ModelConfig, vocab_size: int):
        super().__init__()
        self.cfg = cfg
        self.vocab_size = vocab_size
        self.cmvn = GlobalCMVN(cfg.features.num_mels)
        self.specaug = SpecAugment(cfg.specaug)
        self.subsampling = build_subsampling(cfg.subsampling, cfg.features.num_mels)
        self.encoder = build_encoder(cfg.encoder, self.subsampling.output_dim)
        self.output = nn.Linear(self.encoder.output_dim, vocab_size)

    def output_lengths(self, feat_lens: Tensor) -> Tensor:
        """Output frames for ``feat_lens`` input frames: (B,) int64 -> (B,) int64."""
        return self.subsampling.output_lengths(feat_lens)

    def forward(self, feats: Tensor, feat_lens: Tensor) -> tuple[Tensor, Tensor]:
        """Args:
            feats (Tensor): (B, T, F) float32 log-mel frames, un-normalised.
            feat_lens (Tensor): (B,) int64 valid frames.

        Returns:
            log_probs (Tensor): (B, T', V) float32, padding frames hold log_softmax(bias).
            out_lens (Tensor): (B,) int64, ``output_lengths(feat_lens)``.
        """
        x = self.cmvn(feats, feat_lens)
        x = self.specaug(x, feat_lens)
        x, lens = self.subsampling(x, feat_lens)  # (B, T', D)
        x, lens = self.encoder(x, lens)  # (B, T', H)
        return self.output(x).float().log_softmax(dim=-1), lens  # (B, T', V), fp32 under autocast too

"""Batches for training and decoding: lhotse cut manifests -> padded log-mel tensors.

Features are computed on the fly from the audio (log-mel costs about 1 ms per second of
speech), so a manifest is all a recipe stores and the model sees exactly the frontend that
``asr transcribe`` uses.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from lhotse import CutSet, load_manifest_lazy
from lhotse.dataset import DynamicBucketingSampler, DynamicCutSampler
from torch import Tensor
from torch.nn.utils.rnn import pad_sequence

from .audio import load_audio
from .config import DataConfig, FeatureConfig
from .features import LogMel

__all__ = [
    "Batch",
    "load_cuts",
    "cut_audio",
    "cut_text",
    "collate_feats",
    "FeatureBatcher",
    "train_sampler",
    "eval_batches",
]

log = logging.getLogger(__name__)

# Manifests are read eagerly on purpose (filtering, counting); lhotse's advice is for huge sets.
warnings.filterwarnings("ignore", message=r"You are using Dynamic\w*Sampler with an eagerly read CutSet")


@dataclass
class Batch:
    ids: list[str]  # cut ids
    texts: list[str]  # reference transcripts ("" when the cut has none)
    feats: Tensor  # (B, T, F) float32 log-mel, zero padded
    feat_lens: Tensor  # (B,) int64 valid frames
    durations: Tensor  # (B,) float32 seconds of audio


def load_cuts(path: str | Path) -> CutSet:
    """Read a cut manifest (``.jsonl.gz``) eagerly."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: no such cut manifest")
    return CutSet.from_cuts(load_manifest_lazy(path))


def cut_audio(cut, sample_rate: int) -> Tensor:
    """(N,) float32 samples of a mono cut, read straight from its source file with soundfile."""
    source = cut.recording.sources[0]
    if source.type != "file":
        raise ValueError(f"cut {cut.id}: only file audio sources are supported, got {source.type!r}")
    whole = cut.start == 0 and abs(cut.duration - cut.recording.duration) < 1e-3
    return load_audio(source.source, sample_rate, cut.start, None if whole else cut.duration)


def cut_text(cut) -> str:
    """Transcript of a cut: its supervisions' texts joined by spaces."""
    return " ".join(s.text for s in cut.supervisions if s.text)


def collate_feats(feats: list[Tensor]) -> tuple[Tensor, Tensor]:
    """list of (T_i, F) -> feats (B, T, F) zero padded, feat_lens (B,) int64."""
    lens = torch.tensor([f.size(0) for f in feats], dtype=torch.int64)
    return pad_sequence(feats, batch_first=True), lens


class FeatureBatcher:
    """Turns a CutSet (one batch from a sampler) into a ``Batch``."""

    def __init__(self, cfg: FeatureConfig):
        self.cfg = cfg
        self.logmel = LogMel(cfg)

    def __call__(self, cuts: CutSet) -> Batch:
        cuts = list(cuts)
        with torch.no_grad():
            feats = [self.logmel(cut_audio(c, self.cfg.sample_rate)) for c in cuts]
        padded, lens = collate_feats(feats)
        return Batch(
            ids=[c.id for c in cuts],
            texts=[cut_text(c) for c in cuts],
            feats=padded,
            feat_lens=lens,
            durations=torch.tensor([c.duration for c in cuts], dtype=torch.float32),
        )


def train_sampler(cuts: CutSet, cfg: DataConfig, seed: int) -> DynamicBucketingSampler:
    """Shuffled, duration-bucketed batches of at most ``cfg.max_duration`` seconds."""
    return DynamicBucketingSampler(
        cuts,
        max_duration=cfg.max_duration,
        num_buckets=cfg.num_buckets,
        shuffle=True,
        drop_last=False,
        seed=seed,
    )


def eval_batches(cuts: CutSet, max_duration: float) -> DynamicCutSampler:
    """Batches in order of decreasing duration (little padding), every cut exactly once."""
    return DynamicCutSampler(cuts.sort_by_duration(ascending=False), max_duration=max_duration)

"""Frame-level distillation of a teacher CTC model's posteriors into the model being trained.

The teacher (``distill_from``: usually the offline BiLSTM) sees the clean log-mel of each batch
in eval mode; the student (an LC-BLSTM or a unidirectional model, under SpecAugment) is trained
on ``(1 - w) * CTC + w * T^2 * sum_frames KL(teacher_T || student_T)``, T the temperature, as in
Takashima et al. (ICASSP 2018) and Kurata & Audhkhasi (Interspeech 2019). CTC posteriors are
spiky, so the frame targets only help where the student's spikes can fall on the teacher's:
same units and frame rate (checked here), and best a student that starts aligned (fine-tuned
from the teacher, ``init_from``), as the LC-BLSTM recipe does. A unidirectional student emits
its spikes later than a bidirectional teacher; ``shift`` delays the teacher's posteriors by that
many frames (the student's frame t learns the teacher's t - shift; its first ``shift`` frames
learn CTC only), measured on dev with ``recipes/an4/local/spike_delay.py``.
"""

from __future__ import annotations

import logging

import torch
from torch import Tensor

from ..masks import make_pad_mask
from ..model.checkpoint import CheckpointError
from ..model.ctc import CTCModel
from ..model.files import load_float_model

__all__ = ["Distillation"]

log = logging.getLogger(__name__)


class Distillation:
    """The teacher of a training run and its loss term."""

    def __init__(self, path: str, weight: float, temperature: float, student: CTCModel, units: list[str],
                 device: torch.device, shift: int = 0):
        if not 0.0 < weight <= 1.0:
            raise ValueError(f"distill_weight: expected a value in (0, 1], got {weight}")
        if temperature <= 0.0:
            raise ValueError(f"distill_temperature: expected a positive value, got {temperature}")
        if shift < 0:
            raise ValueError(f"distill_shift: expected frames >= 0, got {shift}")
        teacher, tokenizer = load_float_model(path)
        if list(tokenizer.units) != list(units):
            raise CheckpointError(f"{path}: distill_from: the teacher's {len(tokenizer.units)} units differ from the "
                                  f"{len(units)} units of the model being trained")
        lens = torch.arange(1, 1000)
        if not torch.equal(teacher.output_lengths(lens), student.output_lengths(lens)):
            raise CheckpointError(f"{path}: distill_from: the teacher's frame rate (subsampling x"
                                  f"{teacher.cfg.subsampling.factor}) differs from the model's "
                                  f"(x{student.cfg.subsampling.factor})")
        self.teacher = teacher.to(device).eval().requires_grad_(False)
        self.weight, self.temperature, self.shift = weight, temperature, shift
        log.info("distilling %s (weight %.2f, temperature %.2f, shift %d frames)", path, weight, temperature, shift)

    def loss(self, ctc: Tensor, log_probs: Tensor, out_lens: Tensor, feats: Tensor, feat_lens: Tensor) -> Tensor:
        """``(1 - w) * ctc + w * T^2 *`` the KL divergence summed over the valid frames of the batch
        (student frames ``shift`` onwards, against the teacher's frames from 0).

        Args:
            ctc: the student's summed CTC loss (``ctc_loss``), so both terms are sums over utterances.
            log_probs: (B, T', V) the student's fp32 log-probs; out_lens (B,) int64.
            feats, feat_lens: the batch's log-mel (B, T, F) and lengths, as the student got them.
        """
        with torch.no_grad():
            teacher_lp, _ = self.teacher(feats, feat_lens)  # (B, T', V), eval: no SpecAugment, no dropout
            target = (teacher_lp / self.temperature).log_softmax(dim=-1)
        student = (log_probs / self.temperature).log_softmax(dim=-1)
        valid = ~make_pad_mask(out_lens.to(student.device), student.size(1))  # (B, T') True on real frames
        if self.shift:  # student frame t against teacher frame t - shift: (B, T' - shift, V)
            kept = max(target.size(1) - self.shift, 0)
            target, student, valid = target[:, :kept], student[:, self.shift:], valid[:, self.shift:]
        kl = (target.exp() * (target - student)).sum(dim=-1)  # (B, T' - shift)
        kd = (kl * valid).sum() * self.temperature ** 2
        return (1.0 - self.weight) * ctc + self.weight * kd

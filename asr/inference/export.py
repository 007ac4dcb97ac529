"""``asr export``: a TorchScript file that runs the model with nothing but ``torch`` installed.

The exported module holds the eval-mode model (CMVN -> subsampling -> recurrent encoder ->
linear -> log-softmax; SpecAugment is left out, it is the identity at inference), the log-mel
frontend and the tokenizer's units::

    m = torch.jit.load("model.ts")
    feats = m.features(wave)                                  # (N,) float32 at m.sample_rate -> (T, 80)
    log_probs, out_lens = m(feats[None], torch.tensor([len(feats)]))   # same as CTCModel.forward
    text = m.greedy_text(wave)                                # best-path transcript

``export_model`` checks that the scripted module's outputs equal the eager model's on a padded
batch before it writes the file. The file also carries ``asr.json`` (format, model config,
units) as a TorchScript extra file.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from ..config import to_dict
from ..audio.features import LogMel

__all__ = ["EXPORT_FORMAT", "ExportedModel", "script_model", "export_model"]

log = logging.getLogger(__name__)

EXPORT_FORMAT = "asr-ctc-torchscript/1"
_CHECK_ATOL = 1e-5  # scripted vs eager log-probabilities (the same kernels: differences are ~1e-7)


class ExportedModel(nn.Module):
    """Inference-only view of a ``CTCModel`` that ``torch.jit.script`` accepts.

    Attributes (TorchScript infers their types from the values):
        units: the tokenizer's units, blank first.
        blank_id: index of the CTC blank.
        word_sep: the unit (or sentencepiece prefix) that marks a word boundary.
        unit_sep: joins the units of the best path (a space for phones, else nothing).
        sample_rate: Hz expected by ``features``.
        frame_shift: seconds per output frame.
    """

    def __init__(self, model, tokenizer):
        super().__init__()
        cfg = model.cfg
        self.cmvn = model.cmvn
        self.subsampling = model.subsampling
        self.encoder = model.encoder
        self.output = model.output
        self.logmel = LogMel(cfg.features)
        self.units = list(tokenizer.units)
        self.blank_id = tokenizer.blank_id
        self.word_sep = "\u2581" if tokenizer.kind == "bpe" else tokenizer.sil_token
        self.unit_sep = " " if tokenizer.unit_words else ""  # phones: every unit is a word
        self.sample_rate = cfg.features.sample_rate
        self.frame_shift = cfg.features.hop_ms / 1000.0 * cfg.subsampling.factor

    def forward(self, feats: Tensor, feat_lens: Tensor) -> tuple[Tensor, Tensor]:
        """feats (B, T, F) un-normalised log-mel, feat_lens (B,) int64 -> log_probs (B, T', V), out_lens (B,)."""
        x = self.cmvn(feats, feat_lens)
        x, lens = self.subsampling(x, feat_lens)  # (B, T', D)
        x, lens = self.encoder(x, lens)  # (B, T', H)
        return self.output(x).log_softmax(dim=-1), lens  # (B, T', V)

    @torch.jit.export
    def features(self, wave: Tensor) -> Tensor:
        """wave (N,) float32 mono at ``sample_rate`` -> log-mel (T, F)."""
        return self.logmel(wave)

    @torch.jit.export
    def greedy_text(self, wave: Tensor) -> str:
        """Best-path transcript of one mono waveform at ``sample_rate``."""
        feats = self.logmel(wave)
        lens = torch.tensor([feats.size(0)], dtype=torch.int64)
        log_probs, out_lens = self.forward(feats[None], lens)
        ids = log_probs[0, : int(out_lens[0])].argmax(dim=-1)  # (T',)
        pieces: list[str] = []
        prev = -1
        id_list: list[int] = ids.tolist()
        for i in id_list:
            if i != prev and i != self.blank_id:
                pieces.append(self.units[i])
            prev = i
        return " ".join(self.unit_sep.join(pieces).replace(self.word_sep, " ").split())


def script_model(model, tokenizer) -> torch.jit.ScriptModule:
    """``torch.jit.script`` of ``ExportedModel(model, tokenizer)`` in eval mode."""
    module = ExportedModel(model, tokenizer).eval()
    with warnings.catch_warnings():
        # TorchScript is deprecated in favour of torch.export, but it is still the one format that
        # loads without Python model code and keeps the dynamic batch and time dimensions.
        warnings.filterwarnings("ignore", category=FutureWarning, message=".*torch.jit")
        return torch.jit.script(module)


@torch.inference_mode()
def _check(model, scripted, seed: int = 0) -> float:
    """Largest |scripted - eager| over a padded batch of random log-mel frames."""
    gen = torch.Generator().manual_seed(seed)
    lens = torch.tensor([157, 90, 31], dtype=torch.int64)  # odd lengths, heavy padding
    feats = torch.randn(len(lens), int(lens.max()), model.cfg.features.num_mels, generator=gen) * 3 - 8
    expected, expected_lens = model(feats, lens)
    got, got_lens = scripted(feats, lens)
    if not torch.equal(expected_lens, got_lens) or expected.shape != got.shape:
        raise RuntimeError(f"exported model: lengths or shapes differ ({got.shape} vs {expected.shape})")
    valid = ~(torch.arange(got.size(1))[None, :] >= got_lens[:, None])  # (B, T') True at real frames
    return float((got - expected).abs()[valid].max())


def export_model(model_path: str | Path, out: str | Path) -> Path:
    """Script the model in ``model_path``, check it against the eager model, write it to ``out``.

    Raises:
        CheckpointError: the model file is missing, corrupt or incompatible.
        RuntimeError: the scripted outputs differ from the eager ones by more than 1e-5.
    """
    from .recognizer import load_acoustic_model

    model, tokenizer = load_acoustic_model(model_path)
    scripted = script_model(model, tokenizer)
    diff = _check(model.eval(), scripted)
    if diff > _CHECK_ATOL:
        raise RuntimeError(f"exported model differs from the eager model by {diff:.2e} (> {_CHECK_ATOL})")
    meta = {"format": EXPORT_FORMAT, "model_config": to_dict(model.cfg), "units": list(tokenizer.units),
            "tokenizer": tokenizer.kind}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    # written under its final name (the archive's root folder is named after the file) in a
    # temporary directory beside it, then renamed: a crash never leaves a half-written OUT
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=FutureWarning, message=".*torch.jit")
            torch.jit.save(scripted, str(tmp_dir / out.name), _extra_files={"asr.json": json.dumps(meta)})
        os.replace(tmp_dir / out.name, out)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    log.info("wrote %s (max |scripted - eager| = %.1e)", out, diff)
    return out

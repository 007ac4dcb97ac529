"""Run an exported ONNX acoustic model under ONNX Runtime with ``CTCModel``'s call signature.

The graph (written by ``asr export --format onnx``) takes un-normalised log-mel frames and
returns log-probabilities; the log-mel frontend stays in PyTorch (``asr.audio.features.LogMel``,
from ``model.cfg.features``). Inputs ``feats`` (B, T, F) float32 and ``feat_lens`` (B,) int64,
outputs ``log_probs`` (B, T', V) float32 and ``out_lens`` (B,) int64; batch and time are dynamic.

The file carries its own description: the metadata entry ``asr.json`` holds the format tag,
model config, vocabulary size, tokenizer and quantization, so a ``.onnx`` file loads alone.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from torch import Tensor

from ..config import ModelConfig
from .subsampling import build_subsampling

__all__ = ["ONNX_FORMAT", "ONNX_META_KEY", "INPUT_NAMES", "OUTPUT_NAMES", "OnnxModel", "read_onnx_meta"]

log = logging.getLogger(__name__)

ONNX_FORMAT = "asr-ctc-onnx/1"
ONNX_META_KEY = "asr.json"  # metadata_props key holding the model description
INPUT_NAMES = ("feats", "feat_lens")
OUTPUT_NAMES = ("log_probs", "out_lens")


def _session(path: Path, threads: int | None):
    """An ONNX Runtime CPU session; any unreadable file becomes one ``ValueError`` naming it."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()  # follow torch.set_num_threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only: ORT's warnings about unused initialisers are noise here
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as err:  # ORT raises its own pybind classes (InvalidProtobuf, Fail, ...)
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"{path}: not a readable ONNX model ({first[:200]})") from None


def read_onnx_meta(session, path: Path) -> dict:
    """The ``asr.json`` description embedded in an ONNX file by ``asr export``."""
    raw = session.get_modelmeta().custom_metadata_map.get(ONNX_META_KEY)
    if raw is None:
        raise ValueError(f"{path}: ONNX model without '{ONNX_META_KEY}' metadata (not written by 'asr export')")
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: unreadable '{ONNX_META_KEY}' metadata ({err})") from None
    if not isinstance(meta, dict) or meta.get("format") != ONNX_FORMAT:
        raise ValueError(f"{path}: not an asr ONNX model (expected format {ONNX_FORMAT!r})")
    return meta


class OnnxModel:
    """An ONNX Runtime session that behaves like an eval-mode ``CTCModel`` for inference.

    Args:
        path: the ``.onnx`` file.
        cfg: the model config (features tell the caller how to compute log-mel frames).
        vocab_size: output units; checked against the graph.
        threads: ORT intra-op threads (default: ``torch.get_num_threads()`` at construction).
        session: an already open session of ``path`` (saves a second parse).

    Holds the whole graph in memory (about the size of the file); one call runs one batch.
    """

    training = False

    def __init__(self, path: str | Path, cfg: ModelConfig, vocab_size: int, threads: int | None = None,
                 session=None):
        self.path = Path(path)
        self.cfg = cfg
        self.vocab_size = vocab_size
        self.session = session if session is not None else _session(self.path, threads)
        self._check_signature()
        self._subsampling = build_subsampling(cfg.subsampling, cfg.features.num_mels)  # its length arithmetic

    def output_lengths(self, feat_lens: Tensor) -> Tensor:
        """Output frames for ``feat_lens`` input frames: (B,) int64 -> (B,) int64, as ``CTCModel``'s."""
        return self._subsampling.output_lengths(feat_lens)

    def _check_signature(self) -> None:
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        names = (tuple(i.name for i in inputs), tuple(o.name for o in outputs))
        if names != (INPUT_NAMES, OUTPUT_NAMES):
            raise ValueError(f"{self.path}: ONNX graph with inputs/outputs {names}, expected "
                             f"{(INPUT_NAMES, OUTPUT_NAMES)}")
        feat_dim, vocab = inputs[0].shape[-1], outputs[0].shape[-1]
        if feat_dim != self.cfg.features.num_mels or vocab != self.vocab_size:
            raise ValueError(f"{self.path}: ONNX graph of another model (features {feat_dim}, units {vocab}; "
                             f"expected {self.cfg.features.num_mels} and {self.vocab_size})")

    def eval(self) -> OnnxModel:
        return self

    def __call__(self, feats: Tensor, feat_lens: Tensor) -> tuple[Tensor, Tensor]:
        return self.forward(feats, feat_lens)

    def forward(self, feats: Tensor, feat_lens: Tensor) -> tuple[Tensor, Tensor]:
        """feats (B, T, F) float32 log-mel, feat_lens (B,) int64 -> log_probs (B, T', V) float32, out_lens (B,)."""
        if feats.ndim != 3 or feats.size(-1) != self.cfg.features.num_mels:
            raise ValueError(f"feats: expected shape (B, T, {self.cfg.features.num_mels}), got {tuple(feats.shape)}")
        if feat_lens.shape != feats.shape[:1]:
            raise ValueError(f"feat_lens: expected shape ({feats.size(0)},), got {tuple(feat_lens.shape)}")
        inputs = {"feats": feats.detach().to("cpu", torch.float32).contiguous().numpy(),
                  "feat_lens": feat_lens.detach().to("cpu", torch.int64).contiguous().numpy()}
        log_probs, out_lens = self.session.run(list(OUTPUT_NAMES), inputs)
        return torch.from_numpy(log_probs), torch.from_numpy(out_lens)

    def __repr__(self) -> str:
        return f"OnnxModel({str(self.path)!r})"

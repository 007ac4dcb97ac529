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

Every encoder exports, the LC-BLSTM included: its loop over chunks stays a loop (TorchScript; an ONNX
``Loop``), so batch and time remain dynamic and outputs equal ``CTCModel.forward``'s.

``asr export --format onnx`` writes the same forward pass as an ONNX graph (``export_onnx``):
log-mel frames (B, T, 80) + lengths in, log-probabilities + lengths out, batch and time dynamic;
the log-mel frontend stays in PyTorch/torchaudio (``LogMel``). The graph embeds its description
(``asr.json`` metadata: model config, tokenizer) and runs through ``asr.model.onnx_model.OnnxModel``.
Before writing, it is checked under ONNX Runtime against the eager model on several lengths and
batch sizes, and each utterance alone against the same utterance in a padded batch.

``--int8``: PyTorch's dynamic quantization (``asr.model.files.quantize_int8``) for TorchScript,
ONNX Runtime's ``quantize_dynamic`` (int8 weights, ``DynamicQuantizeLSTM`` / ``MatMulInteger``)
for ONNX. Activations are quantized per batch, so an int8 model's output for an utterance
depends slightly on the other utterances of its batch; the float formats do not.
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

from ..audio.features import LogMel
from ..config import ExportConfig, to_dict
from ..model.ctc import CTCModel
from ..model.files import load_float_model, model_description, quantize_int8, tokenizer_to_json
from ..model.onnx_model import INPUT_NAMES, ONNX_FORMAT, ONNX_META_KEY, OUTPUT_NAMES, OnnxModel

__all__ = ["EXPORT_FORMAT", "ExportedModel", "script_model", "onnx_bytes", "export_onnx", "check_onnx",
           "export_model"]

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


# no_grad, not inference_mode: after an ONNX export in the same process the scripted LC-BLSTM's loop fails
# under inference_mode ("Inference tensors cannot be saved for backward", torch 2.14)
@torch.no_grad()
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


def _write_atomic(out: Path, write) -> None:
    """``write(tmp_path)`` under ``out``'s name in a temporary folder beside it, then rename over ``out``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    # the TorchScript archive's root folder is named after the file: keep the final name
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        write(tmp_dir / out.name)
        os.replace(tmp_dir / out.name, out)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


def _export_torchscript(model, tokenizer, out: Path, int8: bool, atol: float) -> float:
    reference = quantize_int8(model) if int8 else model
    scripted = script_model(reference, tokenizer)
    diff = _check(reference, scripted)
    if diff > atol:
        raise RuntimeError(f"exported model differs from the eager model by {diff:.2e} (> {atol})")
    meta = {"format": EXPORT_FORMAT, "model_config": to_dict(model.cfg), "units": list(tokenizer.units),
            "tokenizer": tokenizer.kind, "quantization": "int8" if int8 else None}

    def write(path: Path) -> None:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=FutureWarning, message=".*torch.jit")
            torch.jit.save(scripted, str(path), _extra_files={"asr.json": json.dumps(meta)})

    _write_atomic(out, write)
    return diff


def onnx_bytes(model: CTCModel, tokenizer, opset: int = ExportConfig.opset, int8: bool = ExportConfig.int8) -> bytes:
    """The serialised ONNX graph of ``model`` (float32, or ORT dynamic int8) with its ``asr.json`` metadata.

    Costs one TorchScript compilation and ONNX conversion (about 13 s for the AN4 models on 2 cores).
    """
    import onnx

    module = script_model(model, tokenizer)  # scripted, so that the LC-BLSTM's loop over chunks stays a loop
    lens = torch.tensor([97, 64], dtype=torch.int64)  # any lengths: batch and time are dynamic axes
    feats = torch.randn(len(lens), int(lens.max()), model.cfg.features.num_mels)
    axes = {"feats": {0: "batch", 1: "time"}, "feat_lens": {0: "batch"}, "log_probs": {0: "batch", 1: "frames"},
            "out_lens": {0: "batch"}}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "model.onnx")
        with warnings.catch_warnings():
            # the legacy (TorchScript-based) exporter: the torch.export one does not trace the per-utterance
            # reversal of the backward direction with a dynamic time axis; the check below guards the result.
            # It takes the scripted module: control flow (LC-BLSTM chunks) becomes ONNX Loop, not unrolled.
            warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export")
            warnings.filterwarnings("ignore", message=".*will be removed")
            # the check below covers batch sizes 1 to 4
            warnings.filterwarnings("ignore", message=".*batch_size other than 1")
            warnings.filterwarnings("ignore", message="Constant folding - Only steps=1")  # look-ahead slices
            torch.onnx.export(module, (feats, lens), str(path), input_names=list(INPUT_NAMES),
                              output_names=list(OUTPUT_NAMES), dynamic_axes=axes, opset_version=opset, dynamo=False)
        if int8:
            path = _quantize_onnx(path, Path(tmp))
        graph = onnx.load(str(path))
    meta = {"format": ONNX_FORMAT, **model_description(model.cfg, model.vocab_size),
            "tokenizer": tokenizer_to_json(tokenizer), "quantization": "int8" if int8 else None}
    del graph.metadata_props[:]
    entry = graph.metadata_props.add()
    entry.key, entry.value = ONNX_META_KEY, json.dumps(meta)
    return graph.SerializeToString()


def _quantize_onnx(path: Path, tmp: Path) -> Path:
    """ONNX Runtime's dynamic int8 quantization of the graph at ``path``, written beside it in ``tmp``."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepared, quantized = tmp / "model-pre.onnx", tmp / "model-int8.onnx"
    # the scripted export holds the weights in Constant nodes; ORT's optimizer turns them into the
    # initializers that quantize_dynamic quantizes
    quant_pre_process(str(path), str(prepared), skip_symbolic_shape=True)
    logging.getLogger().disabled, was = True, logging.getLogger().disabled  # ORT logs unquantized tensors
    try:
        # 7-bit weights: on CPUs without VNNI (AVX2) ORT's u8 x s8 kernels saturate their int16 sums, and
        # 8-bit weights gave 18x the log-prob error of 7-bit ones (0.18 vs 0.01 on AN4 features, AMD EPYC)
        quantize_dynamic(str(prepared), str(quantized), weight_type=QuantType.QInt8, reduce_range=True,
                         extra_options={"EnableSubgraph": True})  # the LC-BLSTM's LSTMs are in Loop and If bodies
    finally:
        logging.getLogger().disabled = was
    return quantized


@torch.inference_mode()
def check_onnx(model: CTCModel, onnx_model: OnnxModel) -> tuple[float, float]:
    """(largest |ONNX - eager|, largest |alone - in a padded batch|) over random batches of several shapes.

    Lengths: odd, even, one frame over a multiple of the subsampling factor, batch sizes 1 to 4.
    """
    gen = torch.Generator().manual_seed(0)  # the same random inputs for every check
    worst, padding = 0.0, 0.0
    for lengths in ([157, 90, 31], [1000], [13, 12, 11, 64]):
        lens = torch.tensor(lengths, dtype=torch.int64)
        feats = torch.randn(len(lens), int(lens.max()), model.cfg.features.num_mels, generator=gen) * 3 - 8
        expected, expected_lens = model(feats, lens)
        got, got_lens = onnx_model(feats, lens)
        if not torch.equal(expected_lens, got_lens) or expected.shape != got.shape:
            raise RuntimeError(f"ONNX model: lengths or shapes differ ({tuple(got.shape)} vs {tuple(expected.shape)})")
        for b, n in enumerate(expected_lens.tolist()):  # every length here gives n >= 1 output frames
            worst = max(worst, float((got[b, :n] - expected[b, :n]).abs().max()))
            alone, _ = onnx_model(feats[b : b + 1, : lengths[b]], lens[b : b + 1])
            padding = max(padding, float((alone[0, :n] - got[b, :n]).abs().max()))
    return worst, padding


def export_onnx(model: CTCModel, tokenizer, out: str | Path, int8: bool = ExportConfig.int8,
                opset: int = ExportConfig.opset, atol: float = ExportConfig.atol) -> Path:
    """Write ``model`` as an ONNX file at ``out`` after checking it under ONNX Runtime.

    float32: every output within ``atol`` of the eager model, and each utterance's output alone equal
    (within ``atol``) to its output in a padded batch. int8: shapes and lengths checked, differences logged.

    Raises:
        RuntimeError: the check failed (the file is not written).
    """
    out = Path(out)
    data = onnx_bytes(model, tokenizer, opset, int8)
    with tempfile.TemporaryDirectory(dir=out.parent if out.parent.is_dir() else None) as tmp:
        probe = Path(tmp, out.name)
        probe.write_bytes(data)
        onnx_model = OnnxModel(probe, model.cfg, model.vocab_size)
        diff, padding = check_onnx(model, onnx_model)
        del onnx_model
    if not int8 and max(diff, padding) > atol:
        raise RuntimeError(f"ONNX model differs from the eager model by {diff:.2e}, alone vs padded batch by "
                           f"{padding:.2e} (> {atol})")
    _write_atomic(out, lambda path: path.write_bytes(data))
    log.info("wrote %s (%s; max |onnx - eager| = %.1e, alone vs padded batch %.1e)", out,
             "int8" if int8 else "float32", diff, padding)
    return out


def export_model(model_path: str | Path, out: str | Path, format: str = ExportConfig.format,
                 int8: bool = ExportConfig.int8, opset: int = ExportConfig.opset,
                 atol: float = ExportConfig.atol) -> Path:
    """Export the float model in ``model_path`` (a ``.pt`` file or a float safetensors model folder) to ``out``.

    Args:
        format: ``"torchscript"`` (one file that runs with ``torch`` alone) or ``"onnx"``.
        int8: dynamic int8 quantization (PyTorch's for TorchScript, ONNX Runtime's for ONNX).

    Raises:
        CheckpointError: the model file is missing, corrupt, incompatible, or not a float PyTorch model.
        RuntimeError: the exported outputs differ from the eager ones by more than ``atol``.
    """
    if format not in ("torchscript", "onnx"):
        raise ValueError(f"format: expected 'torchscript' or 'onnx', got {format!r}")
    model, tokenizer = load_float_model(model_path)
    model = model.eval()
    out = Path(out)
    if format == "onnx":
        return export_onnx(model, tokenizer, out, int8, opset, atol)
    diff = _export_torchscript(model, tokenizer, out, int8, atol)
    log.info("wrote %s (max |scripted - eager| = %.1e)", out, diff)
    return out

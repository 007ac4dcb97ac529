"""Gradient flow and gate activity of the recurrent encoder: why gates matter, measured.

Two measurements per model and utterance, always with the model in eval mode (no dropout,
no SpecAugment):

* ``encoder_gradient_vs_lag``: how strongly the last output frame still depends on the encoder
  input ``lag`` recurrent steps earlier (the L2 norm of the gradient). Through a vanilla tanh RNN
  the norm decays about geometrically with the lag; the gates of a GRU or LSTM can keep it up.
* ``gate_activations``: the mean over units of every LSTM (input, forget, output) and GRU (reset,
  update) gate at every step. ``nn.LSTM`` and ``nn.GRU`` do not expose their gates, so
  ``recurrent_gates`` recomputes them from each direction's weights, input and output sequence.

``diagnose`` runs both on audio files for several models and writes ``gradient_lag.json``,
``gradient_lag.png``, ``gates.json`` and ``gates_LABEL.png`` (gated models only).
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..audio.io import audio_info, load_audio
from ..decoding.search import frame_shift
from ..audio.features import LogMel

__all__ = [
    "top_log_prob",
    "gradient_vs_lag",
    "LagGradient",
    "encoder_input",
    "encoder_gradient_vs_lag",
    "recurrent_gates",
    "gate_activations",
    "default_label",
    "load_models",
    "diagnose",
]

log = logging.getLogger(__name__)

RATIO_LAGS = ((10, 0), (100, 0), (100, 10))  # norm(lag a) / norm(lag b) reported in gradient_lag.json


def top_log_prob(row: Tensor) -> Tensor:
    """The default scalar of an output frame: its largest entry.

    For log-probabilities this is the log-probability of the unit the model rates most likely at
    that frame; its gradient is that unit's log-probability gradient (log_softmax normaliser included).

    Args:
        row (Tensor): (V,) one output frame.
    """
    return row.max()


def gradient_vs_lag(
    fn: Callable[[Tensor], Tensor], x: Tensor, frame: int = -1, reduce: Callable[[Tensor], Tensor] = top_log_prob
) -> Tensor:
    """Gradient norm of one output frame's scalar with respect to each earlier input frame.

    Args:
        fn: maps an input (1, T, D) to an output (1, T, V) whose frame t is aligned with input frame t.
        x (Tensor): (1, T, D) floating-point input; not modified.
        frame: the output frame (negative counts from the end, as in indexing).
        reduce: maps the (V,) output row at ``frame`` to the scalar that is differentiated
            (default ``top_log_prob``).

    Returns:
        Tensor: (T,) of x's dtype. Entry ``lag`` is ``|| d reduce(fn(x)[0, frame]) / d x[0, frame - lag] ||_2``.
        Lags that reach before the first frame (``lag > frame``) are NaN, so the length is always T.
        Later input frames, which a bidirectional ``fn`` also reads, are not reported.
    """
    if x.dim() != 3 or x.size(0) != 1 or not x.is_floating_point():
        raise ValueError(f"x: expected a floating-point tensor of shape (1, T, D), got {x.dtype} {tuple(x.shape)}")
    frames = x.size(1)
    if not -frames <= frame < frames:
        raise ValueError(f"frame: expected in [{-frames}, {frames}), got {frame}")
    t = frame % frames
    x = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        out = fn(x)
        if out.dim() != 3 or tuple(out.shape[:2]) != (1, frames):
            raise ValueError(f"fn: expected an output of shape (1, {frames}, V), got {tuple(out.shape)}")
        (grad,) = torch.autograd.grad(reduce(out[0, t]), x, allow_unused=True)
    if grad is None:  # the scalar does not depend on x at all
        grad = torch.zeros_like(x)
    norms = grad[0, : t + 1].flip(0).norm(dim=-1)  # (t + 1,): lag 0 (frame t) first
    return torch.cat([norms.detach(), norms.new_full((frames - 1 - t,), math.nan)])


class LagGradient(NamedTuple):
    """``encoder_gradient_vs_lag``'s result."""

    norms: Tensor  # (T',) float32: gradient norm at lag 0, 1, ... T'-1 recurrent steps
    step_seconds: float  # seconds per recurrent step: feature hop x subsampling factor

    @property
    def seconds(self) -> Tensor:
        """(T',) float64: each lag in seconds."""
        return torch.arange(len(self.norms), dtype=torch.float64) * self.step_seconds


@contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode (no dropout, no SpecAugment) for the block, then the previous mode again."""
    was_training = model.training
    model.eval()
    try:
        # cuDNN's RNN backward refuses to run in eval mode; the native kernels do not
        with torch.backends.cudnn.flags(enabled=False):
            yield
    finally:
        model.train(was_training)


def _check_feats(feats: Tensor) -> None:
    if feats.dim() != 2 or not feats.is_floating_point():
        raise ValueError(f"feats: expected a floating-point tensor of shape (T, F), got {feats.dtype} "
                         f"{tuple(feats.shape)}")


def encoder_input(model, feats: Tensor) -> Tensor:
    """The first recurrent layer's input for one utterance, as ``CTCModel.forward`` computes it.

    Args:
        model: a ``CTCModel`` (SpecAugment must be off, i.e. eval mode, to match).
        feats (Tensor): (T, F) float32 log-mel frames, un-normalised.

    Returns:
        Tensor: (1, T', D) after global CMVN and subsampling, T' = ``model.output_lengths(T)``.
    """
    _check_feats(feats)
    device = next(model.parameters()).device
    feats = feats.to(device)[None]  # (T, F) -> (1, T, F)
    feat_lens = torch.tensor([feats.size(1)], device=device)
    x, _ = model.subsampling(model.cmvn(feats, feat_lens), feat_lens)  # (1, T', D)
    return x


def _encoder_log_probs(model, x: Tensor) -> Tensor:
    """Encoder input (1, T', D) -> log-probs (1, T', V): the rest of ``CTCModel.forward``."""
    enc_out, _ = model.encoder(x, torch.tensor([x.size(1)], device=x.device))  # (1, T', H)
    return model.output(enc_out).float().log_softmax(dim=-1)  # (1, T', V)


def encoder_gradient_vs_lag(model, feats: Tensor) -> LagGradient:
    """How much the last output frame depends on the encoder input ``lag`` recurrent steps back.

    The scalar is the log-probability of the unit the model rates most likely at the last frame
    (``top_log_prob``); it is differentiated with respect to the encoder input, i.e. the frames
    after CMVN and subsampling that the first recurrent layer reads, so lag counts recurrent steps
    (30 ms each with 10 ms frames stacked by 3). The model runs in eval mode.

    In a bidirectional model the backward direction starts at the last frame, so there it has
    read only that frame: the last frame's dependence on earlier frames runs through the forward
    direction of each layer (from the second layer on, the backward direction's first step mixes
    in the forward outputs of the layer below).

    Args:
        model: a ``CTCModel``.
        feats (Tensor): (T, F) float32 log-mel frames of one utterance, un-normalised.

    Returns:
        LagGradient: norms (T',) float32 for lags 0 .. T'-1, and the seconds per step. They are
        computed in the model's own float32 arithmetic, as training sees them: far down a vanilla
        RNN's decay (below about 1e-20 of the lag-0 norm) a norm can be exactly 0.
    """
    with _eval_mode(model):
        x = encoder_input(model, feats).detach()  # (1, T', D)
        if x.size(1) < 1:
            raise ValueError(f"feats: {feats.size(0)} frames give no encoder frame")
        norms = gradient_vs_lag(partial(_encoder_log_probs, model), x, frame=-1)
    return LagGradient(norms.float().cpu(), frame_shift(model))


def recurrent_gates(module: nn.Module, x: Tensor, out: Tensor) -> dict[str, Tensor]:
    """Per-unit gates of a one-layer, one-direction, batch-first ``nn.LSTM`` or ``nn.GRU``.

    Recomputed from the weights with PyTorch's equations, using ``h_{t-1}`` from ``out``
    (``h_{-1} = 0``): LSTM ``i, f, o = sigmoid(W_i* x_t + b_i* + W_h* h_{t-1} + b_h*)``,
    ``g = tanh(...)``; GRU ``r, z = sigmoid(...)``, ``n = tanh(W_in x_t + b_in + r * (W_hn h_{t-1} + b_hn))``.

    Args:
        module: ``nn.LSTM`` (without ``proj_size``), ``nn.GRU`` or ``nn.RNN`` (no gates: returns {}).
        x (Tensor): (B, T, D) the module's input.
        out (Tensor): (B, T, H) the module's output for ``x``, run from the zero state.

    Returns:
        dict of (B, T, H) tensors: LSTM ``input``, ``forget``, ``output`` (in [0, 1]) and ``candidate``
        (the cell input g, in [-1, 1]); GRU ``reset``, ``update`` (z) and ``candidate`` (n).
    """
    if not isinstance(module, nn.RNNBase):
        raise TypeError(f"module: expected nn.LSTM, nn.GRU or nn.RNN, got {type(module).__name__}")
    if module.num_layers != 1 or module.bidirectional or not module.batch_first or module.proj_size:
        raise ValueError("module: expected one layer, one direction, batch_first=True and no proj_size")
    if module.mode not in ("LSTM", "GRU"):
        return {}
    h_prev = F.pad(out, (0, 0, 1, 0))[:, :-1]  # (B, T, H): h_{t-1}, zero before the first step
    from_x = F.linear(x, module.weight_ih_l0, getattr(module, "bias_ih_l0", None))  # (B, T, G*H)
    from_h = F.linear(h_prev, module.weight_hh_l0, getattr(module, "bias_hh_l0", None))  # (B, T, G*H)
    if module.mode == "LSTM":
        i, f, g, o = (from_x + from_h).chunk(4, dim=-1)  # PyTorch's gate order: i, f, g, o
        return {"input": i.sigmoid(), "forget": f.sigmoid(), "output": o.sigmoid(), "candidate": g.tanh()}
    x_r, x_z, x_n = from_x.chunk(3, dim=-1)  # PyTorch's gate order: r, z, n
    h_r, h_z, h_n = from_h.chunk(3, dim=-1)
    reset = (x_r + h_r).sigmoid()
    return {"reset": reset, "update": (x_z + h_z).sigmoid(), "candidate": (x_n + reset * h_n).tanh()}


def gate_activations(model, feats: Tensor) -> dict[str, dict[str, Tensor]]:
    """Mean gate activation over units at every recurrent step, per layer and direction.

    Runs the model (eval mode) on one utterance, records each direction's input and output
    sequence (the backward direction's are the reversed utterance) and recomputes the gates
    with ``recurrent_gates``. The cell/candidate input is left out: it is not a gate.

    Args:
        model: a ``CTCModel``.
        feats (Tensor): (T, F) float32 log-mel frames of one utterance, un-normalised.

    Returns:
        dict: ``{"layer0.forward": {"input": (T',), "forget": (T',), "output": (T',)}, "layer0.backward":
        ..., "layer1.forward": ...}`` for an LSTM (``reset``, ``update`` for a GRU), float32 in [0, 1],
        in time order for both directions. Empty for a vanilla RNN, which has no gates.
    """
    _check_feats(feats)
    captured: dict[str, tuple[nn.Module, Tensor, Tensor]] = {}

    def keep(name: str, module: nn.Module, args: tuple, output: tuple) -> None:
        captured[name] = (module, args[0], output[0])

    hooks = []
    for index, layer in enumerate(model.encoder.layers):
        for direction, module in (("forward", layer.fwd), ("backward", layer.bwd)):
            if module is not None:
                hooks.append(module.register_forward_hook(partial(keep, f"layer{index}.{direction}")))
    try:
        with _eval_mode(model), torch.no_grad():
            device = next(model.parameters()).device
            model(feats.to(device)[None], torch.tensor([feats.size(0)], device=device))  # (1, T, F)
            activations = {}
            for name, (module, x, out) in captured.items():
                gates = recurrent_gates(module, x, out)
                means = {gate: value[0].mean(dim=-1).float().cpu() for gate, value in gates.items()
                         if gate != "candidate"}  # (1, T', H) -> (T',)
                if means and name.endswith("backward"):  # one unpadded utterance: reversed = flipped
                    means = {gate: value.flip(0) for gate, value in means.items()}
                if means:
                    activations[name] = means
    finally:
        for hook in hooks:
            hook.remove()
    return activations


def default_label(path: str | Path) -> str:
    """A model's name in reports: its directory's name, or the run's for ``EXP/checkpoints/*.pt``."""
    path = Path(path).resolve()
    return path.parent.parent.name if path.parent.name == "checkpoints" else path.parent.name


def load_models(paths: Sequence[str | Path], labels: Sequence[str] | None = None) -> dict:
    """``{label: model}`` from float models: ``.pt`` files, checkpoints or safetensors folders (labels
    default to ``default_label``); the diagnostics read the encoder's gates and gradients, which ONNX and
    int8 models do not have (``CheckpointError`` naming the file)."""
    from ..model.files import load_float_model

    if labels is None:
        labels = [default_label(p) for p in paths]
    if len(labels) != len(paths):
        raise ValueError(f"labels: expected one per model ({len(paths)}), got {len(labels)}")
    if len(set(labels)) != len(labels):
        raise ValueError(f"labels: expected distinct names, got {list(labels)} (give --labels)")
    return {label: load_float_model(p)[0] for label, p in zip(labels, paths)}


def _features(model, path: Path) -> Tensor:
    """Log-mel frames (T, F) of a whole file, as ``asr transcribe`` computes them for the model."""
    cfg = model.cfg.features
    feats = LogMel(cfg)(load_audio(path, cfg.sample_rate))
    if int(model.output_lengths(torch.tensor([feats.size(0)]))[0]) < 1:
        raise ValueError(f"{path}: audio too short for one output frame of the model")
    return feats


def _json_value(value):
    """JSON-safe copy: tensors and arrays to lists, non-finite floats (underflow, no lag) to null."""
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, (Tensor, np.ndarray)):
        return _json_value(value.tolist())
    if isinstance(value, (list, tuple)):
        return [_json_value(v) for v in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return value


def _ratio(norms: np.ndarray, a: int, b: int) -> float:
    """norm(lag a) / norm(lag b); NaN when the utterance is too short for lag a."""
    return float(norms[a] / norms[b]) if a < len(norms) else math.nan


@np.errstate(divide="ignore", invalid="ignore")  # log10(0) = -inf is an answer: written as null
def _gradient_summary(per_file: dict[str, LagGradient]) -> dict:
    """Per-file norms and ratios, and their per-model means (over the files long enough)."""
    files, curves = {}, []
    for path, result in per_file.items():
        norms = result.norms.double().numpy()
        curves.append(np.log10(norms / norms[0]))  # (T',) relative to lag 0, -inf where 0
        files[path] = {"steps": len(norms), "norms": norms}
        files[path].update({f"ratio_lag{a}_lag{b}": _ratio(norms, a, b) for a, b in RATIO_LAGS})
    longest = max(len(c) for c in curves)
    stacked = np.full((len(curves), longest), np.nan)
    for row, curve in zip(stacked, curves):
        row[: len(curve)] = curve
    counts = (~np.isnan(stacked)).sum(axis=0)  # files reaching each lag
    mean = np.where(np.isnan(stacked), 0.0, stacked).sum(axis=0) / counts  # (longest,), -inf if a norm is 0
    summary = {"files": files, "mean_log10_relative_norm": mean, "files_per_lag": counts}
    for a, b in RATIO_LAGS:
        logs = [math.log10(f[f"ratio_lag{a}_lag{b}"]) if f[f"ratio_lag{a}_lag{b}"] > 0 else -math.inf
                for f in files.values() if not math.isnan(f[f"ratio_lag{a}_lag{b}"])]
        # geometric mean over the files that reach lag a
        summary[f"ratio_lag{a}_lag{b}"] = 10.0 ** (sum(logs) / len(logs)) if logs else math.nan
        summary[f"files_ratio_lag{a}_lag{b}"] = len(logs)
    return summary


def _safe_name(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", label)


def _plot_gradients(summaries: dict[str, dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for index, (label, summary) in enumerate(summaries.items()):
        colour = f"C{index}"
        for record in summary["files"].values():
            norms = np.asarray(record["norms"])
            ax.plot(np.arange(len(norms)), norms / norms[0], color=colour, alpha=0.25, linewidth=0.8)
        mean = np.asarray(summary["mean_log10_relative_norm"])
        ax.plot(np.arange(len(mean)), 10.0**mean, color=colour, linewidth=2,
                label=f"{label} ({summary['cell']}, {1000 * summary['step_seconds']:.0f} ms/step)")
    ax.set_yscale("log")
    ax.set_xlabel("lag (recurrent steps before the last frame)")
    ax.set_ylabel("gradient norm / norm at lag 0")
    steps = {s["step_seconds"] for s in summaries.values()}
    if len(steps) == 1:  # one step length: a second axis in seconds is exact for every line
        step = steps.pop()
        top = ax.secondary_xaxis("top", functions=(lambda lag: lag * step, lambda sec: sec / step))
        top.set_xlabel("lag (s)")
    ax.set_title("Gradient of the last frame's top log-prob w.r.t. the encoder input", fontsize=9)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def _plot_gates(label: str, per_file: dict[str, dict], step_seconds: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = sorted({name.split(".")[0] for gates in per_file.values() for name in gates})
    rows, cols = len(names), len(per_file)
    fig, axes = plt.subplots(rows, cols, figsize=(4.5 * cols, 2.2 * rows), squeeze=False, sharey=True,
                             layout="constrained")
    for col, (audio, gates) in enumerate(per_file.items()):
        for row, layer in enumerate(names):
            ax = axes[row][col]
            for direction, style in (("forward", "-"), ("backward", "--")):
                for index, (gate, values) in enumerate(gates.get(f"{layer}.{direction}", {}).items()):
                    seconds = np.arange(len(values)) * step_seconds
                    ax.plot(seconds, np.asarray(values), style, color=f"C{index}", linewidth=1,
                            label=f"{gate} ({direction})")
            ax.set_ylim(0, 1)
            ax.set_title(f"{Path(audio).name}: {layer}", fontsize=8)
            if row == rows - 1:
                ax.set_xlabel("time (s)")
            if col == 0:
                ax.set_ylabel("mean gate")
    axes[0][0].legend(fontsize=6, ncol=2)
    fig.suptitle(f"{label}: mean gate activation over units (solid forward, dashed backward)", fontsize=9)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def diagnose(models: dict, audio_paths: Sequence[str | Path], out_dir: str | Path) -> dict:
    """Gradient-vs-lag and gate diagnostics of several models on audio files.

    Each file is read at the model's sample rate and turned into log-mel frames as ``asr transcribe``
    does for a file it decodes whole (``load_audio`` then ``LogMel``).

    Args:
        models: ``{label: CTCModel}`` (see ``load_models``).
        audio_paths: audio files, any format ``asr transcribe`` reads.
        out_dir: gets ``gradient_lag.json`` (per model and file the norms per lag and the ratios
            ``ratio_lagA_lagB`` = norm(lag A) / norm(lag B); per model the mean over files of
            log10(norm / norm at lag 0) per lag and geometric-mean ratios; lag L is L * ``step_seconds``
            seconds), ``gradient_lag.png``, ``gates.json`` and ``gates_LABEL.png`` per gated model.
            Non-finite numbers are written as null: a mean log10 where some file's norm is exactly 0,
            a ratio where no file reaches the lag.

    Returns:
        dict: the content of ``gradient_lag.json``.
    """
    if not models:
        raise ValueError("models: expected at least one")
    if not audio_paths:
        raise ValueError("audio_paths: expected at least one file")
    paths = [Path(p) for p in audio_paths]
    for path in paths:
        audio_info(path)  # fail on a missing or unreadable file before any work
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    gradients, gates = {}, {}
    for label, model in models.items():
        enc = model.cfg.encoder
        about = {"cell": enc.cell, "num_layers": enc.num_layers, "hidden_size": enc.hidden_size,
                 "bidirectional": enc.bidirectional, "step_seconds": frame_shift(model)}
        per_file, per_file_gates = {}, {}
        for path in paths:
            feats = _features(model, path)
            per_file[str(path)] = encoder_gradient_vs_lag(model, feats)
            per_file_gates[str(path)] = gate_activations(model, feats)
        gradients[label] = {**about, **_gradient_summary(per_file)}
        summary = gradients[label]
        log.info("%s: gradient norm ratio lag10/lag0 %.3g, lag100/lag0 %.3g (%d of %d files reach lag 100)",
                 label, summary["ratio_lag10_lag0"], summary["ratio_lag100_lag0"],
                 summary["files_ratio_lag100_lag0"], len(paths))
        gated = any(per_file_gates.values())
        gates[label] = {**about, "files": {
            path: {"gates": layers, "mean_over_time": {name: {g: float(v.mean()) for g, v in values.items()}
                                                       for name, values in layers.items()}}
            for path, layers in per_file_gates.items()}}
        if gated:
            target = out_dir / f"gates_{_safe_name(label)}.png"
            _plot_gates(label, per_file_gates, about["step_seconds"], target)
            log.info("wrote %s", target)
        else:
            gates[label]["note"] = "vanilla RNN: no gates"
            log.info("%s: a vanilla %s has no gates: none in gates.json, no gates plot", label, enc.cell.upper())
    result = {"scalar": "log-prob of the most likely unit at the last encoder frame",
              "wrt": "encoder input (after CMVN and subsampling), lag in recurrent steps of step_seconds",
              "null": "log10 of a norm that is exactly 0 in float32, or a ratio no file reaches", "models": gradients}
    content = _json_value(result)
    (out_dir / "gradient_lag.json").write_text(json.dumps(content, indent=1) + "\n")
    (out_dir / "gates.json").write_text(json.dumps(_json_value({"models": gates}), indent=1) + "\n")
    _plot_gradients(gradients, out_dir / "gradient_lag.png")
    log.info("wrote %s, %s and %s", out_dir / "gradient_lag.json", out_dir / "gradient_lag.png",
             out_dir / "gates.json")
    return content

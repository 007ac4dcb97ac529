"""Model folders (config.json + safetensors or ONNX), int8 weights, and the one loader of acoustic models.

A *model folder*, as written by ``asr package``::

    config.json          format, model (subsampling, encoder, specaug), frontend (log-mel), vocab_size,
                         tokenizer {kind, file}, weights (file name), quantization (null | "int8"),
                         decoding {lm, lexicon, lm_params, lm_weight, word_score, beam_size, beam_threshold}
    model.safetensors    PyTorch weights (CMVN statistics included), or
    model.onnx           the ONNX graph (``asr export --format onnx``; it also embeds its own description)
    tokenizer.json       {kind, units} for characters and phones; tokenizer.model for sentencepiece BPE
    README.md            the model card; optional LM, lexicon and lm-params.yaml

Loading reads JSON, safetensors, a sentencepiece proto and ONNX graphs only: no pickle, no
TorchScript, nothing from the folder is executed. Every file name in config.json must name a
file inside the folder. Any inconsistency (unknown key, wrong tensor shape, ONNX graph of
another model) is a ``CheckpointError`` naming the file.

Int8 (``quantization: "int8"``): the weights of every ``nn.LSTM``, ``nn.GRU`` and ``nn.Linear``
are stored as int8 tensors with ``NAME.scale`` (float64) and ``NAME.zero_point`` (int64) beside
them, the rest in float32. Loading builds the float model, applies
``torch.ao.quantization.quantize_dynamic`` and then sets the stored int8 weights, so the loaded
model equals the quantized one bit for bit. Vanilla ``nn.RNN`` layers have no dynamic int8
kernel and stay float32.
"""

from __future__ import annotations

import base64
import itertools
import json
import logging
import os
import re
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from ..config import ModelConfig, PackageConfig, from_dict, to_dict
from ..data.tokenizer import BPETokenizer, tokenizer_from_dict
from .checkpoint import CheckpointError, load_file, load_model
from .ctc import CTCModel
from .onnx_model import OnnxModel, _session, read_onnx_meta

__all__ = [
    "MODEL_DIR_FORMAT",
    "CONFIG_FILE",
    "ModelExtras",
    "quantize_int8",
    "int8_state_dict",
    "tokenizer_to_json",
    "tokenizer_from_json",
    "model_description",
    "write_model_dir",
    "load_model_dir",
    "load_onnx_model",
    "load_acoustic_model",
    "load_float_model",
    "load_units",
    "model_device",
]

log = logging.getLogger(__name__)

MODEL_DIR_FORMAT = "asr-ctc-model-dir/1"
CONFIG_FILE = "config.json"
SAFETENSORS_FILE = "model.safetensors"
ONNX_FILE = "model.onnx"
_QUANTIZED_TYPES = {nn.LSTM, nn.GRU, nn.Linear}  # quantize_dynamic's modules that this model contains
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")  # owner/name on the Hugging Face hub
_DECODING_KEYS = ("lm", "lexicon", "lm_params", "lm_weight", "word_score", "beam_size", "beam_threshold")


@dataclass(frozen=True)
class ModelExtras:
    """What a model folder carries besides the acoustic model (absolute paths; None: absent)."""

    source: Path  # the folder or file the model came from (a hub id resolves to its snapshot folder)
    kind: str  # "pytorch" or "onnx"
    quantization: str | None = None  # None (float32) or "int8"
    lm: Path | None = None  # KenLM file for beam-lm search
    lexicon: Path | None = None  # lexicon for beam-lm search
    lm_params: Path | None = None  # lm-params.yaml from 'asr tune' (its lm/lexicon are folder-relative)
    decoding: dict = field(default_factory=dict)  # tuned lm_weight, word_score, beam_size, beam_threshold

    def beam_lm_options(self) -> dict:
        """``BeamSearch`` keyword arguments for the folder's tuned beam-lm search (empty without an LM/lexicon)."""
        if self.lm is None and self.lexicon is None:
            return {}
        paths = {"lm": str(self.lm) if self.lm else None, "lexicon": str(self.lexicon) if self.lexicon else None}
        return {k: v for k, v in {**paths, **self.decoding}.items() if v is not None}


# --- int8 ---------------------------------------------------------------------------------------

def quantize_int8(model: nn.Module) -> nn.Module:
    """Dynamic int8 copy of ``model``: int8 weights in LSTM/GRU/Linear, activations quantized per call.

    Uses ``torch.ao.quantization.quantize_dynamic``, the one API in torch itself that quantizes
    recurrent layers (torchao, its announced successor, is not a dependency and covers Linear only).
    """
    with warnings.catch_warnings():
        # "torch.ao.quantization is deprecated ... moves to torchao": still present and working in torch 2.14
        warnings.filterwarnings("ignore", category=DeprecationWarning, message=".*torch.ao.quantization")
        warnings.filterwarnings("ignore", category=UserWarning, message=".*quantize_per_tensor")
        quantized = torch.ao.quantization.quantize_dynamic(model, _QUANTIZED_TYPES, dtype=torch.qint8)
    return quantized.eval()


def _quantized_modules(model: nn.Module) -> dict[str, nn.Module]:
    from torch.ao.nn.quantized.dynamic import Linear
    from torch.ao.nn.quantized.dynamic.modules.rnn import RNNBase

    return {name: m for name, m in model.named_modules() if isinstance(m, (Linear, RNNBase))}


def _weight_bias(module: nn.Module) -> dict[str, Tensor | None]:
    """Parameter name (as in the float module) -> quantized weight or float bias."""
    import torch.ao.nn.quantized.dynamic as nnqd

    if isinstance(module, nnqd.Linear):
        weight, bias = module._weight_bias()
        return {"weight": weight, "bias": bias}
    values = module._weight_bias()
    return {**values["weight"], **values["bias"]}


def int8_state_dict(quantized: nn.Module) -> dict[str, Tensor]:
    """Plain tensors (safetensors-ready) of a ``quantize_int8`` model, keyed like the float model's state_dict."""
    modules = _quantized_modules(quantized)
    tensors = {k: v.detach().contiguous() for k, v in quantized.state_dict().items()
               if isinstance(v, Tensor) and not v.is_quantized and k.rsplit(".", 1)[0] not in modules}
    for prefix, module in modules.items():
        for name, value in _weight_bias(module).items():
            key = f"{prefix}.{name}"
            if value is None:
                continue
            if not value.is_quantized:
                tensors[key] = value.detach().contiguous()
                continue
            if value.qscheme() not in (torch.per_tensor_affine, torch.per_tensor_symmetric):
                raise ValueError(f"{key}: only per-tensor int8 weights can be stored, got {value.qscheme()}")
            tensors[key] = value.int_repr().contiguous()  # int8
            tensors[f"{key}.scale"] = torch.tensor(value.q_scale(), dtype=torch.float64)
            tensors[f"{key}.zero_point"] = torch.tensor(value.q_zero_point(), dtype=torch.int64)
    return tensors


def _int8_model(model: CTCModel, tensors: dict[str, Tensor], path: Path) -> nn.Module:
    """Rebuild the ``quantize_int8`` copy of float ``model`` from ``int8_state_dict`` tensors (read from ``path``)."""
    float_state = {}
    for key, expected in model.state_dict().items():
        value = tensors.get(key)
        if value is not None and value.dtype == torch.int8:
            scale, zero = tensors.get(f"{key}.scale"), tensors.get(f"{key}.zero_point")
            if scale is None or zero is None:
                raise CheckpointError(f"{path}: int8 tensor '{key}' without '{key}.scale' and '{key}.zero_point'")
            value = (value.double() - zero.double()) * scale  # dequantized: shapes are checked below
        float_state[key] = value
    _load_float_state(model, float_state, path)
    quantized = quantize_int8(model)
    for prefix, module in _quantized_modules(quantized).items():
        exact = {}
        for name, current in _weight_bias(module).items():
            key = f"{prefix}.{name}"
            if current is not None and current.is_quantized:
                if tensors[key].dtype != torch.int8:
                    raise CheckpointError(f"{path}: '{key}' should be int8, got {tensors[key].dtype}")
                exact[name] = torch._make_per_tensor_quantized_tensor(
                    tensors[key], float(tensors[f"{key}.scale"]), int(tensors[f"{key}.zero_point"]))
            else:
                exact[name] = current
        if isinstance(module, torch.ao.nn.quantized.dynamic.Linear):
            module.set_weight_bias(exact["weight"], exact["bias"])
        else:
            module.set_weight_bias(exact)
    return quantized


def _load_float_state(model: nn.Module, tensors: dict[str, Tensor | None], path: Path) -> None:
    """``load_state_dict`` with every key and shape checked first, one error naming ``path``."""
    expected = model.state_dict()
    missing = [k for k, v in tensors.items() if v is None] + [k for k in expected if k not in tensors]
    if missing:
        raise CheckpointError(f"{path}: missing tensor '{missing[0]}' ({len(missing)} missing)")
    for key, value in expected.items():
        if tuple(tensors[key].shape) != tuple(value.shape):
            raise CheckpointError(f"{path}: tensor '{key}' has shape {tuple(tensors[key].shape)}, the config "
                                  f"expects {tuple(value.shape)}")
    model.load_state_dict({k: tensors[k].to(expected[k].dtype) for k in expected})


# --- tokenizer and description --------------------------------------------------------------------

def tokenizer_to_json(tokenizer) -> dict:
    """JSON-safe ``tokenizer.to_dict()`` (a sentencepiece proto as base64)."""
    values = tokenizer.to_dict()
    if "model_proto" in values:
        values = {**values, "model_proto": base64.b64encode(values["model_proto"]).decode("ascii")}
    return values


def tokenizer_from_json(values: dict):
    if isinstance(values, dict) and isinstance(values.get("model_proto"), str):
        values = {**values, "model_proto": base64.b64decode(values["model_proto"])}
    return tokenizer_from_dict(values)


def model_description(cfg: ModelConfig, vocab_size: int) -> dict:
    """The ``model``/``frontend``/``vocab_size`` part of config.json."""
    values = to_dict(cfg)
    return {"model": {k: v for k, v in values.items() if k != "features"}, "frontend": values["features"],
            "vocab_size": vocab_size}


def _model_config(values: dict, path: Path) -> tuple[ModelConfig, int]:
    """(ModelConfig, vocab_size) from the model/frontend/vocab_size entries of config.json or ONNX metadata."""
    model, frontend, vocab_size = values.get("model"), values.get("frontend"), values.get("vocab_size")
    if not isinstance(model, dict) or not isinstance(frontend, dict):
        raise CheckpointError(f"{path}: 'model' and 'frontend' must be mappings")
    if not isinstance(vocab_size, int) or isinstance(vocab_size, bool) or vocab_size < 2:
        raise CheckpointError(f"{path}: 'vocab_size' must be an integer >= 2, got {vocab_size!r}")
    try:
        return from_dict(ModelConfig, {**model, "features": frontend}), vocab_size
    except ValueError as err:
        raise CheckpointError(f"{path}: {err}") from None


# --- writing --------------------------------------------------------------------------------------

def write_model_dir(model: nn.Module, tokenizer, out_dir: str | Path, *, weights: str = PackageConfig.weights,
                    quantization: str | None = None, decoding: dict | None = None) -> Path:
    """Write config.json, the tokenizer file and, for ``weights="safetensors"``, model.safetensors.

    For ``weights="onnx"`` the caller writes ``model.onnx`` into ``out_dir`` (``asr.inference.export``).
    ``model`` is the float ``CTCModel``, or its ``quantize_int8`` copy when ``quantization == "int8"``.
    ``decoding`` maps the keys of ``ModelExtras`` (lm, lexicon, lm_params: file names inside
    ``out_dir``; tuned values) to values.
    """
    from safetensors.torch import save_file

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if weights not in ("safetensors", "onnx"):
        raise ValueError(f"weights: expected 'safetensors' or 'onnx', got {weights!r}")
    if quantization not in (None, "int8"):
        raise ValueError(f"quantization: expected None or 'int8', got {quantization!r}")
    unknown = sorted(set(decoding or {}) - set(_DECODING_KEYS))
    if unknown:
        raise ValueError(f"decoding: unknown keys {unknown}")
    if tokenizer.kind == "bpe":
        tokenizer_file = "tokenizer.model"
        (out_dir / tokenizer_file).write_bytes(tokenizer.model_proto)
    else:
        tokenizer_file = "tokenizer.json"
        (out_dir / tokenizer_file).write_text(json.dumps(tokenizer.to_dict(), ensure_ascii=False, indent=1) + "\n",
                                              encoding="utf-8")
    weights_file = SAFETENSORS_FILE if weights == "safetensors" else ONNX_FILE
    if weights == "safetensors":
        if quantization == "int8":
            tensors = int8_state_dict(model)
        else:
            tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_file(tensors, str(out_dir / weights_file), metadata={"format": MODEL_DIR_FORMAT})
    config = {"format": MODEL_DIR_FORMAT, **model_description(model.cfg, model.vocab_size),
              "tokenizer": {"kind": tokenizer.kind, "file": tokenizer_file}, "weights": weights_file,
              "quantization": quantization, "decoding": dict(decoding or {})}
    (out_dir / CONFIG_FILE).write_text(json.dumps(config, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return out_dir


# --- reading --------------------------------------------------------------------------------------

def _file_in(folder: Path, name, key: str, config_path: Path, required: bool = True) -> Path | None:
    """``folder/name`` for a file name taken from config.json; never a path outside the folder."""
    if name is None and not required:
        return None
    if not isinstance(name, str) or not name or Path(name).name != name or name in (".", ".."):
        raise CheckpointError(f"{config_path}: '{key}' must name a file inside the folder, got {name!r}")
    path = folder / name
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file (named by {config_path.name} '{key}')")
    return path


def _read_config(folder: Path) -> dict:
    config_path = folder / CONFIG_FILE
    if not config_path.is_file():
        raise CheckpointError(f"{folder}: not a model folder (no {CONFIG_FILE})")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{config_path}: not valid JSON ({err})") from None
    if not isinstance(config, dict) or config.get("format") != MODEL_DIR_FORMAT:
        raise CheckpointError(f"{config_path}: not an asr model folder config (expected format {MODEL_DIR_FORMAT!r})")
    return config


def _read_tokenizer(folder: Path, config: dict, config_path: Path):
    spec = config.get("tokenizer")
    if not isinstance(spec, dict):
        raise CheckpointError(f"{config_path}: 'tokenizer' must be a mapping {{kind, file}}")
    path = _file_in(folder, spec.get("file"), "tokenizer.file", config_path)
    try:
        if spec.get("kind") == "bpe":
            return BPETokenizer(path.read_bytes())
        values = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(values, dict) or values.get("kind") != spec.get("kind"):
            raise ValueError(f"tokenizer kind {values.get('kind') if isinstance(values, dict) else None!r}, "
                             f"config.json says {spec.get('kind')!r}")
        return tokenizer_from_dict(values)
    except (ValueError, RuntimeError, TypeError, UnicodeDecodeError, OSError) as err:
        raise CheckpointError(f"{path}: unreadable tokenizer ({str(err).splitlines()[0] if str(err) else err!r})") \
            from None


def _read_safetensors(path: Path) -> dict[str, Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"{path}: not a readable safetensors file ({str(err).splitlines()[0]})") from None


def load_model_dir(folder: str | Path, threads: int | None = None):
    """(model, tokenizer, ``ModelExtras``) from a model folder; see the module docstring."""
    folder = Path(folder)
    config = _read_config(folder)
    config_path = folder / CONFIG_FILE
    cfg, vocab_size = _model_config(config, config_path)
    tokenizer = _read_tokenizer(folder, config, config_path)
    if len(tokenizer.units) != vocab_size:
        raise CheckpointError(f"{config_path}: vocab_size {vocab_size} but the tokenizer has "
                              f"{len(tokenizer.units)} units")
    quantization = config.get("quantization")
    if quantization not in (None, "int8"):
        raise CheckpointError(f"{config_path}: 'quantization' must be null or \"int8\", got {quantization!r}")
    weights = _file_in(folder, config.get("weights"), "weights", config_path)
    if weights.suffix == ".onnx":
        model, meta = load_onnx_model(weights, threads)
        ours = model_description(cfg, vocab_size)
        theirs = {k: meta.get(k) for k in ours}
        if theirs != ours or meta.get("tokenizer", {}).get("units", tokenizer.units) != tokenizer.units:
            raise CheckpointError(f"{weights}: ONNX graph of another model (its embedded config differs from "
                                  f"{config_path})")
        kind = "onnx"
    elif weights.suffix == ".safetensors":
        tensors = _read_safetensors(weights)
        try:
            model = CTCModel(cfg, vocab_size)
        except (ValueError, RuntimeError, TypeError) as err:
            raise CheckpointError(f"{config_path}: {str(err).splitlines()[0]}") from None
        try:
            if quantization == "int8":
                model = _int8_model(model, tensors, weights)
            else:
                _load_float_state(model, tensors, weights)
                model.eval()
        except CheckpointError:
            raise
        except (ValueError, RuntimeError, TypeError, KeyError) as err:
            raise CheckpointError(f"{weights}: does not fit {config_path} ({str(err).splitlines()[0]})") from None
        kind = "pytorch"
    else:
        raise CheckpointError(f"{config_path}: 'weights' must be a .safetensors or .onnx file, got {weights.name!r}")
    extras = _extras(folder, config, config_path, kind, quantization)
    return model, tokenizer, extras


def _extras(folder: Path, config: dict, config_path: Path, kind: str, quantization: str | None) -> ModelExtras:
    decoding = config.get("decoding") or {}
    if not isinstance(decoding, dict) or set(decoding) - set(_DECODING_KEYS):
        raise CheckpointError(f"{config_path}: 'decoding' must be a mapping with keys among {list(_DECODING_KEYS)}")
    files = {key: _file_in(folder, decoding.get(key), f"decoding.{key}", config_path, required=False)
             for key in ("lm", "lexicon", "lm_params")}
    values = {k: v for k, v in decoding.items() if k not in files and v is not None}
    bad = [k for k, v in values.items() if not isinstance(v, (int, float)) or isinstance(v, bool)]
    if bad:
        raise CheckpointError(f"{config_path}: 'decoding.{bad[0]}' must be a number, got {values[bad[0]]!r}")
    return ModelExtras(source=folder.resolve(), kind=kind, quantization=quantization, decoding=values,
                       **{k: (v.resolve() if v else None) for k, v in files.items()})


def load_onnx_model(path: str | Path, threads: int | None = None) -> tuple[OnnxModel, dict]:
    """(``OnnxModel``, its embedded ``asr.json`` description) from an ``.onnx`` file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    try:
        session = _session(path, threads)
        meta = read_onnx_meta(session, path)
    except ValueError as err:
        raise CheckpointError(str(err)) from None
    cfg, vocab_size = _model_config(meta, path)
    try:
        return OnnxModel(path, cfg, vocab_size, session=session), meta
    except ValueError as err:
        raise CheckpointError(str(err)) from None


def _hub_snapshot(repo_id: str) -> Path:
    """The local snapshot folder of ``repo_id`` (downloaded unless HF_HUB_OFFLINE is set)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
    try:
        # cache_dir read now: huggingface_hub reads HF_HUB_CACHE only once, at import
        return Path(snapshot_download(repo_id, local_files_only=offline, cache_dir=os.environ.get("HF_HUB_CACHE")))
    except LocalEntryNotFoundError:
        where = "in the local hub cache (HF_HUB_OFFLINE is set)" if offline else "locally nor on the hub"
        raise CheckpointError(f"{repo_id}: no such model folder, file, or hub model {where}") from None
    except (HfHubHTTPError, OSError, ValueError) as err:
        raise CheckpointError(f"{repo_id}: hub download failed ({str(err).splitlines()[0]})") from None


def _is_torchscript(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            return any(name.endswith("/constants.pkl") or "/code/" in name for name in archive.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def _load_model_file(path: Path):
    """``load_model`` with every failure, however odd the file, as one ``CheckpointError`` line."""
    if _is_torchscript(path):
        raise CheckpointError(f"{path}: a TorchScript export ('asr export') runs alone under torch.jit.load; asr "
                              "loads the .pt it came from, a model folder ('asr package', --int8 too) or an .onnx")
    try:
        return load_model(path)
    except CheckpointError:
        raise
    except (TypeError, AttributeError, IndexError, KeyError, ValueError, RuntimeError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"{path}: incompatible model file ({reason})") from None


def load_acoustic_model(path_or_repo_id: str | Path, threads: int | None = None):
    """The one loader: (model, tokenizer, ``ModelExtras``) from any model the toolkit writes.

    Args:
        path_or_repo_id: a model folder (a directory with config.json), an ``.onnx`` file from
            ``asr export --format onnx`` (self-describing through its ``asr.json`` metadata), a ``.pt``
            model file or training checkpoint, or ``owner/name`` of a model folder on the Hugging Face
            hub (``huggingface_hub.snapshot_download``; only the local cache when HF_HUB_OFFLINE=1).
            A TorchScript export is refused (it runs alone under torch.jit.load; this loader reads no code).
        threads: ONNX Runtime intra-op threads (default ``torch.get_num_threads()``); PyTorch models
            follow ``torch.set_num_threads``.

    Returns:
        model: callable ``(feats (B, T, F), feat_lens (B,)) -> (log_probs (B, T', V), out_lens (B,))``
            with ``.cfg`` (``ModelConfig``), in eval mode: a ``CTCModel``, its int8 copy, or an ``OnnxModel``.
        tokenizer: the model's units.
        extras: ``ModelExtras`` (kind, quantization, LM/lexicon/lm-params paths, tuned beam-lm values).

    Raises:
        CheckpointError: one line naming the file for anything missing, unreadable or inconsistent.
    """
    path = Path(path_or_repo_id)
    if path.is_dir():
        return load_model_dir(path, threads)
    if path.suffix == ".onnx":
        model, meta = load_onnx_model(path, threads)
        try:
            tokenizer = tokenizer_from_json(meta.get("tokenizer"))
        except (ValueError, TypeError, RuntimeError) as err:
            raise CheckpointError(f"{path}: unreadable tokenizer in its metadata ({err})") from None
        quantization = meta.get("quantization")
        return model, tokenizer, ModelExtras(source=path.resolve(), kind="onnx", quantization=quantization)
    if path.exists() or path.suffix in (".pt", ".pth", ".ckpt") or not _REPO_ID.match(str(path_or_repo_id)):
        model, tokenizer = _load_model_file(path)
        return model.eval(), tokenizer, ModelExtras(source=path.resolve(), kind="pytorch")
    return load_model_dir(_hub_snapshot(str(path_or_repo_id)), threads)


def model_device(model) -> torch.device:
    """The device a loaded model runs on: its tensors' for a ``CTCModel``; the CPU for an ``OnnxModel``
    and for an int8 model whose every weight is packed (``quantize_dynamic`` leaves it no parameters)."""
    if isinstance(model, OnnxModel):
        return torch.device("cpu")
    tensor = next(itertools.chain(model.parameters(), model.buffers()), None)
    return tensor.device if tensor is not None else torch.device("cpu")


def load_float_model(model_path: str | Path) -> tuple[CTCModel, object]:
    """(float32 ``CTCModel``, tokenizer) from a ``.pt`` file or a float safetensors model folder.

    Raises:
        CheckpointError: anything else (ONNX, int8, TorchScript, a missing or broken file), naming ``model_path``.
    """
    model, tokenizer, extras = load_acoustic_model(model_path)  # names a TorchScript file as such
    if extras.kind != "pytorch" or extras.quantization is not None:
        raise CheckpointError(f"{model_path}: needs a float32 PyTorch model (.pt or a safetensors model "
                              f"folder), this is {extras.kind} {extras.quantization or 'float32'}")
    return model.eval(), tokenizer


def load_units(path: str | Path) -> tuple[object, ModelConfig]:
    """(tokenizer, model config) of a model, without its weights: a ``.pt`` model file or checkpoint, a model
    folder, or a tokenizer alone (``tokenizer.json``; sentencepiece ``.model``), which gets the default config."""
    path = Path(path)
    if path.is_dir():
        config = _read_config(path)
        return _read_tokenizer(path, config, path / CONFIG_FILE), _model_config(config, path / CONFIG_FILE)[0]
    if path.suffix == ".json":
        try:
            return tokenizer_from_json(json.loads(path.read_text(encoding="utf-8"))), ModelConfig()
        except (ValueError, KeyError, TypeError) as err:
            raise CheckpointError(f"{path}: not a tokenizer.json ({err})") from None
    if path.suffix == ".model":
        return BPETokenizer(path.read_bytes()), ModelConfig()
    package = load_file(path)
    return tokenizer_from_dict(package["tokenizer"]), from_dict(ModelConfig, package["model_config"])

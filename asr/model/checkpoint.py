"""Model files and training checkpoints: atomic writes, self-contained, ``weights_only`` loadable.

A *model file* is a plain dict: format tag, model config, tokenizer, weights (CMVN included).
A *training checkpoint* is a model file plus optimizer, scheduler, sampler and RNG state.
"""

from __future__ import annotations

import logging
import os
import pickle
import tempfile
import warnings
import zipfile
from pathlib import Path

import torch

from ..config import ModelConfig, from_dict, to_dict
from .ctc import CTCModel
from ..data.tokenizer import tokenizer_from_dict

__all__ = [
    "MODEL_FORMAT",
    "CheckpointError",
    "save_atomic",
    "load_file",
    "model_package",
    "model_from_package",
    "load_model",
    "list_checkpoints",
    "average_checkpoints",
]

log = logging.getLogger(__name__)

MODEL_FORMAT = "asr-ctc-model/1"


class CheckpointError(ValueError):
    """A model or checkpoint file that is missing, corrupt or of another format."""


def save_atomic(obj: dict, path: str | Path) -> None:
    """``torch.save`` to a temporary file in the same directory, fsync, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_file(path: str | Path) -> dict:
    """``torch.load(weights_only=True)`` with one clear error for any unreadable file.

    Only a zip archive with a ``data.pkl`` (what ``torch.save`` writes) reaches the unpickler: random
    bytes, a truncated file or another format are refused before it, so no error repeats PyTorch's
    advice to retry with ``weights_only=False`` (unsafe for a file that is not a model).
    """
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path}: a folder; this needs a .pt model file or training checkpoint")
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    unreadable = f"{path}: not a readable checkpoint or model file"
    if not _is_torch_archive(path):
        raise CheckpointError(f"{unreadable} (not the zip archive torch.save writes: truncated, or another format)")
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*pickle protocol")  # a foreign pickle: refused below
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, OSError, pickle.UnpicklingError, zipfile.BadZipFile, EOFError, ValueError, TypeError,
            AttributeError, IndexError, KeyError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{unreadable} ({_load_error(err)})") from None
    if not isinstance(obj, dict) or obj.get("format") != MODEL_FORMAT:
        raise CheckpointError(f"{path}: not an asr model file (expected format {MODEL_FORMAT!r})")
    return obj


def _is_torch_archive(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            return any(name.endswith("/data.pkl") or name == "data.pkl" for name in archive.namelist())
    except (OSError, zipfile.BadZipFile, ValueError):
        return False


def _load_error(err: Exception) -> str:
    """The reason in a ``torch.load`` error, without its advice to load with ``weights_only=False``."""
    text = str(err).strip()
    if "WeightsUnpickler error:" in text:  # a pickle of objects other than tensors and plain containers
        detail = text.split("WeightsUnpickler error:", 1)[1].strip().splitlines()[0]
        return f"it pickles objects that a weights-only load refuses: {detail.split(' was not an allowed')[0]}"
    first = text.splitlines()[0] if text else type(err).__name__
    return type(err).__name__ if "weights_only" in first else first


def model_package(model: CTCModel, tokenizer) -> dict:
    """Everything needed to run ``model`` elsewhere, as a ``weights_only``-safe dict."""
    return {
        "format": MODEL_FORMAT,
        "model_config": to_dict(model.cfg),
        "tokenizer": tokenizer.to_dict(),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
    }


def model_from_package(package: dict):
    """(model in eval mode, tokenizer) from a ``model_package`` dict."""
    cfg = from_dict(ModelConfig, package["model_config"])
    tokenizer = tokenizer_from_dict(package["tokenizer"])
    model = CTCModel(cfg, len(tokenizer.units))
    model.load_state_dict(package["state_dict"])
    return model.eval(), tokenizer


def load_model(path: str | Path):
    """(model, tokenizer) from a model file or a training checkpoint."""
    package = load_file(path)
    try:
        return model_from_package(package)
    except (KeyError, RuntimeError, ValueError) as err:
        raise CheckpointError(f"{path}: incompatible model file ({str(err).splitlines()[0]})") from None


def list_checkpoints(exp_dir: str | Path, pattern: str = "epoch-*.pt") -> list[Path]:
    """Checkpoints in ``exp_dir/checkpoints`` matching ``pattern``, oldest first."""
    return sorted(Path(exp_dir, "checkpoints").glob(pattern))


def average_checkpoints(paths: list[Path]) -> dict:
    """Model package whose floating-point weights are the mean over ``paths``."""
    if not paths:
        raise CheckpointError("no checkpoints to average")
    packages = [load_file(p) for p in paths]
    first = packages[0]
    averaged = {}
    for key, value in first["state_dict"].items():
        if value.is_floating_point():
            averaged[key] = sum(p["state_dict"][key].double() for p in packages).div(len(packages)).to(value.dtype)
        else:
            averaged[key] = value
    log.info("averaged %d checkpoints: %s", len(paths), ", ".join(p.name for p in paths))
    return {"format": MODEL_FORMAT, "model_config": first["model_config"], "tokenizer": first["tokenizer"],
            "state_dict": averaged}

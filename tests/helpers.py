"""Shared test helpers (not fixtures): where the real corpora are, recipe runs, a training subprocess, TINY."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA_ROOT = Path(os.environ.get("ASR_TEST_DATA", REPO.parent / "shared" / "data"))

# A one-layer 32-unit model on 12 s batches: seconds per epoch on the small sets of conftest.py.
TINY = [
    "model.encoder.num_layers=1", "model.encoder.hidden_size=32", "model.subsampling.factor=3",
    "data.max_duration=12.0", "data.num_buckets=2", "optim.warmup_steps=3", "log_every=1000", "device=cpu",
]

# conf/*.yaml shaped: the model and schedule of a recipe run over a handful of real utterances.
TINY_RECIPE_CONFIG = """\
model:
  encoder: {num_layers: 1, hidden_size: 32}
data: {max_duration: 30.0, num_buckets: 2}
optim: {warmup_steps: 2}
epochs: 2
"""


def corpus_dir(name: str) -> Path:
    """``DATA_ROOT/name``; skipped when absent, a failure under CI=true."""
    path = DATA_ROOT / name
    if not path.is_dir():
        message = f"corpus {name!r} not found at {path} (set ASR_TEST_DATA)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


def run_recipe(recipe: str, args: list, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    """``bash recipes/RECIPE/run.sh ARGS`` in ``cwd`` with this venv's ``asr`` first on PATH; must succeed."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", **env)
    result = subprocess.run(["bash", str(REPO / "recipes" / recipe / "run.sh"), *map(str, args)],
                            cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def start_train(cuts: Path, exp: Path, overrides: list[str], until: Callable[[], bool], what: str,
                **popen) -> subprocess.Popen:
    """Start ``asr train`` on ``cuts`` in a subprocess; return once ``until()`` holds or the process ended."""
    process = subprocess.Popen([sys.executable, "-m", "asr.cli", "train", "--train", str(cuts), "--dev", str(cuts),
                                "--exp-dir", str(exp), *overrides], **popen)
    deadline = time.time() + 120
    while not until() and process.poll() is None:
        assert time.time() < deadline, f"training never {what}"
        time.sleep(0.02)
    return process


def random_letter_model(out: Path) -> Path:
    """``out/model.pt``: a random 1x16 BiLSTM over the 26 letters (seed 0), for search and output tests."""
    import torch

    from asr.config import EncoderConfig, ModelConfig
    from asr.data.tokenizer import CharTokenizer
    from asr.model.checkpoint import model_package, save_atomic
    from asr.model.ctc import CTCModel

    torch.manual_seed(0)
    tokenizer = CharTokenizer.train(["ABCDEFGHIJKLMNOPQRSTUVWXYZ"])
    model = CTCModel(ModelConfig(encoder=EncoderConfig(num_layers=1, hidden_size=16)), len(tokenizer.units))
    save_atomic(model_package(model, tokenizer), out / "model.pt")
    return out / "model.pt"


def word_lm_and_lexicon(model: Path, text: Path, out: Path) -> None:
    """``out/lm.arpa`` (word 3-gram of the Kaldi ``text``) and ``out/lexicon.txt`` in ``model``'s units."""
    from asr.cli import main
    from asr.decoding.lm import build_lm

    build_lm(text, out / "lm.arpa", order=3, kaldi=True)
    assert main(["lm", "lexicon", str(model), "--lm", str(out / "lm.arpa"), "--out", str(out / "lexicon.txt")]) == 0


def same_weights(a: Path, b: Path) -> None:
    """Assert that two checkpoints or model files hold bit-identical weights."""
    import torch

    from asr.model.checkpoint import load_file

    first, second = load_file(a)["state_dict"], load_file(b)["state_dict"]
    for key, value in first.items():
        assert torch.equal(value, second[key]), key


def log_rows(exp: Path) -> list[dict]:
    """The rows of ``exp/log.csv``."""
    import csv

    with open(exp / "log.csv") as f:
        return list(csv.DictReader(f))


def subsampling(kind: str, factor: int, **sizes):
    """SubsamplingConfig for a test row's kind; "conv2d+norm" is conv2d with its LayerNorm."""
    from asr.config import SubsamplingConfig
    return SubsamplingConfig(kind=kind.removesuffix("+norm"), factor=factor, conv2d_norm=kind.endswith("+norm"),
                             **sizes)

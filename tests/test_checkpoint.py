"""Model files and checkpoints: self-contained, weights_only loadable, atomic, averaged."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from asr.model.checkpoint import (
    CheckpointError, average_checkpoints, load_file, load_model, model_package, save_atomic,
)
from asr.config import EncoderConfig, ModelConfig
from asr.model.ctc import CTCModel
from asr.data.tokenizer import CharTokenizer
from asr.masks import make_pad_mask


def _model_and_tokenizer(seed=0):
    torch.manual_seed(seed)
    tokenizer = CharTokenizer.train(["HELLO WORLD", "GO"])
    model = CTCModel(ModelConfig(encoder=EncoderConfig(num_layers=1, hidden_size=16)), len(tokenizer.units))
    model.cmvn.set_stats(10, torch.full((80,), 20.0, dtype=torch.float64), torch.full((80,), 50.0, dtype=torch.float64))
    return model.eval(), tokenizer


def test_model_file_round_trip_with_weights_only(tmp_path):
    model, tokenizer = _model_and_tokenizer()
    path = tmp_path / "model.pt"
    save_atomic(model_package(model, tokenizer), path)
    raw = torch.load(path, weights_only=True)  # plain torch, no asr code involved
    assert set(raw) >= {"format", "model_config", "tokenizer", "state_dict"}
    loaded, loaded_tok = load_model(path)
    assert loaded_tok.units == tokenizer.units
    assert torch.equal(loaded.cmvn.mean, model.cmvn.mean) and torch.equal(loaded.cmvn.std, model.cmvn.std)
    feats, lens = torch.randn(2, 30, 80), torch.tensor([30, 21])
    with torch.no_grad():
        torch.testing.assert_close(loaded(feats, lens)[0], model(feats, lens)[0], atol=0, rtol=0)


def test_truncated_file_gives_clear_error(tmp_path):
    model, tokenizer = _model_and_tokenizer()
    path = tmp_path / "model.pt"
    save_atomic(model_package(model, tokenizer), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=str(path)):
        load_model(path)


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all"])
def test_garbage_file_gives_clear_error(tmp_path, content):
    path = tmp_path / "junk.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="junk.pt"):
        load_model(path)


def test_a_folder_or_a_missing_file_is_named_as_such(tmp_path):
    with pytest.raises(CheckpointError, match=f"^{tmp_path}: a folder; this needs a .pt model file"):
        load_file(tmp_path)
    with pytest.raises(CheckpointError, match=f"^{tmp_path / 'gone.pt'}: no such file$"):
        load_file(tmp_path / "gone.pt")


def test_foreign_torch_file_is_rejected(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, path)
    with pytest.raises(CheckpointError, match="not an asr model file"):
        load_file(path)


def test_failed_save_leaves_previous_file_intact(tmp_path):
    path = tmp_path / "ckpt.pt"
    save_atomic({"format": "x", "value": torch.ones(2)}, path)
    with pytest.raises(Exception):
        save_atomic({"format": "x", "value": lambda: None}, path)  # unpicklable
    assert torch.equal(torch.load(path, weights_only=True)["value"], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]


def test_average_is_the_mean_of_weights(tmp_path):
    paths = []
    for seed in range(3):
        model, tokenizer = _model_and_tokenizer(seed)
        paths.append(tmp_path / f"epoch-{seed}.pt")
        save_atomic(model_package(model, tokenizer), paths[-1])
    averaged = average_checkpoints(paths)
    key = "output.weight"
    expected = sum(load_file(p)["state_dict"][key] for p in paths) / 3
    torch.testing.assert_close(averaged["state_dict"][key], expected)
    save_atomic(averaged, tmp_path / "avg.pt")
    load_model(tmp_path / "avg.pt")


def test_model_file_written_before_the_layout_change_loads(tmp_path):
    """tests/data/model-v0.1.pt was saved by the flat-layout package (commit bd0724f): same outputs today."""
    data = Path(__file__).parent / "data"
    model, tokenizer = load_model(data / "model-v0.1.pt")
    expected = torch.load(data / "model-v0.1-io.pt", weights_only=True)
    log_probs, out_lens = model(expected["feats"], expected["lens"])
    assert tokenizer.decode(tokenizer.encode("HELLO WORLD")) == "HELLO WORLD"
    assert torch.equal(out_lens, expected["out_lens"])
    valid = ~make_pad_mask(out_lens, log_probs.size(1))
    assert torch.allclose(log_probs[valid], expected["log_probs"][valid], atol=1e-6)

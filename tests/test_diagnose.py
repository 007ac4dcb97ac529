"""``asr.analysis.diagnose`` and ``asr.training.curves``: gradient vs lag, recomputed gates, ``asr diagnose`` and ``asr curves``."""

from __future__ import annotations

import json

import pytest
import torch

from asr.model.checkpoint import model_package, save_atomic
from asr.cli import main
from asr.config import EncoderConfig, ModelConfig
from asr.training.curves import plot_curves
from asr.analysis.diagnose import (
    default_label,
    encoder_gradient_vs_lag,
    encoder_input,
    gate_activations,
    gradient_vs_lag,
    recurrent_gates,
)
from asr.model.encoder import build_layer, reverse_padded
from asr.model.ctc import CTCModel
from asr.data.tokenizer import CharTokenizer

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors: one thread is fastest and leaves the other core alone."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _linear_recurrence(weights: torch.Tensor):
    """h_t = w * h_{t-1} + x_t elementwise (a diagonal recurrence), output h: (1, T, D) -> (1, T, D)."""

    def fn(x: torch.Tensor) -> torch.Tensor:
        h, outs = torch.zeros_like(x[:, 0]), []
        for t in range(x.size(1)):
            h = weights * h + x[:, t]
            outs.append(h)
        return torch.stack(outs, dim=1)

    return fn


def _tiny_model(cell: str, bidirectional: bool = True, num_layers: int = 2, projection_size: int = 0,
                dropout: float = 0.2) -> CTCModel:
    cfg = ModelConfig(encoder=EncoderConfig(cell=cell, num_layers=num_layers, hidden_size=16,
                                            bidirectional=bidirectional, projection_size=projection_size,
                                            dropout=dropout))
    return CTCModel(cfg, vocab_size=8)


# ---- gradient vs lag ---------------------------------------------------------------------


@pytest.mark.parametrize("w", [0.9, 1.05, -0.8])
def test_gradient_vs_lag_scalar_recurrence_is_w_to_the_lag(w):
    frames = 60
    x = torch.randn(1, frames, 1, dtype=torch.float64)
    norms = gradient_vs_lag(_linear_recurrence(torch.tensor(w, dtype=torch.float64)), x)
    expected = abs(w) ** torch.arange(frames, dtype=torch.float64)
    assert norms.shape == (frames,)
    torch.testing.assert_close(norms, expected, rtol=1e-5, atol=0)


def test_gradient_vs_lag_earlier_frame_marks_missing_lags_nan():
    x = torch.randn(1, 20, 1, dtype=torch.float64)
    norms = gradient_vs_lag(_linear_recurrence(torch.tensor(0.9, dtype=torch.float64)), x, frame=7)
    assert norms.shape == (20,)
    torch.testing.assert_close(norms[:8], 0.9 ** torch.arange(8, dtype=torch.float64), rtol=1e-5, atol=0)
    assert torch.isnan(norms[8:]).all()
    with pytest.raises(ValueError, match="frame"):
        gradient_vs_lag(_linear_recurrence(torch.tensor(0.9)), x.float(), frame=20)


@pytest.mark.parametrize("weights", [[0.5, 0.9, 1.05], [0.99, -0.7]])
def test_gradient_vs_lag_diagonal_recurrence(weights):
    w = torch.tensor(weights, dtype=torch.float64)
    frames = 40
    x = torch.randn(1, frames, len(weights), dtype=torch.float64)
    norms = gradient_vs_lag(_linear_recurrence(w), x, reduce=torch.sum)
    lags = torch.arange(frames, dtype=torch.float64)[:, None]
    expected = (w.abs() ** lags).pow(2).sum(dim=1).sqrt()  # d(sum h_T) / d x_{T-lag} = (w_i^lag)_i
    torch.testing.assert_close(norms, expected, rtol=1e-5, atol=0)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_encoder_gradient_vs_lag_on_random_model(cell):
    torch.manual_seed(0)
    model = _tiny_model(cell, dropout=0.5).train()
    feats = torch.randn(50, 80)
    result = encoder_gradient_vs_lag(model, feats)
    out_frames = int(model.output_lengths(torch.tensor([50]))[0])  # 50 // 3 = 16
    assert result.norms.shape == (out_frames,) == (16,)
    assert torch.isfinite(result.norms).all() and (result.norms[:2] > 0).all()
    assert result.step_seconds == pytest.approx(0.03)
    assert result.seconds[-1].item() == pytest.approx(15 * 0.03)
    # eval mode inside (dropout 0.5 would make two runs differ), the caller's mode kept
    torch.testing.assert_close(encoder_gradient_vs_lag(model, feats).norms, result.norms)
    assert model.training


# ---- gates -------------------------------------------------------------------------------


def _rerun(cell: str, gates: dict, hidden: int) -> torch.Tensor:
    """The hidden states (1, T, H) implied by the recomputed gates, from the zero state."""
    h = c = torch.zeros(1, hidden)
    outs = []
    for t in range(next(iter(gates.values())).size(1)):
        if cell == "lstm":  # c_t = f c_{t-1} + i g, h_t = o tanh(c_t)
            c = gates["forget"][:, t] * c + gates["input"][:, t] * gates["candidate"][:, t]
            h = gates["output"][:, t] * c.tanh()
        else:  # PyTorch GRU: h_t = (1 - z) n + z h_{t-1}
            z = gates["update"][:, t]
            h = (1 - z) * gates["candidate"][:, t] + z * h
        outs.append(h)
    return torch.stack(outs, dim=1)


@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_recurrent_gates_reproduce_module_output(cell, bidirectional):
    torch.manual_seed(1)
    hidden, frames = 12, 17
    layer = build_layer(cell, 10, hidden, bidirectional)
    x, lens = torch.randn(1, frames, 10), torch.tensor([frames])
    with torch.no_grad():
        out = layer(x, lens)  # (1, T, H) or (1, T, 2H)
        directions = [(layer.fwd, x, out[..., :hidden])]
        if bidirectional:  # the backward module reads the utterance reversed
            directions.append((layer.bwd, reverse_padded(x, lens), reverse_padded(out[..., hidden:], lens)))
        for module, inputs, outputs in directions:
            gates = recurrent_gates(module, inputs, outputs)
            names = {"lstm": {"input", "forget", "output", "candidate"}, "gru": {"reset", "update", "candidate"}}
            assert set(gates) == names[cell]
            for name, value in gates.items():
                assert value.shape == (1, frames, hidden)
                low = -1.0 if name == "candidate" else 0.0
                assert value.min() >= low and value.max() <= 1.0
            torch.testing.assert_close(_rerun(cell, gates, hidden), outputs, rtol=0, atol=1e-5)


def test_recurrent_gates_of_vanilla_rnn_are_empty():
    layer = build_layer("rnn", 4, 3, False)
    x = torch.randn(1, 5, 4)
    assert recurrent_gates(layer.fwd, x, layer.fwd(x)[0]) == {}
    with pytest.raises(ValueError, match="one layer"):
        recurrent_gates(torch.nn.LSTM(4, 3), x, x)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_gate_activations_per_layer_and_direction(cell):
    torch.manual_seed(2)
    model = _tiny_model(cell, projection_size=8).train()  # the projection feeds the next layer
    feats = torch.randn(47, 80)
    activations = gate_activations(model, feats)
    assert model.training
    gate_names = {"lstm": ["input", "forget", "output"], "gru": ["reset", "update"]}[cell]
    assert list(activations) == ["layer0.forward", "layer0.backward", "layer1.forward", "layer1.backward"]
    # the same gates by hand: layer by layer, as RecurrentEncoder.forward runs them in eval mode
    model.eval()
    with torch.no_grad():
        x = encoder_input(model, feats)  # (1, 15, 240)
        lens = torch.tensor([x.size(1)])
        for index, (layer, proj) in enumerate(zip(model.encoder.layers, model.encoder.projections)):
            out = layer(x, lens)  # (1, T', 32)
            fwd = recurrent_gates(layer.fwd, x, out[..., :16])
            bwd = recurrent_gates(layer.bwd, reverse_padded(x, lens), reverse_padded(out[..., 16:], lens))
            for direction, gates in (("forward", fwd), ("backward", bwd)):
                got = activations[f"layer{index}.{direction}"]
                assert list(got) == gate_names
                for name in gate_names:
                    expected = gates[name][0].mean(dim=-1)  # (T',) in the direction's own time order
                    if direction == "backward":
                        expected = expected.flip(0)
                    assert got[name].shape == (15,)
                    torch.testing.assert_close(got[name], expected)
                    assert 0.0 <= got[name].min() and got[name].max() <= 1.0
            x = proj(out)


def test_gate_activations_of_vanilla_rnn_are_empty():
    assert gate_activations(_tiny_model("rnn"), torch.randn(30, 80)) == {}


# ---- CLI ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model_files(tmp_path_factory):
    """Tiny random 2-layer BiLSTM and BiRNN character models, in directories named after the cell."""
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("models")
    tokenizer = CharTokenizer.train(["ABCDEFGHIJKLMNOPQRSTUVWXYZ"])
    paths = []
    for cell in ("lstm", "rnn"):
        model = CTCModel(ModelConfig(encoder=EncoderConfig(cell=cell, num_layers=2, hidden_size=16)),
                         len(tokenizer.units))
        model.cmvn.set_stats(10, torch.full((80,), -50.0, dtype=torch.float64),
                             torch.full((80,), 260.0, dtype=torch.float64))
        path = root / cell / "model.pt"
        save_atomic(model_package(model, tokenizer), path)
        paths.append(path)
    return paths


def test_cli_diagnose_on_an4(model_files, an4_dir, tmp_path):
    import soundfile as sf

    wav = an4_dir / "wav" / "an4test_clstk" / "fcaw" / "an406-fcaw-b.wav"
    out = tmp_path / "diag"
    assert main(["diagnose", *map(str, model_files), "--audio", str(wav), "--out-dir", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "gates.json", "gates_lstm.png", "gradient_lag.json", "gradient_lag.png"]  # no gates for the RNN
    for png in ("gates_lstm.png", "gradient_lag.png"):
        assert (out / png).read_bytes().startswith(PNG)

    samples = sf.info(str(wav)).frames  # 16 kHz: 25 ms windows, 10 ms hop, stacked by 3
    steps = (1 + (samples - 400) // 160) // 3
    grads = json.loads((out / "gradient_lag.json").read_text())["models"]
    assert list(grads) == ["lstm", "rnn"]
    for label, record in grads.items():
        assert record["cell"] == label and record["step_seconds"] == pytest.approx(0.03)
        (file,) = record["files"].values()
        assert file["steps"] == steps == len(file["norms"])
        assert file["norms"][0] > 0
        assert all(v is None or v >= 0 for v in file["norms"])
        mean = record["mean_log10_relative_norm"]
        assert len(mean) == steps and mean[0] == 0.0
        assert record["ratio_lag10_lag0"] == pytest.approx(file["norms"][10] / file["norms"][0])
        assert set(record) >= {"ratio_lag100_lag0", "ratio_lag100_lag10", "files_per_lag"}

    gates = json.loads((out / "gates.json").read_text())["models"]
    assert gates["rnn"]["note"] == "vanilla RNN: no gates"
    (lstm,) = gates["lstm"]["files"].values()
    assert sorted(lstm["gates"]) == ["layer0.backward", "layer0.forward", "layer1.backward", "layer1.forward"]
    forward = lstm["gates"]["layer0.forward"]
    assert sorted(forward) == ["forget", "input", "output"]
    assert len(forward["forget"]) == steps and all(0.0 <= v <= 1.0 for v in forward["forget"])
    assert lstm["mean_over_time"]["layer0.forward"]["forget"] == pytest.approx(sum(forward["forget"]) / steps)


def test_cli_diagnose_bad_inputs(model_files, tmp_path, capsys):
    missing = tmp_path / "nope.wav"
    code = main(["diagnose", str(model_files[0]), "--audio", str(missing), "--out-dir", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert code == 1 and err == f"asr diagnose: error: {missing}: no such file"
    junk = tmp_path / "junk" / "model.pt"
    junk.parent.mkdir()
    junk.write_bytes(b"not a model")
    code = main(["diagnose", str(junk), "--audio", str(missing), "--out-dir", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1 and err.startswith(f"asr diagnose: error: {junk}: ")
    code = main(["diagnose", *map(str, model_files), "--labels", "a", "a", "--audio", str(missing),
                 "--out-dir", str(tmp_path / "o")])
    assert code == 1 and "distinct" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_default_label_of_checkpoints_is_the_run(tmp_path):
    assert default_label(tmp_path / "exp" / "lstm" / "checkpoints" / "epoch-003.pt") == "lstm"
    assert default_label(tmp_path / "exp" / "gru" / "avg.pt") == "gru"


def _write_log(path, rows):
    header = ("epoch,step,lr,train_loss,dev_loss,dev_wer,dev_cer,seconds,audio_s_per_s,skipped_utts,"
              "oom_batches,nonfinite_steps,max_rss_mb")
    path.mkdir(parents=True)
    lines = [f"{e},{10 * e},1.0e-03,{tl},{dl},{wer},50.0,10.0,5.0,0,0,0,900" for e, tl, dl, wer in rows]
    (path / "log.csv").write_text("\n".join([header, *lines]) + "\n")


def test_cli_curves(tmp_path, capsys):
    _write_log(tmp_path / "rnn", [(1, 1.5, 1.2, 100.0), (2, 0.9, 0.8, 60.0), (3, 0.7, 0.75, 40.0)])
    _write_log(tmp_path / "lstm", [(1, 1.4, 1.1, 99.0), (2, 0.6, 0.5, 30.0)])
    out = tmp_path / "plots" / "curves.png"
    assert main(["curves", str(tmp_path / "rnn"), str(tmp_path / "lstm"), "--out", str(out)]) == 0
    assert out.read_bytes().startswith(PNG)
    data = json.loads(out.with_suffix(".json").read_text())
    assert data["rnn"] == {"epoch": [1.0, 2.0, 3.0], "train_loss": [1.5, 0.9, 0.7], "dev_loss": [1.2, 0.8, 0.75],
                           "dev_wer": [100.0, 60.0, 40.0]}
    assert data["lstm"]["dev_wer"] == [99.0, 30.0]
    assert plot_curves([tmp_path / "rnn"], out, labels=["x"])["x"]["epoch"] == [1.0, 2.0, 3.0]

    code = main(["curves", str(tmp_path / "nothing"), "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1 and str(tmp_path / "nothing" / "log.csv") in err

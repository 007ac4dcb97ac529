"""Encoder and model: shapes, gradients, and independence from batch padding."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from asr.config import EncoderConfig, ModelConfig, SubsamplingConfig
from asr.masks import make_pad_mask
from asr.model.ctc import CTCModel
from asr.model.encoder import CELLS as CELL_MODULES, LSTMLayer, RecurrentLayer, build_encoder, build_layer, reverse_padded
from asr.model.subsampling import build_subsampling
from helpers import subsampling

CELLS = ["lstm", "gru", "rnn"]
DIRECTIONS = [True, False]
SUBSAMPLING = [("stack", 1), ("stack", 2), ("stack", 3), ("stack", 4), ("conv", 1), ("conv", 3), ("conv", 4),
               ("conv2d", 1), ("conv2d", 3), ("conv2d", 4), ("conv2d+norm", 3)]


def _model(cell: str, bidirectional: bool, kind: str, factor: int, projection: int = 0) -> CTCModel:
    cfg = ModelConfig(
        subsampling=subsampling(kind, factor, conv_channels=32),
        encoder=EncoderConfig(cell=cell, num_layers=2, hidden_size=24, bidirectional=bidirectional,
                              projection_size=projection, dropout=0.1),
    )
    return CTCModel(cfg, vocab_size=11)


@pytest.mark.parametrize("kind,factor", SUBSAMPLING)
@pytest.mark.parametrize("bidirectional", DIRECTIONS, ids=["bi", "uni"])
@pytest.mark.parametrize("cell", CELLS)
def test_forward_backward_shapes(cell, bidirectional, kind, factor):
    torch.manual_seed(0)
    model = _model(cell, bidirectional, kind, factor).train()
    feat_lens = torch.tensor([17, 9, 1])  # odd T, heavy padding, a one-frame utterance
    feats = torch.randn(3, 17, 80)
    log_probs, out_lens = model(feats, feat_lens)
    assert out_lens.tolist() == [17 // factor, 9 // factor, 1 // factor]
    assert out_lens.dtype == torch.int64
    assert torch.equal(model.output_lengths(feat_lens), out_lens)  # what collate and the CTC loss rely on
    assert log_probs.shape == (3, 17 // factor, 11)
    padding = make_pad_mask(out_lens, log_probs.size(1))
    bias_only = model.output.bias.log_softmax(-1)  # padded encoder frames are zero: log-probs of the bias alone
    torch.testing.assert_close(log_probs[padding], bias_only.expand(int(padding.sum()), -1))
    assert torch.allclose(log_probs.exp().sum(-1), torch.ones(3, 17 // factor), atol=1e-5)
    log_probs[0, : out_lens[0]].sum().backward()
    grads = [p.grad for p in model.encoder.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("kind,factor", SUBSAMPLING)
@pytest.mark.parametrize("bidirectional", DIRECTIONS, ids=["bi", "uni"])
@pytest.mark.parametrize("cell", CELLS)
def test_output_independent_of_batch_padding(cell, bidirectional, kind, factor):
    """An utterance alone and inside a padded batch gives the same log-probs (to 1e-5)."""
    torch.manual_seed(1)
    model = _model(cell, bidirectional, kind, factor, projection=16).eval()
    lens = torch.tensor([23, 40, 7])
    feats = torch.randn(3, 40, 80) * 3 + 1
    feats = feats.masked_fill(torch.arange(40)[None, :, None] >= lens[:, None, None], 5.0)  # junk padding
    with torch.no_grad():
        batch_lp, batch_lens = model(feats, lens)
        for i in range(3):
            alone_lp, alone_lens = model(feats[i : i + 1, : lens[i]], lens[i : i + 1])
            assert alone_lens[0] == batch_lens[i]
            n = int(alone_lens[0])
            torch.testing.assert_close(batch_lp[i, :n], alone_lp[0, :n], atol=1e-5, rtol=0)


@pytest.mark.parametrize("cell", CELLS)
def test_bidirectional_layer_equals_packed_torch_module(cell):
    """A bidirectional layer on padded input equals the packed-sequence torch module with the same weights.

    A plain padded ``nn.LSTM(bidirectional=True)`` would differ: its backward direction starts in the padding.
    """
    torch.manual_seed(2)
    layer = build_layer(cell, 8, 6, bidirectional=True).eval()
    reference = CELL_MODULES[cell](8, 6, batch_first=True, bidirectional=True)
    with torch.no_grad():
        for name, value in layer.fwd.named_parameters():
            getattr(reference, name).copy_(value)
        for name, value in layer.bwd.named_parameters():
            getattr(reference, f"{name}_reverse").copy_(value)
    lens = torch.tensor([10, 3, 7])
    x = torch.randn(3, 10, 8).masked_fill(make_pad_mask(lens, 10)[..., None], 7.0)  # junk padding
    packed = nn.utils.rnn.pack_padded_sequence(x, lens, batch_first=True, enforce_sorted=False)
    with torch.no_grad():
        expected, _ = nn.utils.rnn.pad_packed_sequence(reference(packed)[0], batch_first=True, total_length=10)
        out = layer(x, lens)
    valid = ~make_pad_mask(lens, 10)
    torch.testing.assert_close(out[valid], expected[valid], atol=1e-5, rtol=0)


@pytest.mark.parametrize("cell", CELLS)
def test_forward_step_carries_the_state_of_every_cell_in_one_tensor(cell):
    """Two ``forward_step`` calls, the second from the first's state, equal one pass over the whole input."""
    torch.manual_seed(3)
    layer = build_layer(cell, 5, 4, bidirectional=False).eval()
    x = torch.randn(2, 9, 5)
    with torch.no_grad():
        first, state = layer.forward_step(x[:, :4], layer.zero_state(2, x))
        second, state = layer.forward_step(x[:, 4:], state)
        whole, _ = layer.fwd(x)
    assert state.shape == (2 if cell == "lstm" else 1, 1, 2, 4)
    torch.testing.assert_close(torch.cat([first, second], dim=1), whole, atol=1e-6, rtol=0)
    torch.testing.assert_close(state[0, 0], whole[:, -1], atol=1e-6, rtol=0)  # h is the last output


def test_a_layer_class_rejects_the_cells_it_cannot_hold():
    with pytest.raises(ValueError, match="build_layer"):
        RecurrentLayer("lstm", 4, 3, bidirectional=True)
    with pytest.raises(ValueError, match="build_layer"):
        LSTMLayer("gru", 4, 3, bidirectional=True)
    with pytest.raises(ValueError, match="encoder.cell"):
        build_layer("transformer", 4, 3, bidirectional=True)


def test_reverse_padded_reverses_valid_frames_only():
    x = torch.arange(12.0).reshape(2, 6, 1)
    lens = torch.tensor([4, 6])
    out = reverse_padded(x, lens)
    assert out[0, :, 0].tolist() == [3, 2, 1, 0, 4, 5]
    assert out[1, :, 0].tolist() == [11, 10, 9, 8, 7, 6]
    assert torch.equal(reverse_padded(out, lens), x)


def test_encoder_zeroes_padding_frames():
    encoder = build_encoder(EncoderConfig(num_layers=1, hidden_size=8), input_dim=5).eval()
    out, lens = encoder(torch.randn(2, 9, 5), torch.tensor([9, 4]))
    assert out.shape == (2, 9, 16)
    assert out[1, 4:].abs().sum() == 0
    assert out[1, :4].abs().sum() > 0


def test_dropout_only_in_training():
    model = _model("lstm", True, "stack", 2)
    feats, lens = torch.randn(2, 20, 80), torch.tensor([20, 15])
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(feats, lens)[0], model(feats, lens)[0])
    model.train()
    with torch.no_grad():
        assert not torch.equal(model(feats, lens)[0], model(feats, lens)[0])


@pytest.mark.parametrize(
    "field,value,message",
    [("cell", "ru", "encoder.cell"), ("num_layers", 0, "encoder.num_layers")],
)
def test_bad_encoder_config_raises(field, value, message):
    cfg = EncoderConfig(**{field: value})
    with pytest.raises(ValueError, match=message):
        build_encoder(cfg, 10)


@pytest.mark.parametrize("kind,factor", [("stack", 0), ("stack", 5), ("pool", 2)])
def test_bad_subsampling_raises(kind, factor):
    with pytest.raises(ValueError, match="subsampling"):
        CTCModel(ModelConfig(subsampling=SubsamplingConfig(kind=kind, factor=factor)), 5)


def test_dropout_keeps_the_expected_fraction_and_scales_like_nn_dropout():
    from asr.model.encoder import Dropout

    torch.manual_seed(0)
    x = torch.ones(64, 100, 32)
    drop = Dropout(0.2).train()
    y = drop(x)
    kept = (y != 0).float().mean().item()
    assert abs(kept - 0.8) < 0.01
    assert torch.allclose(y[y != 0], torch.full_like(y[y != 0], 1 / 0.8))
    assert abs(y.mean().item() - 1.0) < 0.02  # expectation preserved
    assert torch.equal(drop.eval()(x), x)
    with pytest.raises(ValueError, match="dropout"):
        Dropout(1.0)


def test_conv2d_norm_normalises_each_output_frame_on_its_own():
    torch.manual_seed(0)
    module = build_subsampling(SubsamplingConfig(kind="conv2d", factor=3, conv2d_norm=True), 80)
    out, _ = module(torch.randn(2, 30, 80) * 5 + 3, torch.tensor([30, 20]))  # (2, 10, 320)
    torch.testing.assert_close(out.mean(-1), torch.zeros(2, 10), atol=1e-5, rtol=0)
    torch.testing.assert_close(out.std(-1, unbiased=False), torch.ones(2, 10), atol=1e-3, rtol=0)

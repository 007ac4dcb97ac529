"""The CUDA path of bidirectional layers (one packed bidirectional call) against the two-call path, on the CPU."""

from __future__ import annotations

import pytest
import torch

from asr.config import EncoderConfig, ModelConfig, SpecAugmentConfig, SubsamplingConfig
from asr.model.ctc import CTCModel
from asr.model.encoder import use_packed

LENGTHS = {"odd-heavy-padding": [17, 3, 40, 9], "one": [11]}


def _model(cell: str, layers: int, factor: int) -> CTCModel:
    torch.manual_seed(0)
    cfg = ModelConfig(specaug=SpecAugmentConfig(freq_masks=0, time_masks=0),
                      subsampling=SubsamplingConfig(factor=factor),
                      encoder=EncoderConfig(cell=cell, num_layers=layers, hidden_size=12, dropout=0.0))
    return CTCModel(cfg, vocab_size=7).train()


def _run(model: CTCModel, packed: bool, feats: torch.Tensor, feat_lens: torch.Tensor):
    """Log-probs (padding zeroed) and every parameter's gradient of a fixed random loss, on one path."""
    for layer in model.encoder.layers:
        layer.packed = packed
    model.zero_grad()
    log_probs, lens = model(feats, feat_lens)
    valid = torch.arange(log_probs.size(1))[None, :] < lens[:, None]  # (B, T')
    log_probs = log_probs * valid[..., None]
    (log_probs * torch.linspace(-1, 1, log_probs.numel()).reshape(log_probs.shape)).sum().backward()
    return log_probs.detach(), {name: p.grad.clone() for name, p in model.named_parameters()}


@pytest.mark.parametrize("lengths", LENGTHS.values(), ids=LENGTHS.keys())
@pytest.mark.parametrize("layers, factor", [(1, 1), (3, 3)])
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_packed_bidirectional_path_equals_the_two_call_path(cell, layers, factor, lengths):
    model = _model(cell, layers, factor)
    keys = list(model.state_dict())
    feat_lens = torch.tensor(lengths) * factor
    feats = torch.randn(len(lengths), int(feat_lens.max()) + 2, 80)  # padding past the longest too
    split_out, split_grads = _run(model, False, feats, feat_lens)
    packed_out, packed_grads = _run(model, True, feats, feat_lens)
    torch.testing.assert_close(packed_out, split_out, atol=1e-5, rtol=0)
    for name, grad in split_grads.items():
        torch.testing.assert_close(packed_grads[name], grad, atol=1e-5, rtol=1e-4, msg=name)
    assert list(model.state_dict()) == keys  # the same parameters, nothing added


def test_the_path_is_chosen_by_device_unless_forced():
    cpu = torch.zeros(1)
    assert not use_packed(cpu, None) and use_packed(cpu, True) and not use_packed(cpu, False)
    assert use_packed(torch.zeros(1, device="meta"), None) is False  # only CUDA takes it by default

"""Mixed precision and GPU-only branches of the training step, shown on the CPU: InterCTC under
autocast, recurrent layers in the autocast dtype, fp16 loss-scaler bookkeeping, out of memory in
the batch's log-mel."""

from __future__ import annotations

import logging

import pytest
import torch

from asr.config import EncoderConfig, ModelConfig, SpecAugmentConfig, load_config
from asr.data.cuts import FeatureBatcher, cut_text, load_cuts
from asr.data.tokenizer import build_tokenizer
from asr.model.ctc import CTCModel
from asr.training.distributed import Dist
from asr.training import loop
from asr.training.loop import InterCTC, _train_step, ctc_loss, train
from helpers import TINY, log_rows


def _cpu_bf16():
    """CPU autocast in bf16 on any CPU: without oneDNN, recurrent layers take PyTorch's own bf16 kernels."""
    return torch.backends.mkldnn.flags(enabled=False), torch.autocast("cpu", dtype=torch.bfloat16)


def _model(projection_size: int = 6, cell: str = "lstm") -> CTCModel:
    torch.manual_seed(0)
    cfg = ModelConfig(specaug=SpecAugmentConfig(freq_masks=0, time_masks=0),
                      encoder=EncoderConfig(num_layers=3, hidden_size=8, dropout=0.0, cell=cell,
                                            projection_size=projection_size))
    return CTCModel(cfg, vocab_size=5).train()


def test_inter_ctc_under_bf16_autocast_matches_fp32():
    model = _model()
    inter = InterCTC(model, 2, weight=0.3)
    feats, feat_lens, targets = torch.randn(2, 30, 80), torch.tensor([30, 21]), [[1, 2], [3]]
    log_probs, out_lens = model(feats, feat_lens)
    reference = inter.loss(ctc_loss(log_probs, out_lens, targets)[0], out_lens, targets)
    mkldnn_off, bf16 = _cpu_bf16()
    with mkldnn_off:
        with bf16:  # as in _train_step: the forward under autocast, the losses after it
            log_probs, out_lens = model(feats, feat_lens)
        mixed = inter.loss(ctc_loss(log_probs, out_lens, targets)[0], out_lens, targets)
    assert mixed.dtype == torch.float32
    torch.testing.assert_close(mixed, reference, rtol=0.05, atol=0.0)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_recurrent_layers_run_in_the_autocast_dtype(cell):
    """CUDA autocast casts cuDNN RNNs to fp16 whatever its dtype: the encoder casts explicitly instead."""
    model = _model(projection_size=0, cell=cell)
    seen = []
    for layer in model.encoder.layers:
        layer.fwd.register_forward_hook(lambda module, inputs, output: seen.append(output[0].dtype))
    feats, feat_lens = torch.randn(2, 30, 80), torch.tensor([30, 21])
    reference, _ = model(feats, feat_lens)
    seen.clear()
    mkldnn_off, bf16 = _cpu_bf16()
    with mkldnn_off, bf16:
        log_probs, _ = model(feats, feat_lens)
    assert seen == [torch.bfloat16] * 3
    log_probs.sum().backward()
    assert all(p.grad.dtype == torch.float32 for p in model.parameters() if p.grad is not None)
    assert model.encoder.layers[0].fwd.weight_ih_l0.dtype == torch.float32
    torch.testing.assert_close(log_probs, reference, atol=0.1, rtol=0.0)


@pytest.fixture
def one_step(small_sets):
    """A real training step's parts on 12 AN4 cuts: (model, batch, tokenizer, optimizer, cfg)."""
    cfg = load_config(None, TINY)
    cuts = load_cuts(small_sets / "cuts12.jsonl.gz")
    tokenizer = build_tokenizer(cfg.tokenizer, (cut_text(c) for c in cuts))
    torch.manual_seed(0)
    model = CTCModel(cfg.model, len(tokenizer.units)).train()
    batch = FeatureBatcher(cfg.model.features)(cuts.subset(first=4))
    return model, batch, tokenizer, torch.optim.AdamW(model.parameters()), cfg


def _step(one_step, scaler):
    model, batch, tokenizer, optimizer, cfg = one_step
    return _train_step(model, model, batch, tokenizer, optimizer, scaler, cfg, torch.device("cpu"), Dist(), False)[0]


def test_a_loss_scaler_overflow_is_counted_apart_and_not_warned(one_step, caplog):
    model = one_step[0]
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**127)  # the scaled gradients overflow float32
    before = [p.detach().clone() for p in model.parameters()]
    stats = _step(one_step, scaler)
    assert (stats.scaler_skipped_steps, stats.nonfinite_steps) == (1, 0)
    assert all(torch.equal(a, p) for a, p in zip(before, model.parameters()))  # no update
    assert scaler.get_scale() == 2.0**126
    assert "non-finite" not in caplog.text
    scaler.update(new_scale=8.0)  # as after the scale has backed off far enough
    stats = _step(one_step, scaler)
    assert (stats.scaler_skipped_steps, stats.nonfinite_steps) == (0, 0)
    assert not all(torch.equal(a, p) for a, p in zip(before, model.parameters()))


def test_only_a_run_of_scaler_skips_is_warned(caplog):
    runs, warn_after = [], 3
    run = 0
    for skipped in [1, 1, 0, 1, 1, 1, 1, 0]:
        run = loop._scaler_skip_run(run, skipped, 1024.0, warn_after)
        runs.append(run)
    assert runs == [1, 2, 0, 1, 2, 3, 4, 0]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "3 fp16 steps in a row" in warnings[0] and "1024" in warnings[0]


def test_out_of_memory_after_unscale_still_updates_the_scaler(one_step, monkeypatch, caplog):
    real_clip = torch.nn.utils.clip_grad_norm_
    calls = {"n": 0}

    def clip(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_clip(*args, **kwargs)

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", clip)
    scaler = torch.amp.GradScaler("cpu", init_scale=8.0)
    assert _step(one_step, scaler).oom_batches == 1
    assert "out of memory in the backward" in caplog.text
    stats = _step(one_step, scaler)  # unscale_ again: raises unless update() ended the step before
    assert (stats.oom_batches, stats.scaler_skipped_steps) == (0, 0) and stats.frames > 0


def test_out_of_memory_in_the_batch_log_mel_skips_the_batch(small_sets, tmp_path, monkeypatch, caplog):
    real = FeatureBatcher.from_audio
    calls = {"n": 0}

    def from_audio(self, audio, device=torch.device("cpu")):
        calls["n"] += 1
        if calls["n"] == 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.50 GiB")
        return real(self, audio, device)

    monkeypatch.setattr(FeatureBatcher, "from_audio", from_audio)
    cuts = small_sets / "cuts12.jsonl.gz"
    train(load_config(None, TINY + ["epochs=1"]), cuts, cuts, tmp_path)
    rows = log_rows(tmp_path)
    assert int(rows[0]["oom_batches"]) == 1 and float(rows[0]["train_loss"]) > 0  # the other batches trained
    assert "out of memory on a batch" in caplog.text

"""Training loop: CTC loss edge cases, schedule, kill-and-resume, and overfitting real speech."""

from __future__ import annotations

import csv
import math
import signal
import subprocess

import pytest
import torch

from asr.model.checkpoint import CheckpointError, list_checkpoints, load_file
from asr.config import load_config
from asr.data.cuts import load_cuts
from asr.config import EncoderConfig, ModelConfig, SpecAugmentConfig
from asr.model.ctc import CTCModel
from asr.training.loop import InterCTC, ctc_loss, lr_factor, train
from helpers import TINY, start_train


def test_ctc_loss_skips_utterances_too_short_for_their_labels():
    torch.manual_seed(0)
    log_probs = torch.randn(3, 5, 6).log_softmax(-1)
    out_lens = torch.tensor([5, 5, 3])
    targets = [[1, 2, 3], [1, 1, 1], [2, 3, 4, 5]]  # 2nd needs 3 + 2 repeats = 5 frames: fits; 3rd does not
    loss, kept, skipped = ctc_loss(log_probs, out_lens, targets)
    assert (kept, skipped) == (2, 1)
    expected = torch.nn.functional.ctc_loss(
        log_probs[:2].transpose(0, 1), torch.tensor([1, 2, 3, 1, 1, 1]), out_lens[:2], torch.tensor([3, 3]),
        reduction="sum",
    )
    torch.testing.assert_close(loss, expected)


def test_ctc_loss_all_skipped_is_zero_not_inf():
    log_probs = torch.randn(1, 2, 4, requires_grad=True).log_softmax(-1)
    loss, kept, skipped = ctc_loss(log_probs, torch.tensor([2]), [[1, 2, 3]])
    assert (kept, skipped) == (0, 1)
    assert loss.item() == 0.0


def _inter_ctc_case(num_layers: int = 3, projection_size: int = 0):
    """A model without dropout or SpecAugment, one random batch, its targets."""
    torch.manual_seed(0)
    cfg = ModelConfig(specaug=SpecAugmentConfig(freq_masks=0, time_masks=0),
                      encoder=EncoderConfig(num_layers=num_layers, hidden_size=8, dropout=0.0,
                                            projection_size=projection_size))
    model = CTCModel(cfg, vocab_size=5).train()
    feats, feat_lens = torch.randn(2, 30, 80), torch.tensor([30, 21])
    return model, feats, feat_lens, [[1, 2], [3]]


@pytest.mark.parametrize("layer, projection_size", [(1, 0), (2, 0), (2, 6)])
def test_inter_ctc_loss_is_the_ctc_of_the_truncated_encoder(layer, projection_size):
    model, feats, feat_lens, targets = _inter_ctc_case(projection_size=projection_size)
    inter = InterCTC(model, layer, weight=0.3)
    log_probs, out_lens = model(feats, feat_lens)
    main, _, _ = ctc_loss(log_probs, out_lens, targets)
    mixed = inter.loss(main, out_lens, targets)
    model.encoder.layers = model.encoder.layers[:layer]  # the same weights, cut after the tapped layer
    model.encoder.projections = model.encoder.projections[:layer]
    truncated, _, _ = ctc_loss(*model(feats, feat_lens), targets)
    torch.testing.assert_close(mixed, 0.7 * main + 0.3 * truncated)


def test_inter_ctc_alone_trains_only_the_layers_up_to_its_own():
    model, feats, feat_lens, targets = _inter_ctc_case()
    inter = InterCTC(model, 1, weight=1.0)
    log_probs, out_lens = model(feats, feat_lens)
    inter.loss(ctc_loss(log_probs, out_lens, targets)[0], out_lens, targets).backward()
    grads = {name: p.grad is not None and bool(p.grad.abs().sum() > 0) for name, p in model.named_parameters()}
    assert all(grads[n] for n in grads if n.startswith(("encoder.layers.0.", "output.")))
    assert not any(grads[n] for n in grads if n.startswith(("encoder.layers.1.", "encoder.layers.2.")))


@pytest.mark.parametrize("layer", [0, 3])
def test_inter_ctc_layer_must_be_a_middle_layer(layer):
    with pytest.raises(ValueError, match="inter_ctc_layer: expected 1 to 2"):
        InterCTC(_inter_ctc_case()[0], layer, weight=0.3)


def test_lr_factor_warmup_hold_decay():
    assert lr_factor(0, 10, 50, 100, 0.1) == pytest.approx(0.1)
    assert lr_factor(9, 10, 50, 100, 0.1) == pytest.approx(1.0)
    assert lr_factor(30, 10, 50, 100, 0.1) == 1.0
    assert lr_factor(75, 10, 50, 100, 0.1) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi / 2)))
    assert lr_factor(100, 10, 50, 100, 0.1) == pytest.approx(0.1)


def _weights(path):
    return load_file(path)["state_dict"]


@pytest.mark.parametrize("stop_at", [2, 3, 5])
def test_resume_after_stop_gives_identical_weights(small_sets, tmp_path, stop_at):
    """Stopping after `stop_at` steps and restarting ends on the same weights as one run."""
    cuts = small_sets / "cuts12.jsonl.gz"
    overrides = TINY + ["epochs=3", "save_every_steps=1"]
    reference = train(load_config(None, overrides), cuts, cuts, tmp_path / "a")

    cfg_stop = load_config(None, overrides + [f"max_steps={stop_at}"])
    stopped = train(cfg_stop, cuts, cuts, tmp_path / "b")
    assert load_file(stopped)["train_state"]["step"] == stop_at
    resumed = train(load_config(None, overrides), cuts, cuts, tmp_path / "b")

    ref_state, res_state = load_file(reference), load_file(resumed)
    assert ref_state["train_state"]["step"] == res_state["train_state"]["step"] > stop_at
    for key, value in _weights(reference).items():
        assert torch.equal(value, res_state["state_dict"][key]), key
    with open(tmp_path / "b" / "log.csv") as f:
        assert [row["epoch"] for row in csv.DictReader(f)] == ["1", "2", "3"]


def test_keeps_last_n_epoch_checkpoints(small_sets, tmp_path):
    cuts = small_sets / "cuts12.jsonl.gz"
    train(load_config(None, TINY + ["epochs=4", "keep_last=2"]), cuts, cuts, tmp_path)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["epoch-003.pt", "epoch-004.pt"]
    assert not list(tmp_path.glob("checkpoints/*.tmp"))


@pytest.mark.slow
def test_overfits_twenty_real_utterances(small_sets, tmp_path):
    """A small BiLSTM memorises 20 real AN4 utterances: greedy CER on them falls near 0."""
    cuts = small_sets / "cuts20.jsonl.gz"
    cfg = load_config(None, [
        "model.encoder.num_layers=2", "model.encoder.hidden_size=128", "model.encoder.dropout=0.0",
        "model.specaug.freq_masks=0", "model.specaug.time_masks=0", "data.max_duration=80.0",
        "optim.lr=0.003", "optim.warmup_steps=10", "optim.hold_fraction=0.8", "epochs=120", "keep_last=1",
    ])
    train(cfg, cuts, cuts, tmp_path)
    with open(tmp_path / "log.csv") as f:
        rows = list(csv.DictReader(f))
    assert float(rows[0]["dev_cer"]) > 50
    assert float(rows[-1]["dev_cer"]) < 5.0, rows[-1]


def test_sigkill_at_any_moment_then_resume_reaches_the_same_weights(small_sets, tmp_path):
    """A real `asr train` process killed with SIGKILL mid-run resumes to the uninterrupted result."""
    cuts = small_sets / "cuts12.jsonl.gz"
    overrides = TINY + ["epochs=3", "save_every_steps=1"]
    reference = train(load_config(None, overrides), cuts, cuts, tmp_path / "ref")

    exp = tmp_path / "killed"
    process = start_train(cuts, exp, overrides, lambda: bool(list(exp.glob("checkpoints/step-0000000[3-9].pt"))),
                          "wrote its third checkpoint", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    resumed = train(load_config(None, overrides), cuts, cuts, exp)
    for key, value in _weights(reference).items():
        assert torch.equal(value, _weights(resumed)[key]), key


def test_init_from_starts_an_lc_blstm_from_a_trained_blstm(small_sets, tmp_path):
    """``init_from``: the new run holds the source's weights, CMVN and units in its own (chunked) architecture."""
    cuts = small_sets / "cuts12.jsonl.gz"
    source = train(load_config(None, TINY + ["epochs=1"]), cuts, cuts, tmp_path / "blstm")
    lc_overrides = TINY + ["epochs=1", f"init_from={source}", "model.encoder.chunk_frames=4",
                           "model.encoder.right_context=2"]
    frozen = train(load_config(None, lc_overrides + ["optim.lr=0.0"]), cuts, cuts, tmp_path / "lc")  # no update
    start, got = load_file(source), load_file(frozen)
    assert got["tokenizer"] == start["tokenizer"]
    assert got["model_config"]["encoder"]["chunk_frames"] == 4
    for key, value in start["state_dict"].items():
        assert torch.equal(value, got["state_dict"][key]), key

    wider = TINY + ["epochs=1", f"init_from={source}", "model.encoder.hidden_size=48"]
    with pytest.raises(CheckpointError, match=f"^{source}: its weights do not fit model: config"):
        train(load_config(None, wider), cuts, cuts, tmp_path / "wider")


def test_bpe_units_train_and_beam_decode(small_sets, tmp_path):
    from asr.model.checkpoint import load_model
    from asr.decoding.resolve import make_search
    from asr.decoding.search import decode_cuts

    cuts = small_sets / "cuts12.jsonl.gz"
    last = train(load_config(None, TINY + ["epochs=1", "tokenizer.kind=bpe", "tokenizer.vocab_size=30"]),
                 cuts, cuts, tmp_path)
    model, tokenizer = load_model(last)
    assert tokenizer.kind == "bpe" and len(tokenizer.units) == 31
    results = list(decode_cuts(model, load_cuts(cuts), make_search(tokenizer, "beam", {"beam_size": 4})))
    assert len(results) == 12
    assert all(isinstance(hyp.text, str) for _, _, hyp in results)

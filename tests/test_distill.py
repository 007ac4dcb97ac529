"""Distillation of a teacher's frame posteriors (distill_from): the loss term, its checks, a training run."""

from __future__ import annotations

import pytest
import torch

from asr.config import EncoderConfig, ModelConfig, SpecAugmentConfig, SubsamplingConfig, load_config
from asr.data.tokenizer import CharTokenizer
from asr.model.checkpoint import CheckpointError, load_file, model_from_package, model_package, save_atomic
from asr.model.ctc import CTCModel
from asr.training.distill import Distillation
from asr.training.loop import ctc_loss, train
from helpers import TINY

UNITS = CharTokenizer(["<blk>", "|", "A", "B", "C"])


def _model(seed: int, factor: int = 3, **encoder) -> CTCModel:
    torch.manual_seed(seed)
    cfg = ModelConfig(specaug=SpecAugmentConfig(freq_masks=0, time_masks=0),
                      subsampling=SubsamplingConfig(factor=factor),
                      encoder=EncoderConfig(num_layers=1, hidden_size=8, dropout=0.0, **encoder))
    return CTCModel(cfg, len(UNITS.units))


def _teacher_file(tmp_path, model: CTCModel, tokenizer=UNITS):
    path = tmp_path / "teacher.pt"
    save_atomic(model_package(model, tokenizer), path)
    return path


def test_the_loss_is_the_kl_of_the_valid_frames_and_vanishes_for_the_teacher_itself(tmp_path):
    teacher = _model(0)
    path = _teacher_file(tmp_path, teacher)
    feats, feat_lens = torch.randn(2, 30, 80), torch.tensor([30, 19])  # 10 and 6 frames after x3
    student = _model(1, bidirectional=False).train()  # a unidirectional student at the teacher's frame rate
    distill = Distillation(str(path), 0.25, 2.0, student, UNITS.units, torch.device("cpu"))
    log_probs, out_lens = student(feats, feat_lens)
    ctc, _, _ = ctc_loss(log_probs, out_lens, [[2, 3], [4]])
    mixed = distill.loss(ctc, log_probs, out_lens, feats, feat_lens)
    with torch.no_grad():
        target = (teacher.eval()(feats, feat_lens)[0] / 2).softmax(-1)
    kl = torch.nn.functional.kl_div((log_probs / 2).log_softmax(-1), target, reduction="none").sum(-1)
    expected_kd = 4 * (kl[0, :10].sum() + kl[1, :6].sum())  # T^2 times the valid frames only
    torch.testing.assert_close(mixed, 0.75 * ctc + 0.25 * expected_kd)
    mixed.backward()
    assert all(p.grad is not None for p in student.parameters())
    assert all(p.grad is None for p in distill.teacher.parameters())

    itself = model_from_package(load_file(path))[0].train()  # dropout and SpecAugment off: the same function
    alone = Distillation(str(path), 1.0, 1.0, itself, UNITS.units, torch.device("cpu"))
    log_probs, out_lens = itself(feats, feat_lens)
    assert float(alone.loss(torch.tensor(5.0), log_probs, out_lens, feats, feat_lens).detach()) == pytest.approx(0.0, abs=1e-5)


def test_a_teacher_with_other_units_or_frame_rate_is_one_error_naming_it(tmp_path):
    path = _teacher_file(tmp_path, _model(0))
    with pytest.raises(CheckpointError, match=r"teacher.pt: distill_from: the teacher's 5 units differ from the 4"):
        Distillation(str(path), 0.5, 1.0, _model(1), ["<blk>", "|", "A", "B"], torch.device("cpu"))
    with pytest.raises(CheckpointError, match=r"teacher.pt: distill_from: the teacher's frame rate \(subsampling x3\) "
                                              r"differs from the model's \(x4\)"):
        Distillation(str(path), 0.5, 1.0, _model(1, factor=4), UNITS.units, torch.device("cpu"))
    with pytest.raises(CheckpointError, match="nothing.pt"):
        Distillation(str(tmp_path / "nothing.pt"), 0.5, 1.0, _model(1), UNITS.units, torch.device("cpu"))
    for weight, temperature, shift, field in [(0.0, 1.0, 0, "distill_weight"), (1.5, 1.0, 0, "distill_weight"),
                                              (0.5, 0.0, 0, "distill_temperature"), (0.5, 1.0, -1, "distill_shift")]:
        with pytest.raises(ValueError, match=field):
            Distillation(str(path), weight, temperature, _model(1), UNITS.units, torch.device("cpu"), shift)


def test_a_shift_pairs_each_student_frame_with_the_teacher_frame_that_many_before(tmp_path):
    """distill_shift D: student frame t against teacher frame t - D, the first D frames and the padding left out."""
    feats, feat_lens = torch.randn(2, 30, 80), torch.tensor([30, 19])  # 10 and 6 frames after x3
    teacher, student = _model(0), _model(1, bidirectional=False).train()
    with torch.no_grad():
        target = teacher.eval()(feats, feat_lens)[0].softmax(-1)  # (2, 10, V)
    log_probs, out_lens = student(feats, feat_lens)
    kl = torch.nn.functional.kl_div(log_probs[:, 2:].log_softmax(-1), target[:, :-2], reduction="none").sum(-1)
    expected = kl[0, :8].sum() + kl[1, :4].sum()  # student frames 2..9 and 2..5
    distill = Distillation(str(_teacher_file(tmp_path, teacher)), 1.0, 1.0, student, UNITS.units,
                           torch.device("cpu"), shift=2)
    torch.testing.assert_close(distill.loss(torch.tensor(3.0), log_probs, out_lens, feats, feat_lens), expected)
    distill.shift = 12  # longer than every utterance: nothing left to learn from the teacher
    assert float(distill.loss(torch.tensor(3.0), log_probs, out_lens, feats, feat_lens)) == 0.0


def _kl_to_teacher(student_path, teacher_path, cuts) -> float:
    """Mean per-frame KL(teacher || student) over ``cuts``, both in eval mode."""
    from asr.data.cuts import FeatureBatcher, load_cuts
    from asr.model.files import load_float_model

    student, _ = load_float_model(student_path)
    teacher, _ = load_float_model(teacher_path)
    batch = FeatureBatcher(student.cfg.features)(list(load_cuts(cuts)))
    with torch.no_grad():
        s, lens = student(batch.feats, batch.feat_lens)
        t, _ = teacher(batch.feats, batch.feat_lens)
    kl = (t.exp() * (t - s)).sum(-1)
    valid = torch.arange(kl.size(1))[None] < lens[:, None]
    return float(kl[valid].mean())


def test_a_student_trained_on_real_speech_moves_towards_its_teacher(small_sets, tmp_path):
    """Same seed, same batches: with the teacher's posteriors in the loss the student ends nearer to them."""
    # The teacher is a 4-epoch model of 12 utterances, mostly blank, so both students end near it.
    cuts = small_sets / "cuts12.jsonl.gz"
    teacher = train(load_config(None, TINY + ["epochs=4", "optim.lr=0.005"]), cuts, cuts, tmp_path / "teacher")
    student = TINY + ["epochs=3", "optim.lr=0.005", "model.encoder.chunk_frames=2", "seed=1"]  # an LC-BLSTM
    plain = train(load_config(None, student), cuts, cuts, tmp_path / "plain")
    taught = train(load_config(None, student + [f"distill_from={teacher}", "distill_weight=1.0"]), cuts, cuts,
                   tmp_path / "taught")
    kl_taught, kl_plain = _kl_to_teacher(taught, teacher, cuts), _kl_to_teacher(plain, teacher, cuts)
    assert kl_taught < 0.9 * kl_plain  # measured 0.83x; the teacher draws no random numbers: same batches and masks

"""Training under faults: SIGTERM/SIGINT, corrupt checkpoints, NaN losses, out-of-memory batches, bf16."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys

import pytest
import torch

from asr.model.checkpoint import load_file
from asr.config import load_config
from asr.data.cuts import load_cuts, train_sampler
from asr.model.ctc import CTCModel
from asr.training.loop import train
from helpers import TINY, log_rows, same_weights, start_train




@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_saves_a_checkpoint_exits_cleanly_and_resumes_to_the_same_weights(small_sets, tmp_path, signum):
    cuts = small_sets / "cuts12.jsonl.gz"
    overrides = TINY + ["epochs=3", "log_every=1"]
    reference = train(load_config(None, overrides), cuts, cuts, tmp_path / "ref")

    exp = tmp_path / "stopped"
    log_file = exp / "train.log"
    process = start_train(cuts, exp, overrides, lambda: log_file.exists() and "epoch 1 step 2 " in log_file.read_text(),
                          "reached step 2", stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signum, stderr[-2000:]
    assert "Traceback" not in stderr
    assert f"stopped by {signal.Signals(signum).name}" in stderr
    saved = sorted(exp.glob("checkpoints/step-*.pt"))
    assert len(saved) == 1
    assert 2 <= load_file(saved[0])["train_state"]["step"] < load_file(reference)["train_state"]["step"]

    resumed = train(load_config(None, overrides), cuts, cuts, exp)
    same_weights(reference, resumed)


def test_corrupt_newest_checkpoint_falls_back_to_the_previous_one(small_sets, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="asr")
    cuts = small_sets / "cuts12.jsonl.gz"
    overrides = TINY + ["epochs=3"]
    reference = train(load_config(None, overrides), cuts, cuts, tmp_path / "ref")
    steps_per_epoch = sum(1 for _ in train_sampler(load_cuts(cuts), load_config(None, TINY).data, 0))

    exp = tmp_path / "exp"
    stopped = train(load_config(None, overrides + [f"max_steps={steps_per_epoch + 2}"]), cuts, cuts, exp)
    data = stopped.read_bytes()
    stopped.write_bytes(data[: len(data) // 2])  # a torn write from a copy tool or a full disk
    resumed = train(load_config(None, overrides), cuts, cuts, exp)
    assert "skipping" in caplog.text and "not a readable checkpoint" in caplog.text
    assert "resuming from" in caplog.text and "epoch-001.pt" in caplog.text
    assert "config " not in caplog.text  # max_steps is run control, not a config change
    same_weights(reference, resumed)


def _faulty_forward(monkeypatch, fail_on_call: int, fault):
    """Make the ``fail_on_call``-th training forward pass misbehave through ``fault(outputs)``."""
    real_forward = CTCModel.forward
    calls = {"n": 0}

    def forward(self, feats, feat_lens):
        out = real_forward(self, feats, feat_lens)
        if self.training:
            calls["n"] += 1
            if calls["n"] == fail_on_call:
                return fault(out)
        return out

    monkeypatch.setattr(CTCModel, "forward", forward)


def test_nan_loss_skips_the_step_and_is_counted(small_sets, tmp_path, monkeypatch):
    cuts = small_sets / "cuts12.jsonl.gz"
    _faulty_forward(monkeypatch, 2, lambda out: (out[0] * float("nan"), out[1]))
    last = train(load_config(None, TINY + ["epochs=2"]), cuts, cuts, tmp_path)
    rows = log_rows(tmp_path)
    assert [int(r["nonfinite_steps"]) for r in rows] == [1, 0]
    assert all(torch.isfinite(v).all() for v in load_file(last)["state_dict"].values() if v.is_floating_point())
    assert all(float(r["train_loss"]) == float(r["train_loss"]) for r in rows)  # no NaN in the log


def test_out_of_memory_batch_is_skipped_and_training_continues(small_sets, tmp_path, monkeypatch, caplog):
    def oom(out):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    cuts = small_sets / "cuts12.jsonl.gz"
    _faulty_forward(monkeypatch, 3, oom)
    train(load_config(None, TINY + ["epochs=2"]), cuts, cuts, tmp_path)
    assert [int(r["oom_batches"]) for r in log_rows(tmp_path)] == [1, 0]
    assert "out of memory on a batch" in caplog.text


def test_cpu_memory_error_is_treated_as_out_of_memory(small_sets, tmp_path, monkeypatch):
    def oom(out):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory")

    cuts = small_sets / "cuts12.jsonl.gz"
    _faulty_forward(monkeypatch, 1, oom)
    train(load_config(None, TINY + ["epochs=1"]), cuts, cuts, tmp_path)
    assert int(log_rows(tmp_path)[0]["oom_batches"]) == 1


def test_other_runtime_errors_are_not_swallowed(small_sets, tmp_path, monkeypatch):
    def bug(out):
        raise RuntimeError("shape mismatch")

    cuts = small_sets / "cuts12.jsonl.gz"
    _faulty_forward(monkeypatch, 1, bug)
    with pytest.raises(RuntimeError, match="shape mismatch"):
        train(load_config(None, TINY + ["epochs=1"]), cuts, cuts, tmp_path)


BF16_CPU = torch.ops.mkldnn._is_mkldnn_bf16_supported()


@pytest.mark.skipif(not BF16_CPU, reason="this CPU has no bf16 LSTM (AVX512-BF16/AMX); see the refusal test")
def test_bf16_autocast_trains_with_fp32_log_probs(small_sets, tmp_path, monkeypatch):
    seen = []
    real_forward = CTCModel.forward

    def forward(self, feats, feat_lens):
        out = real_forward(self, feats, feat_lens)
        seen.append((torch.is_autocast_enabled("cpu"), out[0].dtype))
        return out

    monkeypatch.setattr(CTCModel, "forward", forward)
    cuts = small_sets / "cuts12.jsonl.gz"
    train(load_config(None, TINY + ["epochs=2", "precision=bf16"]), cuts, cuts, tmp_path)
    assert seen and all(enabled and dtype == torch.float32 for enabled, dtype in seen)
    rows = log_rows(tmp_path)
    assert float(rows[1]["train_loss"]) < float(rows[0]["train_loss"])


REFUSALS = {"fp16": "asr train: error: precision 'fp16' needs a CUDA device; use 'bf16' on the CPU",
            "bf16": "asr train: error: precision 'bf16' on the CPU needs AVX512-BF16 or AMX (oneDNN has no bf16 "
                    "LSTM without them) and this CPU has neither; use 'fp32'"}


@pytest.mark.parametrize("precision", ["fp16", pytest.param("bf16", marks=pytest.mark.skipif(
    BF16_CPU, reason="this CPU runs bf16 LSTMs"))])
def test_unsupported_precision_on_the_cpu_is_refused_before_any_work(small_sets, tmp_path, precision):
    cuts = small_sets / "cuts12.jsonl.gz"
    result = subprocess.run([sys.executable, "-m", "asr.cli", "train", "--train", str(cuts), "--dev", str(cuts),
                             "--exp-dir", str(tmp_path), *TINY, f"precision={precision}", "device=cpu"],
                            capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == REFUSALS[precision]
    assert not (tmp_path / "checkpoints").exists()

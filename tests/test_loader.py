"""The training input pipeline: DataLoader workers over the lhotse sampler, device features, exact resume,
bad audio skipped and counted, and start-up on a large lazy manifest."""

from __future__ import annotations

import gzip
import json
import logging
import shutil

import pytest
import torch

from asr.config import DataConfig, FeatureConfig, load_config
from asr.data.cuts import (AudioDataset, FeatureBatcher, estimate_batches, load_cuts, load_cuts_lazy, scan_manifest,
                           train_loader, train_sampler)
from asr.model.checkpoint import load_file
from asr.training.loop import train
from helpers import TINY, log_rows, same_weights

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])




def _write_cuts(path, cuts: list[dict]) -> None:
    with gzip.open(path, "wt") as f:
        f.writelines(json.dumps(c) + "\n" for c in cuts)


def _read_cuts(path) -> list[dict]:
    with gzip.open(path, "rt") as f:
        return [json.loads(line) for line in f]


@pytest.mark.parametrize("device", DEVICES)
def test_batched_device_logmel_matches_the_per_utterance_cpu_path(small_sets, device):
    cuts = load_cuts(small_sets / "cuts12.jsonl.gz")
    batcher = FeatureBatcher(FeatureConfig())
    reference = batcher(cuts)  # one utterance at a time, on the CPU
    batch = batcher.from_audio(AudioDataset(16000)[(cuts, None)], torch.device(device))
    assert batch.ids == reference.ids and batch.texts == reference.texts
    assert batch.feats.device.type == device
    assert torch.equal(batch.feat_lens, reference.feat_lens)
    assert batch.feats.shape == reference.feats.shape
    torch.testing.assert_close(batch.feats.cpu(), reference.feats, rtol=0, atol=1e-4)
    for feats, n in zip(batch.feats, batch.feat_lens.tolist()):
        assert not feats[n:].any()  # padding frames are zero


@pytest.mark.parametrize("num_workers", [0, 2])
def test_loader_gives_the_sampler_batches_each_with_the_state_after_it(small_sets, num_workers):
    cuts = load_cuts_lazy(small_sets / "cuts12.jsonl.gz")
    cfg = load_config(None, TINY).data
    direct = []
    sampler = train_sampler(cuts, cfg, 0)
    for batch_cuts in sampler:
        direct.append(([c.id for c in batch_cuts], sampler.state_dict()["diagnostics"]))
    loaded = [(b.ids, b.sampler_state["diagnostics"]) for b in train_loader(train_sampler(cuts, cfg, 0), 16000,
                                                                             num_workers)]
    assert len(direct) > 2
    assert loaded == direct  # the workers run ahead, the states do not
    assert direct[0][1] != direct[1][1]


def test_estimated_batches_per_epoch_are_close_to_the_sampler_count(an4_manifests):
    path = an4_manifests / "an4_cuts_train.jsonl.gz"
    durations = scan_manifest(path).durations
    assert len(durations) == 882
    for max_duration in (20.0, 60.0, 120.0):
        cfg = DataConfig(max_duration=max_duration)
        for world_size in (1, 2):
            counted = sum(1 for _ in train_sampler(load_cuts_lazy(path), cfg, 0, world_size, 0))
            estimate = estimate_batches(durations, cfg, world_size)
            assert counted <= estimate <= 1.1 * counted + 1, (max_duration, world_size, counted, estimate)


def test_scan_reads_the_durations_and_transcripts_lhotse_reads(small_sets):
    path = small_sets / "cuts20.jsonl.gz"
    scan = scan_manifest(path, texts=True)
    cuts = load_cuts(path)
    assert scan.durations.tolist() == [c.duration for c in cuts]
    assert scan.texts == [" ".join(s.text for s in c.supervisions) for c in cuts]


def test_workers_and_resume_reach_the_weights_of_one_in_process_run(small_sets, tmp_path):
    """Two loader workers, stopped after 3 steps and resumed: the weights of an uninterrupted run without workers."""
    cuts = small_sets / "cuts12.jsonl.gz"
    overrides = TINY + ["epochs=2"]
    reference = train(load_config(None, overrides + ["data.num_workers=0"]), cuts, cuts, tmp_path / "ref")
    workers = overrides + ["data.num_workers=2"]
    stopped = train(load_config(None, workers + ["max_steps=3"]), cuts, cuts, tmp_path / "w")
    assert load_file(stopped)["train_state"]["step"] == 3
    resumed = train(load_config(None, workers), cuts, cuts, tmp_path / "w")
    same_weights(reference, resumed)


def bad_audio_manifest(small_sets, tmp_path):
    """cuts12 plus three cuts whose audio is missing, truncated and not audio; returns (path, bad files)."""
    cuts = _read_cuts(small_sets / "cuts12.jsonl.gz")
    source = cuts[0]["recording"]["sources"][0]["source"]
    data = open(source, "rb").read()
    truncated, garbage, missing = tmp_path / "truncated.wav", tmp_path / "garbage.wav", tmp_path / "missing.wav"
    truncated.write_bytes(data[: len(data) // 2])  # the header still promises the whole file
    garbage.write_bytes(b"this is not audio " * 500)
    bad = []
    for name, path in (("missing", missing), ("truncated", truncated), ("garbage", garbage)):
        cut = json.loads(json.dumps(cuts[0]))
        cut["id"] = cut["supervisions"][0]["id"] = f"bad-{name}"
        cut["recording"]["sources"][0]["source"] = str(path)
        bad.append(cut)
    out = tmp_path / "with_bad.jsonl.gz"
    _write_cuts(out, cuts[:4] + bad + cuts[4:])
    return out, [missing, truncated, garbage]


@pytest.mark.parametrize("num_workers", [0, 1])
def test_bad_training_audio_is_skipped_named_and_counted(small_sets, tmp_path, caplog, num_workers):
    caplog.set_level(logging.WARNING, logger="asr")
    manifest, bad_files = bad_audio_manifest(small_sets, tmp_path)
    good = small_sets / "cuts12.jsonl.gz"
    train(load_config(None, TINY + ["epochs=2", f"data.num_workers={num_workers}"]), manifest, good,
          tmp_path / "exp")
    rows = log_rows(tmp_path / "exp")
    assert [int(r["bad_audio"]) for r in rows] == [3, 3]
    skips = [r.getMessage() for r in caplog.records if "skipping a training cut" in r.getMessage()]
    assert len(skips) == 6
    for path in bad_files:
        assert sum(str(path) in message for message in skips) == 2, path
    assert "truncated" in " ".join(skips) and "no such file" in " ".join(skips)


def test_a_batch_left_empty_by_bad_audio_takes_no_step(small_sets):
    from asr.data.cuts import Batch, cut_text
    from asr.data.tokenizer import build_tokenizer
    from asr.model.ctc import CTCModel
    from asr.training.distributed import Dist
    from asr.training.loop import _train_step

    cfg = load_config(None, TINY)
    cuts = load_cuts(small_sets / "cuts12.jsonl.gz")
    tokenizer = build_tokenizer(cfg.tokenizer, (cut_text(c) for c in cuts))
    model = CTCModel(cfg.model, len(tokenizer.units)).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.AdamW(model.parameters())
    empty = Batch(ids=[], texts=[], feats=torch.zeros(0, 0, 80), feat_lens=torch.zeros(0, dtype=torch.int64),
                  durations=torch.zeros(0))
    stats, stop = _train_step(model, model, empty, tokenizer, optimizer, None, cfg, torch.device("cpu"), Dist(), False)
    assert (stats.loss, stats.frames, stats.audio_s, stats.skipped_utts, stats.oom_batches) == (0, 0, 0, 0, 0)
    assert not stop and not optimizer.state  # AdamW never stepped
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())


def test_training_on_no_readable_audio_fails_with_one_clear_error(small_sets, tmp_path):
    manifest, _ = bad_audio_manifest(small_sets, tmp_path)
    _write_cuts(tmp_path / "only_bad.jsonl.gz", [c for c in _read_cuts(manifest) if c["id"].startswith("bad-")])
    with pytest.raises(ValueError, match="no readable audio among the first 2000 training cuts"):
        train(load_config(None, TINY), tmp_path / "only_bad.jsonl.gz", small_sets / "cuts12.jsonl.gz", tmp_path / "e")


def test_start_up_on_a_large_manifest_reads_a_bounded_number_of_cuts(small_sets, tmp_path, monkeypatch):
    """60k cuts (real audio, repeated ids): training starts after reading far fewer of them as Cut objects."""
    import lhotse.lazy

    cuts = _read_cuts(small_sets / "cuts12.jsonl.gz")
    count = 60_000
    with gzip.open(tmp_path / "big.jsonl.gz", "wt", compresslevel=1) as f:
        for i in range(count):
            cut = cuts[i % len(cuts)]
            f.write(json.dumps(dict(cut, id=f"{cut['id']}-r{i}")) + "\n")
    read = {"n": 0}
    real = lhotse.lazy.deserialize_item

    def counting(data):
        read["n"] += 1
        return real(data)

    monkeypatch.setattr(lhotse.lazy, "deserialize_item", counting)
    last = train(load_config(None, TINY + ["max_steps=1", "data.num_workers=0"]), tmp_path / "big.jsonl.gz",
                 small_sets / "cuts12.jsonl.gz", tmp_path / "exp")
    assert load_file(last)["train_state"]["step"] == 1
    # lhotse's bucket-bin estimate (first 10k cuts), the sampler's buffer (20k), CMVN (first 2k), 12 dev cuts:
    # the same at any manifest size (the eager path read all 60k twice, once more to count the batches)
    assert read["n"] <= 10_000 + 20_000 + 2_000 + 12 + 100
    shutil.rmtree(tmp_path / "exp")

"""Input pipeline throughput: audio seconds per second delivered by the training loader.

AN4 training cuts are prepared into a temporary directory, and once more with every file
converted to 16-bit FLAC there (LibriSpeech's format). For each audio format, each number of
loader workers (``--workers``) and each place for the log-mel features, the first ``--batches``
batches of ``asr.data.cuts.train_sampler`` (``--max-duration`` s each) are drawn through
``asr.data.cuts.train_loader`` exactly as training draws them, and timed after the first one:

  device  workers read and decode audio; log-mel runs after the loader on ``--device`` (what
          ``asr train`` does; on a CPU-only machine "device" is the training process's CPU)
  worker  workers also compute the log-mel (one utterance at a time, on their CPU)

``flac+sp`` is the FLAC set read at speed 0.9 (lhotse's ``Speed`` transform: resampling in the
worker), as ``data.speed_perturb`` copies are read. Reported per row: audio-s/s (wall), CPU
milliseconds per audio second spent in this process and in the workers (``getrusage``, workers
counted once they have exited), and, from those, audio-s/s per CPU core busy with input. No model
is trained: this is the ceiling the input pipeline puts on a training step.

    python tools/bench/input_pipeline.py                       # wav, flac, flac+sp x 0/1/2 workers x device/worker
    python tools/bench/input_pipeline.py --device cuda --workers 0 2 4 8
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from itertools import islice
from pathlib import Path

import soundfile as sf
import torch

import asr
from asr.audio.perturb import speed_perturb
from asr.config import DataConfig, FeatureConfig
from asr.data.corpora.an4 import prepare_an4
from asr.data.cuts import AudioBatch, AudioDataset, FeatureBatcher, load_cuts, train_loader, train_sampler

REPO = Path(asr.__file__).resolve().parents[1]


class _WorkerFeatures(AudioDataset):
    """The loader's dataset with the log-mel computed in the worker (waves replaced by features)."""

    def __init__(self, sample_rate: int, batcher: FeatureBatcher):
        super().__init__(sample_rate)
        self.batcher = batcher

    def __getitem__(self, item) -> AudioBatch:
        audio = super().__getitem__(item)
        audio.waves = self.batcher.from_audio(audio).feats  # (B, T, F) in place of (B, N)
        return audio


def flac_copy(cuts, out_dir: Path):
    """``cuts`` with every recording converted to 16-bit FLAC under ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)

    def convert(cut):
        source = cut.recording.sources[0]
        target = out_dir / (Path(source.source).stem + ".flac")
        if not target.exists():
            data, rate = sf.read(source.source, dtype="int16")
            sf.write(target, data, rate, subtype="PCM_16", format="FLAC")
        source.source = str(target)
        return cut

    return cuts.map(convert).to_eager()


def cpu_seconds() -> tuple[float, float]:
    """(this process, its waited-for children) user + system CPU seconds."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


def measure(cuts, cfg: DataConfig, batches: int, workers: int, features: str, device: torch.device) -> dict:
    """Draw ``batches`` batches through the loader; wall time, CPU time, audio seconds."""
    batcher = FeatureBatcher(FeatureConfig())
    loader = train_loader(train_sampler(cuts, cfg, 0), 16000, workers, device.type == "cuda")
    if features == "worker":
        loader.dataset.__class__ = _WorkerFeatures
        loader.dataset.batcher = batcher
    own0, children0 = cpu_seconds()
    audio, started = 0.0, time.perf_counter()
    for i, item in enumerate(islice(loader, batches + 1)):
        if i == 1:  # the first batch pays for starting the workers and warming up: not timed
            own0, children0 = cpu_seconds()
            audio, started = 0.0, time.perf_counter()
        if features == "device":
            feats = batcher.from_audio(item, device).feats
        else:
            feats = item.waves.to(device, non_blocking=device.type == "cuda")
        audio += float(item.durations.sum())
    if device.type == "cuda":
        torch.cuda.synchronize()
    wall = time.perf_counter() - started
    del loader, feats  # workers exit and are waited for: their CPU time is counted below
    own1, children1 = cpu_seconds()  # (the workers' CPU time includes their start: a small overestimate)
    return {"wall": wall, "audio": audio, "main_cpu": own1 - own0, "worker_cpu": children1 - children0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data" / "an4", help="AN4 directory")
    parser.add_argument("--batches", type=int, default=20, help="batches drawn per measurement")
    parser.add_argument("--max-duration", type=float, default=60.0, help="seconds of audio per batch")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2], help="loader worker counts")
    parser.add_argument("--formats", nargs="+", default=["wav", "flac", "flac+sp"], help="wav, flac, flac+sp")
    parser.add_argument("--device", default="cpu", help="where 'device' features run")
    parser.add_argument("--threads", type=int, default=0, help="torch threads of this process (0: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cfg = DataConfig(max_duration=args.max_duration)
    with tempfile.TemporaryDirectory() as tmp:
        prepare_an4(args.data_dir, Path(tmp) / "an4")
        wav = load_cuts(Path(tmp) / "an4" / "an4_cuts_train.jsonl.gz")
        flac = flac_copy(load_cuts(Path(tmp) / "an4" / "an4_cuts_train.jsonl.gz"), Path(tmp) / "flac")
        sets = {"wav": wav, "flac": flac,
                "flac+sp": speed_perturb(flac, [0.9]).filter(lambda c: c.id.endswith("_sp0.9")).to_eager()}
        print(f"# {args.batches} batches of <= {args.max_duration:g} s of AN4 train audio per row; features on "
              f"{device} or in the workers; {os.cpu_count()} CPUs, {torch.get_num_threads()} torch threads; "
              f"torch {torch.__version__}; load average {os.getloadavg()[0]:.1f}")
        print(f"{'format':8} {'workers':>7} {'features':>8} {'audio-s/s':>10} {'main ms/s':>9} "
              f"{'worker ms/s':>11} {'audio-s/s per core':>18}")
        for name in args.formats:
            for workers in args.workers:
                for features in ("device", "worker"):
                    if workers == 0 and features == "worker":
                        continue  # the same process either way
                    r = measure(sets[name], cfg, args.batches, workers, features, device)
                    cpu = r["main_cpu"] + r["worker_cpu"]
                    print(f"{name:8} {workers:7d} {features:>8} {r['audio'] / r['wall']:10.0f} "
                          f"{1e3 * r['main_cpu'] / r['audio']:9.2f} {1e3 * r['worker_cpu'] / r['audio']:11.2f} "
                          f"{r['audio'] / cpu:18.0f}", flush=True)


if __name__ == "__main__":
    main()

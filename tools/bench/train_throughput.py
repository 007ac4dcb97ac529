"""Training throughput of the toolkit's step against a bare nn.LSTM + CTC loop on the same batches.

Real AN4 training batches are built once up front: the cuts are prepared into a temporary
directory, the first ``--batches`` batches come from ``asr.data.cuts.train_sampler`` with the
config's ``DataConfig``, and their log-mel features are computed once with ``FeatureBatcher``.
Feature extraction (and reading the audio) is therefore EXCLUDED from both contenders, and so
is encoding the transcripts into unit ids. The two contenders then train on identical batches:

  toolkit  ``asr.training.loop._train_step``, the step of ``asr.training.loop.train`` itself: ``CTCModel`` forward
           (CMVN, SpecAugment, x3 frame stacking, ``RecurrentEncoder`` with dropout, output layer,
           log_softmax), ``asr.training.loop.ctc_loss`` (transcripts encoded in the step, as in training),
           backward, ``clip_grad_norm_`` with the non-finite check, AdamW step; then the LR scheduler.
  bare     ``nn.LSTM(bidirectional=True, num_layers=L, batch_first=True)`` on the same stacked
           frames (stacked once up front, no CMVN / SpecAugment / dropout), ``nn.Linear``,
           log_softmax, ``F.ctc_loss``, backward, AdamW step. Fast, but its backward direction
           reads padding (see encoder_paths.py).

Every repeat runs one pass over all batches with toolkit, then one with bare (after one untimed
warm-up pass each); throughput is audio seconds (sum of utterance durations) per wall second,
the ratio toolkit/bare is taken within each repeat and its median reported. The same ratio is
also given from the process's CPU time, which moves less when other work shares the cores (it
only matches wall time for a single thread on the CPU). Peak memory is
measured afterwards for each contender alone, in a child process (this script with ``--only``)
that loads only the saved batches and trains two passes: the peak resident set of that whole
process on the CPU (Python, torch, batches, model and training; ``VmHWM``, i.e. ``ru_maxrss``
without what a forked child inherits), ``torch.cuda.max_memory_allocated`` on CUDA; the figure
in brackets is the same measure just before its first step.

    python tools/bench/train_throughput.py --batches 8 --repeats 5
    python tools/bench/train_throughput.py --device cuda --batches 40 --repeats 5
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import asr
from asr.config import TrainConfig, load_config
from asr.data.corpora.an4 import prepare_an4
from asr.data.cuts import Batch, FeatureBatcher, cut_text, train_sampler
from asr.training.distributed import Dist
from asr.model.ctc import CTCModel
from asr.model.subsampling import StackSubsampling
from asr.data.tokenizer import build_tokenizer, tokenizer_from_dict
from asr.training.loop import _train_step, lr_factor

REPO = Path(asr.__file__).resolve().parents[1]
CONTENDERS = ("toolkit", "bare")


@dataclass
class Work:
    """One batch, prepared for both contenders."""

    feats: Tensor  # (B, T, F) log-mel, for the toolkit
    feat_lens: Tensor  # (B,) int64
    texts: list[str]  # transcripts, encoded inside the toolkit's step
    targets: list[list[int]]  # unit ids per utterance
    stacked: Tensor  # (B, T // k, k * F), for the bare loop
    stacked_lens: Tensor  # (B,) int64
    flat_targets: Tensor  # (sum of target lengths,) int64, for F.ctc_loss
    target_lens: Tensor  # (B,) int64
    audio_s: float  # sum of utterance durations


class BareCTC(nn.Module):
    """Padded ``nn.LSTM(bidirectional=True)`` + ``nn.Linear`` + log_softmax."""

    def __init__(self, input_dim: int, hidden: int, layers: int, vocab: int):
        super().__init__()
        self.lstm = nn.LSTM(input_dim, hidden, num_layers=layers, batch_first=True, bidirectional=True)
        self.output = nn.Linear(2 * hidden, vocab)

    def forward(self, x: Tensor) -> Tensor:
        """x (B, T, D) -> log-probs (B, T, V)."""
        return self.output(self.lstm(x)[0]).log_softmax(dim=-1)


def default_data_dir() -> Path:
    """``$ASR_DATA`` (the AN4 directory, or a data root holding ``an4/``), else ``REPO/../shared/data/an4``."""
    env = os.environ.get("ASR_DATA")
    if not env:
        return REPO.parent / "shared" / "data" / "an4"
    root = Path(env)
    return root if (root / "etc").is_dir() else root / "an4"


def load_batches(cfg: TrainConfig, data_dir: Path, count: int):
    """The first ``count`` training batches of the config's sampler, with features; the tokenizer; and
    the seconds spent reading their audio and computing their features."""
    with tempfile.TemporaryDirectory() as tmp:
        cuts = prepare_an4(data_dir, tmp)["train"]
    cuts = cuts.filter(lambda c: c.duration <= cfg.data.max_utt_duration).to_eager()
    tokenizer = build_tokenizer(cfg.tokenizer, (cut_text(c) for c in cuts))
    batcher = FeatureBatcher(cfg.model.features)
    cut_batches = list(islice(train_sampler(cuts, cfg.data, cfg.seed), count))
    start = time.perf_counter()
    batches = [batcher(b) for b in cut_batches]
    return batches, tokenizer, time.perf_counter() - start


def prepare_work(batches, tokenizer, factor: int, num_mels: int) -> list[Work]:
    """Encode transcripts and stack frames for the bare loop (on the CPU)."""
    stack = StackSubsampling(num_mels, factor)
    work = []
    for batch in batches:
        targets = [tokenizer.encode(t) for t in batch.texts]
        stacked, stacked_lens = stack(batch.feats, batch.feat_lens)
        work.append(Work(
            feats=batch.feats, feat_lens=batch.feat_lens, texts=batch.texts, targets=targets,
            stacked=stacked.contiguous(), stacked_lens=stacked_lens,
            flat_targets=torch.tensor([u for t in targets for u in t], dtype=torch.int64),
            target_lens=torch.tensor([len(t) for t in targets], dtype=torch.int64),
            audio_s=float(batch.durations.sum()),
        ))
    return work


def to_device(work: list[Work], device: str) -> list[Work]:
    """Every tensor of every ``Work`` moved to ``device``."""
    return [Work(**{k: v.to(device) if isinstance(v, Tensor) else v for k, v in vars(w).items()}) for w in work]


def cmvn_stats(work: list[Work]) -> tuple[int, Tensor, Tensor]:
    """Frame count, per-channel sum and sum of squares (float64) over the benchmark batches."""
    frames = torch.cat([w.feats[i, :n] for w in work for i, n in enumerate(w.feat_lens.tolist())]).double()
    return frames.size(0), frames.sum(0), (frames**2).sum(0)


def build_toolkit(cfg: TrainConfig, vocab: int, cmvn: tuple, device: str):
    """CTCModel with the given CMVN statistics, AdamW and the warm-up/hold/cosine schedule of train.py."""
    torch.manual_seed(cfg.seed)
    model = CTCModel(cfg.model, vocab)
    model.cmvn.set_stats(*cmvn)
    model.to(device).train()
    o = cfg.optim
    optimizer = torch.optim.AdamW(model.parameters(), lr=o.lr, weight_decay=o.weight_decay)
    total = 1000  # the schedule only sets the LR value; its cost does not depend on the length
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, o.warmup_steps, int(o.hold_fraction * total), total, o.final_lr_ratio)
    )
    return model, optimizer, scheduler


def build_bare(cfg: TrainConfig, vocab: int, device: str):
    """BareCTC with the config's encoder shape on x``factor`` stacked frames, and AdamW."""
    torch.manual_seed(cfg.seed)
    enc = cfg.model.encoder
    input_dim = cfg.model.features.num_mels * cfg.model.subsampling.factor
    model = BareCTC(input_dim, enc.hidden_size, enc.num_layers, vocab).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
    return model, optimizer


def toolkit_step(model, optimizer, scheduler, tokenizer, w: Work, cfg: TrainConfig) -> float:
    """One optimiser step exactly as in ``asr.training.loop.train``; returns the summed loss."""
    batch = Batch(ids=[], texts=w.texts, feats=w.feats, feat_lens=w.feat_lens,
                  durations=torch.tensor([w.audio_s]))
    stats, _ = _train_step(model, model, batch, tokenizer, optimizer, None, cfg, w.feats.device, Dist(), False)
    scheduler.step()
    return stats.loss


def bare_step(model, optimizer, w: Work) -> float:
    """One optimiser step of the bare loop; returns the summed loss."""
    log_probs = model(w.stacked)
    loss = F.ctc_loss(log_probs.transpose(0, 1), w.flat_targets, w.stacked_lens, w.target_lens,
                      blank=0, reduction="sum", zero_infinity=True)
    optimizer.zero_grad(set_to_none=True)
    (loss / w.stacked.size(0)).backward()
    optimizer.step()
    return loss.item()


def synchronize(device: str) -> None:
    """Wait for queued GPU work so that host timers measure it."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed_pass(step, work: list[Work], device: str) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) for ``step(w)`` over every batch."""
    synchronize(device)
    wall, cpu = time.perf_counter(), time.process_time()
    for w in work:
        step(w)
    synchronize(device)
    return time.perf_counter() - wall, time.process_time() - cpu


def make_steps(cfg: TrainConfig, names, tokenizer, cmvn: tuple, device: str) -> dict:
    """Contender name -> step function of one ``Work``."""
    steps = {}
    vocab = len(tokenizer.units)
    if "toolkit" in names:
        model, optimizer, scheduler = build_toolkit(cfg, vocab, cmvn, device)
        steps["toolkit"] = lambda w: toolkit_step(model, optimizer, scheduler, tokenizer, w, cfg)
    if "bare" in names:
        model_b, optimizer_b = build_bare(cfg, vocab, device)
        steps["bare"] = lambda w: bare_step(model_b, optimizer_b, w)
    return steps


def peak_mib(device: str) -> float:
    """Peak memory of this process so far (MiB): the CUDA allocator's peak, or peak resident set.

    On Linux the resident peak is ``VmHWM`` of ``/proc/self/status``: ``ru_maxrss`` of a child
    started by ``subprocess`` also counts the parent's resident set at the moment of the fork.
    """
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def memory_child(args: argparse.Namespace, name: str, work_file: Path) -> dict:
    """Run this script with ``--only name`` on the saved batches; return its JSON memory report."""
    argv = [sys.executable, __file__, "--only", name, "--work-file", str(work_file), "--config", args.config,
            "--device", args.device, "--threads", str(args.threads)]
    done = subprocess.run(argv, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure_memory(args: argparse.Namespace, work: list[Work], tokenizer, cmvn: tuple) -> dict:
    """Peak memory of each contender, each alone in a fresh process that loads only the batches.

    A child process keeps the audio decoding and feature extraction of the set-up (which peak
    higher than training on the CPU) and the other contender out of the figure.
    """
    with tempfile.TemporaryDirectory() as tmp:
        work_file = Path(tmp) / "work.pt"
        torch.save({"work": [vars(w) for w in work], "tokenizer": tokenizer.to_dict(), "cmvn": cmvn}, work_file)
        return {name: memory_child(args, name, work_file) for name in CONTENDERS}


def run_only(args: argparse.Namespace, cfg: TrainConfig) -> None:
    """Child mode: load the batches, two passes of one contender; print peak memory as JSON."""
    saved = torch.load(args.work_file, weights_only=True)
    work = to_device([Work(**w) for w in saved["work"]], args.device)
    tokenizer = tokenizer_from_dict(saved["tokenizer"])
    step = make_steps(cfg, [args.only], tokenizer, saved["cmvn"], args.device)[args.only]
    if args.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    before = peak_mib(args.device)
    for _ in range(2):
        timed_pass(step, work, args.device)
    print(json.dumps({"name": args.only, "before_mib": before, "peak_mib": peak_mib(args.device)}))


def time_interleaved(steps: dict, work: list[Work], repeats: int, device: str) -> dict[str, list[tuple]]:
    """One untimed warm-up pass per contender, then ``repeats`` rounds of one timed pass each."""
    for step in steps.values():
        timed_pass(step, work, device)
    times = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            times[name].append(timed_pass(step, work, device))
    return times


def median_ratio(a_seconds: list[float], b_seconds: list[float]) -> float:
    """Throughput ratio A/B: the median over repeats of B's time / A's time in the same repeat."""
    return statistics.median(b / a for a, b in zip(a_seconds, b_seconds))


def describe(cfg: TrainConfig, args: argparse.Namespace, work: list[Work]) -> str:
    """One header line: model, data and machine."""
    enc, sub = cfg.model.encoder, cfg.model.subsampling
    utts = sum(len(w.targets) for w in work)
    return (f"# {args.config}: {enc.cell} {enc.num_layers}x{enc.hidden_size} "
            f"{'bi' if enc.bidirectional else 'uni'}directional, {sub.kind} x{sub.factor}, dropout {enc.dropout}; "
            f"{len(work)} AN4 train batches (max_duration {cfg.data.max_duration:g} s), {utts} utterances, "
            f"{sum(w.audio_s for w in work):.1f} s of audio; features precomputed (excluded from both); "
            f"{args.repeats} interleaved repeats, {torch.get_num_threads()} threads, {args.device}, "
            f"torch {torch.__version__}, load average {os.getloadavg()[0]:.1f}")


def report(times: dict[str, list[tuple]], audio: float, memory: dict, device: str) -> None:
    """The table (wall-clock throughput, CPU seconds, memory) and the final ratio line."""
    unit = "peak CUDA MiB (start)" if device.startswith("cuda") else "peak RSS MiB (start)"
    print(f"{'contender':9} {'audio-s/s':>10} {'cpu-s/pass':>10} {unit:>22}  runs (audio-s/s)")
    for name, runs in times.items():
        wall = [w for w, _ in runs]
        mem = memory.get(name)
        mem_text = f"{mem['peak_mib']:.0f} ({mem['before_mib']:.0f})" if mem else "-"
        cpu = statistics.median(c for _, c in runs)
        print(f"{name:9} {audio / statistics.median(wall):10.1f} {cpu:10.1f} {mem_text:>22}  "
              f"{' '.join(f'{audio / w:.1f}' for w in wall)}")
    wall = {name: [w for w, _ in runs] for name, runs in times.items()}
    cpu = {name: [c for _, c in runs] for name, runs in times.items()}
    print(f"per-repeat wall ratios: {' '.join(f'{b / a:.2f}' for a, b in zip(wall['toolkit'], wall['bare']))}")
    print(f"same ratio from CPU time (less sensitive to other load): "
          f"{median_ratio(cpu['toolkit'], cpu['bare']):.2f}")
    print(f"ratio toolkit/bare = {median_ratio(wall['toolkit'], wall['bare']):.2f}")


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default=str(REPO / "conf" / "an4.yaml"))
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    parser.add_argument("--batches", type=int, default=8, help="training batches per pass")
    parser.add_argument("--repeats", type=int, default=5, help="timed passes per contender (median reported)")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch intra-op threads; 0 = the config's num_threads, else all cores")
    parser.add_argument("--data-dir", type=Path, default=default_data_dir(), help="the AN4 directory (etc/, wav/)")
    parser.add_argument("--memory", action=argparse.BooleanOptionalAction, default=True,
                        help="also measure peak memory of each contender in a child process")
    parser.add_argument("--only", choices=CONTENDERS, help=argparse.SUPPRESS)
    parser.add_argument("--work-file", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args()


def main() -> None:
    """Time both contenders interleaved, then measure their memory; print a table and the ratio."""
    args = parse_args()
    cfg = load_config(args.config)
    torch.set_num_threads(args.threads or cfg.num_threads or os.cpu_count() or 1)
    if args.only:
        run_only(args, cfg)
        return
    batches, tokenizer, _ = load_batches(cfg, args.data_dir, args.batches)
    work = prepare_work(batches, tokenizer, cfg.model.subsampling.factor, cfg.model.features.num_mels)
    cmvn = cmvn_stats(work)
    times = time_interleaved(make_steps(cfg, CONTENDERS, tokenizer, cmvn, args.device),
                             to_device(work, args.device), args.repeats, args.device)
    memory = measure_memory(args, work, tokenizer, cmvn) if args.memory else {}
    print(describe(cfg, args, work))
    report(times, sum(w.audio_s for w in work), memory, args.device)


if __name__ == "__main__":
    main()

"""Where the training step's time goes, and how close the encoder gets to the machine's sgemm rate.

On the first ``--batches`` AN4 training batches of the config's sampler (as train_throughput.py):

1. input pipeline: seconds of audio reading + log-mel per audio second (``FeatureBatcher``), and
   the padding that duration bucketing leaves (padded frames / real frames - 1);
2. a ``torch.profiler`` pass of the toolkit's step (``asr.training.loop._train_step``), self CPU time
   grouped into recurrent kernels, other matmuls, CTC, optimizer and the rest;
3. encoder FLOP/s: the multiply-adds of the recurrent layers and the output layer over the
   frames actually computed (padding included; 2 FLOPs per MAC forward, 4 backward), divided by
   the step's wall time, against the sgemm FLOP/s of ``torch.mm`` measured in the same run on
   (a) 2048x2048 matrices (the machine's practical peak) and (b) the recurrent matmul of one
   time step, (batch, H) x (H, gates*H), which is what a recurrence can at best run at;
4. the throughput ratio to a bare ``nn.LSTM`` + ``F.ctc_loss`` loop (train_throughput.py).

    python tools/bench/train_profile.py --batches 8 --repeats 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_throughput import (  # noqa: E402
    REPO, cmvn_stats, default_data_dir, load_batches, make_steps, median_ratio, prepare_work, time_interleaved,
    timed_pass,
)

from asr.config import TrainConfig, load_config  # noqa: E402

GATES = {"lstm": 4, "gru": 3, "rnn": 1}
CATEGORIES = (  # (name, substrings of profiler op names), first match wins
    ("recurrent kernels", ("lstm", "gru", "rnn_tanh", "mkldnn_rnn")),
    ("other matmuls", ("addmm", "aten::mm", "bmm", "matmul", "linear")),
    ("ctc loss", ("ctc",)),
    ("optimizer + clip", ("adam", "_foreach", "norm", "clip")),
)


def encoder_macs_per_frame(cfg: TrainConfig, vocab: int) -> int:
    """Multiply-adds per output frame of the recurrent stack (+ projections) and the output layer."""
    enc = cfg.model.encoder
    dirs = 2 if enc.bidirectional else 1
    in_dim = cfg.model.features.num_mels * cfg.model.subsampling.factor
    macs = 0
    for _ in range(enc.num_layers):
        macs += dirs * GATES[enc.cell] * enc.hidden_size * (in_dim + enc.hidden_size)
        in_dim = dirs * enc.hidden_size
        if enc.projection_size:
            macs += in_dim * enc.projection_size
            in_dim = enc.projection_size
    return macs + in_dim * vocab


def sgemm_flops(m: int, k: int, n: int, seconds: float = 1.0) -> float:
    """FLOP/s of ``torch.mm`` on (m, k) x (k, n) float32, timed for about ``seconds``."""
    a, b = torch.randn(m, k), torch.randn(k, n)
    torch.mm(a, b)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        torch.mm(a, b)
        count += 1
    return 2 * m * k * n * count / (time.perf_counter() - start)


def profile_categories(step, work) -> tuple[dict[str, float], list[tuple[str, float]]]:
    """Self CPU seconds per category and the ten most expensive ops, over one pass."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for w in work:
            step(w)
    per_op = [(e.key, e.self_cpu_time_total / 1e6) for e in prof.key_averages()]
    sums = defaultdict(float)
    for name, seconds in per_op:
        low = name.lower()
        category = next((c for c, keys in CATEGORIES if any(k in low for k in keys)), "everything else")
        sums[category] += seconds
    return dict(sums), sorted(per_op, key=lambda x: -x[1])[:10]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default=str(REPO / "conf" / "an4.yaml"))
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="0: all cores")
    parser.add_argument("--data-dir", type=Path, default=default_data_dir())
    args = parser.parse_args()
    cfg = load_config(args.config)
    torch.set_num_threads(args.threads or os.cpu_count() or 1)
    device = "cpu"

    batches, tokenizer, feature_seconds = load_batches(cfg, args.data_dir, args.batches)
    work = prepare_work(batches, tokenizer, cfg.model.subsampling.factor, cfg.model.features.num_mels)
    audio = sum(w.audio_s for w in work)
    feature_cost = feature_seconds / audio
    real = sum(int(w.stacked_lens.sum()) for w in work)
    padded = sum(w.stacked.size(0) * w.stacked.size(1) for w in work)
    steps = make_steps(cfg, ("toolkit", "bare"), tokenizer, cmvn_stats(work), device)
    times = time_interleaved(steps, work, args.repeats, device)
    toolkit_wall = statistics.median(w for w, _ in times["toolkit"])
    categories, top = profile_categories(steps["toolkit"], work)
    timed_pass(steps["toolkit"], work, device)  # the profiler's overhead stays out of the next figures

    enc = cfg.model.encoder
    batch_size = round(statistics.median(w.stacked.size(0) for w in work))
    peak = sgemm_flops(2048, 2048, 2048)
    recurrent = sgemm_flops(batch_size, enc.hidden_size, GATES[enc.cell] * enc.hidden_size)
    flops = 6 * encoder_macs_per_frame(cfg, len(tokenizer.units)) * padded
    achieved = flops / toolkit_wall

    print(f"# {args.config}: {enc.cell} {enc.num_layers}x{enc.hidden_size} "
          f"{'bi' if enc.bidirectional else 'uni'}; {len(work)} batches, {audio:.1f} s of audio, median batch "
          f"{batch_size} utterances; {torch.get_num_threads()} threads; torch {torch.__version__}; "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"input pipeline: audio + log-mel {1e3 * feature_cost:.1f} ms per audio second "
          f"({100 * feature_cost * audio / toolkit_wall:.1f}% of the step time if done in the loop); "
          f"bucketing padding {100 * (padded / real - 1):.1f}% extra frames")
    total = sum(categories.values())
    print("step profile (self CPU time): " + ", ".join(
        f"{name} {100 * seconds / total:.0f}%" for name, seconds in sorted(categories.items(), key=lambda x: -x[1])))
    print("top ops: " + ", ".join(f"{name} {seconds:.2f}s" for name, seconds in top))
    print(f"sgemm 2048^3: {peak / 1e9:.1f} GFLOP/s; recurrent-step sgemm ({batch_size}x{enc.hidden_size} . "
          f"{enc.hidden_size}x{GATES[enc.cell] * enc.hidden_size}): {recurrent / 1e9:.1f} GFLOP/s")
    print(f"encoder training FLOP/s: {achieved / 1e9:.1f} GFLOP/s = {100 * achieved / peak:.0f}% of sgemm peak, "
          f"{100 * achieved / recurrent:.0f}% of the recurrent-step sgemm")
    print(f"throughput: toolkit {audio / toolkit_wall:.1f} audio-s/s; "
          f"ratio toolkit/bare = {median_ratio([w for w, _ in times['toolkit']], [w for w, _ in times['bare']]):.2f}")


if __name__ == "__main__":
    main()

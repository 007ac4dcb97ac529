"""Packed vs padded bidirectional recurrent stacks: speed of forward+backward, and correctness.

For each cell (lstm, gru, rnn) and one batch of real-length utterances (AN4-like: 2-6 s, i.e.
about 70-200 frames after x3 stacking, 240-dim input), three implementations of the same
3 x 256 bidirectional stack are timed on the same input:

  padded  nn.LSTM/GRU/RNN(bidirectional=True, num_layers=3) on the padded batch.
          Fast, but WRONG: the backward direction starts at the end of the padded batch.
  packed  the same module on ``pack_padded_sequence`` input. Correct.
  asr     ``asr.model.encoder.RecurrentEncoder``: one single-layer module per direction on padded
          input, the backward one fed ``reverse_padded`` input. Correct.

Each time is one forward + ``sum().backward()`` (gradient zeroing outside the timer); the
paths are interleaved (padded, packed, asr, padded, ...) and the median is reported, with its
ratio to the packed path measured in the same run. Correctness is the largest
``|output of utterance i alone - output of utterance i inside the padded batch|`` over the
batch: about 1e-6 for a correct path, order 0.1-1 for one that reads padding.

    python tools/bench/encoder_paths.py --repeats 5
    python tools/bench/encoder_paths.py --device cuda --repeats 50
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from asr.config import EncoderConfig
from asr.model.encoder import CELLS, RecurrentEncoder

PATHS = ("padded", "packed", "asr")


class BuiltinStack(nn.Module):
    """``nn.LSTM/GRU/RNN(bidirectional=True, num_layers=L)`` on padded or packed input."""

    def __init__(self, cell: str, input_dim: int, hidden: int, layers: int, packed: bool):
        super().__init__()
        self.rnn = CELLS[cell](input_dim, hidden, num_layers=layers, batch_first=True, bidirectional=True)
        self.packed = packed

    def forward(self, x: Tensor, lens: Tensor) -> Tensor:
        """x (B, T, D), lens (B,) -> (B, T, 2H); packed output is zero past ``lens``."""
        if not self.packed:
            return self.rnn(x)[0]
        packed = pack_padded_sequence(x, lens.cpu(), batch_first=True, enforce_sorted=False)
        out, _ = self.rnn(packed)
        return pad_packed_sequence(out, batch_first=True, total_length=x.size(1))[0]


class ToolkitStack(nn.Module):
    """``asr.model.encoder.RecurrentEncoder`` with the same shape, no dropout, no projection."""

    def __init__(self, cell: str, input_dim: int, hidden: int, layers: int):
        super().__init__()
        cfg = EncoderConfig(cell=cell, num_layers=layers, hidden_size=hidden, bidirectional=True,
                            projection_size=0, dropout=0.0)
        self.encoder = RecurrentEncoder(cfg, input_dim)

    def forward(self, x: Tensor, lens: Tensor) -> Tensor:
        """x (B, T, D), lens (B,) -> (B, T, 2H), zero past ``lens``."""
        return self.encoder(x, lens)[0]


def build_paths(cell: str, input_dim: int, hidden: int, layers: int, device: str) -> dict[str, nn.Module]:
    """The three implementations of one cell, on ``device``, in training mode."""
    paths = {
        "padded": BuiltinStack(cell, input_dim, hidden, layers, packed=False),
        "packed": BuiltinStack(cell, input_dim, hidden, layers, packed=True),
        "asr": ToolkitStack(cell, input_dim, hidden, layers),
    }
    return {name: module.to(device).train() for name, module in paths.items()}


def synchronize(device: str) -> None:
    """Wait for queued GPU work so that host timers measure it."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def fwd_bwd_ms(module: nn.Module, x: Tensor, lens: Tensor, device: str) -> float:
    """Milliseconds for one forward and ``sum().backward()``; gradients are cleared first, untimed."""
    module.zero_grad(set_to_none=True)
    synchronize(device)
    start = time.perf_counter()
    module(x, lens).sum().backward()
    synchronize(device)
    return 1000.0 * (time.perf_counter() - start)


@torch.no_grad()
def alone_vs_batch(module: nn.Module, x: Tensor, lens: Tensor) -> float:
    """Largest |output of utterance i run alone - its rows in the padded batch output| over i."""
    module.eval()
    batch_out = module(x, lens)
    worst = 0.0
    for i, n in enumerate(lens.tolist()):
        alone = module(x[i : i + 1, :n], lens[i : i + 1])
        worst = max(worst, float((alone[0] - batch_out[i, :n]).abs().max()))
    module.train()
    return worst


def random_batch(batch: int, min_frames: int, max_frames: int, dim: int, device: str) -> tuple[Tensor, Tensor]:
    """x (B, T, dim) standard normal, zero padded; lens (B,) uniform in [min, max], one at max."""
    lens = torch.randint(min_frames, max_frames + 1, (batch,))
    lens[0] = max_frames
    x = torch.randn(batch, max_frames, dim)
    x.masked_fill_(torch.arange(max_frames)[None, :, None] >= lens[:, None, None], 0.0)
    return x.to(device), lens.to(device)


def bench_cell(cell: str, x: Tensor, lens: Tensor, args: argparse.Namespace) -> list[tuple]:
    """Rows (cell, path, median ms, ratio to packed, max |alone - batch|) for one cell."""
    torch.manual_seed(0)
    paths = build_paths(cell, x.size(-1), args.hidden, args.layers, args.device)
    times: dict[str, list[float]] = {name: [] for name in paths}
    for module in paths.values():
        fwd_bwd_ms(module, x, lens, args.device)  # warm-up: kernel selection, allocator
    for _ in range(args.repeats):
        for name, module in paths.items():
            times[name].append(fwd_bwd_ms(module, x, lens, args.device))
    medians = {name: statistics.median(t) for name, t in times.items()}
    return [(cell, name, medians[name], medians[name] / medians["packed"], alone_vs_batch(module, x, lens))
            for name, module in paths.items()]


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    parser.add_argument("--repeats", type=int, default=10, help="timed fwd+bwd per path (median reported)")
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads; 0 = torch default")
    parser.add_argument("--cells", nargs="+", default=list(CELLS), choices=list(CELLS))
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--min-frames", type=int, default=70, help="2 s at 100 frames/s after x3 stacking")
    parser.add_argument("--max-frames", type=int, default=200, help="6 s at 100 frames/s after x3 stacking")
    parser.add_argument("--input-dim", type=int, default=240, help="80 mels x 3 stacked frames")
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def main() -> None:
    """Time and check every path for every cell; print one table."""
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    x, lens = random_batch(args.batch, args.min_frames, args.max_frames, args.input_dim, args.device)
    print(f"# batch {args.batch}, frames {int(lens.min())}-{int(lens.max())} "
          f"(padding {1 - float(lens.sum()) / lens.numel() / x.size(1):.0%}), input {args.input_dim}, "
          f"{args.layers}x{args.hidden} bidirectional, {args.repeats} interleaved repeats, "
          f"{torch.get_num_threads()} threads, {args.device}, torch {torch.__version__}")
    print(f"{'cell':5} {'path':7} {'ms fwd+bwd':>11} {'/ packed':>9} {'max |alone-batch|':>18}")
    for cell in args.cells:
        for row in bench_cell(cell, x, lens, args):
            print("{:5} {:7} {:11.1f} {:9.2f} {:18.1e}".format(*row))


if __name__ == "__main__":
    main()

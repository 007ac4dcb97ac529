"""Stacked recurrent encoders (LSTM, GRU, vanilla tanh RNN): bidirectional, unidirectional, latency-controlled.

Each direction is its own single-layer cuDNN/oneDNN module fed *padded* input, which takes
the fused kernels (packed sequences do not on CPU). The backward direction reads every
utterance reversed within its own length (``reverse_padded``), so it starts at the last
real frame and never sees padding: an utterance's output does not depend on the batch.
On CUDA a bidirectional layer instead runs both directions in one cuDNN call on packed input
with the same two modules' weights (``use_packed``; the same outputs, the same state dict).

Under bf16/fp16 autocast the layers run in the autocast dtype with explicit casts, outside
autocast (``RecurrentEncoder.forward``): CUDA autocast would run cuDNN RNNs in fp16 even for bf16.

Three ways to run, all from ``EncoderConfig``:

* full-utterance bidirectional (``bidirectional=True, chunk_frames=0``): cannot stream.
* unidirectional (``bidirectional=False``), optionally with ``lookahead_frames`` La: input frame
  t of the first layer is frames t..t+La of the encoder input stacked (zeros past the end).
* latency-controlled bidirectional (LC-BLSTM, ``chunk_frames`` Nc > 0, ``right_context`` Nr),
  as in Kaldi / Zhang et al. 2016: the input is cut into chunks of Nc frames; chunk c's *window*
  is frames [c*Nc, c*Nc + Nc + Nr). Every layer runs on every window: its forward direction
  starts from the state it had after chunk c-1's Nc centre frames and runs on through the Nr
  right-context frames (that state is not carried); its backward direction starts from zero
  at the window's last frame. The next layer reads the window's outputs, right context
  included, so the right context costs Nr frames once, not once per layer. Only the centre
  frames' outputs leave the encoder. Training runs exactly this (per layer: one forward call
  per chunk on (B, Nc, D) for the carried state, one on (B * C, Nr, D) for all right contexts,
  one backward call on (B * C, Nc + Nr, D)), and so does ``EncoderStream``.

Algorithmic look-ahead, in encoder-input frames beyond a frame: La for unidirectional models;
La + Nc - 1 + Nr for LC-BLSTM (the first frame of a chunk waits for the rest of its chunk and
the right context). ``EncoderStream`` runs a model incrementally with exactly these waits.
"""

from __future__ import annotations

import contextlib
import warnings
from functools import partial
from typing import Optional

import torch
from torch import Tensor, _VF, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from ..config import EncoderConfig
from ..masks import make_pad_mask

__all__ = ["CELLS", "use_packed", "reverse_padded", "stack_lookahead", "RecurrentLayer", "LSTMLayer", "build_layer",
           "Dropout", "RecurrentEncoder", "EncoderStream", "build_encoder"]

CELLS = {
    "lstm": nn.LSTM,
    "gru": nn.GRU,
    "rnn": partial(nn.RNN, nonlinearity="tanh"),
}


# One bidirectional single-layer call on packed input, per cell (the LSTM's takes an (h, c) pair: _VF.lstm).
_PACKED_CALLS = {"gru": _VF.gru, "rnn": _VF.rnn_tanh}


def use_packed(x: Tensor, force: Optional[bool]) -> bool:
    """The one place that picks a bidirectional layer's path: ``force`` when set, else packed on CUDA.

    On CUDA cuDNN runs both directions of one packed call concurrently; on the CPU the fused oneDNN
    LSTM takes only padded input (packed was ~2.5x slower there, MEASURED.md).
    """
    return x.is_cuda if force is None else force


@contextlib.contextmanager
def _quiet_weight_copy():
    """Silence cuDNN's warning for weights outside one flat buffer (two modules' weights, or cast
    copies): it copies them into one per call, which is the intent here, and its advice
    (``flatten_parameters()``) does not apply."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="RNN module weights are not part of single contiguous chunk")
        yield


def reverse_padded(x: Tensor, lens: Tensor) -> Tensor:
    """Reverse the first ``lens[b]`` frames of every sequence; padding stays where it is.

    Applying it twice is the identity.

    Args:
        x (Tensor): (B, T, D).
        lens (Tensor): (B,) int64.
    """
    batch, frames, dim = x.shape
    steps = torch.arange(frames, device=x.device)[None, :]  # (1, T)
    index = lens.to(x.device)[:, None] - 1 - steps  # (B, T)
    index = torch.where(index >= 0, index, steps)
    rows = index + frames * torch.arange(batch, device=x.device)[:, None]  # (B, T) rows of (B*T, D)
    # Row selection: about 3x faster than a 3-D gather, forward and backward, on CPU.
    return x.reshape(batch * frames, dim).index_select(0, rows.reshape(-1)).reshape(batch, frames, dim)


def stack_lookahead(x: Tensor, lens: Tensor, frames: int) -> Tensor:
    """Stack every frame with the ``frames`` frames after it; frames past ``lens`` read as zeros.

    Args:
        x (Tensor): (B, T, D).
        lens (Tensor): (B,) int64 valid frames.
        frames: look-ahead La.

    Returns:
        Tensor: (B, T, (La + 1) * D), ``out[b, t] = cat(x[b, t], ..., x[b, t + La])``.
    """
    if frames == 0:
        return x
    x = x.masked_fill(make_pad_mask(lens, x.size(1))[..., None], 0.0)
    padded = torch.nn.functional.pad(x, (0, 0, 0, frames))  # (B, T + La, D)
    return torch.cat([padded[:, i : i + x.size(1)] for i in range(frames + 1)], dim=-1)  # (B, T, (La+1)*D)


def _stack_states(states: list[Tensor], batch: int) -> Tensor:
    """Per-chunk forward states (S, 1, B, H) x C -> (S, 1, B * C, H), rows in (b, c) order."""
    stacked = torch.stack(states, dim=3)  # (S, 1, B, C, H)
    return stacked.reshape(stacked.size(0), 1, batch * len(states), stacked.size(-1))


class RecurrentLayer(nn.Module):
    """One layer: a forward module and, if bidirectional, a backward one on reversed input."""

    __constants__ = ["state_rows"]
    state_rows = 1  # rows S of a forward state (S, 1, B, H)

    def __init__(self, cell: str, input_size: int, hidden_size: int, bidirectional: bool):
        super().__init__()
        if (cell == "lstm") != (self.state_rows == 2):
            raise ValueError(f"{type(self).__name__} cannot hold {cell!r} cells: build layers with build_layer")
        make = CELLS[cell]
        self.cell = cell
        self.fwd = make(input_size, hidden_size, batch_first=True)
        self.bwd = make(input_size, hidden_size, batch_first=True) if bidirectional else None
        self.output_dim = hidden_size * (2 if bidirectional else 1)
        self.packed: Optional[bool] = None  # None: use_packed decides (packed on CUDA); True/False force a path

    def forward(self, x: Tensor, lens: Tensor) -> Tensor:
        """x (B, T, D) -> (B, T, H) or (B, T, 2H); frames past ``lens`` are unspecified."""
        if self.bwd is None:
            return self.fwd(x)[0]
        if not torch.jit.is_scripting() and use_packed(x, self.packed):
            return self._forward_packed(x, lens)
        out, _ = self.fwd(x)
        back, _ = self.bwd(reverse_padded(x, lens))
        return torch.cat([out, reverse_padded(back, lens)], dim=-1)  # (B, T, 2H)

    @torch.jit.unused
    def _forward_packed(self, x, lens):
        # type: (Tensor, Tensor) -> Tensor
        """``forward`` as one bidirectional call on packed input with ``fwd``'s and ``bwd``'s weights.

        The packed backward direction starts at each utterance's last real frame, as the
        reversed one does. Frames past ``lens`` come out zero.
        """
        lens = lens.detach().cpu().clamp(min=1)  # packing refuses empty sequences; their frames are masked anyway
        packed = pack_padded_sequence(x, lens, batch_first=True, enforce_sorted=False)
        weights = [getattr(rnn, name) for rnn in (self.fwd, self.bwd) for name in rnn._flat_weights_names]
        h0 = x.new_zeros(2, x.size(0), self.fwd.hidden_size)  # (directions, B, H)
        with _quiet_weight_copy():
            if self.cell == "lstm":
                data = _VF.lstm(packed.data, packed.batch_sizes, (h0, h0), weights, True, 1, 0.0, self.training,
                                True)[0]
            else:
                data = _PACKED_CALLS[self.cell](packed.data, packed.batch_sizes, h0, weights, True, 1, 0.0,
                                                self.training, True)[0]
        out = PackedSequence(data, packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices)
        return pad_packed_sequence(out, batch_first=True, total_length=x.size(1))[0]  # (B, T, 2H)

    def forward_step(self, x: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        """The forward direction from ``state`` on: x (B, N, D), state (S, 1, B, H) -> (B, N, H), state after.

        A state is one tensor whatever the cell (TorchScript needs one type): S = 1 here, 2 for an LSTM (h, c).
        """
        out, h = self.fwd(x, state[0])
        return out, h[None]

    def zero_state(self, batch: int, like: Tensor) -> Tensor:
        """(S, 1, B, H) zeros of ``like``'s dtype and device: the state a sequence starts from."""
        return like.new_zeros(self.state_rows, 1, batch, self.fwd.hidden_size)

    def forward_windows(self, win: Tensor, win_lens: Tensor, chunk: int,
                        state: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        """Latency-controlled pass over chunk windows (see the module docstring).

        Args:
            win (Tensor): (B, C, W, D), window c of utterance b holds frames [c*Nc, c*Nc + W).
            win_lens (Tensor): (B, C) int64 valid frames of each window (0 past the utterance).
            chunk: Nc, the centre frames of a window.
            state: forward state (S, 1, B, H) before chunk 0 (None: zeros).

        Returns:
            (out (B, C, W, H'), state after the last chunk's centre frames).
        """
        batch, chunks, width, dim = win.shape
        state = self.zero_state(batch, win) if state is None else state
        centres: list[Tensor] = []
        states: list[Tensor] = []
        for c in range(chunks):  # the carried state is sequential in c
            out, state = self.forward_step(win[:, c, :chunk], state)  # (B, Nc, H)
            centres.append(out)
            states.append(state)
        fwd = torch.stack(centres, dim=1)  # (B, C, Nc, H)
        if width > chunk:  # right context: each window continues from its own chunk's state
            right = win[:, :, chunk:].reshape(batch * chunks, width - chunk, dim)  # (B*C, Nr, D)
            right_out, _ = self.forward_step(right, _stack_states(states, batch))
            fwd = torch.cat([fwd, right_out.reshape(batch, chunks, width - chunk, -1)], dim=2)  # (B, C, W, H)
        if self.bwd is None:
            return fwd, state
        flat = win.reshape(batch * chunks, width, dim)  # (B*C, W, D)
        lens = win_lens.reshape(-1)
        rows = lens.nonzero().squeeze(1)  # windows past an utterance's end are skipped
        back, _ = self.bwd(reverse_padded(flat.index_select(0, rows), lens[rows]))
        back = reverse_padded(back, lens[rows])  # (R, W, H)
        back = back.new_zeros(batch * chunks, width, back.size(-1)).index_copy(0, rows, back)
        return torch.cat([fwd, back.reshape(batch, chunks, width, -1)], dim=-1), state  # (B, C, W, 2H)


class LSTMLayer(RecurrentLayer):
    """A ``RecurrentLayer`` of LSTMs, whose state is a pair (h, c): stacked as S = 2 rows of one tensor."""

    state_rows = 2

    def forward_step(self, x: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        out, (h, c) = self.fwd(x, (state[0], state[1]))
        return out, torch.stack([h, c])


def build_layer(cell: str, input_size: int, hidden_size: int, bidirectional: bool) -> RecurrentLayer:
    """A ``RecurrentLayer`` of ``cell`` (an ``LSTMLayer`` for LSTMs)."""
    if cell not in CELLS:
        raise ValueError(f"encoder.cell: expected one of {sorted(CELLS)}, got {cell!r}")
    return (LSTMLayer if cell == "lstm" else RecurrentLayer)(cell, input_size, hidden_size, bidirectional)


class Dropout(nn.Module):
    """Inverted dropout, as ``nn.Dropout``, with the mask drawn by ``rand_like``.

    On the CPU ``nn.Dropout``'s ``bernoulli_`` took 5% of an AN4 training step; a uniform draw
    and a comparison do the same job in about 60% of the time (``tools/bench/train_profile.py``).
    """

    def __init__(self, p: float):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout: expected 0 <= p < 1, got {p}")
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = (torch.rand_like(x) >= self.p).to(x.dtype).mul_(1.0 / (1.0 - self.p))  # (B, T, D)
        return x * keep


class RecurrentEncoder(nn.Module):
    """``num_layers`` recurrent layers, each followed by dropout and an optional projection."""

    __jit_unused_properties__ = ["streamable"]
    __constants__ = ["lookahead", "chunk_frames", "right_context"]

    def __init__(self, cfg: EncoderConfig, input_dim: int):
        super().__init__()
        if cfg.num_layers < 1:
            raise ValueError(f"encoder.num_layers: expected >= 1, got {cfg.num_layers}")
        _check_streaming_fields(cfg)
        self.lookahead = cfg.lookahead_frames
        self.chunk_frames = cfg.chunk_frames
        self.right_context = cfg.right_context
        self.layers = nn.ModuleList()
        self.projections = nn.ModuleList()
        dim = input_dim * (cfg.lookahead_frames + 1)
        for _ in range(cfg.num_layers):
            layer = build_layer(cfg.cell, dim, cfg.hidden_size, cfg.bidirectional)
            self.layers.append(layer)
            dim = layer.output_dim
            if cfg.projection_size > 0:
                self.projections.append(nn.Linear(dim, cfg.projection_size))
                dim = cfg.projection_size
            else:
                self.projections.append(nn.Identity())
        self.dropout = Dropout(cfg.dropout)
        self.output_dim = dim

    def forward(self, x: Tensor, lens: Tensor) -> tuple[Tensor, Tensor]:
        """x (B, T, D), lens (B,) -> enc_out (B, T, output_dim) with padding zeroed, lens.

        Under bf16/fp16 autocast the output is in that dtype (see ``_forward_cast``).
        """
        if not torch.jit.is_scripting() and self._under_autocast(x):
            return self._forward_cast(x, lens)
        x = stack_lookahead(x, lens, self.lookahead)  # (B, T, (La+1)*D)
        if self.chunk_frames > 0:
            x = self._forward_chunked(x, lens)
        else:
            for layer, proj in zip(self.layers, self.projections):
                x = proj(self.dropout(layer(x, lens)))
        return x.masked_fill(make_pad_mask(lens, x.size(1))[..., None], 0.0), lens

    @torch.jit.unused
    def _under_autocast(self, x):
        # type: (Tensor) -> bool
        # (type comments: TorchScript cannot read an unused stub's string annotations)
        return _autocast_dtype(x) is not None

    @torch.jit.unused
    def _forward_cast(self, x, lens):
        # type: (Tensor, Tensor) -> Tuple[Tensor, Tensor]
        """``forward`` with autocast off, the input and every weight cast to the autocast dtype.

        Why: CUDA autocast hands cuDNN RNNs to a wrapper (``_cudnn_rnn_cast_reflatten``, still in
        torch 2.14) that casts input, state and weights to fp16 whatever the autocast dtype, so
        "bf16" would train the LSTMs in fp16 with no loss scaler. Casting explicitly outside
        autocast makes bf16 mean bf16 (cuDNN runs bf16 RNNs on sm80+) and is what autocast does
        for fp16; the cast copies pass their gradients to the fp32 weights. The same path runs on
        the CPU, where autocast would leave GRUs in fp32. Cost: one cast copy of the weights per step.
        """
        dtype = _autocast_dtype(x)
        weights = {name: p.to(dtype) for name, p in self.named_parameters()}
        with torch.autocast(x.device.type, enabled=False), _quiet_weight_copy():
            return torch.func.functional_call(self, weights, (x.to(dtype), lens))

    @property
    def streamable(self) -> bool:
        """False for a full-utterance bidirectional encoder, which needs the whole input first."""
        return self.chunk_frames > 0 or all(layer.bwd is None for layer in self.layers)

    def forward_windows(self, win: Tensor, win_lens: Tensor,
                        states: Optional[list[Tensor]] = None) -> tuple[Tensor, list[Tensor]]:
        """All layers over chunk windows: (B, C, W, D), (B, C) -> (B, C, W, H), per-layer states after."""
        new_states: list[Tensor] = []
        for i, (layer, proj) in enumerate(zip(self.layers, self.projections)):
            state = None if states is None else states[i]
            win, state = layer.forward_windows(win, win_lens, self.chunk_frames, state)
            win = proj(self.dropout(win))
            new_states.append(state)
        return win, new_states

    def _forward_chunked(self, x: Tensor, lens: Tensor) -> Tensor:
        """(B, T, D) -> (B, T, H) through windows of Nc + Nr frames (the LC-BLSTM)."""
        batch, frames, dim = x.shape
        nc, width = self.chunk_frames, self.chunk_frames + self.right_context
        chunks = (frames + nc - 1) // nc
        padded = torch.nn.functional.pad(x, (0, 0, 0, chunks * nc + self.right_context - frames))
        starts = torch.arange(chunks, device=lens.device) * nc  # (C,)
        # a gather rather than ``unfold``, which ONNX export cannot take with a dynamic time axis
        index = starts[:, None] + torch.arange(width, device=lens.device)[None, :]  # (C, W)
        win = padded.index_select(1, index.reshape(-1)).reshape(batch, chunks, width, dim)  # (B, C, W, D)
        win_lens = (lens[:, None] - starts).clamp(0, width)  # (B, C)
        out, _ = self.forward_windows(win, win_lens)
        return out[:, :, :nc].reshape(batch, chunks * nc, -1)[:, :frames]  # (B, C, Nc, H) -> (B, T, H)


def _autocast_dtype(x: Tensor) -> Optional[torch.dtype]:
    """The autocast dtype for ``x``'s device when autocast is on there, else None."""
    device = x.device.type
    if device not in ("cpu", "cuda") or not torch.is_autocast_enabled(device):
        return None
    return torch.get_autocast_dtype(device)


def _check_streaming_fields(cfg: EncoderConfig) -> None:
    for name in ("lookahead_frames", "chunk_frames", "right_context"):
        if getattr(cfg, name) < 0:
            raise ValueError(f"encoder.{name}: expected >= 0, got {getattr(cfg, name)}")
    if cfg.chunk_frames > 0 and not cfg.bidirectional:
        raise ValueError("encoder.chunk_frames: latency control is for bidirectional encoders (bidirectional=true); "
                         "a unidirectional one streams as it is (use lookahead_frames for right context)")
    if cfg.right_context > 0 and cfg.chunk_frames == 0:
        raise ValueError(f"encoder.right_context: {cfg.right_context} needs encoder.chunk_frames > 0")


class EncoderStream:
    """Runs a streamable ``RecurrentEncoder`` incrementally on one stream; outputs equal ``forward``'s.

    Feed encoder-input frames as they come (``step``); each output frame comes out as soon as
    everything it depends on has arrived: after La more frames (unidirectional) or once its
    chunk's window of Nc + Nr frames is complete (LC-BLSTM). ``step(..., final=True)`` flushes
    the rest as ``forward`` treats the end of an utterance. Holds at most La + Nc + Nr input
    frames and one recurrent state per layer. One object per stream; the encoder is only read.

    ``step_batch`` steps several streams of one encoder at once: the streams whose new input
    has the same shape (unidirectional: N frames; LC-BLSTM: C windows) run as one batched
    forward, their recurrent states stacked along the batch. ``step`` is a batch of one.
    """

    def __init__(self, encoder: RecurrentEncoder):
        if not encoder.streamable:
            raise ValueError("a full-utterance bidirectional encoder cannot stream: train a unidirectional "
                             "(encoder.bidirectional=false) or latency-controlled (encoder.chunk_frames > 0) model")
        self.encoder = encoder
        self.raw: Tensor | None = None  # (1, n, D) input frames kept for the look-ahead
        self.raw_start = 0  # stream index of raw[0]
        self.pending: Tensor | None = None  # (1, n, (La+1)*D) stacked frames waiting for their window (LC)
        # zeros, as the encoder starts from; explicit so that streams at their start batch with others
        # on the model's device and dtype; an int8 encoder (all weights packed) runs in float32 on the CPU
        like = next(encoder.parameters(), torch.zeros(()))
        self.states: list[Tensor] = [layer.zero_state(1, like) for layer in encoder.layers]

    @staticmethod
    def _cat(old: Tensor | None, new: Tensor) -> Tensor:
        return new if old is None else torch.cat([old, new], dim=1)

    def _stacked(self, x: Tensor, final: bool) -> Tensor:
        """New input frames -> the stacked frames whose look-ahead is complete."""
        la = self.encoder.lookahead
        if la == 0:
            return x
        raw = self._cat(self.raw, x)  # (1, n, D)
        ready = raw.size(1) if final else max(raw.size(1) - la, 0)
        lens = torch.tensor([raw.size(1)])
        out = stack_lookahead(raw, lens, la)[:, :ready]  # zeros past the end only when final
        self.raw = raw[:, ready:]
        return out

    def _ready(self, x: Tensor, final: bool) -> tuple[Tensor, Tensor | None, int] | None:
        """New input frames -> the encoder work now possible, or None.

        Returns:
            unidirectional: (frames (N, D'), None, N);
            LC-BLSTM: (windows (C, W, D'), win_lens (C,) int64, output frames to give out).
        """
        enc = self.encoder
        x = self._stacked(x, final)
        if enc.chunk_frames == 0:
            return (x[0], None, x.size(1)) if x.size(1) else None
        nc, width = enc.chunk_frames, enc.chunk_frames + enc.right_context
        pending = self._cat(self.pending, x)
        frames = pending.size(1)
        chunks = -(-frames // nc) if final else (max(frames - width, -nc) // nc + 1)
        if chunks == 0:
            self.pending = pending
            return None
        padded = torch.nn.functional.pad(pending, (0, 0, 0, max(chunks * nc + enc.right_context - frames, 0)))
        win = padded[0, : chunks * nc + enc.right_context].unfold(0, width, nc).transpose(1, 2)  # (C, W, D')
        win_lens = (frames - torch.arange(chunks) * nc).clamp(0, width)  # (C,)
        self.pending = pending[:, chunks * nc :]
        return win, win_lens, min(chunks * nc, frames)

    @torch.no_grad()
    def step(self, x: Tensor, final: bool = False) -> Tensor:
        """x (1, N, D) new encoder-input frames -> (1, N', H) new output frames (N' may be 0)."""
        return EncoderStream.step_batch([self], [x], [final])[0]

    @staticmethod
    @torch.no_grad()
    def step_batch(streams: list[EncoderStream], xs: list[Tensor], finals: list[bool]) -> list[Tensor]:
        """``step`` of several streams of one encoder, equal to stepping each alone (float rounding aside).

        Args:
            streams: distinct streams of the same encoder.
            xs: their new encoder-input frames, (1, N_i, D) each (any N_i).
            finals: their ``final`` flags.

        Returns:
            Each stream's new output frames, (1, N'_i, H). Cost: one forward per group of equal
            input shape (unidirectional: N_i frames; LC-BLSTM: C_i windows of Nc + Nr frames).
        """
        if not streams:
            return []
        enc = streams[0].encoder
        if any(s.encoder is not enc for s in streams) or len({id(s) for s in streams}) < len(streams):
            raise ValueError("step_batch: expected distinct streams of one encoder")
        outs = [xs[0].new_zeros(1, 0, enc.output_dim)] * len(streams)
        groups: dict[tuple, list[tuple[int, tuple]]] = {}
        for i, (stream, x, final) in enumerate(zip(streams, xs, finals)):
            work = stream._ready(x, final)
            if work is not None:
                groups.setdefault(tuple(work[0].shape), []).append((i, work))
        for items in groups.values():
            members = [streams[i] for i, _ in items]
            inputs = torch.stack([work[0] for _, work in items])  # (B, N, D') or (B, C, W, D')
            # per-stream (S, 1, 1, H) states -> (S, 1, B, H), stream order
            states = [_stack_states([m.states[layer] for m in members], 1) for layer in range(len(enc.layers))]
            out, states = _run_encoder(enc, inputs, [work[1] for _, work in items], states)  # (B, N'', H)
            for b, ((i, work), member) in enumerate(zip(items, members)):
                member.states = [_select_state(state, b) for state in states]
                outs[i] = out[b : b + 1, : work[2]]
        return outs


def _select_state(state: Tensor, b: int) -> Tensor:
    """Row ``b`` of a batched state (S, 1, B, H): (S, 1, 1, H), a copy that does not hold the batch."""
    return state if state.size(2) == 1 else state[:, :, b : b + 1].clone()


def _run_encoder(enc: RecurrentEncoder, inputs: Tensor, win_lens: list, states: list) -> tuple[Tensor, list]:
    """One batched streaming forward: (B, N, D') frames or (B, C, W, D') windows -> (B, N or C * Nc, H), states."""
    if enc.chunk_frames == 0:
        x = inputs
        for i, (layer, proj) in enumerate(zip(enc.layers, enc.projections)):
            out, states[i] = layer.forward_step(x, states[i])
            x = proj(out)
        return x, states
    batch, chunks = inputs.shape[:2]
    out, states = enc.forward_windows(inputs, torch.stack(win_lens), states)  # (B, C, W, H)
    return out[:, :, : enc.chunk_frames].reshape(batch, chunks * enc.chunk_frames, -1), states  # (B, C*Nc, H)


def build_encoder(cfg: EncoderConfig, input_dim: int) -> RecurrentEncoder:
    """The encoder registry: ``cfg.cell`` picks LSTM, GRU or RNN."""
    return RecurrentEncoder(cfg, input_dim)

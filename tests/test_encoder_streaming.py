"""Streamable encoders: look-ahead unidirectional and latency-controlled bidirectional (LC-BLSTM).

Parametrized over cells x modes x subsampling; every mode is checked for batch-padding
independence, for the exact look-ahead it claims, and for incremental == whole-input outputs.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch

from asr.config import EncoderConfig, ModelConfig, SubsamplingConfig
from asr.model.ctc import CTCModel
from asr.model.encoder import EncoderStream, build_encoder
from asr.model.subsampling import SubsamplingStream, build_subsampling
from helpers import subsampling

CELLS = ["lstm", "gru", "rnn"]
# name -> EncoderConfig fields; Nc and Nr in encoder-input frames
MODES = {
    "uni": dict(bidirectional=False),
    "uni-la2": dict(bidirectional=False, lookahead_frames=2),
    "lc4r2": dict(chunk_frames=4, right_context=2),
    "lc3r0": dict(chunk_frames=3),
    "lc2r5-la1": dict(chunk_frames=2, right_context=5, lookahead_frames=1),
}
SUBSAMPLING = [("stack", 1), ("stack", 3), ("conv", 2), ("conv", 4), ("conv2d", 3)]


def _encoder(cell: str, mode: str, projection: int = 0, layers: int = 2):
    cfg = EncoderConfig(cell=cell, num_layers=layers, hidden_size=12, projection_size=projection, dropout=0.1,
                        **MODES[mode])
    return build_encoder(cfg, input_dim=5)


def _lookahead(mode: str) -> int:
    """Frames beyond frame t that its output may read: La (+ Nc - 1 + Nr for LC at a chunk's first frame)."""
    fields = MODES[mode]
    la = fields.get("lookahead_frames", 0)
    if fields.get("chunk_frames", 0):
        return la + fields["chunk_frames"] - 1 + fields.get("right_context", 0)
    return la


@pytest.mark.parametrize("kind,factor", SUBSAMPLING)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("cell", CELLS)
def test_model_shapes_gradients_and_batch_independence(cell, mode, kind, factor):
    torch.manual_seed(0)
    cfg = ModelConfig(subsampling=SubsamplingConfig(kind=kind, factor=factor, conv_channels=16),
                      encoder=EncoderConfig(cell=cell, num_layers=2, hidden_size=12, projection_size=10,
                                            **MODES[mode]))
    model = CTCModel(cfg, vocab_size=7).train()
    lens = torch.tensor([31, 17, 1, 40])  # odd T, heavy padding, a one-frame utterance
    feats = torch.randn(4, 40, 80)
    log_probs, out_lens = model(feats, lens)
    assert out_lens.tolist() == (lens // factor).tolist()
    assert log_probs.shape == (4, 40 // factor, 7)
    log_probs[0, : out_lens[0]].sum().backward()
    grads = [p.grad for p in model.encoder.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    model.eval()
    feats = feats.masked_fill(torch.arange(40)[None, :, None] >= lens[:, None, None], 7.0)  # junk padding
    with torch.no_grad():
        batch_lp, _ = model(feats, lens)
        for i in range(4):
            if lens[i] < factor:  # no output frame at all
                continue
            alone, alone_lens = model(feats[i : i + 1, : lens[i]], lens[i : i + 1])
            n = int(alone_lens[0])
            torch.testing.assert_close(batch_lp[i, :n], alone[0, :n], atol=1e-5, rtol=0)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("cell", CELLS)
def test_output_reads_exactly_its_lookahead(cell, mode):
    """Changing frame t + lookahead changes output t; changing any later frame never does."""
    torch.manual_seed(1)
    encoder = _encoder(cell, mode).eval()
    frames = 24
    x = torch.randn(1, frames, 5)
    lens = torch.tensor([frames])
    ahead = _lookahead(mode)
    chunk = MODES[mode].get("chunk_frames", 0)
    with torch.no_grad():
        base, _ = encoder(x, lens)
        for t in [0, 5, 8]:
            if chunk and t % chunk:  # the worst case is the first frame of a chunk
                continue
            late = x.clone()
            late[:, t + ahead + 1 :] += 3.0
            assert torch.equal(encoder(late, lens)[0][:, t], base[:, t]), f"frame {t} read beyond {ahead}"
            edge = x.clone()
            edge[:, t + ahead] += 3.0
            assert not torch.allclose(encoder(edge, lens)[0][:, t], base[:, t]), f"frame {t} ignores {ahead}"


@pytest.mark.parametrize("cell", CELLS)
def test_one_chunk_covering_the_utterance_is_the_full_bidirectional_encoder(cell):
    torch.manual_seed(2)
    full = build_encoder(EncoderConfig(cell=cell, num_layers=3, hidden_size=12), 5).eval()
    chunked = build_encoder(EncoderConfig(cell=cell, num_layers=3, hidden_size=12, chunk_frames=50,
                                          right_context=3), 5).eval()
    chunked.load_state_dict(full.state_dict())
    x, lens = torch.randn(3, 50, 5), torch.tensor([50, 33, 8])
    with torch.no_grad():
        torch.testing.assert_close(chunked(x, lens)[0], full(x, lens)[0], atol=1e-6, rtol=0)
        small = build_encoder(EncoderConfig(cell=cell, num_layers=3, hidden_size=12, chunk_frames=4), 5).eval()
        small.load_state_dict(full.state_dict())
        assert not torch.allclose(small(x, lens)[0], full(x, lens)[0], atol=1e-3)


@pytest.mark.parametrize("projection", [0, 7])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("cell", CELLS)
def test_encoder_stream_in_random_pieces_equals_forward(cell, mode, projection):
    torch.manual_seed(3)
    rng = random.Random(3)
    encoder = _encoder(cell, mode, projection, layers=3).eval()
    x = torch.randn(1, 41, 5)
    with torch.no_grad():
        whole, _ = encoder(x, torch.tensor([41]))
    stream, pieces, t = EncoderStream(encoder), [], 0
    while t < 41:
        n = rng.randint(0, 6)
        pieces.append(stream.step(x[:, t : t + n]))
        t += n
    pieces.append(stream.step(x[:, :0], final=True))
    streamed = torch.cat(pieces, dim=1)
    assert streamed.shape == whole.shape
    torch.testing.assert_close(streamed, whole, atol=1e-5, rtol=0)


@pytest.mark.parametrize("mode", MODES)
def test_encoder_stream_emits_as_soon_as_its_lookahead_is_in(mode):
    encoder = _encoder("lstm", mode).eval()
    fields = MODES[mode]
    la, nc, nr = fields.get("lookahead_frames", 0), fields.get("chunk_frames", 0), fields.get("right_context", 0)
    stream, out = EncoderStream(encoder), 0
    for n in range(1, 30):
        out += stream.step(torch.randn(1, 1, 5)).size(1)
        ready = max(n - la, 0)  # stacked frames whose look-ahead is complete
        expected = ((ready - nr) // nc) * nc if nc and ready >= nc + nr else (0 if nc else ready)
        assert out == expected, f"after {n} frames"
    assert out + stream.step(torch.randn(1, 0, 5), final=True).size(1) == 29


def test_full_bidirectional_encoder_refuses_to_stream():
    with pytest.raises(ValueError, match="cannot stream"):
        EncoderStream(build_encoder(EncoderConfig(num_layers=1, hidden_size=4), 5))


@pytest.mark.parametrize("kind,factor", SUBSAMPLING + [("conv", 3), ("conv2d", 2), ("conv2d", 4), ("conv2d+norm", 3)])
def test_subsampling_stream_equals_whole_input(kind, factor):
    torch.manual_seed(4)
    rng = random.Random(factor)
    module = build_subsampling(subsampling(kind, factor, conv_channels=8, conv2d_channels=3), 5).eval()
    x = torch.randn(1, 38, 5)
    with torch.no_grad():
        whole, _ = module(x, torch.tensor([38]))
    stream, pieces, t = SubsamplingStream(module), [], 0
    while t < 38:
        n = rng.randint(0, 5)
        pieces.append(stream.step(x[:, t : t + n]))
        t += n
    pieces.append(stream.step(x[:, :0], final=True))
    torch.testing.assert_close(torch.cat(pieces, dim=1), whole, atol=1e-6, rtol=0)


@pytest.mark.parametrize("fields,message", [
    (dict(bidirectional=False, chunk_frames=4), "encoder.chunk_frames"),
    (dict(right_context=2), "encoder.right_context"),
    (dict(lookahead_frames=-1), "encoder.lookahead_frames"),
])
def test_bad_streaming_fields_raise(fields, message):
    with pytest.raises(ValueError, match=message):
        build_encoder(EncoderConfig(**fields), 5)


def test_model_file_without_the_new_fields_loads_as_full_bidirectional():
    from asr.model.checkpoint import load_file, load_model

    path = Path(__file__).parent / "data" / "model-v0.1.pt"
    assert "chunk_frames" not in load_file(path)["model_config"]["encoder"]
    model, _ = load_model(path)
    enc = model.cfg.encoder
    assert (enc.lookahead_frames, enc.chunk_frames, enc.right_context) == (0, 0, 0)
    assert not model.encoder.streamable

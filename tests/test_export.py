"""``asr export``: TorchScript and ONNX models equal the eager one (int8: close to it) and run without the
``asr`` package."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from asr.audio.io import load_audio
from asr.model.checkpoint import load_model, model_package, save_atomic
from asr.cli import main
from asr.config import EncoderConfig, ModelConfig
from asr.data.cuts import collate_feats
from asr.decoding.search import greedy_search
from asr.inference.export import EXPORT_FORMAT, export_model
from asr.audio.features import LogMel
from asr.model.ctc import CTCModel
from asr.data.tokenizer import CharTokenizer
from helpers import subsampling

UTTS = ["an406-fcaw-b", "an407-fcaw-b", "an408-fcaw-b"]

# TorchScript is deprecated in torch 2.10+ but still the format that loads without Python model code
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.*` is deprecated:FutureWarning")


def _save_model(path, cell="lstm", kind="stack", factor=3, bidirectional=True, projection=0, **streaming):
    """A random model; ``streaming``: lookahead_frames, or chunk_frames and right_context (LC-BLSTM)."""
    torch.manual_seed(0)
    tokenizer = CharTokenizer.train(["ABCDEFGHIJKLMNOPQRSTUVWXYZ"])
    cfg = ModelConfig(subsampling=subsampling(kind, factor, conv_channels=32),
                      encoder=EncoderConfig(cell=cell, num_layers=2, hidden_size=24, bidirectional=bidirectional,
                                            projection_size=projection, **streaming))
    model = CTCModel(cfg, len(tokenizer.units))
    model.cmvn.set_stats(10, torch.full((80,), -50.0, dtype=torch.float64), torch.full((80,), 260.0, dtype=torch.float64))
    save_atomic(model_package(model, tokenizer), path)
    return path


@pytest.fixture(scope="module")
def real_feats(an4_dir):
    """Log-mel of three AN4 test files of different lengths, as one padded batch."""
    logmel = LogMel(ModelConfig().features)
    waves = [load_audio(an4_dir / "wav" / "an4test_clstk" / "fcaw" / f"{u}.wav") for u in UTTS]
    return waves, *collate_feats([logmel(w) for w in waves])


# the LC-BLSTM rows: chunks of 4 (3) frames, the real utterances end mid-chunk and past whole chunks
LC_LSTM = ("lstm", "stack", 4, True, 0, {"chunk_frames": 4, "right_context": 2})
LC_GRU = ("gru", "conv", 2, True, 16, {"chunk_frames": 3, "right_context": 0})
LC_CONV2D = ("lstm", "conv2d", 4, True, 0, {"chunk_frames": 3, "right_context": 1})


@pytest.mark.parametrize("cell, kind, factor, bidirectional, projection, streaming", [
    ("lstm", "stack", 3, True, 0, {}), ("gru", "conv", 2, True, 16, {}), ("rnn", "stack", 4, False, 0, {}),
    ("lstm", "conv", 1, False, 8, {"lookahead_frames": 2}), LC_LSTM, LC_GRU, LC_CONV2D,
    ("lstm", "conv2d", 3, True, 0, {}), ("lstm", "conv2d+norm", 3, True, 0, {}),
])
def test_exported_outputs_equal_eager(tmp_path, real_feats, cell, kind, factor, bidirectional, projection,
                                      streaming):
    waves, feats, feat_lens = real_feats
    model_path = _save_model(tmp_path / "m.pt", cell, kind, factor, bidirectional, projection, **streaming)
    out = export_model(model_path, tmp_path / "m.ts")
    model, tokenizer = load_model(model_path)
    scripted = torch.jit.load(str(out))
    with torch.inference_mode():
        expected, expected_lens = model(feats, feat_lens)
        got, got_lens = scripted(feats, feat_lens)
        assert torch.equal(got_lens, expected_lens) and got.shape == expected.shape
        for b, n in enumerate(expected_lens.tolist()):
            torch.testing.assert_close(got[b, :n], expected[b, :n], atol=1e-5, rtol=0)
        single, _ = scripted(feats[2:3, : feat_lens[2]], feat_lens[2:3])  # batch of one, no padding
        torch.testing.assert_close(single[0], expected[2, : expected_lens[2]], atol=1e-5, rtol=0)
        assert torch.equal(scripted.features(waves[0]), LogMel(model.cfg.features)(waves[0]))
        text = greedy_search(expected, expected_lens, tokenizer)[0].text
        assert scripted.greedy_text(waves[0]) == text
    assert scripted.units == tokenizer.units and scripted.sample_rate == 16000
    assert scripted.frame_shift == pytest.approx(0.01 * factor)
    extra = {"asr.json": ""}
    torch.jit.load(str(out), _extra_files=extra)
    meta = json.loads(extra["asr.json"])
    assert meta["format"] == EXPORT_FORMAT and meta["units"] == tokenizer.units


def test_exported_model_runs_without_the_asr_package(tmp_path, an4_dir):
    model_path = _save_model(tmp_path / "m.pt")
    assert main(["export", str(model_path), "--out", str(tmp_path / "m.ts")]) == 0
    wav = an4_dir / "wav" / "an4test_clstk" / "fcaw" / f"{UTTS[0]}.wav"
    script = (
        "import sys; sys.modules['asr'] = None\n"  # any import of the package would fail
        "import soundfile, torch\n"
        f"m = torch.jit.load({str(tmp_path / 'm.ts')!r})\n"
        f"wave = torch.from_numpy(soundfile.read({str(wav)!r}, dtype='float32')[0])\n"
        "print(m.greedy_text(wave))\n"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                         cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    model, tokenizer = load_model(model_path)
    waves = load_audio(wav)
    feats, lens = collate_feats([LogMel(model.cfg.features)(waves)])
    with torch.inference_mode():
        expected = greedy_search(*model(feats, lens), tokenizer)[0].text
    assert run.stdout == expected + "\n"


def test_export_of_a_bad_model_file_is_one_clear_error(tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00" * 100)
    assert main(["export", str(bad), "--out", str(tmp_path / "m.ts")]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"asr export: error: {bad}: ") and err.count("\n") == 1
    assert not (tmp_path / "m.ts").exists()


@pytest.mark.parametrize("cell, kind, factor, bidirectional, projection, streaming", [
    ("lstm", "stack", 3, True, 0, {}), ("gru", "conv", 2, True, 16, {}), ("rnn", "stack", 4, False, 0, {}),
    ("lstm", "stack", 3, False, 0, {"lookahead_frames": 2}), LC_LSTM, LC_GRU, LC_CONV2D,
    ("lstm", "conv2d", 3, True, 0, {}), ("lstm", "conv2d+norm", 3, True, 0, {}),
])
def test_onnx_export_equals_eager_under_onnxruntime(tmp_path, real_feats, cell, kind, factor, bidirectional,
                                                    projection, streaming):
    from asr.model.files import load_acoustic_model
    from asr.model.onnx_model import OnnxModel

    _, feats, feat_lens = real_feats
    model_path = _save_model(tmp_path / "m.pt", cell, kind, factor, bidirectional, projection, **streaming)
    assert main(["export", str(model_path), "--format", "onnx", "--out", str(tmp_path / "m.onnx")]) == 0
    onnx_model, tokenizer, extras = load_acoustic_model(tmp_path / "m.onnx")  # the file describes itself
    model, expected_tokenizer = load_model(model_path)
    assert isinstance(onnx_model, OnnxModel) and extras.kind == "onnx" and extras.quantization is None
    assert onnx_model.cfg == model.cfg and tokenizer.units == expected_tokenizer.units
    with torch.inference_mode():
        expected, expected_lens = model(feats, feat_lens)
        got, got_lens = onnx_model(feats, feat_lens)  # batch 3, real utterances of three lengths
        assert torch.equal(got_lens, expected_lens) and got.shape == expected.shape
        for b, n in enumerate(expected_lens.tolist()):
            torch.testing.assert_close(got[b, :n], expected[b, :n], atol=1e-4, rtol=0)
            alone, _ = onnx_model(feats[b : b + 1, : feat_lens[b]], feat_lens[b : b + 1])  # batch 1, no padding
            torch.testing.assert_close(alone[0], got[b, :n], atol=1e-4, rtol=0)
        cut, cut_lens = feats[:2, :101], torch.tensor([101, 77])  # another time length and batch size
        torch.testing.assert_close(onnx_model(cut, cut_lens)[0][1, : 77 // factor],
                                   model(cut, cut_lens)[0][1, : 77 // factor], atol=1e-4, rtol=0)


def _op_types(graph) -> set[str]:
    """Operator types of an ONNX graph and of the graphs in its nodes' attributes (Loop and If bodies)."""
    ops = set()
    for node in graph.node:
        ops.add(node.op_type)
        for attr in node.attribute:
            for body in [attr.g] if attr.HasField("g") else list(attr.graphs):
                ops |= _op_types(body)
    return ops


@pytest.mark.parametrize("streaming", [{}, LC_LSTM[-1], {"kind": "conv2d"}, {"kind": "conv2d+norm"}],
                         ids=["blstm", "lc-blstm", "conv2d", "conv2d-norm"])
def test_int8_exports_are_quantized_and_close_to_float(tmp_path, real_feats, streaming):
    import onnx

    from asr.model.files import load_acoustic_model, quantize_int8

    _, feats, feat_lens = real_feats
    model_path = _save_model(tmp_path / "m.pt", **streaming)
    assert main(["export", str(model_path), "--format", "onnx", "--int8", "--out", str(tmp_path / "m8.onnx")]) == 0
    assert main(["export", str(model_path), "--int8", "--out", str(tmp_path / "m8.ts")]) == 0
    ops = _op_types(onnx.load(str(tmp_path / "m8.onnx")).graph)
    assert {"DynamicQuantizeLSTM", "MatMulInteger"} <= ops and "LSTM" not in ops
    onnx_model, _, extras = load_acoustic_model(tmp_path / "m8.onnx")
    assert extras.quantization == "int8"
    model, _ = load_model(model_path)
    scripted = torch.jit.load(str(tmp_path / "m8.ts"))
    with torch.inference_mode():
        expected, lens = model(feats, feat_lens)
        for got, _ in (onnx_model(feats, feat_lens), scripted(feats, feat_lens)):
            for b, n in enumerate(lens.tolist()):
                assert float((got[b, :n] - expected[b, :n]).abs().max()) < 0.05  # int8 noise, not another model (8-bit ORT weights: 0.18 on AVX2)
                assert 0 < float((got[b, :n] - expected[b, :n]).abs().max())  # it really is quantized
        torch.testing.assert_close(scripted(feats, feat_lens)[0], quantize_int8(model)(feats, feat_lens)[0],
                                   atol=1e-6, rtol=0)


@pytest.mark.parametrize("content", [b"\x00" * 100, b"not an onnx graph at all"])
def test_a_broken_onnx_file_is_one_clear_error(tmp_path, capsys, content):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(content)
    assert main(["export", str(bad), "--format", "onnx", "--out", str(tmp_path / "m.onnx")]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"asr export: error: {bad}: not a readable ONNX model") and err.count("\n") == 1

"""Live recognition on real AN4 audio: Stream in random blocks == the whole file, and ``asr stream`` as a user runs it."""

from __future__ import annotations

import json
import random
import string
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio.functional as AF

from asr.audio.features import LogMel
from asr.audio.io import load_audio
from asr.config import EncoderConfig, ModelConfig, StreamConfig, SubsamplingConfig
from asr.data.tokenizer import CharTokenizer
from asr.decoding.search import BeamSearch, greedy_search
from asr.inference.stream import Endpointer, Stream
from asr.model.checkpoint import model_package, save_atomic
from asr.model.ctc import CTCModel

TOKENIZER = CharTokenizer(["<blk>", "|", *string.ascii_uppercase])
ENCODERS = {
    "uni-la1": EncoderConfig(num_layers=2, hidden_size=32, bidirectional=False, lookahead_frames=1),
    "lc5r2": EncoderConfig(num_layers=2, hidden_size=32, chunk_frames=5, right_context=2),
}
SUBSAMPLING = {"stack3": SubsamplingConfig(kind="stack", factor=3),
               "conv2": SubsamplingConfig(kind="conv", factor=2, conv_channels=32),
               "conv2d3": SubsamplingConfig(kind="conv2d", factor=3, conv2d_channels=4)}
NO_ENDPOINT = StreamConfig(endpoint_silence_ms=0, max_segment_s=0)


def _model(encoder: str, subsampling: str = "stack3", seed: int = 0) -> CTCModel:
    torch.manual_seed(seed)
    cfg = ModelConfig(subsampling=SUBSAMPLING[subsampling], encoder=ENCODERS[encoder])
    return CTCModel(cfg, len(TOKENIZER.units)).eval()


@pytest.fixture(scope="module")
def wav_files(an4_dir):
    return sorted((an4_dir / "wav" / "an4test_clstk").rglob("*.wav"))[:2]


def _whole(model, wave):
    feats = LogMel(model.cfg.features)(wave)
    with torch.no_grad():
        return model(feats[None], torch.tensor([feats.size(0)]))


def _feed(stream: Stream, wave, rate: int, seed: int, max_block: int = 8000) -> list:
    rng, t, results = random.Random(seed), 0, []
    while t < len(wave):
        n = rng.randint(1, max_block)
        if stream.accept_waveform(wave[t : t + n].numpy(), rate):
            results += stream.result()
        t += n
    return results + stream.finish()


@pytest.mark.parametrize("method", ["greedy", "beam"])
@pytest.mark.parametrize("subsampling", SUBSAMPLING)
@pytest.mark.parametrize("encoder", ENCODERS)
def test_stream_in_random_blocks_equals_the_whole_file(wav_files, encoder, subsampling, method):
    model = _model(encoder, subsampling)
    for i, path in enumerate(wav_files[:1]):
        wave = load_audio(path)
        log_probs, lens = _whole(model, wave)
        search = BeamSearch(TOKENIZER) if method == "beam" else None
        stream = Stream(model, TOKENIZER, NO_ENDPOINT, search, keep_log_probs=True)
        results = _feed(stream, wave, 16000, seed=i)
        streamed = stream.log_probs()
        assert streamed.shape == log_probs[0].shape
        torch.testing.assert_close(streamed, log_probs[0], atol=1e-5, rtol=0)
        whole = greedy_search(log_probs, lens, TOKENIZER)[0] if method == "greedy" else \
            BeamSearch(TOKENIZER)(log_probs, lens)[0]
        assert whole.text, "the model should say something for the test to mean anything"
        assert [r.text for r in results] == [whole.text]
        words = results[0].words
        assert " ".join(w.word for w in words) == whole.text
        assert all(0 <= w.start < w.end <= results[0].end and 0 < w.conf <= 1 for w in words)


def test_stream_resamples_8khz_blocks_like_the_whole_file(wav_files):
    model = _model("uni-la1")
    wave16 = load_audio(wav_files[0])
    wave8 = AF.resample(wave16, 16000, 8000)
    log_probs, _ = _whole(model, AF.resample(wave8, 8000, 16000))
    stream = Stream(model, TOKENIZER, NO_ENDPOINT, keep_log_probs=True)
    _feed(stream, wave8, 8000, seed=5, max_block=1500)
    torch.testing.assert_close(stream.log_probs(), log_probs[0], atol=1e-5, rtol=0)


def test_max_segment_resets_the_search_not_the_encoder(wav_files):
    model = _model("lc5r2")
    wave = torch.cat([load_audio(p) for p in wav_files])
    log_probs, _ = _whole(model, wave)
    stream = Stream(model, TOKENIZER, StreamConfig(endpoint_silence_ms=0, max_segment_s=0.9), keep_log_probs=True)
    results = _feed(stream, wave, 16000, seed=7)
    torch.testing.assert_close(stream.log_probs(), log_probs[0], atol=1e-5, rtol=0)
    assert len(results) >= 3
    assert results[0].start == 0.0
    for a, b in zip(results, results[1:]):
        assert b.start >= a.end and b.end - b.start <= 0.9 + 1e-6  # times from the start of the stream
    for r in results:
        assert all(r.start <= w.start < w.end <= r.end for w in r.words)
        frames = slice(round(r.start / 0.03), round(r.end / 0.03))
        ids = torch.unique_consecutive(log_probs[0, frames].argmax(-1))
        assert r.text == TOKENIZER.decode(ids[ids != 0].tolist())


@pytest.mark.parametrize("labels,silence,max_frames,ends", [
    ("00aa0b000000c00", 3, 0, [8]),  # speech, then 3 blanks (frames 6-8): the segment ends at frame 8
    ("00000000", 3, 0, []),  # blanks without speech never end a segment
    ("a0000a000", 3, 0, [3, 8]),
    ("ab0ab0ab0ab", 0, 4, [3, 7]),  # the length limit cuts wherever it falls
    ("a00a00a00", 0, 0, []),  # both rules off
])
def test_endpointer_rules(labels, silence, max_frames, ends):
    shift = 0.03
    cfg = StreamConfig(endpoint_silence_ms=silence * shift * 1000, max_segment_s=max_frames * shift)
    endpointer = Endpointer(cfg, shift, blank_id=0)
    assert [i for i, c in enumerate(labels) if endpointer.push(0 if c == "0" else 1)] == ends


def test_default_partial_shows_every_chunk_of_an_lc_blstm_at_once(wav_files):
    """An LC-BLSTM emits 5 frames (150 ms) per chunk; the default interval must not hold a chunk's words back.

    After every accepted block, ``partial()`` equals the best path of all frames so far; with the old
    200 ms interval every other chunk was shown one chunk late.
    """
    model = _model("lc5r2")
    wave = load_audio(wav_files[0])
    stream = Stream(model, TOKENIZER, NO_ENDPOINT, keep_log_probs=True)
    assert stream.cfg.partial_interval_ms <= 150
    calls, shown = 0, 0
    for t in range(0, len(wave), 800):  # 50 ms blocks: a chunk comes out every third block
        stream.accept_waveform(wave[t : t + 800].numpy(), 16000)
        frames = stream.log_probs()
        if frames.size(0) == shown:
            continue
        shown, calls = frames.size(0), calls + 1
        ids = torch.unique_consecutive(frames.argmax(-1))
        assert stream.partial() == TOKENIZER.decode(ids[ids != 0].tolist()), f"stale after {shown} frames"
    assert calls >= 10


def test_partial_grows_and_is_the_open_segment(wav_files):
    model = _model("uni-la1")
    wave = load_audio(wav_files[0])
    stream = Stream(model, TOKENIZER, StreamConfig(endpoint_silence_ms=0, max_segment_s=0, partial_interval_ms=0))
    partials = []
    for t in range(0, len(wave), 1600):
        stream.accept_waveform(wave[t : t + 1600].numpy(), 16000)
        partials.append(stream.partial())
    final = stream.finish()[0].text
    assert partials[-1] and final.startswith(partials[-1])
    assert all(len(a) <= len(b) for a, b in zip(partials, partials[1:]))


def test_full_utterance_bidirectional_model_is_refused():
    model = CTCModel(ModelConfig(encoder=EncoderConfig(num_layers=1, hidden_size=8)), len(TOKENIZER.units))
    with pytest.raises(ValueError, match="cannot stream"):
        Stream(model, TOKENIZER)


# -- asr stream, as a user runs it ------------------------------------------------------------------
def _asr(*args, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "asr.cli", "stream", *map(str, args)], input=stdin,
                          capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("stream") / "lc.pt"
    save_atomic(model_package(_model("lc5r2"), TOKENIZER), path)
    return path


def test_cli_file_and_stdin_pcm_give_the_same_vosk_json(model_file, wav_files):
    path = wav_files[0]
    by_file = _asr(model_file, path, "--format", "json", "--max-segment", "1")
    assert by_file.returncode == 0, by_file.stderr.decode()
    pcm = sf.read(path, dtype="int16")[0].astype("<i2").tobytes()
    by_stdin = _asr(model_file, "-", "--format", "json", "--max-segment", "1", "--block-ms", "130", stdin=pcm)
    assert by_stdin.returncode == 0, by_stdin.stderr.decode()
    events = [json.loads(line) for line in by_file.stdout.decode().splitlines()]
    finals = [e for e in events if "result" in e]
    assert finals == [json.loads(line) for line in by_stdin.stdout.decode().splitlines() if "result" in line]
    assert len(finals) >= 2 and any("partial" in e for e in events)
    model = _model("lc5r2")
    log_probs, lens = _whole(model, load_audio(path))
    per_second = 34  # --max-segment 1 at 30 ms a frame: the search restarts every 34 frames
    expected = [greedy_search(log_probs[:, t : t + per_second], torch.tensor([min(per_second, int(lens[0]) - t)]),
                              TOKENIZER)[0].text for t in range(0, int(lens[0]), per_second)]
    assert [e["text"] for e in finals] == [text for text in expected if text]
    for e in finals:
        assert " ".join(w["word"] for w in e["result"]) == e["text"]
        assert all(set(w) == {"word", "start", "end", "conf"} for w in e["result"])


def test_cli_text_output_one_final_line_each_at_8khz_on_stdin(model_file, wav_files):
    wave8 = AF.resample(load_audio(wav_files[0]), 16000, 8000)
    pcm = (wave8.clamp(-1, 1) * 32767).round().numpy().astype("<i2").tobytes()
    run = _asr(model_file, "-", "--sample-rate", "8000", "--endpoint-silence-ms", "0", "--max-segment", "0",
               stdin=pcm + b"\x01")  # a stray odd byte at the end is ignored
    assert run.returncode == 0, run.stderr.decode()
    lines = run.stdout.decode().splitlines()
    assert len(lines) == 1 and lines[0]
    assert "\r" in run.stderr.decode()  # partial results on one updating line


@pytest.mark.parametrize("case", ["bidirectional", "missing audio", "beam option without beam"])
def test_cli_bad_input_is_one_clear_line(tmp_path, model_file, wav_files, case):
    if case == "bidirectional":
        model = CTCModel(ModelConfig(encoder=EncoderConfig(num_layers=1, hidden_size=8)), len(TOKENIZER.units))
        save_atomic(model_package(model, TOKENIZER), tmp_path / "bi.pt")
        run, expected = _asr(tmp_path / "bi.pt", wav_files[0]), "cannot stream"
    elif case == "missing audio":
        run, expected = _asr(model_file, tmp_path / "nope.wav"), f"{tmp_path / 'nope.wav'}: no such file"
    else:
        run, expected = _asr(model_file, wav_files[0], "--lm-weight", "1"), "lm_weight: only for method 'beam-lm'"
    err = run.stderr.decode().strip().splitlines()
    assert run.returncode == 1 and len(err) == 1 and expected in err[0] and "Traceback" not in err[0]


@pytest.mark.parametrize("method", ["greedy", "beam"])
def test_from_pretrained_builds_the_search_and_calibration_like_the_recognizer(tmp_path, wav_files, method):
    from asr.decoding.confidence import Calibrator

    model = _model("lc5r2")
    save_atomic(model_package(model, TOKENIZER), tmp_path / "model.pt")
    Calibrator("platt", {"a": 0.0, "b": 0.0}).save(tmp_path / "calibration.json")  # every word: conf 0.5
    options = {"beam_size": 8} if method == "beam" else {}
    stream = Stream.from_pretrained(tmp_path / "model.pt", method, cfg=NO_ENDPOINT, **options)
    assert isinstance(stream._search, BeamSearch) == (method == "beam")
    wave = load_audio(wav_files[0])
    results = _feed(stream, wave, 16000, seed=3)
    direct = _feed(Stream(model, TOKENIZER, NO_ENDPOINT, BeamSearch(TOKENIZER, 8) if method == "beam" else None),
                   wave, 16000, seed=3)
    assert [r.text for r in results] == [r.text for r in direct] and results[0].text
    assert [(w.word, w.start, w.end) for w in results[0].words] == [(w.word, w.start, w.end) for w in direct[0].words]
    assert {w.conf for w in results[0].words} == {0.5} and {w.conf for w in direct[0].words} != {0.5}
    with pytest.raises(ValueError, match="lm_weight: only for method 'beam-lm'"):
        Stream.from_pretrained(tmp_path / "model.pt", method, lm_weight=1.0)


# -- several streams at once: batched model steps ----------------------------------------------------
CELL_ENCODERS = {f"{cell}-{kind}": EncoderConfig(cell=cell, num_layers=2, hidden_size=32, **options)
                 for cell in ("lstm", "gru", "rnn")
                 for kind, options in {"uni-la1": dict(bidirectional=False, lookahead_frames=1),
                                       "lc5r2": dict(chunk_frames=5, right_context=2)}.items()}


@pytest.fixture(scope="module")
def four_waves(an4_dir):
    paths = sorted((an4_dir / "wav" / "an4test_clstk").rglob("*.wav"))[2:6]
    return [load_audio(p) for p in paths]


def _words(results) -> list:
    return [(r.text, r.start, r.end, [(w.word, w.start, w.end) for w in r.words]) for r in results]


@pytest.mark.parametrize("encoder", CELL_ENCODERS)
def test_streams_stepped_in_batches_equal_streams_stepped_alone(four_waves, encoder, monkeypatch):
    from asr.inference.stream import accept_waveforms
    from asr.model import encoder as encoder_module

    torch.manual_seed(0)
    model = CTCModel(ModelConfig(encoder=CELL_ENCODERS[encoder]), len(TOKENIZER.units)).eval()
    cfg = StreamConfig(endpoint_silence_ms=0, max_segment_s=0.7)
    batch_sizes = []
    run = encoder_module._run_encoder
    monkeypatch.setattr(encoder_module, "_run_encoder",
                        lambda enc, inputs, *rest: batch_sizes.append(inputs.size(0)) or run(enc, inputs, *rest))
    rng = random.Random(encoder)
    joins = [0, 0, 3, 9]  # streams join at these ticks; each leaves when its audio is done
    batched = [Stream(model, TOKENIZER, cfg, keep_log_probs=True) for _ in four_waves]
    alone = [Stream(model, TOKENIZER, cfg, keep_log_probs=True) for _ in four_waves]
    fed, got_batched, got_alone = [0] * 4, [[] for _ in range(4)], [[] for _ in range(4)]
    tick = 0
    while any(not s._finished for s in batched):
        members, blocks = [], []
        for k, wave in enumerate(four_waves):
            if joins[k] > tick or batched[k]._finished or rng.random() < 0.2:  # not yet, gone, or silent this tick
                continue
            if fed[k] >= len(wave):
                got_batched[k] += batched[k].finish()
                got_alone[k] += alone[k].finish()
                continue
            n = rng.randint(1, 3200)
            members.append(k)
            blocks.append(wave[fed[k] : fed[k] + n].numpy())
            fed[k] += n
        outcomes = accept_waveforms([batched[k] for k in members], blocks, [16000] * len(members))
        for k, block, outcome in zip(members, blocks, outcomes):
            assert outcome is alone[k].accept_waveform(block, 16000)
            got_batched[k] += batched[k].result()
            got_alone[k] += alone[k].result()
        tick += 1
    assert max(batch_sizes) >= 2, "streams should have shared forwards"
    for k, wave in enumerate(four_waves):
        whole, _ = _whole(model, wave)
        torch.testing.assert_close(batched[k].log_probs(), alone[k].log_probs(), atol=1e-5, rtol=0)
        torch.testing.assert_close(batched[k].log_probs(), whole[0], atol=1e-5, rtol=0)
        assert _words(got_batched[k]) == _words(got_alone[k])
    assert any(r.text for results in got_batched for r in results), "the models should say something"


def test_a_refused_block_in_a_batch_costs_only_its_stream(four_waves):
    from asr.inference.stream import accept_waveforms

    model = _model("lc5r2")
    streams = [Stream(model, TOKENIZER, NO_ENDPOINT, keep_log_probs=True) for _ in range(3)]
    streams[2].finish()
    blocks = [four_waves[0][:8000].numpy(), np.zeros((2, 100), np.float32), four_waves[0][:8000].numpy()]
    outcomes = accept_waveforms(streams, blocks, [16000, 16000, 16000])
    assert outcomes[0] is False
    assert isinstance(outcomes[1], ValueError) and "expected a 1-D float or int16 array" in str(outcomes[1])
    assert isinstance(outcomes[2], ValueError) and "finished" in str(outcomes[2])
    alone = Stream(model, TOKENIZER, NO_ENDPOINT, keep_log_probs=True)
    alone.accept_waveform(blocks[0], 16000)
    assert streams[0].log_probs().size(0) > 0 and streams[1].log_probs().size(0) == 0
    torch.testing.assert_close(streams[0].log_probs(), alone.log_probs(), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="distinct streams of one model"):
        accept_waveforms([streams[0], streams[0]], blocks[:2], [16000, 16000])

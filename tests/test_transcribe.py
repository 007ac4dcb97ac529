"""``asr transcribe``: input discovery, formats, long audio, word times, outputs and bad input."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import soundfile as sf
import torch

from asr.inference import transcribe as transcribe_module
from asr.model.checkpoint import load_model, model_package, save_atomic
from asr.cli import main
from asr.config import EncoderConfig, ModelConfig
from asr.data.cuts import collate_feats
from asr.decoding.search import greedy_search
from asr.inference.export import export_model
from asr.audio.features import LogMel
from asr.model.ctc import CTCModel
from asr.audio.segment import plan_segments
from asr.config import SegmentConfig
from asr.decoding.search import BeamSearch
from asr.decoding.words import Word, group_words
from asr.data.tokenizer import CharTokenizer
from asr.inference.transcribe import Transcriber, find_audio
from asr.inference.outputs import Segment, Transcript, cues, from_json, to_json, to_srt, to_vtt

UTTS = ["an406-fcaw-b", "an407-fcaw-b", "an408-fcaw-b", "an409-fcaw-b"]


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    """A tiny random character model (2 x 32 BiLSTM, stack subsampling by 3) saved as a model file."""
    torch.manual_seed(0)
    tokenizer = CharTokenizer.train(["ABCDEFGHIJKLMNOPQRSTUVWXYZ"])
    model = CTCModel(ModelConfig(encoder=EncoderConfig(num_layers=2, hidden_size=32)), len(tokenizer.units))
    model.cmvn.set_stats(10, torch.full((80,), -50.0, dtype=torch.float64), torch.full((80,), 260.0, dtype=torch.float64))
    path = tmp_path_factory.mktemp("model") / "model.pt"
    save_atomic(model_package(model, tokenizer), path)
    return path


@pytest.fixture(scope="module")
def loaded(model_file):
    return load_model(model_file)


@pytest.fixture(scope="module")
def an4_wavs(an4_dir):
    return [an4_dir / "wav" / "an4test_clstk" / "fcaw" / f"{u}.wav" for u in UTTS]


def _run(capsys, *args):
    code = main(["transcribe", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def _reference_text(model, tokenizer, path) -> str:
    """What ``asr decode`` computes for a whole file: log-mel, model, greedy search."""
    from asr.audio.io import load_audio

    feats, lens = collate_feats([LogMel(model.cfg.features)(load_audio(path))])
    with torch.no_grad():
        log_probs, out_lens = model(feats, lens)
    return greedy_search(log_probs, out_lens, tokenizer)[0].text


# ---- inputs ------------------------------------------------------------------------------


def test_find_audio_files_directories_globs_and_lists(tmp_path):
    (tmp_path / "d" / "sub").mkdir(parents=True)
    for rel in ["d/a.wav", "d/sub/b.FLAC", "d/notes.txt", "x.wav", "x.flac", "y.mp3"]:
        (tmp_path / rel).write_bytes(b"")
    listing = tmp_path / "list.txt"
    listing.write_text(f"# comment\n{tmp_path / 'y.mp3'}\n\n{tmp_path / 'nope.wav'}\n")
    found, errors = find_audio([tmp_path / "d", str(tmp_path / "x.*"), tmp_path / "d" / "a.wav"], listing)
    assert [f.path.relative_to(tmp_path).as_posix() for f in found] == [
        "d/a.wav", "d/sub/b.FLAC", "x.flac", "x.wav", "y.mp3"]  # a.wav once, notes.txt skipped
    assert [f.name.as_posix() for f in found] == ["a", "sub/b", "x", "x.wav", "y"]  # names never collide
    assert errors == [f"{tmp_path / 'nope.wav'}: no such file or directory"]


def test_find_audio_reports_what_yields_nothing(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no audio here")
    found, errors = find_audio([tmp_path / "empty", tmp_path / "gone.wav", str(tmp_path / "*.ogg")],
                               tmp_path / "missing-list.txt")
    assert found == []
    assert len(errors) == 4
    assert errors[0].startswith(f"{tmp_path / 'missing-list.txt'}: cannot read list file")
    assert errors[1].startswith(f"{tmp_path / 'empty'}: directory holds no audio files")
    assert errors[2] == f"{tmp_path / 'gone.wav'}: no such file or directory"
    assert errors[3] == f"{tmp_path / '*.ogg'}: no file matches this pattern"


# ---- decoding ----------------------------------------------------------------------------


def test_short_files_equal_decode_and_batching_changes_nothing(loaded, an4_wavs):
    model, tokenizer = loaded
    expected = [_reference_text(model, tokenizer, p) for p in an4_wavs]
    for batch_size in (1, 3):
        results = list(Transcriber(model, tokenizer, batch_size=batch_size)(an4_wavs))
        assert [p for p, _ in results] == an4_wavs  # input order
        assert [r.text for _, r in results] == expected
        for (_, r), path in zip(results, an4_wavs):
            assert r.duration == pytest.approx(sf.info(str(path)).duration)
            assert " ".join(w.word for w in r.words) == r.text
            ends = [t for w in r.words for t in (w.start, w.end)]
            assert ends == sorted(ends) and all(0 <= t <= r.duration for t in ends)
            assert all(0 < w.conf <= 1 for w in r.words)


def test_word_times_and_confidence_from_the_ctc_path(loaded):
    model, tokenizer = loaded
    t = Transcriber(model, tokenizer)  # its words come from group_words over the search's path
    a, b, c, sep = (tokenizer.units.index(u) for u in "ABC|")
    labels = torch.tensor([0, a, a, 0, b, sep, sep, c, 0, 0])  # - A A - B | | C - -
    probs = torch.full((10, len(tokenizer.units)), 0.01)
    probs[torch.arange(10), labels] = torch.tensor([0.9, 0.8, 0.6, 0.9, 0.5, 0.9, 0.9, 0.7, 0.9, 0.9])
    words = group_words(tokenizer, labels, probs.log(), t.frame_seconds, offset=10.0)
    fs = t.frame_seconds
    assert fs == pytest.approx(0.03)  # 10 ms hop x subsampling 3
    assert [w.word for w in words] == ["AB", "C"]
    assert (words[0].start, words[0].end) == pytest.approx((10 + 1 * fs, 10 + 5 * fs))
    assert (words[1].start, words[1].end) == pytest.approx((10 + 7 * fs, 10 + 8 * fs))
    assert words[0].conf == pytest.approx((0.8 + 0.6 + 0.5) / 3)
    assert words[1].conf == pytest.approx(0.7)


def test_beam_search_words_come_from_a_forced_alignment(loaded, an4_wavs):
    model, tokenizer = loaded
    (_, greedy), = Transcriber(model, tokenizer)([an4_wavs[0]])
    (_, beam), = Transcriber(model, tokenizer, BeamSearch(tokenizer, 8))([an4_wavs[0]])
    assert " ".join(w.word for w in beam.words) == beam.text
    starts = [w.start for w in beam.words]
    assert starts == sorted(starts)
    if beam.text == greedy.text:  # same units: the alignment may differ only within blank runs
        assert len(beam.words) == len(greedy.words)


def test_plan_segments_cuts_in_silence_and_falls_back_to_windows():
    cfg = SegmentConfig(max_segment=5.0, min_silence=0.3, pad=0.2)
    # 10 ms frames: speech with a 0.2 s dip, 0.5 s pause, speech, 3 s silence, speech, 1 s silence
    pattern = [(100, -20), (20, -70), (80, -20), (50, -70), (200, -22), (300, -75), (400, -21), (100, -72)]
    energies = np.concatenate([np.full(n, db, np.float32) for n, db in pattern])
    segments = plan_segments(energies, cfg)
    # the dip stays inside, the pauses end segments, silence is left out, 0.2 s padding (half a short gap)
    assert segments == [(0, 220), (230, 470), (730, 1170)]
    # no silence at all: fixed windows of at most max_segment, contiguous
    noise = np.random.default_rng(0).normal(-20, 1, 1700).astype(np.float32)
    windows = plan_segments(noise, cfg)
    assert windows[0][0] == 0 and windows[-1][1] == 1700
    assert all(e - s <= 500 for s, e in windows)
    assert all(a[1] == b[0] for a, b in zip(windows, windows[1:]))
    # digital silence: nothing to decode; a short file: decoded whole
    assert plan_segments(np.full(1000, -100.0, np.float32), cfg) == []
    assert plan_segments(np.full(300, -100.0, np.float32), cfg) == [(0, 300)]


def test_long_audio_is_segmented_read_in_pieces_and_stitched(loaded, an4_wavs, tmp_path, monkeypatch):
    """Utterances 1.5 s apart, max_segment 6 s: each segment lies around one utterance, is read on its
    own, and decodes exactly as that stretch of audio would on its own, shifted by its start."""
    model, tokenizer = loaded
    rng = np.random.default_rng(0)
    gap = (rng.normal(0, 1e-4, 24000)).astype(np.float32)  # 1.5 s near-silence
    pieces, spans, pos = [], [], 0
    for path in an4_wavs:
        audio, _ = sf.read(path, dtype="float32")
        pieces += [gap, audio]
        spans.append(((pos + len(gap)) / 16000, (pos + len(gap) + len(audio)) / 16000))
        pos += len(gap) + len(audio)
    long_path = tmp_path / "long.wav"
    sf.write(long_path, np.concatenate(pieces + [gap]), 16000, subtype="FLOAT")

    reads = []

    def spans_spy(*args, **kwargs):
        for wave in real_spans(*args, **kwargs):
            reads.append(wave.numel() / 16000)
            yield wave

    real_spans = transcribe_module.read_spans
    monkeypatch.setattr(transcribe_module, "read_spans", spans_spy)
    monkeypatch.setattr(transcribe_module, "load_audio", None)  # a whole-file read would fail
    cfg = SegmentConfig(max_segment=6.0)
    (_, result), = Transcriber(model, tokenizer, segment=cfg, batch_size=2)([long_path])
    assert reads and max(reads) <= cfg.max_segment  # one segment in memory at a time, never the file
    assert result.duration == pytest.approx(pos / 16000 + 1.5)
    assert 1 <= len(result.segments) <= len(spans) * 2
    for seg in result.segments:  # no segment reaches into the next utterance
        assert any(lo - cfg.pad - 0.011 <= seg.start and seg.end <= hi + cfg.pad + 0.011 for lo, hi in spans)
    monkeypatch.undo()
    full, _ = sf.read(long_path, dtype="float32")
    for seg in result.segments:
        piece = tmp_path / "piece.wav"
        sf.write(piece, full[round(seg.start * 16000): round(seg.end * 16000)], 16000, subtype="FLOAT")
        (_, alone), = Transcriber(model, tokenizer)([piece])
        assert alone.text == seg.text
        assert [(w.word, round(w.start + seg.start, 6)) for w in alone.words] == \
            [(w.word, round(w.start, 6)) for w in seg.words]


def test_formats_rates_and_channels(loaded, an4_wavs, tmp_path):
    """FLAC, OGG/Vorbis, MP3 and NIST SPHERE at other rates are read; --channel picks one channel."""
    model, tokenizer = loaded
    audio, rate = sf.read(an4_wavs[1], dtype="int16")
    paths = []
    for name, fmt, subtype, sr in [("a.flac", "FLAC", "PCM_16", 16000), ("b.ogg", "OGG", "VORBIS", 22050),
                                   ("c.mp3", "MP3", "MPEG_LAYER_III", 44100), ("d.sph", "NIST", "PCM_16", 8000)]:
        data = audio if sr == rate else (np.interp(np.arange(0, len(audio), rate / sr), np.arange(len(audio)),
                                                   audio).astype(np.int16))
        sf.write(tmp_path / name, data, sr, format=fmt, subtype=subtype)
        paths.append(tmp_path / name)
    stereo = tmp_path / "stereo.wav"
    noise = np.random.default_rng(1).integers(-3000, 3000, len(audio)).astype(np.int16)
    sf.write(stereo, np.stack([noise, audio], axis=1), rate, subtype="PCM_16")
    results = dict(Transcriber(model, tokenizer)(paths))
    for path in paths:
        assert isinstance(results[path], Transcript), results[path]
        assert results[path].duration == pytest.approx(len(audio) / rate, abs=0.06)
    assert results[paths[0]].text == _reference_text(model, tokenizer, an4_wavs[1])  # lossless, same rate
    (_, picked), = Transcriber(model, tokenizer, channel=1)([stereo])
    assert picked.text == _reference_text(model, tokenizer, an4_wavs[1])


# ---- outputs -----------------------------------------------------------------------------


def test_cli_writes_json_srt_vtt_next_to_inputs_or_into_output_dir(model_file, an4_wavs, tmp_path, capsys):
    src = tmp_path / "in" / "spk"
    src.mkdir(parents=True)
    for path in an4_wavs[:2]:
        (src / path.name).write_bytes(path.read_bytes())
    code, out, err = _run(capsys, model_file, src / an4_wavs[0].name, "-f", "json", "srt", "vtt", "txt", "--threads", "1")
    assert code == 0, err
    assert out.count("\n") == 1 and "\t" not in out  # one file: just its text on stdout
    body = json.loads((src / f"{UTTS[0]}.json").read_text())
    assert body["path"] == str(src / an4_wavs[0].name) and body["text"] == out.strip()
    assert (src / f"{UTTS[0]}.srt").read_text().startswith("1\n00:00:0")
    assert (src / f"{UTTS[0]}.vtt").read_text().startswith("WEBVTT\n\n00:00:0")
    assert re.search(r"transcribed 1 of 1 files: 4\.0 s of audio .* real-time factor \d", err)

    code, out, err = _run(capsys, model_file, tmp_path / "in", "-f", "txt", "json", "-o", tmp_path / "out")
    assert code == 0, err
    assert out == ""
    for utt in UTTS[:2]:
        assert (tmp_path / "out" / "spk" / f"{utt}.txt").is_file()  # the directory's tree is kept
        assert json.loads((tmp_path / "out" / "spk" / f"{utt}.json").read_text())["duration"] > 1


def test_subtitle_cues():
    words = [Word(w, s, s + 0.2, 0.9) for w, s in [("ONE", 0.0), ("TWO", 0.5), ("THREE", 3.0), ("FOUR", 3.4)]]
    t = Transcript("x.wav", 5.0, [Segment(0.0, 5.0, "ONE TWO THREE FOUR", words)])
    assert cues(t) == [(0.0, 0.7, "ONE TWO"), (3.0, 3.6, "THREE FOUR")]  # split at the 2.3 s pause
    assert to_srt(t) == "1\n00:00:00,000 --> 00:00:00,700\nONE TWO\n\n2\n00:00:03,000 --> 00:00:03,600\nTHREE FOUR\n"
    assert to_vtt(t).startswith("WEBVTT\n\n00:00:00.000 --> 00:00:00.700\nONE TWO\n")
    long = [Word("WORD%02d" % i, i * 0.3, i * 0.3 + 0.2, 1.0) for i in range(20)]
    for start, end, text in cues(Transcript("y.wav", 10.0, [Segment(0, 10, "", long)])):
        assert end - start <= 7.0 and len(text.split("\n")) <= 2 and all(len(x) <= 42 for x in text.split("\n"))
    assert json.loads(to_json(t))["segments"][0]["words"][1] == {"word": "TWO", "start": 0.5, "end": 0.7,
                                                                 "conf": 0.9}
    assert from_json(to_json(t)) == t
    old = to_json(t).replace('"conf"', '"confidence"')  # written before the one Word type
    assert from_json(old).words == words


# ---- bad input, one by one ---------------------------------------------------------------


def _write(path, data, rate=16000, **kw):
    sf.write(path, data, rate, **kw)
    return path


def _noise(n, channels=None):
    shape = (n,) if channels is None else (n, channels)
    return np.random.default_rng(0).uniform(-0.5, 0.5, shape).astype(np.float32)


def _nan(tmp_path, bad):
    data = _noise(16000)
    data[1234] = bad
    return _write(tmp_path / "bad.wav", data, subtype="FLOAT")


def _bytes(path, data: bytes):
    path.write_bytes(data)
    return path


def _docs_dir(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "notes.txt").write_text("no audio here")
    return tmp_path / "docs"


BAD_INPUTS = {  # case -> (make the bad input in a directory, what its error line says)
    "missing file": (lambda d: d / "missing.wav", "no such file or directory"),
    "directory with no audio": (_docs_dir, "directory holds no audio files"),
    "empty file": (lambda d: _bytes(d / "empty.wav", b""), "empty file (0 bytes)"),
    "zero-length audio": (lambda d: _write(d / "zero.wav", np.zeros(0, np.float32)), "no audio samples"),  # header only
    "truncated header": (lambda d: _bytes(d / "trunc.wav", _wav_bytes()[:30]), "not a readable audio file"),
    "non-audio bytes": (lambda d: _bytes(d / "text.mp3", b"hello, this is not audio\n" * 100),
                        "not a readable audio file"),
    "NaN samples": (lambda d: _nan(d, np.nan), "NaN or infinite"),
    "inf samples": (lambda d: _nan(d, -np.inf), "NaN or infinite"),
    "shorter than one output frame": (lambda d: _write(d / "short.wav", _noise(600)), "audio too short"),
    "unsupported channel count": (lambda d: _write(d / "ch12.wav", _noise(16000, 12)), "unsupported channel count 12"),
}


def _wav_bytes():
    import io

    buffer = io.BytesIO()
    sf.write(buffer, _noise(1600), 16000, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_gets_one_line_and_the_others_are_transcribed(case, model_file, an4_wavs, tmp_path, capsys):
    make, message = BAD_INPUTS[case]
    bad = make(tmp_path)
    code, out, err = _run(capsys, model_file, an4_wavs[0], bad, an4_wavs[1], "--threads", "1")
    assert code == 1
    errors = [line for line in err.splitlines() if line.startswith("asr transcribe: error: ")]
    assert errors[0] == f"asr transcribe: error: {bad}: " + errors[0].split(f"{bad}: ", 1)[1]
    assert message in errors[0]
    assert errors[1:] == ["asr transcribe: error: 1 input(s) failed, see above"]
    assert "Traceback" not in err
    assert [line.split("\t")[0] for line in out.splitlines()] == [str(an4_wavs[0]), str(an4_wavs[1])]


def test_channel_out_of_range(model_file, tmp_path, capsys):
    stereo = _write(tmp_path / "stereo.wav", _noise(16000, 2))
    code, _, err = _run(capsys, model_file, stereo, "--channel", "2")
    assert code == 1 and f"{stereo}: channel 2 requested, the file has 2" in err
    assert _run(capsys, model_file, stereo, "--channel", "1")[0] == 0


def _bad_models(tmp_path, model_file):
    raw = torch.load(model_file, weights_only=True)
    wrong_shapes = dict(raw, state_dict={k: v[..., :1] if v.ndim else v for k, v in raw["state_dict"].items()})
    cases = {
        "random.pt": np.random.default_rng(0).bytes(5000),
        "truncated.pt": model_file.read_bytes()[:4000],
        "text.pt": b"not a model\n",
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
    save_atomic(wrong_shapes, tmp_path / "shapes.pt")
    save_atomic(dict(raw, state_dict=[1, 2, 3]), tmp_path / "list.pt")
    save_atomic(dict(raw, model_config={"encoder": {"cell": "transformer"}}), tmp_path / "config.pt")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    export_model(model_file, tmp_path / "exported.pt")  # TorchScript, not a model file
    return sorted(tmp_path.glob("*.pt")) + [tmp_path / "missing.pt"]


def test_corrupt_or_incompatible_model_gets_a_clear_error(model_file, an4_wavs, tmp_path, capsys):
    for bad in _bad_models(tmp_path, model_file):
        code, out, err = _run(capsys, bad, an4_wavs[0])
        assert code == 1, bad
        assert out == "" and "Traceback" not in err
        assert err.startswith(f"asr transcribe: error: {bad}: ") and err.count("\n") == 1, err

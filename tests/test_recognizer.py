"""``asr.Recognizer``: the README example, inputs of every kind, one path shared with the CLI, and its errors."""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from helpers import TINY

from asr.audio.io import AudioError
from asr.cli import main
from asr.config import EncoderConfig, ModelConfig, load_config
from asr.data.cuts import load_cuts
from asr.data.tokenizer import CharTokenizer
from asr.decoding.resolve import resolve_search
from asr.model.checkpoint import model_package, save_atomic
from asr.model.ctc import CTCModel

README = Path(__file__).resolve().parents[1] / "README.md"
UTT = "an406-fcaw-b"


@pytest.fixture(scope="module")
def wav(an4_dir) -> Path:
    return an4_dir / "wav" / "an4test_clstk" / "fcaw" / f"{UTT}.wav"


@pytest.fixture(scope="module")
def random_model(tmp_path_factory) -> Path:
    """A random 2 x 32 BiLSTM over letters whose CMVN makes it emit letters (non-empty words)."""
    torch.manual_seed(0)
    tokenizer = CharTokenizer.train(["ABCDEFGHIJKLMNOPQRSTUVWXYZ"])
    model = CTCModel(ModelConfig(encoder=EncoderConfig(num_layers=2, hidden_size=32)), len(tokenizer.units))
    model.cmvn.set_stats(10, torch.full((80,), -50.0, dtype=torch.float64),
                         torch.full((80,), 260.0, dtype=torch.float64))
    path = tmp_path_factory.mktemp("random") / "model.pt"
    save_atomic(model_package(model, tokenizer), path)
    return path


@pytest.fixture(scope="module")
def trained_checkpoint(small_sets, tmp_path_factory) -> Path:
    """One epoch of the TINY model on 12 real AN4 utterances: a training checkpoint."""
    from asr.training.loop import train

    exp = tmp_path_factory.mktemp("exp")
    cuts = small_sets / "cuts12.jsonl.gz"
    train(load_config(None, TINY + ["epochs=1"]), cuts, cuts, exp)
    (checkpoint,) = sorted((exp / "checkpoints").glob("epoch-*.pt"))
    return checkpoint


def _readme_example() -> str:
    text = README.read_text()
    section = text[text.index("## Python API"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.mark.parametrize("which", ["trained checkpoint", "random model file"])
def test_readme_example_runs(which, request, wav, tmp_path, monkeypatch, capsys):
    model = request.getfixturevalue("trained_checkpoint" if which.startswith("trained") else "random_model")
    (tmp_path / "exp").mkdir()
    (tmp_path / "exp" / "model.pt").symlink_to(model)
    (tmp_path / "speech.wav").symlink_to(wav)
    monkeypatch.chdir(tmp_path)
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        exec(compile(_readme_example(), "README.md", "exec"), {})
    lines = stdout.getvalue().splitlines()
    assert main(["transcribe", str(model), str(wav), "--threads", "1"]) == 0
    assert lines[0] == capsys.readouterr().out.rstrip("\n")  # the CLI prints the same text
    words = [line.split("\t") for line in lines[1:-1]]
    assert " ".join(w[0] for w in words) == lines[0]
    assert all(0 <= float(w[1]) < float(w[2]) <= 4.1 and 0 <= float(w[3]) <= 1 for w in words)
    assert lines[-1].startswith("True [")
    if which.startswith("random"):
        assert words, "the random model spells letters"


@pytest.fixture(scope="module")
def recognizer(random_model):
    from asr import Recognizer

    return Recognizer.from_pretrained(random_model)


def test_samples_paths_and_batches_agree(recognizer, wav, an4_dir):
    other = an4_dir / "wav" / "an4test_clstk" / "fcaw" / "an407-fcaw-b.wav"
    from_file = recognizer.transcribe(wav)
    samples, rate = sf.read(wav, dtype="float32")
    for x in (samples, torch.from_numpy(samples)):
        in_memory = recognizer.transcribe(x, sample_rate=rate)
        assert in_memory.words == from_file.words and in_memory.duration == pytest.approx(from_file.duration)
    assert from_file.words and from_file.nbest == []
    batched = recognizer.transcribe([wav, other, samples], sample_rate=rate, batch_size=3)
    single = [recognizer.transcribe(x, sample_rate=rate, batch_size=1) for x in (wav, other, samples)]
    assert [r.words for r in batched] == [r.words for r in single]
    assert [r.path for r in batched] == [str(wav), str(other), "<array 2>"]
    slower = recognizer.transcribe(samples[::2].copy(), sample_rate=8000)  # resampled to 16 kHz
    assert slower.duration == pytest.approx(from_file.duration, abs=1e-3)


def test_long_samples_are_segmented_like_a_long_file(recognizer, wav, tmp_path):
    samples, rate = sf.read(wav, dtype="float32")
    gap = np.random.default_rng(0).normal(0, 1e-4, 2 * rate).astype(np.float32)
    long = np.concatenate([gap, samples, gap, samples, gap] * 5)  # ~40 s: above max_segment
    sf.write(tmp_path / "long.wav", long, rate, subtype="FLOAT")
    from_file = recognizer.transcribe(tmp_path / "long.wav")
    in_memory = recognizer.transcribe(long, sample_rate=rate)
    assert len(from_file.segments) > 1
    assert [(s.start, s.end, s.text) for s in in_memory.segments] == [(s.start, s.end, s.text)
                                                                      for s in from_file.segments]


def test_decode_and_transcribe_share_one_path(recognizer, an4_manifests, an4_dir):
    """A cut of a manifest (asr decode) and its audio file (asr transcribe) give the same words."""
    cuts = load_cuts(an4_manifests / "an4_cuts_test.jsonl.gz").subset(first=3)
    for beam in (recognizer, recognizer.with_search("beam", beam_size=4)):
        decoded = {cut_id: hyp for cut_id, _, hyp in beam.decode_cuts(cuts, num_workers=0)}
        for cut in cuts:
            path = cut.recording.sources[0].source
            result = beam.transcribe(path)
            assert decoded[cut.id].text == result.text
            assert [(w.word, w.start, w.end) for w in decoded[cut.id].words] == [(w.word, w.start, w.end)
                                                                                 for w in result.words]
            assert [w.conf for w in decoded[cut.id].words] == pytest.approx([w.conf for w in result.words], abs=1e-5)


def test_beam_nbest_per_call(recognizer, wav):
    beam = recognizer.with_search("beam", beam_size=8)
    result = beam.transcribe(wav, nbest=3)
    assert 1 <= len(result.nbest) <= 3 and result.nbest[0][0] == result.text
    assert beam.transcribe(wav).nbest == []  # the recognizer itself is unchanged
    with pytest.raises(ValueError, match=r"^nbest: only for method 'beam' or 'beam-lm', not 'greedy'$"):
        recognizer.transcribe(wav, nbest=2)


def test_bad_samples_and_files(recognizer, wav, tmp_path):
    samples, rate = sf.read(wav, dtype="float32")
    with pytest.raises(ValueError, match="sample_rate is required"):
        recognizer.transcribe(samples)
    with pytest.raises(ValueError, match=r"expected 1-D samples \(N,\), got shape \(2, 100\)"):
        recognizer.transcribe(np.zeros((2, 100), np.float32), sample_rate=rate)
    with pytest.raises(TypeError, match="expected float samples"):
        recognizer.transcribe(np.zeros(16000, np.int16), sample_rate=rate)
    bad = samples.copy()
    bad[100] = np.nan
    with pytest.raises(AudioError, match="^<array>: audio contains NaN"):
        recognizer.transcribe(bad, sample_rate=rate)
    missing = tmp_path / "missing.wav"
    with pytest.raises(AudioError, match=f"^{re.escape(str(missing))}: "):
        recognizer.transcribe([wav, missing])
    kept = recognizer.transcribe([wav, missing, wav], errors="keep")
    assert isinstance(kept[1], AudioError) and kept[0].text == kept[2].text == recognizer.transcribe(wav).text


CONTRADICTIONS = [  # (method, options, the one error line)
    ("greedy", {"beam_size": 4}, "beam_size: only for method 'beam' or 'beam-lm', not 'greedy'"),
    ("greedy", {"nbest": 2, "lm_weight": 1.0}, "lm_weight, nbest: only for method 'beam-lm', not 'greedy'"),
    ("beam", {"lm": "lm.arpa"}, "lm: only for method 'beam-lm', not 'beam'"),
    ("beam", {"lexicon": "lex.txt", "word_score": 1.0}, "lexicon, word_score: only for method 'beam-lm', not 'beam'"),
]


def _flags(options: dict) -> list[str]:
    return [str(x) for k, v in options.items() for x in (f"--{k.replace('_', '-')}", v)]


@pytest.mark.parametrize("method, options, message", CONTRADICTIONS, ids=[f"{m}-{'-'.join(o)}" for m, o, _ in
                                                                           CONTRADICTIONS])
def test_contradictory_options_are_the_same_error_everywhere(method, options, message, random_model, wav,
                                                             an4_manifests, tmp_path, capsys):
    from asr import Recognizer

    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        resolve_search(method, options)
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        Recognizer.from_pretrained(random_model, method=method, **options)
    cuts = an4_manifests / "an4_cuts_test.jsonl.gz"
    for command in (["decode", str(random_model), str(cuts), "--out-dir", str(tmp_path)],
                    ["transcribe", str(random_model), str(wav)]):
        assert main([*command, "--method", method, *_flags(options)]) == 1
        err = capsys.readouterr().err
        assert err == f"asr {command[0]}: error: {message}\n"
    assert not list(tmp_path.iterdir())  # nothing decoded


def test_decode_takes_each_methods_own_options(random_model, an4_manifests, tmp_path):
    """``--method greedy beam --beam-size 4``: the beam option is for beam; greedy runs as always."""
    cuts = load_cuts(an4_manifests / "an4_cuts_test.jsonl.gz").subset(first=2)
    cuts.to_file(tmp_path / "cuts.jsonl.gz")
    assert main(["decode", str(random_model), str(tmp_path / "cuts.jsonl.gz"), "--method", "greedy", "beam",
                 "--beam-size", "4", "--nbest", "2", "--num-workers", "0", "--out-dir", str(tmp_path)]) == 0
    rows = (tmp_path / "hyp-test-beam.jsonl").read_text()
    assert '"nbest"' in rows and '"conf"' in rows
    assert '"nbest"' not in (tmp_path / "hyp-test-greedy.jsonl").read_text()


def test_import_asr_config_stays_light():
    code = "import sys, asr.config; assert 'torch' not in sys.modules; import asr; print(asr.Recognizer.__name__)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            env=dict(os.environ, PYTHONPATH=str(README.parent)))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "Recognizer"

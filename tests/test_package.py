"""``asr package`` and ``load_acoustic_model``: model folders load as a user loads them, offline hub ids
included, and every broken folder is one clear error line naming the file."""

from __future__ import annotations

import json
from pathlib import Path
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from asr.audio.features import LogMel
from asr.audio.io import load_audio
from asr.cli import main
from asr.config import EncoderConfig, ModelConfig, SubsamplingConfig
from asr.data.cuts import collate_feats
from asr.data.tokenizer import CharTokenizer
from asr.model.checkpoint import CheckpointError, load_model, model_package, save_atomic
from asr.model.ctc import CTCModel
from asr.model.files import load_acoustic_model, quantize_int8
from asr.model.onnx_model import OnnxModel

UTTS = ["an406-fcaw-b", "an407-fcaw-b", "an408-fcaw-b"]
ARPA = """\\data\\
ngram 1=4

\\1-grams:
-0.6 </s>
-99 <s> -0.3
-0.6 YES -0.3
-0.6 NO -0.3

\\end\\
"""


def _model(hidden=24, cell="lstm", seed=0, layers=2):
    torch.manual_seed(seed)
    tokenizer = CharTokenizer.train(["ABCDEFGHIJKLMNOPQRSTUVWXYZ"])
    cfg = ModelConfig(subsampling=SubsamplingConfig(factor=3),
                      encoder=EncoderConfig(cell=cell, num_layers=layers, hidden_size=hidden))
    model = CTCModel(cfg, len(tokenizer.units)).eval()
    model.cmvn.set_stats(10, torch.full((80,), -50.0, dtype=torch.float64), torch.full((80,), 260.0, dtype=torch.float64))
    return model, tokenizer


@pytest.fixture(scope="module")
def exp(tmp_path_factory):
    """An experiment directory as the recipe leaves it: model.pt, lm-params.yaml, a lexicon, decode/results.md."""
    exp = tmp_path_factory.mktemp("exp")
    model, tokenizer = _model()
    save_atomic(model_package(model, tokenizer), exp / "model.pt")
    (exp / "3gram.arpa").write_text(ARPA)
    (exp / "lexicon.txt").write_text("YES\tY E S |\nNO\tN O |\n")
    (exp / "lm-params.yaml").write_text(f"lm: {exp / '3gram.arpa'}\nlexicon: lexicon.txt\nlm_weight: 1.5\n"
                                        "word_score: 2.5\nbeam_size: 50\nbeam_threshold: 25.0\ndev_wer: 16.76\n")
    (exp / "decode").mkdir()
    (exp / "decode" / "results.md").write_text("| system | %WER |\n|---|---|\n| hyp-test-greedy | 9.70 |\n")
    return exp


@pytest.fixture(scope="module")
def real_feats(an4_dir):
    logmel = LogMel(ModelConfig().features)
    waves = [load_audio(an4_dir / "wav" / "an4test_clstk" / "fcaw" / f"{u}.wav") for u in UTTS]
    return collate_feats([logmel(w) for w in waves])


@pytest.fixture(scope="module")
def folder(exp, tmp_path_factory):
    out = tmp_path_factory.mktemp("pkg") / "model"
    assert main(["package", str(exp), "--out", str(out)]) == 0
    return out


@pytest.mark.parametrize("weights, int8", [("safetensors", False), ("safetensors", True), ("onnx", False)])
def test_packaged_folder_gives_the_model_outputs(exp, tmp_path, real_feats, small_sets, weights, int8):
    out = tmp_path / "model"
    args = ["package", str(exp), "--out", str(out), "--weights", weights, "--train-cuts",
            str(small_sets / "cuts12.jsonl.gz")] + (["--int8"] if int8 else [])
    assert main(args) == 0
    weights_file = "model.onnx" if weights == "onnx" else "model.safetensors"
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["README.md", "config.json", "lexicon.txt", "lm-params.yaml", "lm.arpa", "tokenizer.json", weights_file])
    config = json.loads((out / "config.json").read_text())
    assert config["weights"] == weights_file and config["quantization"] == ("int8" if int8 else None)
    assert config["decoding"] == {"lm_weight": 1.5, "word_score": 2.5, "beam_size": 50, "beam_threshold": 25.0,
                                  "lm": "lm.arpa", "lexicon": "lexicon.txt", "lm_params": "lm-params.yaml"}
    model, tokenizer, extras = load_acoustic_model(out)
    source, source_tokenizer = load_model(exp / "model.pt")
    assert tokenizer.units == source_tokenizer.units and model.cfg == source.cfg
    assert extras.lm == (out / "lm.arpa").resolve() and extras.lexicon == (out / "lexicon.txt").resolve()
    assert extras.beam_lm_options() == {"lm": str(extras.lm), "lexicon": str(extras.lexicon), "lm_weight": 1.5,
                                        "word_score": 2.5, "beam_size": 50, "beam_threshold": 25.0}
    assert (out / "lm.arpa").read_text() == ARPA
    assert "lm: lm.arpa" in (out / "lm-params.yaml").read_text()  # folder-relative, not the build machine's path
    feats, lens = real_feats
    with torch.inference_mode():
        expected, expected_lens = (quantize_int8(source) if int8 else source)(feats, lens)
        got, got_lens = model(feats, lens)
    assert torch.equal(got_lens, expected_lens)
    tolerance = 0.0 if weights == "safetensors" else 1e-4  # int8: the stored weights are the quantized ones, exactly
    for b, n in enumerate(expected_lens.tolist()):
        torch.testing.assert_close(got[b, :n], expected[b, :n], atol=tolerance, rtol=0)
    card = (out / "README.md").read_text()
    params = sum(p.numel() for p in source.parameters())
    assert f"| parameters | {params / 1e6:.2f} M |" in card
    assert "`cuts12.jsonl.gz`: 12 utterances" in card and "CMU AN4" in card  # corpus found from the audio paths
    assert "| hyp-test-greedy | 9.70 |" in card and "bash recipes/an4/run.sh" in card
    assert ("int8" in card) == int8


def test_int8_folder_is_at_most_a_third_of_float(tmp_path):
    model, tokenizer = _model(hidden=256, layers=3)  # the AN4 recipe's size, 4.2M parameters
    path = tmp_path / "m.pt"
    save_atomic(model_package(model, tokenizer), path)
    assert main(["package", str(path), "--out", str(tmp_path / "f32")]) == 0
    assert main(["package", str(path), "--out", str(tmp_path / "i8"), "--int8"]) == 0
    size = {name: (tmp_path / name / "model.safetensors").stat().st_size for name in ("f32", "i8")}
    assert size["i8"] * 3 <= size["f32"], size
    tensors = load_file(str(tmp_path / "i8" / "model.safetensors"))
    assert tensors["encoder.layers.0.fwd.weight_ih_l0"].dtype == torch.int8
    assert tensors["output.weight"].dtype == torch.int8 and tensors["cmvn.mean"].dtype == torch.float32


def test_repackaging_a_folder_keeps_its_lm(folder, tmp_path):
    out = tmp_path / "again"
    assert main(["package", str(folder), "--out", str(out)]) == 0
    _, _, extras = load_acoustic_model(out)
    assert extras.lm.read_text() == ARPA and extras.decoding["lm_weight"] == 1.5


def test_hub_id_loads_from_an_offline_cache(folder, tmp_path, monkeypatch):
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--speech-lab--an4-bilstm"
    shutil.copytree(folder, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model, tokenizer, extras = load_acoustic_model("speech-lab/an4-bilstm")
    expected, _, _ = load_acoustic_model(folder)
    assert extras.source == (repo / "snapshots" / commit).resolve()
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), expected.state_dict().values()))
    with pytest.raises(CheckpointError, match=r"^speech-lab/missing: .*local hub cache"):
        load_acoustic_model("speech-lab/missing")


def _tamper(folder, tmp_path, case):
    """A broken copy of ``folder``; returns (the path to give, the file the error must name)."""
    bad = tmp_path / "bad"
    if case == "missing folder":
        return bad, bad
    shutil.copytree(folder, bad)
    config_path = bad / "config.json"
    config = json.loads(config_path.read_text())
    if case == "no config.json":
        config_path.unlink()
        return bad, bad
    if case == "no weights":
        (bad / "model.safetensors").unlink()
        return bad, bad / "model.safetensors"
    if case == "config not json":
        config_path.write_text(config_path.read_text()[:-20])
        return bad, config_path
    if case == "config hidden size":
        config["model"]["encoder"]["hidden_size"] = 32
        config_path.write_text(json.dumps(config))
        return bad, bad / "model.safetensors"
    if case == "config unknown key":
        config["model"]["encoder"]["hidden"] = 32
        config_path.write_text(json.dumps(config))
        return bad, config_path
    if case == "config bad cell":
        config["model"]["encoder"]["cell"] = "transformer"
        config_path.write_text(json.dumps(config))
        return bad, config_path
    if case == "config vocab":
        config["vocab_size"] = 40
        config_path.write_text(json.dumps(config))
        return bad, config_path
    if case == "weights outside":
        config["weights"] = "../model.safetensors"
        config_path.write_text(json.dumps(config))
        return bad, config_path
    if case == "wrong shapes":
        tensors = load_file(str(bad / "model.safetensors"))
        tensors["output.weight"] = tensors["output.weight"][:, :-1].contiguous()
        save_file(tensors, str(bad / "model.safetensors"))
        return bad, bad / "model.safetensors"
    if case == "not safetensors":
        (bad / "model.safetensors").write_bytes(b"\x00" * 64)
        return bad, bad / "model.safetensors"
    raise AssertionError(case)


@pytest.mark.parametrize("case", ["missing folder", "no config.json", "no weights", "config not json",
                                  "config hidden size", "config unknown key", "config bad cell", "config vocab",
                                  "weights outside", "wrong shapes", "not safetensors"])
def test_broken_folder_is_one_clear_error(folder, tmp_path, capsys, case):
    path, named = _tamper(folder, tmp_path, case)
    with pytest.raises(CheckpointError, match=rf"^{str(named)}[: ]"):
        load_acoustic_model(path)
    capsys.readouterr()
    assert main(["package", str(path), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"asr package: error: {named}") and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()


def test_onnx_of_another_model_in_a_folder_is_refused(exp, tmp_path, capsys):
    onnx_dir = tmp_path / "onnx"
    assert main(["package", str(exp / "model.pt"), "--out", str(onnx_dir), "--weights", "onnx"]) == 0
    other, other_tokenizer = _model(hidden=16, seed=1)
    save_atomic(model_package(other, other_tokenizer), tmp_path / "other.pt")
    assert main(["export", str(tmp_path / "other.pt"), "--format", "onnx", "--out", str(tmp_path / "other.onnx")]) == 0
    assert isinstance(load_acoustic_model(onnx_dir)[0], OnnxModel)
    shutil.copyfile(tmp_path / "other.onnx", onnx_dir / "model.onnx")
    capsys.readouterr()
    assert main(["export", str(onnx_dir), "--format", "onnx", "--out", str(tmp_path / "x.onnx")]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"asr export: error: {onnx_dir / 'model.onnx'}: ONNX graph of another model")
    assert err.count("\n") == 1


def test_package_refuses_to_overwrite_other_folders(exp, tmp_path, capsys):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "keep.txt").write_text("x")
    assert main(["package", str(exp), "--out", str(tmp_path / "data")]) == 1
    assert "exists and is not a model folder" in capsys.readouterr().err
    assert (tmp_path / "data" / "keep.txt").read_text() == "x"


def test_recognizer_takes_a_folder_lm_tuned_values_and_calibration(exp, an4_dir, an4_manifests, tmp_path):
    """from_pretrained(folder, "beam-lm"), with_search("beam-lm") and ``asr decode FOLDER --method beam-lm``
    search with the folder's own LM, lexicon and tuned weights, as the .pt file does with them given by hand;
    a calibration.json in the folder maps the word confidences."""
    from asr.data.cuts import load_cuts
    from asr import Recognizer
    from asr.decoding.confidence import Calibrator

    from asr.decoding.lm import build_lm

    exp_lm = tmp_path / "exp"
    shutil.copytree(exp, exp_lm)
    (tmp_path / "text").write_text("YES NO\nNO YES YES\nNO\n")
    build_lm(tmp_path / "text", exp_lm / "3gram.arpa", 2)  # one KenLM loads (the fixture's ARPA is for packaging)
    (exp_lm / "lm-params.yaml").write_text((exp / "lm-params.yaml").read_text().replace(str(exp), str(exp_lm)))
    folder = tmp_path / "folder"
    assert main(["package", str(exp_lm), "--out", str(folder)]) == 0
    exp = exp_lm
    wav = an4_dir / "wav" / "an4test_clstk" / "fcaw" / f"{UTTS[0]}.wav"
    by_folder = Recognizer.from_pretrained(folder, method="beam-lm")
    options = dict(by_folder.search.options)
    assert Path(options["lm"]).parent == folder and options["lm_weight"] == 1.5 and options["word_score"] == 2.5
    by_hand = Recognizer.from_pretrained(exp / "model.pt", method="beam-lm", lm=str(exp / "3gram.arpa"),
                                         lexicon=str(exp / "lexicon.txt"), lm_weight=1.5, word_score=2.5,
                                         beam_size=50)
    expected = by_hand.transcribe(wav)
    got = by_folder.transcribe(wav)
    assert got.text == expected.text and set(got.text.split()) <= {"YES", "NO"}
    assert [(w.word, w.start, w.end) for w in got.words] == [(w.word, w.start, w.end) for w in expected.words]
    assert Recognizer.from_pretrained(folder).with_search("beam-lm").search.options == by_folder.search.options
    cuts = load_cuts(an4_manifests / "an4_cuts_test.jsonl.gz").filter(lambda cut: cut.id == UTTS[0]).to_eager()
    cuts.to_file(tmp_path / "cuts.jsonl.gz")
    assert main(["decode", str(folder), str(tmp_path / "cuts.jsonl.gz"), "--method", "beam-lm", "--out-dir",
                 str(tmp_path / "decode")]) == 0
    assert (tmp_path / "decode" / "hyp-test-beam-lm.txt").read_text() == f"{UTTS[0]} {expected.text}\n"
    calibrated = tmp_path / "calibrated"
    shutil.copytree(folder, calibrated)
    Calibrator("platt", {"a": 0.0, "b": 0.0}).save(calibrated / "calibration.json")  # every confidence -> 0.5
    words = Recognizer.from_pretrained(calibrated, method="beam-lm").transcribe(wav).words
    assert words and all(w.conf == pytest.approx(0.5) for w in words)

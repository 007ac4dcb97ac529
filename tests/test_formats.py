"""Every model format through every entry point, and every broken model file as one clear line.

One random LC-BLSTM (streamable, so ``asr stream`` and ``asr serve`` apply too) is written once per
module in each format the toolkit writes. Each entry point must give, on two real AN4 utterances,
the text of the model the format holds when it is called directly: the eager model for the float
formats; for int8 the int8 model itself (``quantize_int8`` of the eager one, which a ``--int8``
folder equals bit for bit, or ONNX Runtime's int8 graph), because int8 activations are quantized
per call, so a random model's int8 text differs from its float text. Every input runs in a batch
of its own (``--batch-size 1``, one cut per decode batch) and streams get the same blocks as the
reference, which int8 needs. A combination that is not supported is one line, asserted here.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import random
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from asr.audio.features import LogMel
from asr.audio.io import load_audio, read_blocks
from asr.cli import main
from asr.config import EncoderConfig, ModelConfig, ServerConfig, StreamConfig, SubsamplingConfig
from asr.data.cuts import load_cuts
from asr.data.tokenizer import CharTokenizer
from asr.decoding.confidence import default_calibration_path
from asr.decoding.resolve import default_params_path
from asr.decoding.search import greedy_search
from asr.decoding.tune import point_errors
from asr.inference.recognizer import Recognizer
from asr.inference.server import run_server
from asr.inference.stream import Stream
from asr.model.checkpoint import load_model, model_package, save_atomic
from asr.model.ctc import CTCModel
from asr.model.files import load_onnx_model, quantize_int8
from asr.model.onnx_model import OnnxModel
from helpers import word_lm_and_lexicon

TOKENIZER = CharTokenizer.train(["ABCDEFGHIJKLMNOPQRSTUVWXYZ"])
CHUNK = 8000  # bytes per message, as the Vosk client example sends
TIMEOUT = 60  # seconds for one server session (a loaded 2-core machine)
DECODE_MAX_DURATION = "4.5"  # s: the two cuts (4.0 s, 4.1 s) go in batches of their own
# format -> (path in the models folder, what runs it: "eager", "int8" (PyTorch), "onnx", or None: refused)
FORMATS = {
    "pt": ("model.pt", "eager"),
    "folder": ("folder", "eager"),
    "folder-onnx": ("folder-onnx", "onnx"),
    "onnx": ("model.onnx", "onnx"),
    "ts": ("model.ts", None),
    "ts-int8": ("model-int8.ts", None),
    "folder-int8": ("folder-int8", "int8"),
    "folder-onnx-int8": ("folder-onnx-int8", "onnx"),
    "onnx-int8": ("model-int8.onnx", "onnx"),
}
ENTRY_POINTS = ["transcribe", "decode", "recognizer", "stream", "serve"]


def _refusal(name: str, path: Path, entry: str) -> str | None:
    """The start of the one line that a combination without support gives, or None."""
    kind = FORMATS[name][1]
    if kind is None:
        return f"{path}: a TorchScript export ('asr export') runs alone under torch.jit.load"
    if kind == "onnx" and entry == "stream":
        return f"{path}: an ONNX model cannot stream (its graph runs whole utterances)"
    return None


def _onnx_file(path: Path) -> Path:
    return path / "model.onnx" if path.is_dir() else path


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models: one intra-op thread (a second only adds synchronisation: 3x the wall time on a loaded machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def cuts(an4_manifests, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cuts") / "cuts2.jsonl.gz"
    load_cuts(an4_manifests / "an4_cuts_test.jsonl.gz").subset(first=2).to_file(out)
    return out


@pytest.fixture(scope="module")
def wavs(cuts) -> list[Path]:
    return [Path(cut.recording.sources[0].source) for cut in load_cuts(cuts)]


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    """A folder with the LC-BLSTM in every format of ``FORMATS``, each written by the command a user runs
    (ONNX before TorchScript in one process: that order broke the TorchScript export's check)."""
    out = tmp_path_factory.mktemp("formats")
    torch.manual_seed(0)  # this random LC-BLSTM says something on AN4 audio (tests/test_stream.py)
    cfg = ModelConfig(subsampling=SubsamplingConfig(kind="stack", factor=3),
                      encoder=EncoderConfig(num_layers=2, hidden_size=32, chunk_frames=5, right_context=2))
    save_atomic(model_package(CTCModel(cfg, len(TOKENIZER.units)).eval(), TOKENIZER), out / "model.pt")
    for args in (["package", "--out", out / "folder"], ["package", "--out", out / "folder-int8", "--int8"],
                 ["package", "--out", out / "folder-onnx", "--weights", "onnx"],
                 ["package", "--out", out / "folder-onnx-int8", "--weights", "onnx", "--int8"],
                 ["export", "--out", out / "model.ts"], ["export", "--out", out / "model-int8.ts", "--int8"]):
        assert main([args[0], str(out / "model.pt"), *map(str, args[1:])]) == 0
    # the folders' graphs are what 'asr export --format onnx [--int8]' writes (both: onnx_bytes, self-describing)
    shutil.copy(out / "folder-onnx" / "model.onnx", out / "model.onnx")
    shutil.copy(out / "folder-onnx-int8" / "model.onnx", out / "model-int8.onnx")
    return out


def _direct_model(models: Path, name: str):
    """The model that format ``name`` holds, to be called directly: the reference for its entry points."""
    rel, kind = FORMATS[name]
    if kind == "onnx":
        return load_onnx_model(_onnx_file(models / rel))[0]
    model, _ = load_model(models / "model.pt")
    return quantize_int8(model) if kind == "int8" else model


@torch.inference_mode()
def _whole_file_texts(model, wavs: list[Path]) -> list[str]:
    logmel = LogMel(model.cfg.features)
    texts = []
    for wav in wavs:
        feats = logmel(load_audio(wav))[None]  # (1, T, F)
        log_probs, lens = model(feats, torch.tensor([feats.size(1)]))
        texts.append(greedy_search(log_probs, lens, TOKENIZER)[0].text)
    return texts


def _stream_text(model, blocks) -> str:
    """The final texts of a ``Stream`` fed ``blocks`` at 16 kHz, joined."""
    stream = Stream(model, TOKENIZER)
    texts = []
    for block in blocks:
        stream.accept_waveform(block, 16000)
        texts += [r.text for r in stream.result()]
    return " ".join(t for t in texts + [r.text for r in stream.finish()] if t)


def _pcm(wav: Path) -> np.ndarray:
    return sf.read(wav, dtype="int16")[0]


@pytest.fixture(scope="module")
def expected(models, wavs):
    """Format name -> entry point -> texts, from its model called directly (computed once per model)."""
    cache = {}

    def get(name: str) -> dict[str, list[str]]:
        key = name if FORMATS[name][1] == "onnx" else FORMATS[name][1]
        if key not in cache:
            model = _direct_model(models, name)
            files = _whole_file_texts(model, wavs)
            cache[key] = {"transcribe": files, "decode": files, "recognizer": files, "serve": files}
            if not isinstance(model, OnnxModel):  # the same blocks as 'asr stream' reads and the client sends
                block, chunk = int(16000 * StreamConfig.block_ms / 1000), CHUNK // 2  # samples
                cache[key]["stream"] = [_stream_text(model, read_blocks(w, block)) for w in wavs]
                cache[key]["serve"] = [_stream_text(model, [p[i : i + chunk] for i in range(0, len(p), chunk)])
                                       for p in map(_pcm, wavs)]
        return cache[key]

    eager = get("pt")["transcribe"]
    assert all(eager) and eager[0] != eager[1], "the model should say something different per utterance"
    return get


async def _vosk_text(uri: str, pcm: np.ndarray) -> str:
    """A Vosk client (its websocket/test.py): config, 8000-byte chunks with one reply each, eof; finals joined."""
    data = pcm.astype("<i2").tobytes()
    async with connect(uri) as ws:
        await ws.send(json.dumps({"config": {"sample_rate": 16000}}))
        replies = []
        for i in range(0, len(data), CHUNK):
            await ws.send(data[i : i + CHUNK])
            replies.append(json.loads(await ws.recv()))
        await ws.send('{"eof" : 1}')
        replies.append(json.loads(await ws.recv()))
    return " ".join(r["text"] for r in replies if r.get("text"))


def _upload_text(port: int, wav: Path) -> str:
    """The text ``POST /transcribe`` (the page's file upload) gives for ``wav``."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        connection.request("POST", "/transcribe", body=wav.read_bytes(), headers={"Content-Type": "audio/wav"})
        response = connection.getresponse()
        assert response.status == 200, response.read()
        return json.loads(response.read())["text"]
    finally:
        connection.close()


async def _refused_websocket(uri: str) -> tuple[int, str]:
    """Close code and error of a WebSocket session with a server whose model cannot stream."""
    async with connect(uri) as ws:
        message = json.loads(await ws.recv())
        with pytest.raises(ConnectionClosed):
            await ws.recv()
        return ws.close_code, message["error"]


def _serve_texts(path: Path, wavs: list[Path]) -> list[str]:
    """What real clients get from ``run_server`` on loopback with the model 'asr serve' loads: Vosk WebSocket
    sessions for a streamable format, uploads for an ONNX graph (whose WebSocket clients are told why not)."""
    recognizer = Recognizer.from_pretrained(path, device="cpu", batch_size=1)
    onnx = isinstance(recognizer.model, OnnxModel)
    prototype = None if onnx else Stream.from_pretrained(path)  # as asr.inference.server.serve

    async def session() -> list[str]:
        loop = asyncio.get_running_loop()
        port, stop = loop.create_future(), loop.create_future()
        server = asyncio.create_task(run_server(prototype, ServerConfig(port=0), port.set_result, stop,
                                                recognizer=recognizer))
        try:
            uri = f"ws://127.0.0.1:{await port}"
            if prototype is not None:
                return [await _vosk_text(uri, _pcm(w)) for w in wavs]
            code, error = await _refused_websocket(uri)
            assert code == 1003 and "needs a streaming model" in error
            return [await asyncio.to_thread(_upload_text, await port, w) for w in wavs]
        finally:
            stop.done() or stop.set_result(None)
            await server

    return asyncio.run(asyncio.wait_for(session(), TIMEOUT))


def _run(entry: str, path: Path, wavs: list[Path], cuts: Path, out: Path, capsys) -> list[str]:
    """Run one entry point on ``path``; its text per utterance."""
    if entry == "transcribe":
        assert main(["transcribe", str(path), *map(str, wavs), "--batch-size", "1"]) == 0
        return [line.split("\t", 1)[1] for line in capsys.readouterr().out.splitlines()]
    if entry == "decode":
        assert main(["decode", str(path), str(cuts), "--out-dir", str(out), "--max-duration", DECODE_MAX_DURATION]) == 0
        hyps = dict((line + " ").split(" ", 1) for line in (out / "hyp-test-greedy.txt").read_text().splitlines())
        return [hyps[cut.id].strip() for cut in load_cuts(cuts)]
    if entry == "recognizer":
        return [t.text for t in Recognizer.from_pretrained(path, device="cpu", batch_size=1).transcribe(list(wavs))]
    if entry == "stream":
        texts = []
        for wav in wavs:
            assert main(["stream", str(path), str(wav)]) == 0
            texts.append(" ".join(capsys.readouterr().out.split()))
        return texts
    return _serve_texts(path, wavs)


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize("name", list(FORMATS))
def test_every_format_through_every_entry_point(models, expected, wavs, cuts, tmp_path, capsys, name, entry):
    path = models / FORMATS[name][0]
    refusal = _refusal(name, path, entry)
    if refusal is None:
        assert _run(entry, path, wavs, cuts, tmp_path, capsys) == expected(name)[entry]
        return
    if entry == "recognizer":
        with pytest.raises(ValueError, match=re.escape(refusal)) as raised:
            Recognizer.from_pretrained(path)
        assert "\n" not in str(raised.value)
        return
    args = {"transcribe": [path, *wavs], "decode": [path, cuts, "--out-dir", tmp_path], "stream": [path, wavs[0]],
            "serve": [path, "--port", "0"]}[entry]
    assert main([entry, *map(str, args)]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith(f"asr {entry}: error: {refusal}"), captured.err
    assert captured.err.count("\n") == 1, captured.err
    if entry in ("stream", "serve"):
        with pytest.raises(ValueError, match=re.escape(refusal)):
            Stream.from_pretrained(path)


def test_a_model_that_cannot_stream_is_named(tmp_path, wavs, capsys):
    model = CTCModel(ModelConfig(encoder=EncoderConfig(num_layers=1, hidden_size=8)), len(TOKENIZER.units))
    save_atomic(model_package(model, TOKENIZER), tmp_path / "bi.pt")
    assert main(["stream", str(tmp_path / "bi.pt"), str(wavs[0])]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"asr stream: error: {tmp_path / 'bi.pt'}: a full-utterance bidirectional encoder cannot "
                          "stream") and err.count("\n") == 1, err


@pytest.mark.parametrize("name", ["onnx", "folder-onnx", "folder-int8", "folder-onnx-int8"])
def test_onnx_and_int8_run_on_the_cpu_only(models, wavs, capsys, monkeypatch, name):
    path = models / FORMATS[name][0]
    what = "an int8 model runs on PyTorch's CPU int8 kernels only" if name == "folder-int8" else \
        "an ONNX model runs on ONNX Runtime's CPU provider only"
    assert main(["transcribe", str(path), str(wavs[0]), "--device", "cuda"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"asr transcribe: error: {path}: {what}, not on device 'cuda'") and err.count("\n") == 1
    with pytest.raises(ValueError, match=re.escape(f"{path}: {what}, not on device 'cuda:1'")):
        Recognizer.from_pretrained(path, device="cuda:1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # "auto" on a GPU machine picks the CPU for them
    assert Recognizer.from_pretrained(path, device="auto").transcribe(wavs[0]).text


def _garbage(models: Path, tmp: Path, case: str) -> tuple[Path, str]:
    """A broken model of ``case`` under ``tmp``, and the start of the one line it must give."""
    noise = random.Random(0).randbytes(5000)  # as `head -c 5000 /dev/urandom`, the same every run
    not_torch = "not a readable checkpoint or model file (not the zip archive torch.save writes"
    if case in ("random.pt", "random.ts"):
        (tmp / case).write_bytes(noise)
        return tmp / case, f"{tmp / case}: {not_torch}"
    if case == "random.onnx":
        (tmp / case).write_bytes(noise)
        return tmp / case, f"{tmp / case}: not a readable ONNX model ("
    if case in ("truncated.pt", "truncated.onnx"):
        data = (models / f"model{Path(case).suffix}").read_bytes()
        (tmp / case).write_bytes(data[: len(data) // 2])
        return tmp / case, f"{tmp / case}: " + (not_torch if case.endswith(".pt") else "not a readable ONNX model (")
    if case == "pickled-module.pt":  # torch.save(model) of a whole module: not a weights-only file
        torch.save({"model": torch.nn.Linear(2, 2)}, tmp / case)
        return tmp / case, (f"{tmp / case}: not a readable checkpoint or model file (it pickles objects that a "
                            "weights-only load refuses: Unsupported global: GLOBAL torch.nn.modules.linear.Linear)")
    folder = tmp / case
    shutil.copytree(models / "folder", folder)
    name = {"folder-safetensors": "model.safetensors", "folder-config": "config.json"}[case]
    (folder / name).write_bytes(noise[:300])
    reason = "not a readable safetensors file (" if name == "model.safetensors" else "not valid JSON ("
    return folder, f"{folder / name}: {reason}"


@pytest.mark.parametrize("case", ["random.pt", "random.onnx", "random.ts", "truncated.pt", "truncated.onnx",
                                  "pickled-module.pt", "folder-safetensors", "folder-config"])
def test_a_garbage_model_file_is_one_clear_line(models, wavs, tmp_path, capsys, case):
    path, line = _garbage(models, tmp_path, case)
    assert main(["transcribe", str(path), str(wavs[0])]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith(f"asr transcribe: error: {line}"), captured.err
    assert captured.err.count("\n") == 1 and "weights_only" not in captured.err and "likely" not in captured.err
    with pytest.raises(ValueError, match=re.escape(line)) as raised:
        Recognizer.from_pretrained(path)
    assert "\n" not in str(raised.value) and "weights_only" not in str(raised.value)


@pytest.fixture(scope="module")
def word_lm(models, an4_manifests, tmp_path_factory) -> Path:
    """``lm.arpa`` (AN4 training text) and ``lexicon.txt`` in the test models' units."""
    out = tmp_path_factory.mktemp("word_lm")
    word_lm_and_lexicon(models / "model.pt", an4_manifests / "text_train", out)
    return out


def _own_copy(models: Path, name: str, tmp: Path) -> Path:
    """Format ``name``'s file or folder copied under ``tmp``, so that files written beside it land there."""
    source = models / FORMATS[name][0]
    copy = shutil.copytree if source.is_dir() else shutil.copy
    return Path(copy(source, tmp / source.name))


@pytest.mark.parametrize("name", [name for name, (_, kind) in FORMATS.items() if kind is not None])
def test_tune_and_calibrate_take_every_format_that_decodes(models, cuts, word_lm, tmp_path, name):
    """``asr tune`` and ``asr calibrate`` load what ``asr decode`` loads; lm-params.yaml goes beside the model file
    or folder, calibration.json where ``Recognizer`` reads it: beside a model file, inside a model folder."""
    path = _own_copy(models, name, tmp_path)
    lm, lexicon = word_lm / "lm.arpa", word_lm / "lexicon.txt"
    assert main(["tune", str(path), str(cuts), "--lm", str(lm), "--lexicon", str(lexicon), "--points", "2",
                 "--beam", "8", "--max-duration", DECODE_MAX_DURATION]) == 0
    params = yaml.safe_load(default_params_path(path).read_text())
    assert default_params_path(path).parent == tmp_path
    points = [(t["lm_weight"], t["word_score"]) for t in params["trials"]]
    errors = point_errors(_direct_model(models, name), TOKENIZER, load_cuts(cuts), lm, lexicon, points, 8)
    assert [t["wer"] for t in params["trials"]] == pytest.approx([100 * e / n for e, n in errors])

    assert main(["calibrate", str(path), str(cuts), "--method", "temperature"]) == 0
    assert default_calibration_path(path).parent == (path if path.is_dir() else tmp_path)
    assert Recognizer.from_pretrained(path, device="cpu").calibrator.method == "temperature"


@pytest.mark.parametrize("name", list(FORMATS))
def test_diagnose_takes_float_models_and_names_the_others(models, wavs, tmp_path, capsys, name):
    """``asr diagnose`` reads the encoder's gates and gradients: a float ``.pt`` or folder, else one line."""
    path = models / FORMATS[name][0]
    code = main(["diagnose", str(path), "--audio", str(wavs[0]), "--out-dir", str(tmp_path / "diag")])
    err = capsys.readouterr().err
    if FORMATS[name][1] == "eager":
        assert code == 0 and (tmp_path / "diag" / "gates.json").is_file(), err
        return
    assert code == 1 and err.count("\n") == 1 and err.startswith(f"asr diagnose: error: {path}: "), err

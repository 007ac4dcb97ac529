"""``asr serve`` over HTTP: the page's files, ``POST /transcribe``, its limits and the access checks, over loopback.

The server runs in a thread (``run_server``, as tests/test_server.py) or as ``asr serve`` in a
subprocess; every refused request runs beside a good Vosk client, which must still get what
``Stream`` gives, and is followed by a good upload.
"""

from __future__ import annotations

import asyncio
import http.client
import io
import json
import socket
from urllib.parse import urlsplit

import numpy as np
import pytest
import soundfile as sf
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from asr.config import EncoderConfig, ModelConfig
from asr.inference.recognizer import Recognizer, transcribe
from asr.model.checkpoint import model_package, save_atomic
from asr.model.ctc import CTCModel
from test_server import (TIMEOUT, TOKENIZER, _direct, _finals, _model, _server, _start, _vosk_client, _wait_for,  # noqa: F401
                         pcm, prototype)


@pytest.fixture(scope="module")
def lc_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("web") / "lc.pt"
    save_atomic(model_package(_model(), TOKENIZER), path)
    return path


@pytest.fixture(scope="module")
def wav(an4_dir):
    return sorted((an4_dir / "wav" / "an4test_clstk").rglob("*.wav"))[1]


def _http(uri: str, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    """(status, headers, body) of one request to the server at ``uri`` (ws:// or http://)."""
    address = urlsplit(uri)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=TIMEOUT)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def _raw(uri: str, data: bytes) -> tuple[int, bytes]:
    """Send ``data`` as it is (no client-side normalisation); (status, body) of the answer."""
    address = urlsplit(uri)
    with socket.create_connection((address.hostname, address.port), timeout=TIMEOUT) as sock:
        sock.sendall(data)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def _multipart(field: str, name: str, data: bytes) -> tuple[bytes, dict]:
    boundary = "asr-test-boundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{name}\"\r\n"
            f"Content-Type: audio/wav\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def _expected_json(model_path, wav, tmp_path) -> dict:
    """What ``asr transcribe -f json`` writes for ``wav``."""
    summary = transcribe(model_path, [wav], formats=["json"], output_dir=tmp_path, device="cpu")
    assert summary.transcribed == 1
    return json.loads((tmp_path / f"{wav.stem}.json").read_text())


def test_upload_raw_or_multipart_gives_the_json_of_asr_transcribe(lc_file, wav, tmp_path):
    expected = _expected_json(lc_file, wav, tmp_path)
    assert expected["text"], "the model should say something for the test to mean anything"
    recognizer = Recognizer.from_pretrained(lc_file, device="cpu")
    with _server(None, recognizer) as uri:
        raw = _http(uri, "POST", "/transcribe?name=a.wav", wav.read_bytes(), {"Content-Type": "audio/wav"})
        form = _http(uri, "POST", "/transcribe", *_multipart("file", wav.name, wav.read_bytes()))
        srt = _http(uri, "POST", "/convert?format=srt", form[2])
    assert raw[0] == form[0] == srt[0] == 200
    assert json.loads(raw[2]) == {**expected, "path": "a.wav"}
    assert json.loads(form[2]) == {**expected, "path": wav.name}
    assert srt[2].decode().splitlines()[2] == expected["text"]


def test_page_files_are_served_and_no_request_path_reaches_the_file_system(lc_file):
    with _server(None, Recognizer.from_pretrained(lc_file, device="cpu")) as uri:
        pages = {path: _http(uri, "GET", path) for path in ("/", "/app.js", "/worklet.js", "/style.css", "/info")}
        probes = [_raw(uri, f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())[0] for target in
                  ("/../asr/inference/web/app.js", "/%2e%2e/%2e%2e/etc/passwd", "//etc/passwd", "/web/index.html",
                   "/index.html", "/../../../../etc/passwd")]
        wrong_method = _http(uri, "POST", "/", b"x", {"Content-Type": "audio/wav"})
    assert all(status == 200 for status, _, _ in pages.values())
    status, headers, body = pages["/"]
    assert headers["Content-Type"].startswith("text/html") and b'<button id="mic"' in body
    assert "default-src 'self'" in headers["Content-Security-Policy"] and "Access-Control-Allow-Origin" not in headers
    assert b"registerProcessor" in pages["/worklet.js"][2]
    assert json.loads(pages["/info"][2]) == {"streaming": False, "note": json.loads(pages["/info"][2])["note"]}
    assert "streaming model" in json.loads(pages["/info"][2])["note"]
    assert probes == [404] * len(probes) and wrong_method[0] == 405


def _wav_bytes(samples: np.ndarray, rate: int = 16000) -> bytes:
    out = io.BytesIO()
    sf.write(out, samples, rate, format="WAV", subtype="PCM_16")
    return out.getvalue()


def test_bad_uploads_get_a_4xx_and_one_line_while_others_are_served(lc_file, wav, pcm, prototype, tmp_path):
    audio = wav.read_bytes()
    long_audio = _wav_bytes(np.zeros(16000 * 6, dtype=np.float32))  # 6 s: over the 5 s limit below
    cases = {  # name: (status, words of the error, request as raw bytes)
        "too large": (413, "at most 300000 accepted",
                      b"POST /transcribe HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 999999999\r\n\r\n"),
        "too long": (413, "6.0 s of audio, at most 5 s", _post_bytes(long_audio)),
        "undecodable": (400, "not a readable audio file", _post_bytes(b"RIFF garbage" * 50)),
        "empty": (400, "empty upload", _post_bytes(b"")),
        "too short": (400, "audio too short", _post_bytes(_wav_bytes(np.zeros(40, dtype=np.float32)))),
        "no file field": (400, "field named 'file'", _post_bytes(*_multipart("audio", "a.wav", audio))),
        "not audio": (415, "Content-Type 'text/plain'", _post_bytes(b"hello", {"Content-Type": "text/plain"})),
        "chunked": (411, "chunked uploads", b"POST /transcribe HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                            b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
        "head too large": (431, "request head too large", b"GET / HTTP/1.1\r\nX-Big: " + b"x" * 40000 + b"\r\n\r\n"),
        "malformed": (400, "malformed request line", b"HELLO\r\n\r\n"),
    }
    expected = _direct(prototype, pcm[1])
    recognizer = Recognizer.from_pretrained(lc_file, device="cpu")

    async def main(uri):
        bad = asyncio.to_thread(lambda: [_raw(uri, request) for _, _, request in cases.values()])  # one at a time
        return await asyncio.wait_for(asyncio.gather(bad, _vosk_client(uri, pcm[1])), TIMEOUT)

    with _server(prototype, recognizer, max_upload_bytes=300_000, max_upload_s=5.0) as uri:
        answers, good = asyncio.run(main(uri))
        busy = _busy_answers(uri, audio)
        after = _http(uri, "POST", "/transcribe", audio, {"Content-Type": "audio/wav"})
    for (name, (status, words, _)), (got, body) in zip(cases.items(), answers):
        error = json.loads(body)["error"]
        assert got == status and words in error and "\n" not in error and "asr-upload" not in error, (name, error)
    assert busy == (503, 200)
    assert after[0] == 200 and json.loads(after[2])["text"] == _expected_json(lc_file, wav, tmp_path)["text"]
    assert _finals(good) == expected


def _post_bytes(body: bytes, headers: dict | None = None) -> bytes:
    fields = {"Host": "127.0.0.1", "Content-Type": "audio/wav", **(headers or {}), "Content-Length": str(len(body))}
    return b"POST /transcribe HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items()).encode() + \
        b"\r\n" + body


def _busy_answers(uri: str, audio: bytes) -> tuple[int, int]:
    """With ``max_transcriptions`` 1: an upload whose body is half sent holds the one recogniser, so a
    second is told 503; then the first completes. -> (second's status, first's status)."""
    address = urlsplit(uri)
    request = _post_bytes(audio)
    with socket.create_connection((address.hostname, address.port), timeout=TIMEOUT) as first:
        first.sendall(request[: len(request) // 2])
        for _ in range(100):  # until the server holds the first upload's recogniser
            status, _ = _raw(uri, _post_bytes(audio))
            if status == 503:
                break
        first.sendall(request[len(request) // 2 :])
        answer = b""
        while chunk := first.recv(65536):
            answer += chunk
    return status, int(answer.split()[1])


def test_token_is_needed_on_the_page_the_websocket_and_the_upload(prototype, pcm, wav):
    headers = {"Content-Type": "audio/wav"}

    async def websocket(uri):
        try:
            async with connect(uri):
                return 101
        except InvalidStatus as err:
            return err.response.status_code

    with _server(prototype, token="s3cret") as uri:
        refused = [_http(uri, "GET", "/")[0], _http(uri, "POST", "/transcribe", wav.read_bytes(), headers)[0],
                   asyncio.run(websocket(uri))]
        page = _http(uri, "GET", "/?token=s3cret")
        cookie = page[1]["Set-Cookie"].split(";")[0]
        with_cookie = _http(uri, "GET", "/app.js", headers={"Cookie": cookie})[0]
        bearer = _http(uri, "POST", "/transcribe", wav.read_bytes(), {**headers, "Authorization": "Bearer s3cret"})
        good = asyncio.run(asyncio.wait_for(_vosk_client(f"{uri}/?token=s3cret", pcm[1][:16000]), TIMEOUT))
    assert refused == [401, 401, 401]
    assert page[0] == 200 and "HttpOnly" in page[1]["Set-Cookie"] and "SameSite=Strict" in page[1]["Set-Cookie"]
    assert with_cookie == 200 and bearer[0] == 200
    assert _finals(good) == _direct(prototype, pcm[1][:16000])


def test_cross_origin_requests_and_foreign_hosts_are_refused(prototype, wav):
    async def websocket(uri, **headers):
        try:
            async with connect(uri, **headers):
                return 101
        except InvalidStatus as err:
            return err.response.status_code

    with _server(prototype) as uri:
        port = urlsplit(uri).port
        statuses = [
            _http(uri, "POST", "/transcribe", wav.read_bytes(), {"Content-Type": "audio/wav",
                                                                 "Origin": "http://evil.example"})[0],
            asyncio.run(websocket(uri, origin="http://evil.example")),
            _http(uri, "GET", "/", headers={"Host": f"evil.example:{port}"})[0],  # a DNS-rebinding page
        ]
        same_origin = asyncio.run(websocket(uri, origin=f"http://127.0.0.1:{port}"))
    assert statuses == [403, 403, 403] and same_origin == 101


def test_cli_serves_page_and_uploads_for_an_offline_model_and_tells_websocket_clients_why_not(tmp_path, wav):
    model = CTCModel(ModelConfig(encoder=EncoderConfig(num_layers=1, hidden_size=8)), len(TOKENIZER.units))
    save_atomic(model_package(model, TOKENIZER), tmp_path / "bi.pt")
    process, lines = _start(tmp_path / "bi.pt", "--port", "0")
    try:
        port = int(_wait_for(lines, r"listening on http://127\.0\.0\.1:(\d+)/ ").group(1))
        uri = f"ws://127.0.0.1:{port}"
        info = json.loads(_http(uri, "GET", "/info")[2])
        upload = _http(uri, "POST", "/transcribe", wav.read_bytes(), {"Content-Type": "audio/wav"})

        async def client():
            async with connect(uri) as ws:
                message = json.loads(await ws.recv())
                with pytest.raises(ConnectionClosed):
                    await ws.recv()
                return message, ws.close_code

        message, code = asyncio.run(asyncio.wait_for(client(), TIMEOUT))
    finally:
        process.terminate()
        process.wait(TIMEOUT)
    assert info["streaming"] is False and upload[0] == 200 and set(json.loads(upload[2])) >= {"text", "segments"}
    assert code == 1003 and "needs a streaming model" in message["error"]

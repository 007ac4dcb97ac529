"""``asr serve``: real WebSocket clients over loopback speak the Vosk protocol to the real server.

The server runs in a thread of this process (``run_server``) or, for SIGTERM and the CLI, as
``asr serve`` in a subprocess. Every bad client runs next to a good one, which must still get
exactly what ``Stream`` gives when run directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import queue
import re
import signal
import string
import subprocess
import sys
import threading
import time
from dataclasses import replace

import numpy as np
import pytest
import soundfile as sf
import torch
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from asr.config import EncoderConfig, ModelConfig, ServerConfig, StreamConfig, SubsamplingConfig
from asr.data.tokenizer import CharTokenizer
from asr.decoding.search import word_row
from asr.inference.server import Session, run_server
from asr.inference.stream import Stream
from asr.model.checkpoint import model_package, save_atomic
from asr.model.ctc import CTCModel

TOKENIZER = CharTokenizer(["<blk>", "|", *string.ascii_uppercase])
STREAM_CFG = StreamConfig(endpoint_silence_ms=0, max_segment_s=1.0)  # results during the audio, not only at eof
CHUNK = 8000  # bytes per binary message, as the Vosk client example sends
TIMEOUT = 60  # seconds any one client may take (a loaded 2-core machine)


def _model() -> CTCModel:
    torch.manual_seed(0)  # this random LC-BLSTM says something on AN4 audio (tests/test_stream.py)
    cfg = ModelConfig(subsampling=SubsamplingConfig(kind="stack", factor=3),
                      encoder=EncoderConfig(num_layers=2, hidden_size=32, chunk_frames=5, right_context=2))
    return CTCModel(cfg, len(TOKENIZER.units)).eval()


@pytest.fixture(scope="module")
def prototype() -> Stream:
    return Stream(_model(), TOKENIZER, STREAM_CFG)


@pytest.fixture(scope="module")
def pcm(an4_dir) -> list[bytes]:
    """Two real AN4 test utterances as 16 kHz 16-bit little-endian PCM."""
    paths = sorted((an4_dir / "wav" / "an4test_clstk").rglob("*.wav"))[:2]
    return [sf.read(p, dtype="int16")[0].astype("<i2").tobytes() for p in paths]


def _direct(prototype: Stream, pcm: bytes, rate: int = 16000) -> list[dict]:
    """What the server should send: ``Stream`` run directly, as Vosk result objects."""
    stream = prototype.fork()
    results = []
    for i in range(0, len(pcm), CHUNK):
        stream.accept_waveform(np.frombuffer(pcm[i : i + CHUNK], dtype="<i2").copy(), rate)
        results += stream.result()
    results += stream.finish()
    return [{"result": [word_row(w) for w in r.words], "text": r.text} for r in results]


@contextlib.contextmanager
def _server(prototype: Stream | None, recognizer=None, **limits):
    """``run_server`` on a free loopback port in a thread; yields the URI, stops it on exit."""
    cfg = ServerConfig(port=0, **limits)
    loop, ports = asyncio.new_event_loop(), queue.Queue()
    stop = loop.create_future()
    thread = threading.Thread(target=loop.run_until_complete,
                              args=(run_server(prototype, cfg, ports.put, stop, recognizer),), daemon=True)
    thread.start()
    try:
        yield f"ws://127.0.0.1:{ports.get(timeout=TIMEOUT)}"
    finally:
        loop.call_soon_threadsafe(lambda: stop.done() or stop.set_result(None))
        thread.join(TIMEOUT)
        assert not thread.is_alive(), "the server did not stop"
        loop.close()


async def _vosk_client(uri: str, pcm: bytes, rate: int = 16000) -> list[dict]:
    """The Vosk project's websocket/test.py: config, 8000-byte chunks with one reply each, eof, final result."""
    replies = []
    async with connect(uri) as ws:
        await ws.send('{ "config" : { "sample_rate" : %d } }' % rate)
        for i in range(0, len(pcm), CHUNK):
            await ws.send(pcm[i : i + CHUNK])
            replies.append(json.loads(await ws.recv()))
        await ws.send('{"eof" : 1}')
        replies.append(json.loads(await ws.recv()))
    return replies


def _finals(replies: list[dict]) -> list[dict]:
    assert all(("partial" in r) != ("text" in r) for r in replies), replies
    return [r for r in replies if r.get("text")]


def test_vosk_client_gets_what_stream_gives_and_concurrent_clients_their_own(prototype, pcm):
    clips = [pcm[0], pcm[1], pcm[0][: len(pcm[0]) // 2]]
    expected = [_direct(prototype, clip) for clip in clips]
    assert all(expected) and expected[0] != expected[1], "the model should say something different per clip"
    assert len(expected[0]) >= 2, "--max-segment 1 should end segments during the audio"

    async def main():
        return await asyncio.wait_for(asyncio.gather(*(_vosk_client(uri, clip) for clip in clips)), TIMEOUT)

    with _server(prototype) as uri:
        alone = asyncio.run(asyncio.wait_for(_vosk_client(uri, pcm[0]), TIMEOUT))
        together = asyncio.run(main())
    assert _finals(alone) == expected[0]
    assert alone[-1] == expected[0][-1] and any("partial" in r for r in alone)
    assert [_finals(r) for r in together] == expected
    for replies, clip in zip(together, clips):
        assert len(replies) == -(-len(clip) // CHUNK) + 1  # one reply per chunk, one after eof


def test_8khz_client_is_resampled_like_stream(prototype, pcm):
    wave = np.frombuffer(pcm[0], dtype="<i2")[::2].copy()  # any 8 kHz signal will do
    clip = wave.astype("<i2").tobytes()
    with _server(prototype) as uri:
        replies = asyncio.run(asyncio.wait_for(_vosk_client(uri, clip, 8000), TIMEOUT))
    assert _finals(replies) == _direct(prototype, clip, 8000)


async def _bad_client(uri: str, case: str, pcm: bytes) -> tuple[list, int | None]:
    """Misbehave; return every message received until the server closed, and the close code."""
    received = []
    ws = await connect(uri)
    with contextlib.suppress(ConnectionClosed):  # the server may close while we still send
        if case == "malformed json":
            await ws.send('{"config": {"sample_rate": 16000')
        elif case == "unknown message":
            await ws.send(json.dumps({"flush": 1}))
        elif case == "odd-length frame":
            await ws.send(pcm[:1001])
        elif case == "oversized frame":
            await ws.send(b"\0" * 70_000)
        elif case == "unsupported rate":
            await ws.send(json.dumps({"config": {"sample_rate": 1000}}))
        elif case == "config after audio":
            await ws.send(pcm[:CHUNK])
            await ws.send(json.dumps({"config": {"sample_rate": 8000}}))
        elif case == "flood of tiny frames":
            for i in range(500):
                await ws.send(pcm[2 * i : 2 * i + 2])
        elif case == "vanishes mid-stream":
            await ws.send(json.dumps({"config": {"sample_rate": 16000}}))
            await ws.send(pcm[:CHUNK])
            received.append(json.loads(await ws.recv()))
            await ws.send(pcm[CHUNK : 2 * CHUNK])
            ws.transport.abort()  # no close handshake: the TCP connection just drops
            return received, None
    with contextlib.suppress(ConnectionClosed):  # what came before the close is still there to read
        while True:
            received.append(json.loads(await ws.recv()))
    return received, ws.close_code


BAD_CASES = {  # case: (close code, words of the error message; None: no error message)
    "malformed json": (1007, "malformed JSON"),
    "unknown message": (1008, 'expected {"config"'),
    "odd-length frame": (1007, "1001 bytes"),
    "oversized frame": (1009, None),  # the WebSocket layer refuses it before the session sees it
    "unsupported rate": (1003, "sample_rate: expected a whole number of Hz from 8000 to 48000, got 1000"),
    "config after audio": (1008, "config: must come before the audio"),
    "flood of tiny frames": (1008, "audio frames for"),
    "vanishes mid-stream": (None, None),
}


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_client_gets_an_error_and_a_close_while_a_good_one_completes(prototype, pcm, case):
    code, error = BAD_CASES[case]
    expected = _direct(prototype, pcm[1])

    async def main(uri):
        return await asyncio.wait_for(asyncio.gather(_bad_client(uri, case, pcm[0]), _vosk_client(uri, pcm[1])),
                                      TIMEOUT)

    with _server(prototype, max_frame_bytes=65536) as uri:
        (received, close_code), good = asyncio.run(main(uri))
        after = asyncio.run(asyncio.wait_for(_vosk_client(uri, pcm[1]), TIMEOUT))  # and the server serves on
    assert _finals(good) == expected and _finals(after) == expected
    assert close_code == code
    errors = [r["error"] for r in received if "error" in r]
    if error is None:
        assert not errors
    else:
        assert len(errors) == 1 and error in errors[0] and "error" in received[-1], received[-3:]


def test_busy_server_refuses_one_session_too_many_and_frees_a_vanished_ones_slot(prototype, pcm):
    async def main(uri):
        holder = await connect(uri)
        await holder.send(json.dumps({"config": {"sample_rate": 16000}}))
        extra = await connect(uri)
        refused = json.loads(await extra.recv())
        with pytest.raises(ConnectionClosed):
            await extra.recv()
        holder.transport.abort()
        for _ in range(100):  # the server notices the dropped connection within moments
            await asyncio.sleep(0.05)
            try:
                return refused, extra.close_code, await _vosk_client(uri, pcm[1])
            except ConnectionClosed:
                continue
        raise AssertionError("the vanished client's slot was never freed")

    with _server(prototype, max_sessions=1) as uri:
        refused, code, good = asyncio.run(asyncio.wait_for(main(uri), TIMEOUT))
    assert code == 1013 and "server busy: 1 sessions open" in refused["error"]
    assert _finals(good) == _direct(prototype, pcm[1])


def test_idle_client_is_closed(prototype):
    async def main(uri):
        async with connect(uri) as ws:
            begin = time.monotonic()
            message = json.loads(await ws.recv())
            with pytest.raises(ConnectionClosed):
                await ws.recv()
            return message, ws.close_code, time.monotonic() - begin

    with _server(prototype, idle_timeout_s=0.3) as uri:
        message, code, waited = asyncio.run(asyncio.wait_for(main(uri), TIMEOUT))
    assert message == {"error": "idle for 0.3 s"} and code == 1008 and waited >= 0.25


@pytest.mark.parametrize("words", [True, False])
def test_session_results_with_and_without_words_and_eof_without_audio(prototype, pcm, words):
    empty = Session(prototype)
    assert empty.handle('{"eof": 1}').message == {"text": ""}  # Vosk's reply when nothing was said
    session = Session(prototype)
    assert session.handle(json.dumps({"config": {"sample_rate": 16000, "words": words}})) is None
    replies = [session.handle(pcm[0][i : i + CHUNK]) for i in range(0, len(pcm[0]), CHUNK)]
    final = session.handle('{"eof": 1}')
    assert final.done and not any(r.done for r in replies)
    expected = _direct(prototype, pcm[0])
    finals = [r.message for r in [*replies, final] if r.message.get("text")]
    assert finals == (expected if words else [{"text": e["text"]} for e in expected])


def test_concurrent_sessions_are_stepped_in_batches_and_each_gets_what_stream_gives(prototype, pcm, monkeypatch):
    from asr.inference import server as server_module

    sizes = []
    accept = server_module.accept_waveforms
    monkeypatch.setattr(server_module, "accept_waveforms",
                        lambda streams, *rest: sizes.append(len(streams)) or accept(streams, *rest))
    clips = [pcm[0], pcm[1], pcm[0][: len(pcm[0]) // 2], pcm[1][CHUNK:]]
    expected = [_direct(prototype, clip) for clip in clips]

    async def main(uri):
        return await asyncio.wait_for(asyncio.gather(_bad_client(uri, "vanishes mid-stream", pcm[0]),
                                                     *(_vosk_client(uri, clip) for clip in clips)), TIMEOUT)

    with _server(prototype, batch_wait_ms=100, max_batch=3) as uri:
        _, *together = asyncio.run(main(uri))
    assert [_finals(r) for r in together] == expected
    assert max(sizes) == 3, sizes  # batches formed, and no larger than max_batch


def test_a_failing_step_in_a_batch_costs_only_its_session(prototype, pcm):
    from asr.inference.server import step_sessions

    def broken(log_probs):
        raise RuntimeError("search broke")

    sessions = [Session(prototype) for _ in range(3)]
    for session in sessions:
        assert session.receive(pcm[1][:CHUNK]) is None and session.due == "step"
    sessions[1].stream = prototype.fork()
    sessions[1].stream._consume = broken
    sessions[2].close()  # a vanished client: skipped
    replies = step_sessions(sessions)
    assert isinstance(replies[1], RuntimeError) and "search broke" in str(replies[1])
    assert isinstance(replies[2], RuntimeError)
    alone = Session(prototype)
    assert replies[0].message == alone.handle(pcm[1][:CHUNK]).message and "partial" in replies[0].message


@pytest.mark.parametrize("field,value", [("max_batch", 0), ("workers", 0), ("batch_wait_ms", -1.0)])
def test_bad_batching_settings_are_refused(prototype, field, value):
    with pytest.raises(ValueError, match=f"{field}: expected >= 0|{field}: expected >= 1"):
        asyncio.run(run_server(prototype, ServerConfig(port=0, **{field: value})))


# -- asr serve as a user runs it ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("serve") / "lc.pt"
    save_atomic(model_package(_model(), TOKENIZER), path)
    return path


def _start(*args) -> tuple[subprocess.Popen, queue.Queue]:
    process = subprocess.Popen([sys.executable, "-m", "asr.cli", "serve", *map(str, args)], stderr=subprocess.PIPE,
                               text=True)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stderr], daemon=True).start()
    return process, lines


def _wait_for(lines: queue.Queue, pattern: str) -> re.Match:
    deadline = time.monotonic() + TIMEOUT
    seen = []
    while time.monotonic() < deadline:
        with contextlib.suppress(queue.Empty):
            seen.append(lines.get(timeout=0.5))
            if match := re.search(pattern, seen[-1]):
                return match
    raise AssertionError(f"never logged {pattern!r}: {''.join(seen)[-2000:]}")


def test_cli_serves_and_shuts_down_gracefully_on_sigterm(model_file, pcm, prototype):
    process, lines = _start(model_file, "--port", "0", "--max-segment", "1", "--endpoint-silence-ms", "0")
    try:
        port = int(_wait_for(lines, r"listening on http://127\.0\.0\.1:(\d+)/ ").group(1))
        uri = f"ws://127.0.0.1:{port}"
        done = asyncio.run(asyncio.wait_for(_vosk_client(uri, pcm[1]), TIMEOUT))
        assert _finals(done) == _direct(prototype, pcm[1])

        async def interrupted():
            async with connect(uri) as ws:
                await ws.send(json.dumps({"config": {"sample_rate": 16000}}))
                await ws.send(pcm[0][:CHUNK])
                first = json.loads(await ws.recv())
                process.send_signal(signal.SIGTERM)
                with pytest.raises(ConnectionClosed):
                    while True:
                        await ws.recv()
                return first, ws.close_code

        first, code = asyncio.run(asyncio.wait_for(interrupted(), TIMEOUT))
        assert "partial" in first and code == 1001  # going away
        assert process.wait(TIMEOUT) == 0
        _wait_for(lines, r"shutting down: 1 open session")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


# -- the Vosk project's example clients' flows (websocket/test_alternatives.py, test_words.py) -------------------
async def _flow_client(uri: str, config: dict, pcm: bytes, chunk: int = CHUNK, reset_at: int | None = None) -> list:
    """Config, ``chunk``-byte audio messages with one reply each, an optional ``{"reset": 1}`` before
    byte ``reset_at``, eof; every reply."""
    replies = []
    async with connect(uri) as ws:
        await ws.send(json.dumps({"config": config}))
        for i in range(0, len(pcm), chunk):
            if i == reset_at:
                await ws.send('{"reset" : 1}')
                replies.append(json.loads(await ws.recv()))
            await ws.send(pcm[i : i + chunk])
            replies.append(json.loads(await ws.recv()))
        await ws.send('{"eof" : 1}')
        replies.append(json.loads(await ws.recv()))
    return replies


def _segments(stream: Stream, pcm: bytes, chunk: int = CHUNK) -> list:
    """Every ``StreamResult`` of ``stream`` fed ``pcm`` in chunks."""
    results = []
    for i in range(0, len(pcm), chunk):
        stream.accept_waveform(np.frombuffer(pcm[i : i + chunk], dtype="<i2").copy(), 16000)
        results += stream.result()
    return results + stream.finish()


def test_max_alternatives_gives_the_beam_n_best_in_vosk_shape(prototype, pcm):
    from asr.decoding.search import BeamSearch

    chunk = 6400  # 0.2 s, as test_alternatives.py sends
    expected = _segments(prototype.fork(BeamSearch(TOKENIZER, nbest=20)), pcm[0], chunk)
    best = _segments(prototype.fork(BeamSearch(TOKENIZER)), pcm[0], chunk)
    with _server(prototype) as uri:
        replies = asyncio.run(asyncio.wait_for(_flow_client(uri, {"max_alternatives": 20, "sample_rate": 16000},
                                                            pcm[0], chunk), TIMEOUT))
    finals = [r["alternatives"] for r in replies if "alternatives" in r]
    assert len(finals) >= 2 and all("partial" in r for r in replies if "alternatives" not in r)
    assert " ".join(a[0]["text"] for a in finals if a[0]["text"]) == " ".join(r.text for r in best)
    by_text = {r.nbest[0][0]: r for r in expected}
    several = [a for a in finals if len(a) > 1]
    assert several, "a beam of 16 should offer more than one text"
    for alternatives in several:
        segment = by_text[alternatives[0]["text"]]
        assert [(a["text"], a["confidence"]) for a in alternatives] == [(t, round(s, 3)) for t, s in segment.nbest]
        assert alternatives[0]["result"] == [word_row(w) for w in segment.words]
        assert all("result" not in a for a in alternatives[1:]) and len(alternatives) <= 20


def test_phrase_list_restricts_words_and_words_0_leaves_them_out(prototype, pcm):
    from asr.decoding.phrases import PhraseSearch

    digits = "zero one two three four five six seven eight nine oh"
    cfg = ServerConfig()
    phrases = PhraseSearch([digits], TOKENIZER, cfg.phrase_lm_weight, cfg.phrase_word_score, cfg.phrase_lm_order)
    expected = [r.text for r in _segments(prototype.fork(phrases.search), pcm[0], 8000)]
    phrases.close()
    config = {"phrase_list": [digits], "sample_rate": 16000.0, "words": 0}  # test_words.py's config
    with _server(prototype) as uri:
        replies = asyncio.run(asyncio.wait_for(_flow_client(uri, config, pcm[0], 8000), TIMEOUT))
    finals = [r for r in replies if r.get("text")]
    assert finals and all(set(r) == {"text"} for r in finals)
    assert [r["text"] for r in finals] == expected
    assert set(" ".join(expected).split()) <= set(digits.split())


def test_unknown_config_fields_are_ignored_with_one_log_line(prototype, pcm, caplog):
    config = {"sample_rate": 16000, "model": "vosk-model-en-us", "language": "en"}
    with _server(prototype) as uri, caplog.at_level("INFO", logger="asr.inference.server"):
        replies = asyncio.run(asyncio.wait_for(_flow_client(uri, config, pcm[1]), TIMEOUT))
    assert _finals(replies) == _direct(prototype, pcm[1])
    assert [r.message for r in caplog.records if "unknown" in r.message] == \
        ["config: ignoring unknown field(s) language, model"]


def test_reset_returns_the_final_result_and_the_session_goes_on(prototype, pcm):
    half = len(pcm[0]) // 2 // CHUNK * CHUNK
    stream = prototype.fork()
    for i in range(0, half, CHUNK):
        stream.accept_waveform(np.frombuffer(pcm[0][i : i + CHUNK], dtype="<i2").copy(), 16000)
    stream.result()
    at_end_of_first_half = " ".join(r.text for r in stream.finish() if r.text)
    second = _segments(prototype.fork(), pcm[0][half:])
    with _server(prototype) as uri:
        replies = asyncio.run(asyncio.wait_for(_flow_client(uri, {"sample_rate": 16000}, pcm[0], reset_at=half),
                                               TIMEOUT))
    assert replies[half // CHUNK] == {"text": at_end_of_first_half} or \
        replies[half // CHUNK]["text"] == at_end_of_first_half != ""
    after = [r for r in replies[half // CHUNK + 1 :] if r.get("text")]
    assert [r["text"] for r in after] == [r.text for r in second if r.text]
    shift = half / 2 / 16000  # seconds of audio before the reset: times go on from the connection's start
    assert after[0]["result"] == [word_row(replace(w, start=w.start + shift, end=w.end + shift))
                                  for w in second[0].words]

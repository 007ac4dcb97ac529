"""``asr serve``: live recognition over WebSocket, speaking the Vosk server protocol, beside a web page.

One port serves the page, ``POST /transcribe`` and the WebSocket (``asr.inference.web``: the HTTP
side and its checks). A Vosk client works unchanged. Per connection (one ``Stream`` each,
``asr.inference.stream``):

* optional first message ``{"config": {...}}`` (text), Vosk's fields: ``sample_rate`` (without it
  the audio is at ``ServerConfig.sample_rate``), ``words`` (true/false: results with or without
  their word list), ``max_alternatives`` (N > 0: final results as Vosk's ``{"alternatives": [{"text",
  "confidence", "result"?}, ...]}``, the beam search's n-best with its scores, words for the best),
  ``phrase_list`` (recognition restricted to the listed phrases: ``asr.decoding.phrases``); other
  fields (Vosk's ``model``, ...) are ignored with one log line, as Vosk ignores them;
* binary messages of 16-bit little-endian mono PCM, each answered with ``{"partial": TEXT}`` or,
  when a segment ended (``StreamConfig`` endpointing), ``{"result": [{"word", "start", "end",
  "conf"}, ...], "text": TEXT}`` (times in seconds from the start of the connection's audio);
* ``{"reset": 1}``: answered with the final result of the audio so far; the session goes on;
* ``{"eof": 1}``: answered with the final result (``{"text": ""}`` when nothing was said), then
  the server closes the connection.

Bad input (malformed JSON, bad field values, odd-length frames, unsupported rates, a flood of tiny
frames, silence past the idle timeout, one session too many) gets ``{"error": MESSAGE}`` and a close with a matching
code; a frame over ``max_frame_bytes`` is closed by the WebSocket layer (1009). Other sessions go
on. The protocol logic (``Session``) knows nothing of sockets; ``run_server`` wires it to
``websockets``. Model steps run off the event loop, batched across sessions: the sessions with
a step due (``min_step_ms`` of audio in) are collected and stepped together (``step_sessions``:
features and search per session, one batched encoder forward for all), up to ``max_batch`` at
once, with up to ``workers`` batches running in a thread pool. A batch takes every step that came
in while the workers were busy, so batches grow with the load; ``batch_wait_ms`` > 0 also holds a
step back that long for others to join. A model that cannot stream serves the page and uploads;
its WebSocket clients are told why not (1003).

Cost: each session holds one ``Stream`` (see there) and up to ``min_step_ms`` of audio; at most
``max_sessions`` at once. Streams share the model weights and a beam search's loaded LM; a session
with a phrase list or alternatives has a search of its own (a phrase list: a lexicon, an n-gram
and a KenLM load, milliseconds for tens of phrases).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import signal
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from ..config import SearchConfig, ServerConfig, StreamConfig
from ..decoding.phrases import PhraseSearch, phrase_lexicon
from ..decoding.search import BeamSearch, word_row
from .recognizer import Recognizer, load_pretrained, resolve_device
from .stream import Stream, StreamResult, accept_waveforms
from .web import HttpFront, Uploads, is_loopback

__all__ = ["ProtocolError", "Session", "step_sessions", "run_server", "serve"]

log = logging.getLogger(__name__)

# WebSocket close codes (RFC 6455 section 7.4.1, 1013 from the IANA registry)
CLOSE_NORMAL, CLOSE_GOING_AWAY, CLOSE_UNSUPPORTED, CLOSE_INVALID = 1000, 1001, 1003, 1007
CLOSE_POLICY, CLOSE_INTERNAL, CLOSE_TRY_AGAIN = 1008, 1011, 1013
_CONFIG_FIELDS = ("sample_rate", "words", "max_alternatives", "phrase_list")  # others are ignored, as Vosk does
_NO_STREAMING = ("live recognition needs a streaming model (unidirectional or LC-BLSTM); this server "
                 "transcribes files only (POST /transcribe)")
_FRAME_ALLOWANCE = 20  # frames a session may send beyond its audio's share (a first header, a short tail)


class ProtocolError(ValueError):
    """A client broke the protocol: ``str(err)`` goes to it as ``{"error": ...}``, then ``code`` closes it."""

    def __init__(self, message: str, code: int = CLOSE_POLICY):
        super().__init__(message)
        self.code = code


@dataclass
class Reply:
    message: dict  # the JSON object to send
    done: bool = False  # the session is over (after eof): close the connection


class Session:
    """The Vosk protocol of one connection, without sockets: messages in, replies out.

    Args:
        prototype: a ``Stream`` whose model, search and settings the session's own stream copies
            (``Stream.fork``), created at the first audio.
        cfg: sample rates, step size and the frames-per-audio-second limit.

    ``handle`` runs the model: call it off the event loop, one message at a time per session.
    A server splits it: ``receive`` (cheap: parse, check, buffer) and then, as ``due`` says, the
    model step (``step_sessions``, batched with other sessions) or the end (``eof``).
    """

    def __init__(self, prototype: Stream, cfg: ServerConfig | None = None):
        self.prototype = prototype
        self.cfg = cfg or ServerConfig()
        self.sample_rate = self.cfg.sample_rate
        self.words = True  # Vosk's default: results carry words
        self.alternatives = 0  # "max_alternatives": n-best texts per result (0: plain results)
        self.phrases: list[str] | None = None  # "phrase_list": recognition restricted to these
        self._reset_samples = 0  # audio samples before the open stream (earlier streams, ended by resets)
        self.stream: Stream | None = None  # created at the first model step (off the event loop)
        self._started = False  # audio received
        self._closed = False
        self._pending: list[np.ndarray] = []  # int16 audio not yet given to the stream
        self._pending_samples = 0
        self._frames = 0  # audio frames received
        self._samples = 0  # audio samples received
        self.due: str | None = None  # after ``receive``: "step" or "eof" when the model must run, else None

    def handle(self, message: str | bytes) -> Reply | None:
        """One client message -> the reply to send (None for a config message, as Vosk).

        Raises:
            ProtocolError: the message breaks the protocol (its text and close code are for the client).
        """
        reply = self.receive(message)
        if self.due == "step":
            (reply,) = step_sessions([self])
            if isinstance(reply, Exception):
                raise reply
        elif self.due in ("eof", "reset"):
            reply = self.eof(reset=self.due == "reset")
        return reply

    def receive(self, message: str | bytes) -> Reply | None:
        """``handle`` without the model: the reply when no model step is needed; else ``due`` says
        which to run next, ``step_sessions([self, ...])`` ("step") or ``eof()`` ("eof").

        Raises:
            ProtocolError: as ``handle``.
        """
        self.due = None
        if isinstance(message, (bytes, bytearray, memoryview)):
            return self._audio(bytes(message))
        return self._text(message)

    # -- text messages ----------------------------------------------------------------------------
    def _text(self, message: str) -> Reply | None:
        try:
            obj = json.loads(message)
        except (json.JSONDecodeError, TypeError) as err:
            raise ProtocolError(f"malformed JSON: {err}", CLOSE_INVALID) from None
        if not isinstance(obj, dict) or len(obj) != 1 or next(iter(obj)) not in ("config", "eof", "reset"):
            raise ProtocolError(f"expected {{\"config\": {{...}}}}, {{\"eof\": 1}} or {{\"reset\": 1}}, "
                                f"got {message[:100]!r}")
        if "config" not in obj:
            self.due = next(iter(obj))
            return None
        self._configure(obj["config"])
        return None

    def _configure(self, config) -> None:
        if not isinstance(config, dict):
            raise ProtocolError(f"config: expected an object, got {json.dumps(config)[:100]}")
        if self._started:
            raise ProtocolError("config: must come before the audio")
        unknown = sorted(set(config) - set(_CONFIG_FIELDS))
        if unknown:  # Vosk's own clients send fields such as "model"; Vosk ignores what it does not read
            log.info("config: ignoring unknown field(s) %s", ", ".join(unknown)[:200])
        if "sample_rate" in config:
            rate = config["sample_rate"]
            cfg = self.cfg
            if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not math.isfinite(rate) \
                    or rate != int(rate) or not cfg.min_sample_rate <= rate <= cfg.max_sample_rate:
                raise ProtocolError(f"sample_rate: expected a whole number of Hz from {cfg.min_sample_rate} to "
                                    f"{cfg.max_sample_rate}, got {rate!r}", CLOSE_UNSUPPORTED)
            self.sample_rate = int(rate)
        if "words" in config:
            if not isinstance(config["words"], (bool, int)):
                raise ProtocolError(f"words: expected true or false, got {config['words']!r}")
            self.words = bool(config["words"])
        if "max_alternatives" in config:
            self.alternatives = self._count_field(config, "max_alternatives", self.cfg.max_client_alternatives)
        if "phrase_list" in config:
            self.phrases = self._phrase_list(config["phrase_list"])

    @staticmethod
    def _count_field(config: dict, name: str, limit: int) -> int:
        value = config[name]
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= limit:
            raise ProtocolError(f"{name}: expected a whole number from 0 to {limit}, got {value!r}", CLOSE_UNSUPPORTED)
        return value

    def _phrase_list(self, phrases) -> list[str]:
        if not isinstance(phrases, list) or not all(isinstance(p, str) for p in phrases):
            raise ProtocolError(f"phrase_list: expected a list of strings, got {json.dumps(phrases)[:100]}")
        if len(phrases) > self.cfg.max_phrases:
            raise ProtocolError(f"phrase_list: at most {self.cfg.max_phrases} phrases, got {len(phrases)}")
        lexicon, unspellable = phrase_lexicon(phrases, self.prototype.tokenizer)
        if not lexicon:
            raise ProtocolError(f"phrase_list: no word can be spelled with the model's units "
                                f"({', '.join(unspellable[:5]) or 'empty list'})", CLOSE_UNSUPPORTED)
        return phrases

    # -- audio ------------------------------------------------------------------------------------
    def _audio(self, data: bytes) -> Reply:
        self._count_frame(len(data) // 2)
        if len(data) % 2:
            raise ProtocolError(f"audio frame of {len(data)} bytes: 16-bit PCM needs an even number",
                                CLOSE_INVALID)
        self._started = True
        self._pending.append(np.frombuffer(data, dtype="<i2"))
        self._pending_samples += len(data) // 2
        if self._pending_samples < self.cfg.min_step_ms / 1000 * self.sample_rate:  # a tiny frame costs no model step
            return Reply({"partial": self.stream.partial() if self.stream is not None else ""})
        self.due = "step"
        return None

    def _count_frame(self, samples: int) -> None:
        """A flood of tiny frames is refused: at most ``max_frames_per_audio_s`` frames per second of
        audio so far (and ``_FRAME_ALLOWANCE`` more), whatever the wall clock says."""
        self._frames += 1
        self._samples += samples
        allowed = _FRAME_ALLOWANCE + self.cfg.max_frames_per_audio_s * self._samples / self.sample_rate
        if self._frames > allowed:
            raise ProtocolError(f"{self._frames} audio frames for {self._samples / self.sample_rate:.3f} s of audio: "
                                f"send at least {1000 / self.cfg.max_frames_per_audio_s:g} ms per frame on average")

    def _take_pending(self) -> np.ndarray:
        samples = np.concatenate(self._pending) if self._pending else np.zeros(0, np.int16)
        self._pending, self._pending_samples = [], 0
        return samples

    def _stepped(self, ended: bool) -> Reply:
        """The reply to the audio message whose step just ran."""
        self.due = None
        if ended:
            return Reply(self._result(self.stream.result()))
        return Reply({"partial": self.stream.partial()})

    def _open_stream(self) -> Stream:
        if self.stream is None:
            self.stream = self._new_stream()
        return self.stream

    def _new_stream(self) -> Stream:
        """The prototype's stream, or one with this session's phrase list or n-best search."""
        prototype, nbest = self.prototype, max(self.alternatives, 1)
        if self.phrases is not None:
            phrases = PhraseSearch(self.phrases, prototype.tokenizer, self.cfg.phrase_lm_weight,
                                   self.cfg.phrase_word_score, self.cfg.phrase_lm_order, nbest=nbest)
            try:
                return prototype.fork(phrases.search)
            finally:
                phrases.close()
        if nbest == 1:
            return prototype.fork()
        beam = prototype.search or BeamSearch(prototype.tokenizer)  # a greedy server's n-best: a plain beam
        return prototype.fork(beam.replace(nbest=nbest))

    def eof(self, reset: bool = False) -> Reply:
        """The final result after ``{"eof": 1}`` (runs the model on what is left), or after
        ``{"reset": 1}`` (``reset``): then the session goes on, its next audio in a new stream."""
        self.due = None
        if self._samples == self._reset_samples:  # no audio (since the last reset)
            return Reply(self._result([]), done=not reset)
        self._open_stream()
        if self._pending:
            self.stream.accept_waveform(self._take_pending(), self.sample_rate)
        reply = Reply(self._result(self.stream.result() + self.stream.finish()), done=not reset)
        self.stream, self._reset_samples = None, self._samples
        return reply

    def _result(self, results: list[StreamResult]) -> dict:
        """Vosk's result object for the segments just ended (several are joined into one reply)."""
        text = " ".join(r.text for r in results if r.text)
        offset = self._reset_samples / self.sample_rate
        rows = [word_row(replace(w, start=w.start + offset, end=w.end + offset))
                for r in results for w in r.words] if self.words and text else []
        if self.alternatives:
            return {"alternatives": self._alternatives(results, text, rows)}
        return {"result": rows, "text": text} if rows else {"text": text}

    @staticmethod
    def _alternatives(results: list[StreamResult], text: str, rows: list[dict]) -> list[dict]:
        """Vosk's ``alternatives``: the n-best of one segment (the decoder's scores as confidences);
        for several segments at once, their best texts joined."""
        if len(results) == 1 and results[0].nbest:
            alternatives = [{"text": t, "confidence": round(score, 3)} for t, score in results[0].nbest]
        else:
            alternatives = [{"text": text, "confidence": round(sum(r.nbest[0][1] if r.nbest else 0.0
                                                                   for r in results), 3)}]
        if rows:
            alternatives[0]["result"] = rows  # words of the best only: the others are texts
        return alternatives

    def close(self) -> None:
        """Drop the stream (a vanished client): nothing else to free."""
        self.stream, self._pending, self._closed = None, [], True


def step_sessions(sessions: list[Session]) -> list[Reply | Exception]:
    """The due model steps of several sessions as one batch (``accept_waveforms``) -> each one's reply.

    A session whose step fails gets its exception instead of a reply; the others are served.
    Call off the event loop, with each session in at most one running call.
    """
    replies: list[Reply | Exception] = [RuntimeError("no model step was due")] * len(sessions)
    live = []
    for i, session in enumerate(sessions):
        if session.due == "step" and not session._closed:  # a vanished client's session is skipped
            try:
                live.append((i, session._open_stream()))
            except Exception as err:
                replies[i] = err
    outcomes = accept_waveforms([stream for _, stream in live], [sessions[i]._take_pending() for i, _ in live],
                                [sessions[i].sample_rate for i, _ in live])
    for (i, _), outcome in zip(live, outcomes):
        try:
            replies[i] = outcome if isinstance(outcome, Exception) else sessions[i]._stepped(outcome)
        except Exception as err:  # e.g. the session was closed meanwhile
            replies[i] = err
    return replies


class _Batcher:
    """Collects the sessions with a step due and runs them in batches on the pool (``ServerConfig``:
    ``max_batch`` steps per batch, ``workers`` batches at once, ``batch_wait_ms`` to gather more)."""

    def __init__(self, pool: ThreadPoolExecutor, cfg: ServerConfig):
        self.pool, self.cfg = pool, cfg
        self.loop = asyncio.get_running_loop()
        self.queue: list[tuple[Session, asyncio.Future, float]] = []  # (session, its reply, time queued)
        self.wake = asyncio.Event()  # set while the queue is not empty
        self.free = asyncio.Semaphore(cfg.workers)
        self.running: set[asyncio.Future] = set()
        self.task = asyncio.create_task(self._dispatch())

    async def step(self, session: Session) -> Reply:
        """Run ``session``'s due step in the next batch; its reply (or the exception of its step)."""
        future = self.loop.create_future()
        self.queue.append((session, future, self.loop.time()))
        self.wake.set()
        return await future

    async def _dispatch(self) -> None:
        while True:
            await self.wake.wait()
            await self.free.acquire()
            await self._gather()
            batch = [item for item in self.queue[: self.cfg.max_batch] if not item[1].done()]  # done: cancelled
            self.queue = self.queue[self.cfg.max_batch :]
            if not self.queue:
                self.wake.clear()
            if not batch:
                self.free.release()
                continue
            job = self.loop.run_in_executor(self.pool, step_sessions, [session for session, _, _ in batch])
            self.running.add(job)
            job.add_done_callback(lambda job, batch=batch: self._deliver(job, batch))

    async def _gather(self) -> None:
        """Hold the batch until ``batch_wait_ms`` after its oldest step, or until it is full."""
        wait = self.cfg.batch_wait_ms / 1000
        while wait > 0 and self.queue and len(self.queue) < self.cfg.max_batch:
            left = self.queue[0][2] + wait - self.loop.time()
            if left <= 0:
                return
            self.wake.clear()
            try:
                await asyncio.wait_for(self.wake.wait(), left)
            except TimeoutError:
                pass
            self.wake.set()

    def _deliver(self, job: asyncio.Future, batch: list) -> None:
        self.running.discard(job)
        self.free.release()
        error = job.exception() if not job.cancelled() else asyncio.CancelledError()
        replies = job.result() if error is None else [error] * len(batch)
        for (_, future, _), reply in zip(batch, replies):
            if future.done():
                continue
            if isinstance(reply, BaseException):
                future.set_exception(reply)
            else:
                future.set_result(reply)

    async def close(self) -> None:
        """Stop dispatching once the running batches are done."""
        self.task.cancel()
        if self.running:
            await asyncio.wait(self.running)


async def run_server(prototype: Stream | None, cfg: ServerConfig | None = None, ready=None,
                     stop: asyncio.Future | None = None, recognizer: Recognizer | None = None) -> None:
    """Serve until ``stop`` is done (or SIGTERM/SIGINT in the main thread), then shut down gracefully:
    refuse new connections, close open ones with 1001 (going away) and wait for running steps.

    Args:
        prototype: the stream every session forks; None for a model that cannot stream (the
            page and uploads are served, a WebSocket client is told why not).
        cfg: address, limits, worker threads.
        ready: called with the bound port once listening (port 0 picks a free one).
        stop: a future that ends the server when done (default: one set by SIGTERM/SIGINT).
        recognizer: recognises uploads (default: one on the prototype's model and search).
    """
    from websockets.asyncio.server import unix_serve

    cfg = cfg or ServerConfig()
    if recognizer is None and prototype is None:
        raise ValueError("run_server: expected a prototype stream, a recognizer or both")
    recognizer = recognizer or Recognizer(prototype.model, prototype.tokenizer, prototype.search,
                                          calibrator=prototype.calibrator)
    for name in ("workers", "max_batch", "max_transcriptions"):
        if getattr(cfg, name) < 1:
            raise ValueError(f"{name}: expected >= 1, got {getattr(cfg, name)}")
    if not cfg.batch_wait_ms >= 0:
        raise ValueError(f"batch_wait_ms: expected >= 0, got {cfg.batch_wait_ms}")
    loop = asyncio.get_running_loop()
    if stop is None:
        stop = loop.create_future()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, lambda s=sig: stop.done() or stop.set_result(s))
    pool = ThreadPoolExecutor(cfg.workers, thread_name_prefix="asr-serve")
    batcher = _Batcher(pool, cfg)
    sessions: set = set()

    async def send_error(ws, err: ProtocolError) -> None:
        log.info("session %s: %s", id(ws), err)
        try:
            await ws.send(json.dumps({"error": str(err)}))
            await ws.close(err.code, str(err)[:120])  # a close reason is at most 123 bytes
        except Exception:  # the client may be gone already
            pass

    async def handler(ws) -> None:
        from websockets.exceptions import ConnectionClosed

        if prototype is None:
            await send_error(ws, ProtocolError(_NO_STREAMING, CLOSE_UNSUPPORTED))
            return
        if len(sessions) >= cfg.max_sessions:
            await send_error(ws, ProtocolError(f"server busy: {cfg.max_sessions} sessions open, try again later",
                                               CLOSE_TRY_AGAIN))
            return
        session = Session(prototype, cfg)
        sessions.add(ws)
        try:
            while True:
                try:
                    message = await asyncio.wait_for(ws.recv(), cfg.idle_timeout_s if cfg.idle_timeout_s > 0 else None)
                except TimeoutError:
                    await send_error(ws, ProtocolError(f"idle for {cfg.idle_timeout_s:g} s", CLOSE_POLICY))
                    return
                try:
                    reply = session.receive(message)  # cheap: parse, check, buffer
                    if session.due == "step":
                        reply = await batcher.step(session)
                    elif session.due in ("eof", "reset"):
                        reply = await loop.run_in_executor(pool, session.eof, session.due == "reset")
                except ProtocolError as err:
                    await send_error(ws, err)
                    return
                except Exception as err:  # a bug must cost this session only
                    log.exception("session %s: internal error", id(ws))
                    await send_error(ws, ProtocolError(f"internal error: {err}", CLOSE_INTERNAL))
                    return
                if reply is not None:
                    await ws.send(json.dumps(reply.message))
                    if reply.done:
                        await ws.close(CLOSE_NORMAL)
                        return
        except ConnectionClosed:
            log.info("session %s: client went away", id(ws))  # mid-stream or not: just forget it
        finally:
            sessions.discard(ws)
            session.close()

    uploads = Uploads(recognizer, cfg)
    info = {"streaming": prototype is not None, "note": "" if prototype is not None else _NO_STREAMING}
    try:
        with tempfile.TemporaryDirectory(prefix="asr-serve-") as private:  # the Unix socket: ours alone
            socket_path = Path(private) / "vosk.sock"
            async with unix_serve(handler, str(socket_path), max_size=cfg.max_frame_bytes, compression=None) as ws:
                front = await HttpFront(cfg, socket_path, uploads, info).start()
                port = front.sockets[0].getsockname()[1]
                _log_addresses(cfg, port)
                if ready is not None:
                    ready(port)
                await stop
                log.info("shutting down: %d open session(s)", len(sessions))
                front.close()  # no new connections
                ws.close(close_connections=True)  # 1001 going away to each open connection
                await ws.wait_closed()
    finally:
        await batcher.close()
        pool.shutdown(wait=True)
        uploads.close()


def _log_addresses(cfg: ServerConfig, port: int) -> None:
    host = f"[{cfg.host}]" if ":" in cfg.host else cfg.host
    page = f"http://{host}:{port}/" + (f"?token={cfg.token}" if cfg.token else "")
    log.info("listening on %s (the page; POST /transcribe) and ws://%s:%d (Vosk clients); %d worker threads, "
             "batches of up to %d steps", page, host, port, cfg.workers, cfg.max_batch)
    if not is_loopback(cfg.host) and not cfg.token:
        log.warning("listening on %s without --token: anyone who reaches this address may use the server", cfg.host)


def serve(model_path: str | Path, cfg: ServerConfig | None = None, stream_cfg: StreamConfig | None = None,
          method: str = SearchConfig.method, lm_params: str | Path | None = None, **search_options) -> None:
    """``asr serve``: load a model and serve it until SIGTERM or SIGINT: the page and uploads always,
    live recognition when the model can stream.

    Args:
        model_path: a model (folder, file, checkpoint or hub id), as for ``Stream.from_pretrained``.
        cfg: address, limits and worker threads.
        stream_cfg: endpointing and partial interval of every session.
        method, lm_params, search_options: the search, as for ``Stream.from_pretrained``; a
            ``device`` must name the CPU.
    """
    cfg = cfg or ServerConfig()
    device = search_options.pop("device", None)
    if device is not None and resolve_device(device).type != "cpu":
        raise ValueError(f"device: asr serve runs its model on the CPU, got {device!r}")
    loaded = load_pretrained(model_path, method, lm_params, search_options, "cpu")
    recognizer = Recognizer(loaded.model, loaded.tokenizer, loaded.search, model_path=loaded.model_path,
                            calibrator=loaded.calibrator, folder_options=loaded.folder_options)
    prototype = None
    encoder = getattr(loaded.model, "encoder", None)  # an ONNX export has none
    if encoder is not None and encoder.streamable:
        prototype = Stream(loaded.model, loaded.tokenizer, stream_cfg, loaded.search, calibrator=loaded.calibrator)
    else:
        why = "a full-utterance bidirectional encoder" if encoder is not None else "an ONNX graph runs whole utterances"
        log.warning("%s cannot stream (%s): serving the page and POST /transcribe only", model_path, why)
    torch.set_num_threads(cfg.torch_threads)  # the worker threads are the parallelism
    asyncio.run(run_server(prototype, cfg, recognizer=recognizer))
    log.info("stopped")

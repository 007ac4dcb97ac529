"""The HTTP side of ``asr serve``: the page, ``POST /transcribe`` and the Vosk WebSocket on one port.

``HttpFront`` listens on the public address and reads each request's head (asyncio streams):

* a WebSocket upgrade is relayed byte for byte to the Vosk protocol server (``websockets``, on a
  Unix socket in a private directory). ``websockets`` answers GET handshakes only and refuses
  request bodies, so an upload cannot go through it; relaying keeps its WebSocket layer whole
  (close codes, frame limits) with no other dependency;
* ``GET /`` and the page's files: a fixed table of files inside the package
  (``importlib.resources``, read once); no request path reaches the file system;
* ``GET /info``: what the page needs (can the model stream, its sample rate);
* ``POST /transcribe``: audio as the raw body (``curl --data-binary @a.wav``) or as the multipart
  form field ``file``, any format libsndfile reads and any length, recognised by a ``Recognizer``
  as ``asr transcribe`` does; the answer is the JSON of ``asr transcribe -f json``;
* ``POST /convert?format=srt|vtt|txt``: such a JSON rendered as subtitles or text (the page's downloads).

Every request passes the same checks first (``check_access``): with a loopback address the Host
header must name the loopback (a DNS-rebinding page cannot reach the server), an ``Origin`` must
be the server's own, and with a token the request must carry it (``?token=``, the ``asr_token``
cookie that the page's address sets, or ``Authorization: Bearer``). Errors are one line of JSON,
``{"error": ...}``, with a 4xx status (5xx when busy), and the connection closes after each answer.

Cost: an upload is held in memory (``max_upload_bytes`` at most) and written to a temporary file
that the ``Recognizer`` segments and reads as ``asr transcribe`` does; ``max_transcriptions``
run at once, in threads of their own, beside the live sessions.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.parser
import email.policy
import hmac
import http
import http.cookies
import ipaddress
import json
import logging
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from ..audio.io import AudioError, audio_info
from ..config import ServerConfig
from ..decoding.search import BeamSearch
from .outputs import FORMATS, from_json, to_json
from .recognizer import Recognizer

__all__ = ["HttpError", "Request", "read_request", "is_loopback", "check_access", "body_length", "read_body", "Uploads",
           "convert", "HttpFront"]

log = logging.getLogger(__name__)

PAGE_FILES = {  # request path -> (file in asr/inference/web, content type)
    "/": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/worklet.js": ("worklet.js", "text/javascript; charset=utf-8"),
    "/style.css": ("style.css", "text/css; charset=utf-8"),
}
TOKEN_COOKIE = "asr_token"
_HEADERS = {  # on every answer
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # the page's address may hold the token
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'self'; connect-src 'self' blob:; img-src 'self' blob: data:; "
                               "frame-ancestors 'none'",
}
_LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}
_RAW_TYPES = ("audio/", "application/octet-stream")  # bodies taken as the audio file itself
_READ_BLOCK = 1 << 16
_LINGER_S = 1.0  # longest wait for the rest of a refused request before closing


class HttpError(Exception):
    """A request refused: ``status`` and a one-line reason for the client."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass
class Request:
    method: str  # "GET", "POST", ...
    path: str  # the target's path, never URL-decoded into a file name
    query: dict[str, str]
    headers: email.message.Message
    head: bytes  # the raw request line and headers (relayed as they are for a WebSocket)

    @property
    def websocket(self) -> bool:
        return self.headers.get("Upgrade", "").lower() == "websocket"


async def read_request(reader: asyncio.StreamReader, timeout: float) -> Request | None:
    """The next request head from ``reader`` (None when the client closed before sending one).

    Raises:
        HttpError: 431 for a head over the reader's limit, 400 for a malformed one, 408 when it is
            not complete within ``timeout`` seconds.
    """
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout if timeout > 0 else None)
    except asyncio.IncompleteReadError:
        return None
    except asyncio.LimitOverrunError:
        raise HttpError(431, "request head too large") from None
    except TimeoutError:
        raise HttpError(408, f"request head not complete within {timeout:g} s") from None
    line, _, fields = head.partition(b"\r\n")
    parts = line.decode("latin-1").split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise HttpError(400, f"malformed request line {line[:80].decode('latin-1')!r}")
    target = urlsplit(parts[1])
    headers = email.parser.BytesHeaderParser(policy=email.policy.HTTP).parsebytes(fields)
    return Request(parts[0], target.path, dict(parse_qsl(target.query)), headers, head)


def _offered_tokens(request: Request) -> list[str]:
    offered = [request.query.get("token", "")]
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        offered.append(value.strip())
    cookies = http.cookies.SimpleCookie()
    try:
        cookies.load(request.headers.get("Cookie", ""))
    except http.cookies.CookieError:
        pass
    if TOKEN_COOKIE in cookies:
        offered.append(cookies[TOKEN_COOKIE].value)
    return offered


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or name to listen on) is the loopback interface only."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def check_access(request: Request, cfg: ServerConfig) -> None:
    """Raise ``HttpError`` (403 or 401) unless the request may be served: Host, Origin, token."""
    host = request.headers.get("Host", "")
    if is_loopback(cfg.host) and (urlsplit(f"//{host}").hostname or "") not in _LOOPBACK_NAMES:
        raise HttpError(403, f"Host {host[:80]!r} refused: the server listens on the loopback only")
    origin = request.headers.get("Origin")
    if origin is not None and urlsplit(origin).netloc != host:
        raise HttpError(403, f"cross-origin request from {origin[:80]!r} refused")
    if cfg.token and not any(hmac.compare_digest(t.encode(), cfg.token.encode()) for t in _offered_tokens(request)):
        raise HttpError(401, "token required: add ?token=TOKEN to the address (or send Authorization: Bearer TOKEN)")


def _page_files() -> dict[str, bytes]:
    folder = resources.files(__package__) / "web"
    return {path: (folder / name).read_bytes() for path, (name, _) in PAGE_FILES.items()}


def _answer(status: int, body: bytes, content_type: str, extra: dict | None = None) -> bytes:
    reason = http.HTTPStatus(status).phrase
    headers = {"Content-Type": content_type, "Content-Length": str(len(body)), "Connection": "close", **_HEADERS,
               **(extra or {})}
    lines = [f"HTTP/1.1 {status} {reason}", *(f"{k}: {v}" for k, v in headers.items()), "", ""]
    return "\r\n".join(lines).encode("latin-1") + body


def _json_answer(status: int, obj: dict, extra: dict | None = None) -> bytes:
    return _answer(status, (json.dumps(obj, ensure_ascii=False) + "\n").encode(), "application/json; charset=utf-8",
                   extra)


def _multipart_file(body: bytes, content_type: str) -> tuple[bytes, str]:
    """The form field ``file`` of a multipart body -> (its bytes, its file name)."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode("latin-1") + body)
    for part in message.iter_parts() if message.is_multipart() else ():
        if part.get_param("name", header="Content-Disposition") == "file":
            return part.get_payload(decode=True) or b"", Path(part.get_filename() or "upload").name
    raise HttpError(400, "multipart upload without a form field named 'file'")


def body_length(request: Request, limit: int) -> int:
    """The request's Content-Length; ``HttpError`` 411 without one, 413 over ``limit``."""
    if "Transfer-Encoding" in request.headers:
        raise HttpError(411, "chunked uploads are not supported: send a Content-Length")
    try:
        length = int(request.headers.get("Content-Length", ""))
    except ValueError:
        raise HttpError(411, "Content-Length required") from None
    if not 0 <= length <= limit:
        raise HttpError(413, f"upload of {length} bytes: at most {limit} accepted")
    return length


async def read_body(reader: asyncio.StreamReader, length: int, timeout: float) -> bytes:
    """``length`` bytes, each block within ``timeout`` seconds (0: no limit); a stalled client gets 408."""
    chunks, left = [], length
    while left:
        try:
            chunk = await asyncio.wait_for(reader.read(min(left, _READ_BLOCK)), timeout if timeout > 0 else None)
        except TimeoutError:
            raise HttpError(408, f"upload stalled for {timeout:g} s") from None
        if not chunk:
            raise HttpError(400, f"upload ended after {length - left} of {length} bytes")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


class Uploads:
    """``POST /transcribe``: limits, then a free ``Recognizer`` in a thread of its own.

    Args:
        recognizer: recognises uploads; ``max_transcriptions - 1`` more share its model, each with
            a search of its own (a beam search's decoder has state).
        cfg: the upload limits.
    """

    def __init__(self, recognizer: Recognizer, cfg: ServerConfig):
        search = recognizer.search
        self.free = [recognizer] + [
            Recognizer(recognizer.model, recognizer.tokenizer, search.fork() if isinstance(search, BeamSearch) else
                       search, model_path=recognizer.model_path, calibrator=recognizer.calibrator)
            for _ in range(cfg.max_transcriptions - 1)]
        self.cfg = cfg
        self.pool = ThreadPoolExecutor(cfg.max_transcriptions, thread_name_prefix="asr-upload")

    async def transcribe(self, request: Request, reader: asyncio.StreamReader) -> bytes:
        """Read the upload, recognise it -> the JSON of ``asr transcribe -f json`` (UTF-8)."""
        length = body_length(request, self.cfg.max_upload_bytes)
        if not self.free:
            raise HttpError(503, f"busy: {self.cfg.max_transcriptions} transcription(s) running, try again later")
        recognizer = self.free.pop()
        try:
            body = await read_body(reader, length, self.cfg.idle_timeout_s)
            content_type = request.headers.get("Content-Type", "application/octet-stream")
            if content_type.lower().startswith("multipart/form-data"):
                audio, name = _multipart_file(body, content_type)
            elif content_type.lower().startswith(_RAW_TYPES):
                audio, name = body, request.query.get("name", "upload")
            else:
                raise HttpError(415, f"Content-Type {content_type[:60]!r}: send audio/* (the file as the body) or "
                                     "multipart/form-data with a field 'file'")
            if not audio:
                raise HttpError(400, "empty upload: no audio")
            loop = asyncio.get_running_loop()
            transcript = await loop.run_in_executor(self.pool, self._recognize, recognizer, audio, Path(name).name)
            return to_json(transcript).encode()
        finally:
            self.free.append(recognizer)

    def _recognize(self, recognizer: Recognizer, audio: bytes, name: str):
        """The transcript of an upload (in a worker thread); its file exists only meanwhile."""
        with tempfile.TemporaryDirectory(prefix="asr-upload-") as folder:
            path = Path(folder) / "audio"
            path.write_bytes(audio)
            try:
                info = audio_info(path)
                seconds = info.frames / info.samplerate if info.samplerate > 0 else 0.0
                if seconds > self.cfg.max_upload_s:
                    raise HttpError(413, f"{name}: {seconds:.1f} s of audio, at most {self.cfg.max_upload_s:g} s "
                                         "accepted")
                transcript = recognizer.transcribe(path)
            except AudioError as err:
                raise HttpError(400, str(err).replace(str(path), name)) from None
        return replace(transcript, path=name)

    def close(self) -> None:
        self.pool.shutdown(wait=True)


def convert(body: bytes, fmt: str) -> bytes:
    """``POST /convert``: a transcript JSON (``asr transcribe -f json``) in format ``fmt``."""
    if fmt not in FORMATS:
        raise HttpError(400, f"format: expected one of {', '.join(sorted(FORMATS))}, got {fmt[:20]!r}")
    try:
        return FORMATS[fmt](from_json(body.decode("utf-8"))).encode()
    except (ValueError, UnicodeDecodeError) as err:
        raise HttpError(400, str(err)) from None


async def _pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    try:
        while data := await source.read(_READ_BLOCK):
            sink.write(data)
            await sink.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        sink.close()


class HttpFront:
    """The public listener of ``asr serve`` (see the module docstring).

    Args:
        cfg: address, token and limits.
        socket_path: the Unix socket of the Vosk protocol server that WebSocket upgrades go to.
        uploads: ``POST /transcribe``.
        info: ``GET /info``'s JSON object.
    """

    def __init__(self, cfg: ServerConfig, socket_path: Path, uploads: Uploads, info: dict):
        self.cfg, self.socket_path, self.uploads, self.info = cfg, socket_path, uploads, info
        self.files = _page_files()

    async def start(self) -> asyncio.Server:
        return await asyncio.start_server(self.handle, self.cfg.host, self.cfg.port, limit=self.cfg.max_head_bytes)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One connection: one request, its answer (or the WebSocket relay), then close."""
        refused = False
        try:
            request = await read_request(reader, self.cfg.idle_timeout_s)
            if request is None:
                return
            check_access(request, self.cfg)
            if request.websocket:
                await self._relay(request, reader, writer)
                return
            writer.write(await self._route(request, reader))
        except HttpError as err:
            log.info("HTTP %d: %s", err.status, err)
            writer.write(_json_answer(err.status, {"error": str(err)}))
            refused = True
        except Exception as err:  # a bug must cost this request only
            log.exception("HTTP request failed")
            writer.write(_json_answer(500, {"error": f"internal error: {err}"}))
        finally:
            await self._close(writer, reader if refused else None)

    async def _route(self, request: Request, reader: asyncio.StreamReader) -> bytes:
        method, path = request.method, request.path
        if path in PAGE_FILES or path == "/info":
            if method != "GET":
                raise HttpError(405, f"{path}: GET only")
            if path == "/info":
                return _json_answer(200, self.info)
            cookie = {"Set-Cookie": f"{TOKEN_COOKIE}={self.cfg.token}; HttpOnly; SameSite=Strict; Path=/"} \
                if self.cfg.token and path == "/" else None
            return _answer(200, self.files[path], PAGE_FILES[path][1], cookie)
        if path in ("/transcribe", "/convert"):
            if method != "POST":
                raise HttpError(405, f"{path}: POST only")
            if path == "/transcribe":
                return _answer(200, await self.uploads.transcribe(request, reader), "application/json; charset=utf-8")
            body = await read_body(reader, body_length(request, self.cfg.max_upload_bytes), self.cfg.idle_timeout_s)
            fmt = request.query.get("format", "srt")
            return _answer(200, convert(body, fmt), "application/json; charset=utf-8" if fmt == "json" else
                           "text/plain; charset=utf-8")
        raise HttpError(404, f"{path[:80]}: no such page (try /)")

    async def _relay(self, request: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        inner_reader, inner_writer = await asyncio.open_unix_connection(str(self.socket_path))
        inner_writer.write(request.head)
        await asyncio.gather(_pump(reader, inner_writer), _pump(inner_reader, writer))

    @staticmethod
    async def _close(writer: asyncio.StreamWriter, unread: asyncio.StreamReader | None = None) -> None:
        """Send what is written and close; with ``unread`` (a refused request whose body may still be
        coming), first read and drop it for up to ``_LINGER_S``: closing on unread data resets the
        connection, and the client may lose the answer."""
        try:
            await writer.drain()
            if unread is not None and writer.can_write_eof():
                writer.write_eof()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(_LINGER_S):
                        while await unread.read(_READ_BLOCK):
                            pass
            writer.close()
            await writer.wait_closed()
        except (ConnectionError, OSError):
            pass

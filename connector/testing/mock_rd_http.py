"""The raw HTTP/1.1 layer of the mock RD API: an asyncio server with keep-alive, nothing RD-specific.

Contract:
- One coroutine per connection reads requests one after the other (pipelined requests are answered in
  order), hands each to the async `Handler` and writes its `Response`.
- Request bodies: `Content-Length` or `Transfer-Encoding: chunked`; `Expect: 100-continue` is honoured.
  A body over `max_body_bytes` (the transport's hard cap, far above RD's) gets 413 and the connection is
  closed without reading it. A malformed head gets 400, a head over 64 KiB 431; both close.
- Keep-alive: HTTP/1.1 connections stay open unless the client sends `Connection: close`; HTTP/1.0 ones
  close unless it sends `Connection: keep-alive`. A `Response` with `close=True` closes after writing.
- A handler returning `None` means "drop": the connection is closed without an answer (the request was
  read in full first). A handler raising gets a 500 and a close (the exception is logged).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import parse_qsl

__all__ = ["Handler", "HttpServer", "Request", "Response"]

_log = logging.getLogger(__name__)

_HEAD_LIMIT = 64 * 1024
_REASONS = {status.value: status.phrase for status in HTTPStatus}


@dataclass(frozen=True, slots=True)
class Request:
    """One parsed request. Header names are lower-case; repeated headers are joined with ", "."""

    method: str
    path: str
    version: str  # "HTTP/1.1" or "HTTP/1.0"
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: bytes
    received_at: float  # time.monotonic() when the head was read


@dataclass(frozen=True, slots=True)
class Response:
    """What to write back. `body` is sent with `Content-Length`; `headers` are extra (name, value) pairs."""

    status: int
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    content_type: str = "application/json"
    close: bool = False


Handler = Callable[[Request], Awaitable[Response | None]]


class _BadRequest(Exception):
    """The head or the framing cannot be parsed: answer `status` and close."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class HttpServer:
    """Serves `handler` on (host, port). `start` binds; `close` stops listening and closes every connection."""

    def __init__(self, handler: Handler, *, max_body_bytes: int = 16 * 1024 * 1024) -> None:
        self._handler = handler
        self._max_body_bytes = max_body_bytes
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self, host: str, port: int) -> None:
        """Bind and start accepting; returns once listening (port 0 picks a free port, see `port`)."""
        self._server = await asyncio.start_server(self._serve_connection, host, port, limit=_HEAD_LIMIT)

    @property
    def port(self) -> int:
        """The bound port. Raises RuntimeError before `start`."""
        if self._server is None or not self._server.sockets:
            raise RuntimeError("server is not listening")
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        """Stop accepting, close open connections and wait for the listener to shut down."""
        if self._server is None:
            return
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        await self._server.wait_closed()
        self._server = None

    async def _serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            await self._serve_requests(reader, writer)
        except _BadRequest as exc:
            _write(writer, Response(exc.status, close=True), keep_alive=False)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away mid-request: nothing to answer
        except asyncio.CancelledError:
            pass  # server shutdown; this is the task's outermost frame (3.11 streams log a re-raised cancel)
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _serve_requests(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            request = await self._read_request(reader, writer)
            if request is None:
                return
            response = await self._answer(request)
            if response is None:
                return  # drop: close without answering
            keep_alive = _wants_keep_alive(request) and not response.close
            _write(writer, response, keep_alive=keep_alive)
            await writer.drain()
            if not keep_alive:
                return

    async def _answer(self, request: Request) -> Response | None:
        try:
            return await self._handler(request)
        except Exception:
            _log.exception("mock_rd handler failed method=%s path=%s", request.method, request.path)
            return Response(500, b'{"errors":{"error_type":"INTERNAL_SERVER_ERROR"}}', close=True)

    async def _read_request(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Request | None:
        """The next request, or None on a clean EOF between requests."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            if exc.partial.strip():
                raise _BadRequest(400, "truncated head") from exc
            return None
        except asyncio.LimitOverrunError as exc:
            raise _BadRequest(431, "request head over 64 KiB") from exc
        received_at = time.monotonic()
        method, target, version, headers = _parse_head(head)
        if headers.get("expect", "").lower() == "100-continue":
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        body = await self._read_body(reader, headers)
        path, _, query = target.partition("?")
        return Request(method, path, version, dict(parse_qsl(query)), headers, body, received_at)

    async def _read_body(self, reader: asyncio.StreamReader, headers: Mapping[str, str]) -> bytes:
        if "chunked" in headers.get("transfer-encoding", "").lower():
            return await self._read_chunked(reader)
        try:
            length = int(headers.get("content-length", "0"))
        except ValueError as exc:
            raise _BadRequest(400, "bad Content-Length") from exc
        if length < 0:
            raise _BadRequest(400, "bad Content-Length")
        if length > self._max_body_bytes:
            raise _BadRequest(413, "body over the transport cap")
        return await reader.readexactly(length) if length else b""

    async def _read_chunked(self, reader: asyncio.StreamReader) -> bytes:
        parts: list[bytes] = []
        total = 0
        while True:
            size_line = await reader.readuntil(b"\r\n")
            try:
                size = int(size_line.split(b";", 1)[0].strip(), 16)
            except ValueError as exc:
                raise _BadRequest(400, "bad chunk size") from exc
            if size == 0:
                await _skip_trailers(reader)
                return b"".join(parts)
            total += size
            if total > self._max_body_bytes:
                raise _BadRequest(413, "body over the transport cap")
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)


async def _skip_trailers(reader: asyncio.StreamReader) -> None:
    while (await reader.readuntil(b"\r\n")) != b"\r\n":
        pass


def _parse_head(head: bytes) -> tuple[str, str, str, dict[str, str]]:
    """(method, target, version, headers) of a request head ending in CRLF CRLF."""
    lines = head[:-4].decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise _BadRequest(400, "bad request line")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            raise _BadRequest(400, "bad header line")
        key = name.strip().lower()
        value = value.strip()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return parts[0].upper(), parts[1], parts[2], headers


def _wants_keep_alive(request: Request) -> bool:
    connection = request.headers.get("connection", "").lower()
    if request.version == "HTTP/1.0":
        return "keep-alive" in connection
    return "close" not in connection


def _write(writer: asyncio.StreamWriter, response: Response, *, keep_alive: bool) -> None:
    lines = [
        f"HTTP/1.1 {response.status} {_REASONS.get(response.status, 'Unknown')}",
        f"Content-Type: {response.content_type}",
        f"Content-Length: {len(response.body)}",
        "Connection: keep-alive" if keep_alive else "Connection: close",
    ]
    lines.extend(f"{name}: {value}" for name, value in response.headers)
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + response.body)

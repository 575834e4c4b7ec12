"""A hostile or broken "RD" on loopback, for tests: it answers each request the way a script says.

Use::

    def script(seen: Seen) -> Reply:                     # called for every request, in a handler thread
        return Drip(interval_s=0.2)                       # headers, then one byte every 0.2 s
    with HostileRd(script) as rd:                         # listening on 127.0.0.1, a free port
        client = RdClient(rd.url, tokens, bounded_client(0.5, 2, rd.url), timeout_s=0.5)
        ...
        rd.seen[0].written                               # bytes of its answer the server got out

Replies: `Reply` (a fixed answer with Content-Length), `Huge` (a 200 of `size` bytes streamed until the
client hangs up), `Drip` (the status line and headers, or the body, one byte every `interval_s`).
`rd_ok(seen)` builds RD's 200 for the events of a request; `rd_errors(...)` RD's error body. Unlike
`mock_rd` (a faithful RD), nothing here validates anything: the point is the answers RD should never give.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

import orjson

__all__ = ["Drip", "HostileRd", "Huge", "Reply", "Seen", "rd_errors", "rd_ok"]


@dataclass
class Seen:
    """One request the server received, and how far its answer got."""

    at: float  # time.monotonic() when the request was read
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    written: int = 0  # bytes of the answer written before it ended or the client hung up
    ended_at: float | None = None  # when the answer ended or the client hung up

    @property
    def events(self) -> int:
        """Items in the request's JSON array body (0 if it is not one)."""
        try:
            decoded = orjson.loads(self.body)
        except orjson.JSONDecodeError:
            return 0
        return len(decoded) if isinstance(decoded, list) else 0


@dataclass(frozen=True)
class Reply:
    """A complete answer with Content-Length."""

    status: int
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    content_type: str = "application/json"


@dataclass(frozen=True)
class Huge:
    """A 200 of `size` bytes (Content-Length: size): `prefix`, `filler` repeated, `suffix`. With a prefix
    and suffix that make it valid JSON it is a well-formed answer, only too long."""

    size: int
    prefix: bytes = b""
    filler: bytes = b" "
    suffix: bytes = b""


@dataclass(frozen=True)
class Drip:
    """One byte every `interval_s`: of the status line and headers (`head=True`), or of a body that
    claims `length` bytes after complete headers. Stops when the client hangs up or the server stops."""

    interval_s: float
    head: bool = False
    length: int = 1_000_000


Script = Callable[[Seen], Reply | Huge | Drip]


def rd_ok(seen: Seen, uuids: list[Any] | None = None, batch_uuid: Any = "batch-1") -> Reply:
    """RD's 200 for the request in `seen`: fresh UUIDs, or `uuids` as given (any JSON values)."""
    given = uuids if uuids is not None else [str(uuid.uuid4()) for _ in range(seen.events)]
    answer = {"event_batch_uuid": batch_uuid, "events": [{"event_uuid": u} for u in given]}
    return Reply(200, orjson.dumps(answer))


def rd_errors(error_type: str, message: str = "refused") -> bytes:
    """An RD error body in its list shape."""
    return orjson.dumps({"errors": [{"error_type": error_type, "error_message": message}]})


@dataclass
class _State:
    script: Script
    stopping: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    seen: list[Seen] = field(default_factory=list)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        seen = Seen(time.monotonic(), self.command, self.path, dict(self.headers), self.rfile.read(length))
        state = self.server.state
        with state.lock:
            state.seen.append(seen)
        reply = state.script(seen)
        try:
            if isinstance(reply, Reply):
                self._reply(seen, reply)
            elif isinstance(reply, Huge):
                self._huge(seen, reply)
            else:
                self._drip(seen, reply)
        except OSError:  # the client hung up: what `written` counts is what got out
            self.close_connection = True
        seen.ended_at = time.monotonic()

    do_GET = do_POST

    def _write(self, seen: Seen, data: bytes) -> None:
        self.wfile.write(data)
        self.wfile.flush()
        seen.written += len(data)

    def _head(self, status: int, length: int, headers: tuple[tuple[str, str], ...], content_type: str) -> bytes:
        lines = [f"HTTP/1.1 {status} {self.responses.get(status, ('Status',))[0]}", f"Content-Length: {length}"]
        lines += [f"Content-Type: {content_type}", *(f"{k}: {v}" for k, v in headers)]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _reply(self, seen: Seen, reply: Reply) -> None:
        head = self._head(reply.status, len(reply.body), reply.headers, reply.content_type)
        self._write(seen, head + reply.body)

    def _huge(self, seen: Seen, huge: Huge) -> None:
        self.close_connection = True
        self._write(seen, self._head(200, huge.size, (), "application/json") + huge.prefix)
        left = huge.size - len(huge.prefix) - len(huge.suffix)
        piece = huge.filler * (64 * 1024 // len(huge.filler))
        while left > 0 and not self.server.state.stopping.is_set():
            chunk = piece[:left]
            self._write(seen, chunk)
            left -= len(chunk)
        self._write(seen, huge.suffix)

    def _drip(self, seen: Seen, drip: Drip) -> None:
        self.close_connection = True
        head = self._head(200, drip.length, (), "application/json")
        if not drip.head:
            self._write(seen, head)
        data = head if drip.head else b" " * drip.length
        for i in range(len(data)):
            if self.server.state.stopping.wait(drip.interval_s):
                return
            self._write(seen, data[i : i + 1])


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: _State


class HostileRd:
    """The server, on a daemon thread. `start()` returns once listening; `stop()` ends drips, closes and
    joins. Context manager. `seen` is a copy of the requests so far (their `written` keeps counting)."""

    def __init__(self, script: Script) -> None:
        self._state = _State(script)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def seen(self) -> list[Seen]:
        with self._state.lock:
            return list(self._state.seen)

    def set_script(self, script: Script) -> None:
        self._state.script = script

    def start(self) -> HostileRd:
        server = _Server(("127.0.0.1", 0), _Handler)
        server.state = self._state
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, args=(0.1,), name="hostile-rd", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._state.stopping.set()
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def __enter__(self) -> HostileRd:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

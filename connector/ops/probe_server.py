"""The metrics and health HTTP server: `/metrics`, `/healthz`, `/readyz`, for Prometheus and Kubernetes.

`Health` is the state the pipeline reports into (cheap calls, any thread); `ProbeServer` serves it from one
asyncio event loop on one daemon thread, whatever the number of connections, with bounded resources:

- each connection has `request_timeout_s` (default 5 s) in total to send its request and take the answer
  (a half-open or trickling client is closed then, not after each idle read);
- a request head (request line and headers) over `max_request_bytes` (8 KiB) is answered 431 and closed;
- at most `max_connections` (64) are open: a new one closes the oldest, so a probe arriving in a flood of
  idle connections is still answered (a flood only ever costs those idle sockets' buffers).

One request per connection (`Connection: close`); GET and HEAD.

`/metrics` is rendered by prometheus_client itself (`choose_encoder`): the Prometheus text format, or
OpenMetrics when the `Accept` header asks for `application/openmetrics-text`; gzip-compressed when
`Accept-Encoding` names gzip (`gzip_accepted`). The answer says `Vary: Accept, Accept-Encoding`. Rendering
runs on the server's thread and takes prometheus_client's per-metric locks one at a time (each for a read),
so the pipeline never waits on a scrape for more than one such read.

| path | 200 when | otherwise |
|---|---|---|
| `/metrics` | always (prometheus_client's exposition of the registry) | 500 if rendering fails (logged) |
| `/healthz` | `beat()` was called within `stuck_after_s` | 503 `{"status": "stuck", ...}` |
| `/readyz` | alive, assigned, token valid, RD not failing > `max_failing_s` | 503 `{"reasons": [...], ...}` |

Readiness reasons: `loop_stuck`, `not_assigned`, `token_invalid`, `rd_failing_for_s=<n>`,
`rd_answer_not_recognised`, `rd_quota_exhausted_until=<RFC 3339 UTC>` (RD answered the account's 429 with a
wait longer than `MAX_HINTED_WAIT_S`, e.g. a daily quota: not ready until then, or until RD accepts a batch).

Kubernetes: use `/healthz` as the liveness probe (a stuck loop gets the pod restarted) and `/readyz` as
the readiness probe (a pod that cannot deliver shows NotReady; it serves no traffic, so this only
informs dashboards, alerts and rollouts).
"""

from __future__ import annotations

import asyncio
import datetime
import gzip
import json
import logging
import socket
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from prometheus_client.exposition import choose_encoder, gzip_accepted
from prometheus_client.registry import Collector

__all__ = ["Health", "ProbeServer", "rfc3339_utc"]

Clock = Callable[[], float]

_log = logging.getLogger("connector.ops.probe_server")
_JSON = "application/json"


def rfc3339_utc(epoch: float) -> str:
    """`epoch` (seconds) as RFC 3339 UTC to the second, e.g. `2026-12-03T19:20:11Z`."""
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Health:
    """Liveness and readiness state. Every method is safe from any thread and costs a few attribute writes.

    Contract for the caller:
    - `beat()` once per loop iteration (and while draining on revoke/shutdown).
    - `set_assigned(n > 0)` after on_assign/on_revoke/on_lost with `n` the partitions now owned (a member
      that owns none, e.g. more replicas than partitions, is not ready), and `set_assigned(False)` at shutdown.
    - `record_request_ok()` after any answer from RD that proves the path works (2xx, and 4xx rejections
      of events); `record_request_failed()` after a timeout, connection error, 5xx or 429, and
      `record_request_failed(not_rd=True)` after a 413 or a 4xx not in RD's error format (a proxy's page):
      that makes /readyz fail at once (`rd_answer_not_recognised`), until an answer from RD proves the path.
    - `set_token_valid(False, account)` when RD refused the account's token and it cannot be refreshed; True
      after a refresh.
    - `set_account_blocked(account, True, lane)` while RD refuses an account's credentials and that lane's
      delivery waits (an account is blocked while any of its lanes is); `account_blocked(account)` says so
      (several accounts: the others keep flowing); False once RD accepts them again.
    - `set_quota_exhausted_until(epoch)` when RD's 429 for the account asks for a long wait (a daily quota):
      not ready until that wall-clock time, or until `record_request_ok()`.
    The token starts valid (a static token is presumed good until RD says otherwise).
    """

    def __init__(
        self,
        *,
        stuck_after_s: float = 60.0,
        max_failing_s: float = 120.0,
        clock: Clock = time.monotonic,
        wall: Clock = time.time,
    ):
        self._clock = clock
        self._wall = wall
        self.stuck_after_s = stuck_after_s
        self.max_failing_s = max_failing_s
        self._last_beat = clock()
        self._assigned = False
        self._invalid_tokens: set[str] = set()  # accounts whose token RD refused
        self._blocked: dict[str, set[int]] = {}  # account -> its lanes waiting for valid credentials
        self._failing_since: float | None = None
        self._not_rd = False
        self._quota_until: float | None = None  # wall-clock epoch seconds

    def beat(self) -> None:
        self._last_beat = self._clock()

    def set_assigned(self, assigned: bool) -> None:
        self._assigned = assigned

    def set_token_valid(self, valid: bool, account: str = "default") -> None:
        if valid:
            self._invalid_tokens.discard(account)
        else:
            self._invalid_tokens.add(account)

    def set_account_blocked(self, account: str, blocked: bool, lane: int = 0) -> None:
        lanes = self._blocked.setdefault(account, set())
        if blocked:
            lanes.add(lane)
        else:
            lanes.discard(lane)

    def account_blocked(self, account: str) -> bool:
        return bool(self._blocked.get(account))

    def record_request_ok(self) -> None:
        self._failing_since = None
        self._not_rd = False
        self._quota_until = None

    def set_quota_exhausted_until(self, epoch: float) -> None:
        self._quota_until = epoch

    def record_request_failed(self, not_rd: bool = False) -> None:
        self._not_rd = not_rd  # the latest failure decides: a proxy page, then a 503, is an outage of RD's
        if self._failing_since is None:
            self._failing_since = self._clock()

    def liveness(self) -> tuple[bool, dict[str, Any]]:
        """(alive, body): alive unless the loop has not beaten for more than `stuck_after_s`."""
        silent = self._clock() - self._last_beat
        if silent > self.stuck_after_s:
            return False, {"status": "stuck", "seconds_since_beat": round(silent, 3)}
        return True, {"status": "ok"}

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """(ready, body): body lists every reason for not being ready."""
        reasons = []
        alive, _ = self.liveness()
        if not alive:
            reasons.append("loop_stuck")
        if not self._assigned:
            reasons.append("not_assigned")
        reasons += [
            "token_invalid" if name == "default" else f"token_invalid account={name}"
            for name in sorted(self._invalid_tokens)
        ]
        reasons += [f"account_blocked={name}" for name, lanes in sorted(self._blocked.items()) if lanes]
        failing_since = self._failing_since
        if failing_since is not None and self._clock() - failing_since > self.max_failing_s:
            reasons.append(f"rd_failing_for_s={self._clock() - failing_since:.0f}")
        if self._not_rd:
            reasons.append("rd_answer_not_recognised")
        quota_until = self._quota_until
        if quota_until is not None and quota_until > self._wall():
            reasons.append(f"rd_quota_exhausted_until={rfc3339_utc(quota_until)}")
        if reasons:
            return False, {"status": "not_ready", "reasons": reasons}
        return True, {"status": "ready"}


class ProbeServer:
    """Serves `registry` at `/metrics`, and `/healthz`, `/readyz` on `host:port` (port 0 picks a free one)
    from a daemon thread.

    `start()` binds (raises OSError if it cannot) and returns self; `stop()` closes it and every open
    connection. Context manager. The limits (see the module docstring) are parameters so tests can shorten them.
    """

    def __init__(
        self,
        health: Health,
        registry: Collector,
        host: str = "0.0.0.0",
        port: int = 9464,
        *,
        request_timeout_s: float = 5.0,
        max_connections: int = 64,
        max_request_bytes: int = 8192,
    ) -> None:
        self.health = health
        self._registry = registry
        self._address = (host, port)
        self._timeout_s = request_timeout_s
        self._max_connections = max_connections
        self._max_request_bytes = max_request_bytes
        self._port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        # Open connections, oldest first (dicts keep insertion order); touched on the loop's thread only.
        self._open: dict[asyncio.Task[None], asyncio.StreamWriter] = {}

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the probe server is not started")
        return self._port

    @property
    def url(self) -> str:
        host = self._address[0] if self._address[0] not in ("", "0.0.0.0") else "127.0.0.1"
        return f"http://{host}:{self.port}"

    def start(self) -> ProbeServer:
        family = socket.AF_INET6 if ":" in self._address[0] else socket.AF_INET
        sock = socket.create_server(self._address, family=family, backlog=128)
        loop = asyncio.new_event_loop()
        try:
            self._server = loop.run_until_complete(
                asyncio.start_server(self._serve, sock=sock, limit=self._max_request_bytes)
            )
        except BaseException:
            sock.close()
            loop.close()
            raise
        self._loop, self._port = loop, int(sock.getsockname()[1])
        self._thread = threading.Thread(target=loop.run_forever, name="rdc-probe", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close the socket and every connection. Idempotent."""
        loop, self._loop, self._port = self._loop, None, None
        if loop is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._close(), loop).result(5)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            if self._thread is not None:
                self._thread.join(5)
                self._thread = None
            loop.close()

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
        tasks = list(self._open)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    def __enter__(self) -> ProbeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One connection: read the request head, answer, close; all of it within `request_timeout_s`."""
        task = asyncio.current_task()
        assert task is not None
        if len(self._open) >= self._max_connections:
            oldest = next(iter(self._open))
            self._open.pop(oldest).transport.abort()
            oldest.cancel()
        self._open[task] = writer
        answered = False
        try:
            async with asyncio.timeout(self._timeout_s):
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.LimitOverrunError:
                    answer = 431, _JSON, b'{"status": "request_too_large"}\n', True, ""
                else:
                    answer = self._answer(head)
                writer.write(_response(*answer))
                await writer.drain()
                answered = True
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.CancelledError, ConnectionError):
            pass  # timed out, closed by the client, evicted or stopping: nothing more to say
        finally:
            self._open.pop(task, None)
            if answered:
                writer.close()  # sends what is buffered, then FIN
            else:
                writer.transport.abort()  # never wait on a client that stopped reading

    def _answer(self, head: bytes) -> tuple[int, str, bytes, bool, str]:
        """(status, content type, body, send the body, extra header lines) for a request head."""
        request_line, _, header_lines = head.partition(b"\r\n")
        parts = request_line.split()
        if len(parts) != 3 or not parts[2].startswith(b"HTTP/"):
            return 400, _JSON, b'{"status": "bad_request"}\n', True, ""
        method, path = parts[0], parts[1].split(b"?", 1)[0]
        if method not in (b"GET", b"HEAD"):
            return 405, _JSON, b'{"status": "method_not_allowed"}\n', True, "Allow: GET, HEAD\r\n"
        if path == b"/metrics":
            try:
                content_type, exposition, extra = self._metrics(_headers(header_lines))
            except Exception:  # say why (redacted), and answer: a scrape must not hang
                _log.warning("metrics_render_failed", exc_info=True)
                return 500, _JSON, b'{"status": "error"}\n', True, ""
            return 200, content_type, exposition, method == b"GET", extra
        if path in (b"/healthz", b"/readyz"):
            ok, body = self.health.liveness() if path == b"/healthz" else self.health.readiness()
            return 200 if ok else 503, _JSON, json.dumps(body).encode() + b"\n", method == b"GET", ""
        return 404, _JSON, b'{"status": "not_found"}\n', method == b"GET", ""

    def _metrics(self, headers: dict[str, str]) -> tuple[str, bytes, str]:
        """(content type, body, extra header lines) of the registry in the format `Accept` asks for, gzipped
        when `Accept-Encoding` allows it."""
        encoder, content_type = choose_encoder(headers.get("accept", ""))
        body = encoder(self._registry)
        vary = "Vary: Accept, Accept-Encoding\r\n"
        if gzip_accepted(headers.get("accept-encoding", "")):
            return content_type, gzip.compress(body), vary + "Content-Encoding: gzip\r\n"
        return content_type, body, vary


def _headers(lines: bytes) -> dict[str, str]:
    """Header fields by lower-case name (repeated fields joined with ", "), decoded as Latin-1 (never fails)."""
    fields: dict[str, str] = {}
    for line in lines.decode("latin-1").split("\r\n"):
        name, colon, value = line.partition(":")
        if colon:
            key = name.strip().lower()
            fields[key] = f"{fields[key]}, {value.strip()}" if key in fields else value.strip()
    return fields


def _response(status: int, content_type: str, body: bytes, send_body: bool, extra: str) -> bytes:
    head = (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\nServer: rd-connector\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n{extra}Connection: close\r\n\r\n"
    )
    return head.encode("ascii") + (body if send_body else b"")

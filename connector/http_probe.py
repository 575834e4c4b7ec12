"""The metrics and health HTTP server: `/metrics`, `/healthz`, `/readyz`, for Prometheus and Kubernetes.

`Health` is the state the pipeline reports into (cheap calls, any thread); `ProbeServer` serves it with a
stdlib `ThreadingHTTPServer` on a daemon thread.

| path | 200 when | otherwise |
|---|---|---|
| `/metrics` | always (Prometheus text exposition) | |
| `/healthz` | `beat()` was called within `stuck_after_s` | 503 `{"status": "stuck", ...}` |
| `/readyz` | alive, assigned, token valid, RD not failing > `max_failing_s` | 503 `{"reasons": [...], ...}` |

Readiness reasons: `loop_stuck`, `not_assigned`, `token_invalid`, `rd_failing_for_s=<n>`.

Kubernetes: use `/healthz` as the liveness probe (a stuck loop gets the pod restarted) and `/readyz` as
the readiness probe (a pod that cannot deliver shows NotReady; it serves no traffic, so this only
informs dashboards, alerts and rollouts).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from connector.metrics import CONTENT_TYPE

__all__ = ["Health", "ProbeServer"]

Clock = Callable[[], float]


class Health:
    """Liveness and readiness state. Every method is safe from any thread and costs a few attribute writes.

    Contract for the caller:
    - `beat()` once per loop iteration (and while draining on revoke/shutdown).
    - `set_assigned(n > 0)` after on_assign/on_revoke/on_lost with `n` the partitions now owned (a member
      that owns none, e.g. more replicas than partitions, is not ready), and `set_assigned(False)` at shutdown.
    - `record_request_ok()` after any answer from RD that proves the path works (2xx, and 4xx rejections
      of events); `record_request_failed()` after a timeout, connection error, 5xx or 429.
    - `set_token_valid(False)` when RD refused the token and it cannot be refreshed; True after a refresh.
    The token starts valid (a static token is presumed good until RD says otherwise).
    """

    def __init__(self, *, stuck_after_s: float = 60.0, max_failing_s: float = 120.0, clock: Clock = time.monotonic):
        self._clock = clock
        self.stuck_after_s = stuck_after_s
        self.max_failing_s = max_failing_s
        self._last_beat = clock()
        self._assigned = False
        self._token_valid = True
        self._failing_since: float | None = None

    def beat(self) -> None:
        self._last_beat = self._clock()

    def set_assigned(self, assigned: bool) -> None:
        self._assigned = assigned

    def set_token_valid(self, valid: bool) -> None:
        self._token_valid = valid

    def record_request_ok(self) -> None:
        self._failing_since = None

    def record_request_failed(self) -> None:
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
        if not self._token_valid:
            reasons.append("token_invalid")
        failing_since = self._failing_since
        if failing_since is not None and self._clock() - failing_since > self.max_failing_s:
            reasons.append(f"rd_failing_for_s={self._clock() - failing_since:.0f}")
        if reasons:
            return False, {"status": "not_ready", "reasons": reasons}
        return True, {"status": "ready"}


class ProbeServer:
    """Serves `/metrics`, `/healthz`, `/readyz` on `host:port` (port 0 picks a free one) from a daemon thread.

    `start()` binds (raises OSError if it cannot) and returns self; `stop()` closes it. Context manager.
    """

    def __init__(self, health: Health, render_metrics: Callable[[], bytes], host: str = "0.0.0.0", port: int = 9464):
        self.health = health
        self._render = render_metrics
        self._address = (host, port)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the probe server is not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        host = self._address[0] if self._address[0] not in ("", "0.0.0.0") else "127.0.0.1"
        return f"http://{host}:{self.port}"

    def start(self) -> ProbeServer:
        server = ThreadingHTTPServer(self._address, _handler(self.health, self._render))
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, args=(0.2,), name="rdc-probe", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket. Idempotent."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def __enter__(self) -> ProbeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _handler(health: Health, render: Callable[[], bytes]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "rd-connector"

        def log_message(self, format: str, *args: Any) -> None:  # probes every few seconds: keep logs quiet
            pass

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, render(), CONTENT_TYPE)
            elif path == "/healthz":
                self._send_json(*health.liveness())
            elif path == "/readyz":
                self._send_json(*health.readiness())
            else:
                self._send(404, b'{"status": "not_found"}\n', "application/json")

        def _send_json(self, ok: bool, body: dict[str, Any]) -> None:
            self._send(200 if ok else 503, json.dumps(body).encode() + b"\n", "application/json")

        def _send(self, status: int, data: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler

"""HTTP exchanges bounded in time and size: a deadline for the whole request, a cap on the answer read.

httpx's timeouts bound each phase, and each socket read within it: a server that sends its headers, then
one byte every few seconds, never trips a 30 s read timeout, and an answer of 1 GB is read into memory.
Here:

- `BoundedTransport` is httpx's `HTTPTransport` whose every socket operation (connect, TLS, each write,
  each read) gets as its timeout at most what is left of the calling thread's request deadline, and fails
  with httpx's own timeout errors (`ConnectTimeout`, `WriteTimeout`, `ReadTimeout`) once it has passed.
  So connect + send + headers + body end by the deadline, however the server paces its bytes.
- `bounded_request()` sets that deadline for one request (sync httpx does its I/O on the calling thread),
  streams the answer and stops reading at `max_bytes`: the `Answer` then has `complete=False` and the
  connection is closed, not drained. It also checks the deadline after each chunk, so a transport without
  the per-socket deadline (`httpx.MockTransport` in unit tests) is bounded to within one chunk.

`bounded_client()` builds the `httpx.Client` the runner shares between the lanes and the token refresh.
Like a plain `httpx.Client` it goes through the proxy the environment names for RD's URL (`HTTPS_PROXY`,
`HTTP_PROXY`, `ALL_PROXY`, minus `NO_PROXY`); only HTTP(S) proxies (httpx needs an extra for SOCKS).
"""

from __future__ import annotations

import threading
import time
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx

from connector.errors import ConfigError

__all__ = ["Answer", "BoundedTransport", "bounded_client", "bounded_request", "env_proxy"]

_WRITE_SLICE = 64 * 1024  # a write's deadline is re-cut every slice, so a slow reader cannot stretch it


class _Deadline(threading.local):
    at: float | None = None  # time.monotonic() by which this thread's request must be over


_deadline = _Deadline()


@dataclass(frozen=True, slots=True)
class Answer:
    """An HTTP answer read under a cap. `body` holds at most the cap; `complete` is False when the
    answer was longer (the rest was never read)."""

    status_code: int
    headers: httpx.Headers
    body: bytes
    complete: bool = True

    def excerpt(self, limit: int = 2000) -> str:
        """`<status> <first bytes of the body>` for logs and dead letters."""
        cut = "" if self.complete and len(self.body) <= limit else " [cut]"
        return f"{self.status_code} {self.body[:limit].decode('utf-8', 'replace')}{cut}"


def bounded_request(
    client: httpx.Client, method: str, url: str, *, timeout_s: float, max_bytes: int, **kwargs: Any
) -> Answer:
    """Send one request and read at most `max_bytes` of its answer, all within `timeout_s` seconds.

    `kwargs` go to `httpx.Client.stream` (`content`, `json`, `headers`). Raises httpx's transport errors
    as they come, and `httpx.ReadTimeout` when the deadline passes while the answer is being read."""
    deadline = time.monotonic() + timeout_s
    outer, _deadline.at = _deadline.at, deadline
    try:
        with client.stream(method, url, timeout=httpx.Timeout(timeout_s), **kwargs) as response:
            body, complete = _read_capped(response, max_bytes, deadline)
            return Answer(response.status_code, response.headers, body, complete)
    finally:
        _deadline.at = outer


def _read_capped(response: httpx.Response, max_bytes: int, deadline: float) -> tuple[bytes, bool]:
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():  # decoded: the cap bounds what is held, whatever the encoding
        if size + len(chunk) > max_bytes:
            chunks.append(chunk[: max_bytes - size])
            return b"".join(chunks), False
        chunks.append(chunk)
        size += len(chunk)
        if time.monotonic() > deadline:
            raise httpx.ReadTimeout("the request deadline passed while the answer was read", request=response.request)
    return b"".join(chunks), True


def _cut(timeout: float | None, error: type[httpcore.TimeoutException]) -> float | None:
    """`timeout` cut to what is left of this thread's request deadline; `error` when nothing is left."""
    deadline = _deadline.at
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise error("the request deadline passed")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _cut(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        for start in range(0, len(buffer), _WRITE_SLICE):
            self._inner.write(buffer[start : start + _WRITE_SLICE], _cut(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        inner = self._inner.start_tls(ssl_context, server_hostname, _cut(timeout, httpcore.ConnectTimeout))
        return _DeadlineStream(inner)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    def __init__(self, inner: httpcore.NetworkBackend) -> None:
        self._inner = inner

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        timeout = _cut(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._inner.connect_tcp(host, port, timeout, local_address, socket_options))

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        timeout = _cut(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._inner.connect_unix_socket(path, timeout, socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class BoundedTransport(httpx.HTTPTransport):
    """httpx's transport over a connection pool (direct, or through an HTTP(S) `proxy`) whose sockets
    honour the request deadline."""

    def __init__(self, limits: httpx.Limits, proxy: httpx.Proxy | None = None) -> None:
        super().__init__(limits=limits)
        # httpx takes no network backend; its transport only delegates to `_pool` (and maps httpcore's
        # errors to its own), so the pool is rebuilt with ours. tests/integration/test_hostile_rd.py
        # fails if a later httpx stops using it (a server dripping its headers would then go unbounded).
        pool: dict[str, Any] = {
            "ssl_context": httpx.create_ssl_context(),
            "max_connections": limits.max_connections,
            "max_keepalive_connections": limits.max_keepalive_connections,
            "keepalive_expiry": limits.keepalive_expiry,
            "network_backend": _DeadlineBackend(httpcore.SyncBackend()),
        }
        if proxy is None:
            self._pool = httpcore.ConnectionPool(**pool)
            return
        url = proxy.url
        self._pool = httpcore.HTTPProxy(
            proxy_url=httpcore.URL(scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path),
            proxy_auth=proxy.raw_auth,
            proxy_headers=proxy.headers.raw,
            proxy_ssl_context=proxy.ssl_context,
            **pool,
        )


def bounded_client(timeout_s: float, max_connections: int, base_url: str) -> httpx.Client:
    """The shared client for `base_url` (RD): `BoundedTransport` with `max_connections` kept alive,
    `timeout_s` per phase (`bounded_request` bounds the whole request by its own `timeout_s`), through the
    environment's proxy for that URL if it names one. Raises ConfigError for a proxy other than HTTP(S)."""
    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
    proxy = env_proxy(base_url)
    if proxy is not None and httpx.URL(proxy).scheme not in ("http", "https"):
        raise ConfigError(
            f"the proxy {httpx.URL(proxy).scheme}://... named by *_PROXY for {base_url} is not supported: "
            "use an HTTP(S) proxy, or exclude the host with NO_PROXY"
        )
    transport = BoundedTransport(limits, httpx.Proxy(proxy) if proxy else None)
    return httpx.Client(transport=transport, timeout=timeout_s)


def env_proxy(url: str) -> str | None:
    """The proxy URL the environment names for `url` (`<SCHEME>_PROXY`, else `ALL_PROXY`; None when
    `NO_PROXY` excludes its host or none is set), as a plain `httpx.Client` would pick it."""
    target = httpx.URL(url)
    if urllib.request.proxy_bypass(target.host):  # on Linux: NO_PROXY
        return None
    proxies = urllib.request.getproxies_environment()
    return proxies.get(target.scheme) or proxies.get("all") or None

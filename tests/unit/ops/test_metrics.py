"""Metrics (private registry, exposition) and the probe server (/metrics, /healthz, /readyz) on loopback."""

from __future__ import annotations

import os
import re
import selectors
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from connector.ops.metrics import CONTENT_TYPE, Metrics, status_class
from connector.ops.probe_server import Health, ProbeServer


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """{(sample name, sorted labels): value} parsed back from the text exposition."""
    parsed = text_string_to_metric_families(metrics.render().decode())
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for family in parsed for s in family.samples}


def value(metrics: Metrics, name: str, **labels: str) -> float:
    return samples(metrics)[(name, tuple(sorted(labels.items())))]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeConsumer:
    """Cached watermarks per (topic, partition); records the `cached` flag it was asked with."""

    def __init__(self, watermarks: dict[tuple[str, int], tuple[int, int] | None]) -> None:
        self.watermarks = watermarks
        self.cached_flags: list[bool] = []

    def get_watermark_offsets(self, partition: Any, timeout: float = 0, cached: bool = False) -> Any:
        self.cached_flags.append(cached)
        return self.watermarks[(partition.topic, partition.partition)]


# -- Metrics -----------------------------------------------------------------------------------------


def test_names_follow_prometheus_conventions() -> None:
    names = {family.name for family in Metrics().registry.collect()}
    assert names  # every family is exposed from the start (labelled ones once used)
    for name in names:
        assert name.startswith("rdc_"), name
    text = Metrics().render().decode()
    assert "rdc_events_consumed_total 0.0" in text
    assert re.search(r"^# TYPE rdc_request_duration_seconds histogram$", text, re.M)
    assert re.search(r"^# TYPE rdc_request_body_bytes histogram$", text, re.M)


def test_documented_table_matches_the_registry() -> None:
    import connector.ops.metrics as module

    documented = set(re.findall(r"^\| `(rdc_\w+)` \|", module.__doc__ or "", re.M))
    metrics = Metrics()
    metrics.dead_lettered("map", "x")
    metrics.batch_done("delivered")
    metrics.observe_request(200, 0.1, 10, 1, 100)
    metrics.retry("timeout")
    metrics.token_refreshed(True)
    metrics.set_lag("t", 0, 1)
    exposed = set()
    for family in metrics.registry.collect():
        exposed.add(family.name + ("_total" if family.type == "counter" else ""))
    assert documented == exposed


def test_registries_are_private() -> None:
    first, second = Metrics(), Metrics()
    first.events_consumed.inc(3)
    assert value(first, "rdc_events_consumed_total") == 3
    assert value(second, "rdc_events_consumed_total") == 0


def test_counters() -> None:
    m = Metrics()
    m.events_consumed.inc(1000)
    m.tombstones_skipped.inc(2)
    m.delivered(990)
    m.dead_lettered("decode", "bad_magic_byte")
    m.dead_lettered("map", "invalid_email", 3)
    m.batch_done("delivered")
    m.batch_done("split")
    m.retry("status_503")
    m.retry("status_503")
    m.token_refreshed(True)
    m.token_refreshed(False)
    m.possible_duplicates.inc(50)
    assert value(m, "rdc_values_trimmed_total") == 0  # exposed before the first trim
    m.values_trimmed.inc(3)
    assert value(m, "rdc_events_consumed_total") == 1000
    assert value(m, "rdc_tombstones_skipped_total") == 2
    assert value(m, "rdc_events_delivered_total", account="default") == 990
    assert value(m, "rdc_events_dead_lettered_total", stage="decode", reason="bad_magic_byte") == 1
    assert value(m, "rdc_events_dead_lettered_total", stage="map", reason="invalid_email") == 3
    assert value(m, "rdc_batches_total", outcome="split") == 1
    assert value(m, "rdc_retries_total", cause="status_503", account="default") == 2
    assert value(m, "rdc_token_refreshes_total", result="failed", account="default") == 1
    assert value(m, "rdc_possible_duplicates_total") == 50
    assert value(m, "rdc_values_trimmed_total") == 3


@pytest.mark.parametrize(
    ("status", "expected"), [(200, "2xx"), (400, "4xx"), (429, "4xx"), (503, "5xx"), (None, "error")]
)
def test_status_class(status: int | None, expected: str) -> None:
    assert status_class(status) == expected


def test_observe_request() -> None:
    m = Metrics()
    m.observe_request(200, 0.08, 190_000, 500, 200_000)
    m.observe_request(None, 30.0, 50_000, 100, 200_000)
    assert value(m, "rdc_requests_total", status_class="2xx", account="default") == 1
    assert value(m, "rdc_requests_total", status_class="error", account="default") == 1
    assert value(m, "rdc_request_body_bytes_sum") == 240_000
    assert value(m, "rdc_request_fill_ratio_bucket", le="0.95") == 2  # 0.95 and 0.25
    assert value(m, "rdc_request_fill_ratio_bucket", le="0.9") == 1
    assert value(m, "rdc_request_events_count") == 2
    assert value(m, "rdc_request_events_sum") == 600
    assert value(m, "rdc_request_duration_seconds_bucket", le="0.1") == 1
    assert value(m, "rdc_request_duration_seconds_sum") == pytest.approx(30.08)


def test_gauges_and_delivery_latency() -> None:
    m = Metrics()
    m.in_flight_bytes.inc(1000)
    m.in_flight_bytes.inc(500)
    m.in_flight_bytes.dec(1000)
    m.buffered_bytes.set(123_456)
    m.oldest_unsettled_age.set(2.5)
    m.assigned_partitions.set(3)
    m.observe_delivery_latency(1.5)
    m.observe_delivery_latency(-0.1)  # clock skew never yields a negative observation
    assert value(m, "rdc_in_flight_bytes") == 500
    assert value(m, "rdc_buffered_bytes") == 123_456
    assert value(m, "rdc_oldest_unsettled_age_seconds") == 2.5
    assert value(m, "rdc_assigned_partitions") == 3
    assert value(m, "rdc_delivery_latency_seconds_sum") == 1.5
    assert value(m, "rdc_delivery_latency_seconds_bucket", le="0.1") == 1


def test_lag_from_cached_watermarks() -> None:
    m = Metrics()
    consumer = FakeConsumer({("a", 0): (0, 100), ("a", 1): (-1001, -1001), ("b", 0): None, ("b", 1): (5, 7)})
    m.update_lag(consumer, {("a", 0): 40, ("a", 1): 3, ("b", 0): 0, ("b", 1): 9})
    assert consumer.cached_flags == [True] * 4  # never a queried end offset (wrong on Tansu, and a round trip)
    assert value(m, "rdc_consumer_lag", topic="a", partition="0") == 60
    assert value(m, "rdc_consumer_lag", topic="b", partition="1") == 0  # position past a stale watermark
    assert ("rdc_consumer_lag", (("partition", "1"), ("topic", "a"))) not in samples(m)
    m.forget_partitions([("a", 0), ("z", 9)])
    assert ("rdc_consumer_lag", (("partition", "0"), ("topic", "a"))) not in samples(m)


# -- Health ----------------------------------------------------------------------------------------


def test_liveness_follows_beats() -> None:
    clock = FakeClock()
    health = Health(stuck_after_s=10, clock=clock)
    assert health.liveness()[0]
    clock.now += 11
    alive, body = health.liveness()
    assert not alive and body["status"] == "stuck" and body["seconds_since_beat"] == 11
    health.beat()
    assert health.liveness() == (True, {"status": "ok"})


def test_readiness_states() -> None:
    clock = FakeClock()
    health = Health(stuck_after_s=60, max_failing_s=120, clock=clock)
    assert health.readiness() == (False, {"status": "not_ready", "reasons": ["not_assigned"]})
    health.set_assigned(True)
    assert health.readiness() == (True, {"status": "ready"})
    health.record_request_failed()
    clock.now += 100
    health.record_request_failed()  # still failing: the clock runs from the first failure
    health.beat()
    assert health.readiness()[0]
    clock.now += 21
    health.beat()
    assert health.readiness() == (False, {"status": "not_ready", "reasons": ["rd_failing_for_s=121"]})
    health.record_request_ok()
    assert health.readiness()[0]
    health.set_token_valid(False)
    assert health.readiness()[1]["reasons"] == ["token_invalid"]
    health.set_token_valid(True)
    clock.now += 61
    assert health.readiness()[1]["reasons"] == ["loop_stuck"]


# -- ProbeServer -------------------------------------------------------------------------------------


@pytest.fixture
def served() -> Iterator[tuple[ProbeServer, Metrics, FakeClock]]:
    metrics, clock = Metrics(), FakeClock()
    with ProbeServer(Health(stuck_after_s=5, max_failing_s=30, clock=clock), metrics.render, "127.0.0.1", 0) as server:
        yield server, metrics, clock


def test_metrics_endpoint(served: tuple[ProbeServer, Metrics, FakeClock]) -> None:
    server, metrics, _ = served
    metrics.events_consumed.inc(7)
    response = httpx.get(f"{server.url}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"] == CONTENT_TYPE
    assert "rdc_events_consumed_total 7.0" in response.text


def test_probes_change_state(served: tuple[ProbeServer, Metrics, FakeClock]) -> None:
    server, _, clock = served
    health = server.health
    assert httpx.get(f"{server.url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{server.url}/readyz")
    assert ready.status_code == 503 and ready.json()["reasons"] == ["not_assigned"]
    health.set_assigned(True)
    assert httpx.get(f"{server.url}/readyz?verbose=1").status_code == 200
    health.record_request_failed()
    clock.now += 31
    health.beat()
    ready = httpx.get(f"{server.url}/readyz")
    assert ready.status_code == 503 and ready.json()["reasons"] == ["rd_failing_for_s=31"]
    clock.now += 6
    live = httpx.get(f"{server.url}/healthz")
    assert live.status_code == 503 and live.json()["status"] == "stuck"
    health.beat()
    health.record_request_ok()
    assert httpx.get(f"{server.url}/healthz").status_code == 200
    assert httpx.get(f"{server.url}/readyz").status_code == 200
    assert httpx.get(f"{server.url}/nope").status_code == 404


def test_stop_is_idempotent_and_frees_the_port() -> None:
    server = ProbeServer(Health(), Metrics().render, "127.0.0.1", 0).start()
    port = server.port
    server.stop()
    server.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/healthz")
    with pytest.raises(RuntimeError):
        _ = server.port


# -- the probe server's resources are bounded --------------------------------------------------------


def _connect(port: int, send: bytes = b"") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    if send:
        sock.sendall(send)
    return sock


def _exchange(port: int, request: bytes) -> bytes:
    """Send `request` on a fresh connection and read until the server closes it."""
    with _connect(port, request) as sock:
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def _closed_by_server(sock: socket.socket) -> bool:
    """True once the server has closed `sock` (EOF or reset); it sends nothing before that."""
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def _wait_closed(socks: list[socket.socket], within_s: float) -> list[socket.socket]:
    """Wait up to `within_s` for the server to close each of `socks`; return those still open."""
    selector = selectors.DefaultSelector()
    for sock in socks:
        selector.register(sock, selectors.EVENT_READ)
    pending, deadline = set(socks), time.monotonic() + within_s
    while pending and time.monotonic() < deadline:
        for key, _ in selector.select(timeout=0.1):
            ready = key.fileobj
            assert isinstance(ready, socket.socket)
            assert _closed_by_server(ready), "the server answered a request it never received whole"
            selector.unregister(ready)
            pending.discard(ready)
    selector.close()
    return [sock for sock in socks if sock in pending]


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_half_open_connections_cost_no_thread_and_probes_still_answer() -> None:
    """300 clients that connect and send nothing or half a request line (the issue's measurement: 1,500 of
    them took the old server from 10 to 216 threads): no thread per connection, at most `max_connections`
    held, and /healthz answers while they are all still connected."""
    with ProbeServer(Health(), Metrics().render, "127.0.0.1", 0) as server:
        threads, fds = threading.active_count(), _open_fds()
        idle = [_connect(server.port, b"" if i % 2 else b"GET /healthz HT") for i in range(300)]
        try:
            live = httpx.get(f"{server.url}/healthz", timeout=5)  # accepted after all 300 (one accept queue)
            assert live.status_code == 200 and live.json() == {"status": "ok"}
            assert threading.active_count() == threads
            assert _open_fds() <= fds + len(idle) + 64 + 2  # ours, plus at most 64 on the server's side
            assert not _wait_closed(idle[:200], within_s=2)  # the oldest are closed to make room at once
        finally:
            for sock in idle:
                sock.close()


def test_idle_and_trickling_connections_are_closed_after_the_timeout() -> None:
    with ProbeServer(Health(), Metrics().render, "127.0.0.1", 0, request_timeout_s=0.3) as server:
        idle = [_connect(server.port, b"" if i % 2 else b"GET /metrics HTTP/1.1\r\nHost: x\r\n") for i in range(20)]
        trickling = _connect(server.port)
        stop = threading.Event()

        def trickle() -> None:  # a byte every 50 ms: each read is quick, the whole request never ends
            try:
                while not stop.wait(0.05):
                    trickling.send(b"X")
            except OSError:
                pass

        sender = threading.Thread(target=trickle)
        sender.start()
        try:
            assert not _wait_closed([*idle, trickling], within_s=3)
            assert httpx.get(f"{server.url}/healthz", timeout=5).status_code == 200
        finally:
            stop.set()
            sender.join()
            for sock in [*idle, trickling]:
                sock.close()


def test_a_request_head_over_the_cap_is_refused() -> None:
    with ProbeServer(Health(), Metrics().render, "127.0.0.1", 0, max_request_bytes=1024) as server:
        answer = _exchange(server.port, b"GET /healthz HTTP/1.1\r\nX-Pad: " + b"a" * 5000)  # no end of head
        assert answer.startswith(b"HTTP/1.1 431 ")
        fits = _exchange(server.port, b"GET /healthz HTTP/1.1\r\nX-Pad: " + b"a" * 900 + b"\r\n\r\n")
        assert fits.startswith(b"HTTP/1.1 200 ") and fits.endswith(b'{"status": "ok"}\n')


def test_methods_and_malformed_requests(served: tuple[ProbeServer, Metrics, FakeClock]) -> None:
    server, _, _ = served
    head = _exchange(server.port, b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ") and head.endswith(b"\r\n\r\n")  # headers only
    assert b"Content-Length: 17\r\n" in head and b"Connection: close\r\n" in head
    post = _exchange(server.port, b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
    assert post.startswith(b"HTTP/1.1 405 ") and b"Allow: GET, HEAD\r\n" in post
    assert _exchange(server.port, b"nonsense\r\n\r\n").startswith(b"HTTP/1.1 400 ")


def test_stop_closes_open_connections() -> None:
    server = ProbeServer(Health(), Metrics().render, "127.0.0.1", 0).start()
    idle = [_connect(server.port) for _ in range(3)]
    httpx.get(f"{server.url}/healthz", timeout=5)  # all three accepted by now
    server.stop()
    assert not _wait_closed(idle, within_s=2)
    for sock in idle:
        sock.close()

"""Metrics (private registry, exposition) and the probe server (/metrics, /healthz, /readyz) on loopback."""

from __future__ import annotations

import ast
import gzip
import importlib.metadata
import os
import platform
import re
import selectors
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.openmetrics.parser import text_string_to_metric_families as text_string_to_openmetrics_families
from prometheus_client.parser import text_string_to_metric_families

import connector
from connector.ops.metrics import (
    BATCH_OUTCOMES,
    DEAD_LETTER_REASONS,
    RETRY_CAUSES,
    STATUS_CLASSES,
    TOKEN_REFRESH_RESULTS,
    Metrics,
    build_info,
    status_class,
)
from connector.ops.probe_server import Health, ProbeServer
from connector.rd.retry import classify_exception, classify_response


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
        assert name.startswith(("rdc_", "process_", "python_")), name
    text = Metrics().render().decode()
    assert "rdc_events_consumed_total 0.0" in text
    assert re.search(r"^# TYPE rdc_request_duration_seconds histogram$", text, re.M)
    assert re.search(r"^# TYPE rdc_request_body_bytes histogram$", text, re.M)


def _documented(text: str) -> dict[str, tuple[str, str]]:
    """{metric: (type, labels)} of a metrics table (`| `name` | type | labels | meaning |`)."""
    rows = re.findall(r"^\| `(rdc_\w+)` \| (\w+) \|([^|]*)\|", text, re.M)
    return {name: (kind, ", ".join(sorted(re.findall(r"`(\w+)`", labels)))) for name, kind, labels in rows}


def test_documented_tables_match_the_registry() -> None:
    """The module docstring's table and the README's name every rdc_ metric with its type and labels."""
    import connector.ops.metrics as module

    metrics = Metrics()
    metrics.set_lag("t", 0, 1)  # the one labelled series with no value known in advance
    metrics.skipped("drafts")
    metrics.watch_rate("default", lambda: 1.0)
    exposed = {}
    for family in metrics.registry.collect():
        if family.name.startswith("rdc_"):
            name = family.name + {"counter": "_total", "info": "_info"}.get(family.type, "")
            labels = {key for sample in family.samples for key in sample.labels if key != "le"}
            kind = "gauge" if family.type == "info" else family.type  # what the text exposition says
            exposed[name] = (kind, ", ".join(sorted(labels)))
    assert _documented(module.__doc__ or "") == exposed
    readme = (Path(__file__).parents[3] / "README.md").read_text()
    section = readme.split("### Metrics", 1)[1].split("\n### ", 1)[0]
    assert _documented(section) == exposed


def test_registries_are_private() -> None:
    first, second = Metrics(), Metrics()
    first.events_consumed.inc(3)
    assert value(first, "rdc_events_consumed_total") == 3
    assert value(second, "rdc_events_consumed_total") == 0


def test_process_platform_gc_and_build_info() -> None:
    import confluent_kafka

    m = Metrics()
    assert value(m, "process_resident_memory_bytes") > 0
    assert value(m, "process_cpu_seconds_total") >= 0
    assert ("python_gc_collections_total", (("generation", "0"),)) in samples(m)
    info = [labels for (name, labels) in samples(m) if name == "python_info"]
    assert info and dict(info[0])["version"] == platform.python_version()
    build = {dict(labels)["version"]: v for (name, labels), v in samples(m).items() if name == "rdc_build_info"}
    assert build == {importlib.metadata.version("rd-connector"): 1.0}
    assert build_info() == {
        "version": importlib.metadata.version("rd-connector"),
        "python": platform.python_version(),
        "confluent_kafka": confluent_kafka.__version__,
        "librdkafka": confluent_kafka.libversion()[0],
    }


def test_no_created_series() -> None:
    m = Metrics()
    m.events_consumed.inc()
    m.observe_request(200, 0.1, 10, 1, 100)
    text = m.render().decode()
    assert "_created" not in text
    assert "_created" not in generate_openmetrics(m.registry).decode()  # type: ignore[no-untyped-call]


def test_known_label_values_are_present_at_zero() -> None:
    """A series that appears only on its first increment is missed by `increase()`: every value the connector
    knows in advance is there at 0 before anything happens."""
    m = Metrics()
    m.accounts(["north", "south"])
    exposed = samples(m)
    for stage, reason in DEAD_LETTER_REASONS:
        assert exposed[("rdc_events_dead_lettered_total", (("reason", reason), ("stage", stage)))] == 0
    for outcome in BATCH_OUTCOMES:
        assert exposed[("rdc_batches_total", (("outcome", outcome),))] == 0
    for account in ("north", "south"):
        assert exposed[("rdc_events_delivered_total", (("account", account),))] == 0
        assert exposed[("rdc_account_blocked", (("account", account),))] == 0
        for kind in ("account", "contact"):
            assert value(m, "rdc_rd_throttled_total", kind=kind, account=account) == 0
        for result in TOKEN_REFRESH_RESULTS:
            assert value(m, "rdc_token_refreshes_total", result=result, account=account) == 0
        for status in STATUS_CLASSES:
            assert value(m, "rdc_requests_total", status_class=status, account=account) == 0
        for cause in RETRY_CAUSES:
            assert value(m, "rdc_retries_total", cause=cause, account=account) == 0
    # `default` (set up for the single-account case) is gone: it is not configured here
    assert not [labels for (_, labels) in exposed if ("account", "default") in labels]


def test_accounts_keep_what_was_counted() -> None:
    m = Metrics()
    m.delivered(5)
    m.accounts(["default", "east"])
    assert value(m, "rdc_events_delivered_total", account="default") == 5
    assert value(m, "rdc_retries_total", cause="timeout", account="east") == 0


def test_ready_is_read_at_each_scrape() -> None:
    m, ready = Metrics(), [False]
    m.watch_ready(lambda: ready[0])
    assert value(m, "rdc_ready") == 0
    ready[0] = True
    assert value(m, "rdc_ready") == 1


def test_retry_causes_are_what_rd_retry_decides() -> None:
    """Each pre-created cause is one `rd.retry` really gives as RETRY (or the attempt's `auth_unavailable`)."""
    decided = {
        classify_response(status, {}, b'{"errors": {"x": []}}' if status == 413 else b"", now=0).reason
        for status in (408, 413, 429, 500, 502, 503, 504)
    }
    decided |= {classify_exception(exc).reason for exc in (httpx.ReadTimeout("t"), httpx.ConnectError("c"))}
    assert set(RETRY_CAUSES) == decided | {"auth_unavailable"}


def _readme_reasons() -> set[tuple[str, str]]:
    readme = (Path(__file__).parents[3] / "README.md").read_text()
    table = readme.split("### Dead-letter reasons", 1)[1].split("\n\n", 2)[1]
    rows = re.findall(r"^\| ([a-z, ]+) \| `(\w+)` \|", table, re.M)
    return {(stage, reason) for stages, reason in rows for stage in stages.split(", ")}


def test_dead_letter_reasons_match_the_readme() -> None:
    assert len(DEAD_LETTER_REASONS) == len(set(DEAD_LETTER_REASONS))
    assert set(DEAD_LETTER_REASONS) == _readme_reasons()


def _reasons_in_source() -> set[str]:
    """Every reason a literal in the connector's source gives a refusal: the first argument of
    `MappingError`/`DecodeError`/`_refuser`, the reason argument of `_letter`/`_dead_letter`, what `_reason`
    returns, and module constants named UNEXPECTED."""
    found: set[str] = set()
    package = Path(connector.__file__).parent
    for path in package.rglob("*.py"):
        if "testing" in path.parts:
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
                position = {"MappingError": 0, "DecodeError": 0, "_refuser": 0, "_letter": 2, "_dead_letter": 2}
                index = position.get(name)
                if index is not None and len(node.args) > index:
                    argument = node.args[index]
                    if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
                        found.add(argument.value)
            elif isinstance(node, ast.FunctionDef) and node.name == "_reason":
                found |= {reason for ret in ast.walk(node) if isinstance(ret, ast.Return) for reason in _returned(ret)}
            elif isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "UNEXPECTED" for t in node.targets):
                assert isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
                found.add(node.value.value)
    return found


def _returned(node: ast.Return) -> set[str]:
    """The strings a `return` gives: a literal, or a `{...}.get(key, default)` table's values and default."""
    value = node.value
    if isinstance(value, ast.Constant) and isinstance(value.value, str):
        return {value.value}
    if isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute) and isinstance(value.func.value, ast.Dict):
        options = [*value.func.value.values, *value.args[1:]]
        return {
            option.value for option in options if isinstance(option, ast.Constant) and isinstance(option.value, str)
        }
    return set()


def test_every_reason_in_the_source_is_known() -> None:
    """A new reason in the code without a row in DEAD_LETTER_REASONS (and so in the README) fails here."""
    in_source = _reasons_in_source()
    assert {"bad_magic_byte", "unknown_account", "rejected_by_rd", "negative_amount", "unexpected_error"} <= in_source
    assert in_source <= {reason for _, reason in DEAD_LETTER_REASONS}


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
    with ProbeServer(
        Health(stuck_after_s=5, max_failing_s=30, clock=clock), metrics.registry, "127.0.0.1", 0
    ) as server:
        yield server, metrics, clock


def test_metrics_endpoint(served: tuple[ProbeServer, Metrics, FakeClock]) -> None:
    server, metrics, _ = served
    metrics.events_consumed.inc(7)
    response = httpx.get(f"{server.url}/metrics", headers={"Accept-Encoding": "identity"})
    assert response.status_code == 200
    assert response.headers["content-type"] == CONTENT_TYPE_PLAIN_0_0_4  # no Accept: Prometheus' text format
    assert response.headers["vary"] == "Accept, Accept-Encoding"
    assert "content-encoding" not in response.headers
    assert "rdc_events_consumed_total 7.0" in response.text


def test_metrics_gzip_and_openmetrics(served: tuple[ProbeServer, Metrics, FakeClock]) -> None:
    """What a Prometheus server sends: OpenMetrics first in Accept, gzip in Accept-Encoding."""
    server, metrics, _ = served
    metrics.events_consumed.inc(7)
    accept = "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.3,*/*;q=0.1"
    raw = _exchange(server.port, f"GET /metrics HTTP/1.1\r\nAccept: {accept}\r\nAccept-Encoding: gzip\r\n\r\n".encode())
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert b"\r\nContent-Encoding: gzip\r\n" in head
    assert b"\r\nContent-Type: application/openmetrics-text; version=1.0.0; charset=utf-8" in head
    assert f"\r\nContent-Length: {len(body)}\r\n".encode() in head
    text = gzip.decompress(body).decode()
    assert "rdc_events_consumed_total 7.0\n" in text and text.endswith("# EOF\n")
    families = {family.name for family in text_string_to_openmetrics_families(text)}  # type: ignore[no-untyped-call]
    assert {"rdc_events_consumed", "process_resident_memory_bytes", "rdc_build"} <= families
    plain = httpx.get(f"{server.url}/metrics", headers={"Accept": "text/plain", "Accept-Encoding": "gzip"})
    assert plain.headers["content-encoding"] == "gzip"  # httpx decompresses it
    assert "rdc_events_consumed_total 7.0" in plain.text and "# EOF" not in plain.text


def test_metrics_head_and_a_failing_render() -> None:
    class Broken:
        def collect(self) -> Iterator[Any]:
            raise RuntimeError("boom")
            yield

    with ProbeServer(Health(), Broken(), "127.0.0.1", 0) as server:
        assert httpx.get(f"{server.url}/metrics").status_code == 500
        assert httpx.get(f"{server.url}/healthz").status_code == 200
    with ProbeServer(Health(), Metrics().registry, "127.0.0.1", 0) as server:
        head = _exchange(server.port, b"HEAD /metrics HTTP/1.1\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 ") and head.endswith(b"\r\n\r\n")  # headers only
        assert int(re.search(rb"Content-Length: (\d+)", head)[1]) > 1000  # type: ignore[index]


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
    server = ProbeServer(Health(), Metrics().registry, "127.0.0.1", 0).start()
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
    with ProbeServer(Health(), Metrics().registry, "127.0.0.1", 0) as server:
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
    with ProbeServer(Health(), Metrics().registry, "127.0.0.1", 0, request_timeout_s=0.3) as server:
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
    with ProbeServer(Health(), Metrics().registry, "127.0.0.1", 0, max_request_bytes=1024) as server:
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
    server = ProbeServer(Health(), Metrics().registry, "127.0.0.1", 0).start()
    idle = [_connect(server.port) for _ in range(3)]
    httpx.get(f"{server.url}/healthz", timeout=5)  # all three accepted by now
    server.stop()
    assert not _wait_closed(idle, within_s=2)
    for sock in idle:
        sock.close()

"""Operations on a real run: /metrics agrees with what the mock received, probes change state, and no
secret reaches any log line, failures included."""

from __future__ import annotations

import re
import signal
import socket
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from connector.commands.sample import generate_messages
from connector.testing.kafka_tools import committed_offsets, produce_acked
from connector.testing.mock_rd import MockRdServer
from tests.integration.pipeline_support import Topics, connector_env, spawn_connector, wait_until

pytestmark = pytest.mark.integration

CLIENT_SECRET = "client-secret-4f1c9e"
REFRESH_TOKEN = "refresh-token-8d2a71"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _metric(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels`."""
    total = 0.0
    for line in text.splitlines():
        match = re.match(rf"^{re.escape(name)}(\{{[^}}]*\}})? (\S+)$", line)
        if match and all(f'{k}="{v}"' in (match.group(1) or "") for k, v in labels.items()):
            total += float(match.group(2))
    return total


def _lag_settled(text: str, partitions: int) -> bool:
    series = [line for line in text.splitlines() if line.startswith("rdc_consumer_lag{")]
    return len(series) == partitions and _metric(text, "rdc_consumer_lag") == 0


def test_metrics_probes_and_logs_of_a_full_run(
    kafka_bootstrap: str, make_topic: Callable[..., str], group_id: str, tmp_path: Path
) -> None:
    topics = Topics(make_topic("src", 3), make_topic("results"), make_topic("dlq"), 3, group_id)
    port = _free_port()
    with MockRdServer(
        strict_auth=True,
        client_id="app",
        client_secret=CLIENT_SECRET,
        refresh_tokens=[REFRESH_TOKEN],
        rotate_refresh_token=True,
        token_ttl_s=2,
        error_5xx_ratio=0.1,
        seed=3,
    ) as rd:
        messages = generate_messages(2000, seed=12, malformed=10)
        ends = produce_acked(kafka_bootstrap, topics.source, [(m.key, m.value) for m in messages])
        env = connector_env(
            kafka_bootstrap,
            rd.url,
            topics,
            RDC_RD_ACCESS_TOKEN="",
            RDC_RD_CLIENT_ID="app",
            RDC_RD_CLIENT_SECRET=CLIENT_SECRET,
            RDC_RD_REFRESH_TOKEN=REFRESH_TOKEN,
            RDC_METRICS_PORT=str(port),
            RDC_METRICS_HOST="127.0.0.1",
            RDC_BATCH_MAX_BYTES="20000",
            RDC_LOG_LEVEL="DEBUG",
        )
        proc = spawn_connector(env, str(tmp_path / "run.log"))
        base = f"http://127.0.0.1:{port}"
        try:
            assert wait_until(lambda: _get(f"{base}/healthz") == 200, 20)
            early = httpx.get(f"{base}/readyz")  # before the group join (~1 s): not ready
            assert early.status_code == 503 and "not_assigned" in early.text
            assert wait_until(lambda: committed_offsets(kafka_bootstrap, topics.group, topics.source, 3) == ends, 60)
            assert httpx.get(f"{base}/readyz").status_code == 200
            # Lag and buffered bytes are refreshed every commit interval (200 ms): wait for the next one that
            # has all three partitions' series (a sum over no series would be 0 too).
            assert wait_until(lambda: _lag_settled(httpx.get(f"{base}/metrics").text, 3), 5)
            text = httpx.get(f"{base}/metrics").text
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0
        issued = rd.issued_tokens()
        requests = [r for r in rd.requests if r.path == "/platform/events/batch"]

    assert _metric(text, "rdc_events_consumed_total") == len(messages)
    assert _metric(text, "rdc_events_delivered_total") == len(rd.accepted) == len(messages) - 10
    assert _metric(text, "rdc_events_dead_lettered_total") == 10
    assert _metric(text, "rdc_events_dead_lettered_total", stage="decode") >= 1
    assert _metric(text, "rdc_requests_total", status_class="2xx") == sum(r.status == 200 for r in requests)
    assert _metric(text, "rdc_requests_total", status_class="5xx") == sum(r.status >= 500 for r in requests)
    assert _metric(text, "rdc_retries_total") >= sum(r.status >= 500 for r in requests)
    assert _metric(text, "rdc_token_refreshes_total", result="ok") >= 1
    assert _metric(text, "rdc_request_body_bytes_count") == len(requests)
    assert _metric(text, "rdc_assigned_partitions") == 3
    assert _metric(text, "rdc_consumer_lag") == 0  # all committed: no lag on any partition
    assert 'rdc_consumer_lag{partition="2"' in text or "rdc_consumer_lag{" in text  # one series per partition
    assert _metric(text, "rdc_buffered_bytes") == 0
    # the process series, the versions and readiness are on the run's registry; no _created series
    assert _metric(text, "process_resident_memory_bytes") > 0
    assert _metric(text, "rdc_build_info") == 1 and "rdc_ready " in text
    assert "_created" not in text
    assert _metric(text, "rdc_events_dead_lettered_total", stage="send", reason="rejected_by_rd") == 0  # at 0

    log = (tmp_path / "run.log").read_text()
    assert "batch lane=0" in log and "dead_letter" in log and "status=5" in log  # a run with failures
    leaked = [s for s in [CLIENT_SECRET, REFRESH_TOKEN, *issued] if s in log]
    assert leaked == [], f"secrets in the log: {leaked[:3]}"
    assert len(issued) >= 3  # several tokens were issued (and checked above)


def _get(url: str) -> int:
    try:
        return httpx.get(url, timeout=1).status_code
    except httpx.HTTPError:
        return 0


def test_fatal_auth_run_logs_no_secret(
    kafka_bootstrap: str, make_topic: Callable[..., str], group_id: str, tmp_path: Path
) -> None:
    topics = Topics(make_topic("src", 1), make_topic("results"), make_topic("dlq"), 1, group_id)
    with MockRdServer(strict_auth=True) as rd:
        produce_acked(kafka_bootstrap, topics.source, [(m.key, m.value) for m in generate_messages(10, seed=1)])
        env = connector_env(
            kafka_bootstrap, rd.url, topics, RDC_RD_ACCESS_TOKEN="static-token-b7e3", RDC_LOG_LEVEL="DEBUG"
        )
        proc = spawn_connector(env, str(tmp_path / "run.log"))
        assert proc.wait(60) == 3
    log = (tmp_path / "run.log").read_text()
    assert "401" in log and "static-token-b7e3" not in log

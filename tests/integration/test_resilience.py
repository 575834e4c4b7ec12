"""Faults from RD and from the process: the connector keeps working or stops cleanly, and loses nothing."""

from __future__ import annotations

import collections
import json
import math
import random
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import orjson
import pytest

from connector.avro import Encoder
from connector.avro.catalog import NAMESPACE
from connector.commands.sample import generate_messages
from connector.testing.kafka_tools import committed_offsets, produce_acked, read_topic
from connector.testing.mock_rd import MockRdServer
from tests.integration.pipeline_support import (
    Topics,
    connector_env,
    decode_results,
    expected_payloads,
    spawn_connector,
    start_pipeline,
    wait_until,
)

pytestmark = pytest.mark.integration


def test_5xx_and_dropped_connections_lose_nothing_and_never_commit_ahead(
    kafka_bootstrap: str, topics: Topics, rd: MockRdServer
) -> None:
    rd.configure(error_5xx_ratio=0.2, drop_ratio=0.05)
    messages = generate_messages(10_000, seed=21)
    ends = produce_acked(kafka_bootstrap, topics.source, [(m.key, m.value) for m in messages])
    env = connector_env(kafka_bootstrap, rd.url, topics, RDC_BATCH_MAX_BYTES="50000")
    running = start_pipeline(env)
    samples: list[tuple[dict[int, int], int]] = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            committed = committed_offsets(kafka_bootstrap, topics.group, topics.source, 3)
            samples.append((committed, len(rd.accepted)))  # accepted count read *after* the commit query
            if committed == ends:
                break
            time.sleep(0.2)
    finally:
        assert running.stop() == 0
    assert samples[-1][0] == ends
    statuses = [r.status for r in rd.requests]
    assert statuses.count(0) > 0 and sum(s >= 500 for s in statuses) > 0  # the faults did happen

    results = decode_results(read_topic(kafka_bootstrap, topics.results, 1, len(messages)))
    assert len(results) == len(messages)
    accepted = rd.accepted
    assert len(accepted) == len(messages)  # the mock never accepts a dropped or failed request
    position = {e.event_uuid: i for i, e in enumerate(accepted)}
    offset_to_position = {(r["source_partition"], r["source_offset"]): position[r["event_uuid"]] for r in results}
    for committed, accepted_count in samples:
        for partition, position_limit in committed.items():
            for offset in range(max(position_limit, 0)):
                assert offset_to_position[(partition, offset)] < accepted_count, (
                    f"offset {partition}/{offset} committed before RD accepted it"
                )


def test_rate_limited_rd_is_obeyed_by_every_lane(kafka_bootstrap: str, topics: Topics, rd: MockRdServer) -> None:
    rd.configure(rate_limit_per_s=5, rate_limit_header="retry-after")
    messages = generate_messages(1200, seed=5)
    produce_acked(kafka_bootstrap, topics.source, [(m.key, m.value) for m in messages])
    env = connector_env(kafka_bootstrap, rd.url, topics, RDC_BATCH_MAX_BYTES="30000", RDC_MAX_IN_FLIGHT="3")
    running = start_pipeline(env)
    try:
        assert wait_until(lambda: running.settled() == len(messages), 90)
    finally:
        assert running.stop() == 0
    requests = [r for r in rd.requests if r.path == "/platform/events/batch"]
    limited = [r for r in requests if r.status == 429]
    assert limited, "the rate limit was never reached"
    assert len(rd.accepted) == len(messages)
    # After a 429 (Retry-After >= 1 s) no lane starts a request until the pause is over. Requests recorded
    # within 50 ms of the 429 were already on the wire when it was answered.
    for refused in limited:
        during_pause = [r for r in requests if refused.at + 0.05 < r.at < refused.at + 0.9]
        assert during_pause == [], "a lane ignored the 429 pause"
    # 200s never exceed 5 per second of wall time (sliding check over the mock's fixed windows).
    accepted_at = sorted(r.at for r in requests if r.status == 200)
    for i, at in enumerate(accepted_at):
        within = [t for t in accepted_at[i:] if t - at < 1.0]
        assert len(within) <= 10  # two adjacent fixed windows of 5


def test_request_budget_keeps_the_connector_under_rd_limit(
    kafka_bootstrap: str, topics: Topics, rd: MockRdServer
) -> None:
    rd.configure(rate_limit_per_s=5)
    messages = generate_messages(300, seed=6)
    produce_acked(kafka_bootstrap, topics.source, [(m.key, m.value) for m in messages])
    env = connector_env(kafka_bootstrap, rd.url, topics, RDC_BATCH_MAX_BYTES="20000", RDC_RD_REQUESTS_PER_MINUTE="120")
    running = start_pipeline(env)
    try:
        assert wait_until(lambda: running.settled() == len(messages), 90)
    finally:
        assert running.stop() == 0
    statuses = [r.status for r in rd.requests]
    assert len(statuses) >= 8
    assert 429 not in statuses  # the default budget (2 req/s, bursts of 2) under a 5 req/s limit: no 429
    assert len(rd.accepted) == len(messages)


def test_token_expiry_with_rotation(kafka_bootstrap: str, topics: Topics, tmp_path: Path) -> None:
    token_file = tmp_path / "rd-token.json"
    with MockRdServer(
        strict_auth=True,
        client_id="app",
        client_secret="app-secret-value",
        refresh_tokens=["refresh-0"],
        rotate_refresh_token=True,
        token_ttl_s=1.5,
        latency_ms=20,
    ) as rd:
        messages = generate_messages(3000, seed=8)
        produce_acked(kafka_bootstrap, topics.source, [(m.key, m.value) for m in messages])
        env = connector_env(
            kafka_bootstrap,
            rd.url,
            topics,
            RDC_BATCH_MAX_BYTES="10000",
            RDC_RD_ACCESS_TOKEN="",
            RDC_RD_CLIENT_ID="app",
            RDC_RD_CLIENT_SECRET="app-secret-value",
            RDC_RD_REFRESH_TOKEN="refresh-0",
            RDC_RD_TOKEN_FILE=str(token_file),
        )
        running = start_pipeline(env)
        began = time.monotonic()
        try:
            assert wait_until(lambda: running.settled() == len(messages), 90)
        finally:
            assert running.stop() == 0
        seconds = time.monotonic() - began
        statuses = [r.status for r in rd.requests if r.path == "/platform/events/batch"]
        refreshes = rd.stats()["token_refreshes"]
        assert seconds > 3 and refreshes >= 3  # several tokens expired while it ran
        assert statuses.count(401) <= refreshes  # at most one 401 per token: no storm
        assert len(rd.accepted) == len(messages)
        stored = json.loads(token_file.read_text())["refresh_token"]
        assert stored != "refresh-0"
        answer = httpx.post(
            f"{rd.url}/auth/token",
            json={"client_id": "app", "client_secret": "app-secret-value", "refresh_token": stored},
        )
        assert answer.status_code == 200  # the file holds the newest refresh token, the one RD accepts
        assert oct(token_file.stat().st_mode & 0o777) == "0o600"


def _poison(index: int) -> bytes:
    payload = {"conversion_identifier": f"poison-{index}", "email": f"poison{index}@reject-me.example.com"}
    record = {
        "event_id": f"00000000-0000-4000-8000-{index:012d}",
        "occurred_at": 1_767_225_600_000,
        "event_type": "CONVERSION",
        "payload_json": orjson.dumps(payload).decode(),
    }
    return Encoder().single_object(f"{NAMESPACE}.RdEvent", record)


def test_poison_events_are_isolated_by_bisection(
    kafka_bootstrap: str, make_topic: Callable[..., str], group_id: str, rd: MockRdServer
) -> None:
    topics = Topics(make_topic("src", 1), make_topic("results"), make_topic("dlq"), 1, group_id)
    rd.configure(reject_marker="reject-me.example.com")
    values = [m.value for m in generate_messages(9_993, seed=31)]
    positions = sorted(random.Random(4).sample(range(10_000), 7))
    for n, position in enumerate(positions):
        values.insert(position, _poison(n))
    produce_acked(kafka_bootstrap, topics.source, [(None, v) for v in values])
    running = start_pipeline(connector_env(kafka_bootstrap, rd.url, topics))
    try:
        assert wait_until(lambda: running.settled() == len(values), 60)
    finally:
        assert running.stop() == 0
    letters = read_topic(kafka_bootstrap, topics.dlq, 1, 7)
    headers = [dict(m.headers() or []) for m in letters]
    assert sorted(int(h["rdc.source.offset"] or b"-1") for h in headers) == positions
    assert {h["rdc.error.reason"] for h in headers} == {b"rejected_by_rd"}
    assert all(b"INVALID" in (h["rdc.error.detail"] or b"") for h in headers)  # RD's error body travels along
    assert len(rd.accepted) == 9_993
    results = decode_results(read_topic(kafka_bootstrap, topics.results, 1, 9_993))
    offset_of = {r["event_uuid"]: r["source_offset"] for r in results}
    delivered = [offset_of[e.event_uuid] for e in rd.accepted]
    assert delivered == sorted(delivered)  # in offset order
    batch_requests = [r for r in rd.requests if r.path == "/platform/events/batch"]
    rejected = [r for r in batch_requests if r.status == 400]
    # Each poison event costs at most 2 requests per halving of the batch that held it: O(k log N).
    largest_batch = max(collections.Counter(r["event_batch_uuid"] for r in results).values())
    bound = 2 * 7 * math.ceil(math.log2(largest_batch))
    assert len(rejected) <= bound, (len(rejected), bound)
    print(f"poison: {len(batch_requests)} requests ({len(rejected)} rejected, bound {bound}) for 10,000 events")


def test_refused_refresh_token_stops_with_exit_3_and_commits_nothing(
    kafka_bootstrap: str, topics: Topics, tmp_path: Path
) -> None:
    with MockRdServer(strict_auth=True, client_id="app", client_secret="s3cret", refresh_tokens=["good"]) as rd:
        messages = generate_messages(50, seed=2)
        produce_acked(kafka_bootstrap, topics.source, [(m.key, m.value) for m in messages])
        env = connector_env(
            kafka_bootstrap,
            rd.url,
            topics,
            RDC_RD_ACCESS_TOKEN="",
            RDC_RD_CLIENT_ID="app",
            RDC_RD_CLIENT_SECRET="s3cret",
            RDC_RD_REFRESH_TOKEN="revoked-token-value",
        )
        proc = spawn_connector(env, str(tmp_path / "run.log"))
        try:
            code = proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        log = (tmp_path / "run.log").read_text()
        assert code == 3, log
        assert "INVALID_REFRESH_TOKEN" in log and "RDC_RD_REFRESH_TOKEN" in log
        assert "revoked-token-value" not in log and "s3cret" not in log
        assert rd.accepted == []
        assert all(o < 0 for o in committed_offsets(kafka_bootstrap, topics.group, topics.source, 3).values())


def test_ambiguous_answer_stops_with_exit_4_and_commits_nothing_of_it(
    kafka_bootstrap: str, topics: Topics, rd: MockRdServer, tmp_path: Path
) -> None:
    rd.configure(short_answer=True)
    messages = generate_messages(40, seed=3)
    produce_acked(kafka_bootstrap, topics.source, [(m.key, m.value) for m in messages])
    proc = spawn_connector(connector_env(kafka_bootstrap, rd.url, topics), str(tmp_path / "run.log"))
    code = proc.wait(60)
    log = (tmp_path / "run.log").read_text()
    assert code == 4, log
    assert "event UUIDs for a batch of" in log
    assert all(o < 0 for o in committed_offsets(kafka_bootstrap, topics.group, topics.source, 3).values())


def test_repeated_kill_9_loses_nothing(kafka_bootstrap: str, topics: Topics, rd: MockRdServer, tmp_path: Path) -> None:
    rd.configure(latency_ms=15)
    messages = generate_messages(6000, seed=41)
    ends = produce_acked(kafka_bootstrap, topics.source, [(m.key, m.value) for m in messages])
    env = connector_env(kafka_bootstrap, rd.url, topics, RDC_BATCH_MAX_BYTES="15000")
    dice = random.Random(9)
    kills = 0
    for attempt in range(5):
        proc = spawn_connector(env, str(tmp_path / f"run-{attempt}.log"))
        time.sleep(1.2 + dice.random() * 1.5)  # join takes ~1 s; kill somewhere in the next 1.5 s
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
    final = spawn_connector(env, str(tmp_path / "final.log"))
    try:
        assert wait_until(lambda: committed_offsets(kafka_bootstrap, topics.group, topics.source, 3) == ends, 90)
    finally:
        final.send_signal(signal.SIGTERM)
        assert final.wait(30) == 0
    accepted = {orjson.dumps(e.event["payload"]) for e in rd.accepted}
    assert accepted == expected_payloads([m.value for m in messages])
    results = decode_results(read_topic(kafka_bootstrap, topics.results, 1, len(messages)))
    assert {(r["source_partition"], r["source_offset"]) for r in results} == {
        (p, o) for p, end in ends.items() for o in range(end)
    }
    # Every duplicate is an event RD accepted in the window before its result was acknowledged (it has no
    # result); outside that window the ledger suppressed every re-delivery.
    result_uuids = {r["event_uuid"] for r in results}
    orphans = [e for e in rd.accepted if e.event_uuid not in result_uuids]
    window_batches = {e.event_batch_uuid for e in orphans}
    duplicates = len(rd.accepted) - len(messages)
    assert duplicates == len(orphans)
    print(
        f"kill -9 x{kills}: {len(messages)} events, {len(rd.accepted)} accepted, {duplicates} duplicates, "
        f"all from {len(window_batches)} kill(s) inside the 200-to-result window"
    )

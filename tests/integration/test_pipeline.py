"""The streaming pipeline end to end: the real broker, the mock RD API over HTTP, the real connector."""

from __future__ import annotations

import collections
import itertools
import signal
import time
from collections.abc import Callable
from pathlib import Path

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


def _assert_results_match_mock(bootstrap: str, topics: Topics, rd: MockRdServer, delivered: int) -> None:
    results = decode_results(read_topic(bootstrap, topics.results, 1, delivered))
    issued = [event.event_uuid for event in rd.accepted]
    assert len(results) == delivered
    assert sorted(r["event_uuid"] for r in results) == sorted(issued)
    coordinates = {(r["source_topic"], r["source_partition"], r["source_offset"]) for r in results}
    assert len(coordinates) == delivered


@pytest.mark.parametrize("workers", ["0", "2"], ids=["in-process", "two-decode-workers"])
def test_mixed_events_delivered_exactly_results_and_commits(
    kafka_bootstrap: str, topics: Topics, rd: MockRdServer, workers: str
) -> None:
    messages = generate_messages(1500, seed=7, malformed=15)
    ends = produce_acked(kafka_bootstrap, topics.source, [(m.key, m.value) for m in messages])
    good = [m for m in messages if m.malformed is None]
    running = start_pipeline(connector_env(kafka_bootstrap, rd.url, topics, RDC_DECODE_WORKERS=workers))
    try:
        assert wait_until(lambda: running.settled() == len(messages), 60), running.pipeline.stats
        assert wait_until(lambda: committed_offsets(kafka_bootstrap, topics.group, topics.source, 3) == ends, 10)
    finally:
        assert running.stop() == 0

    # The mock received exactly the valid events (each once), and nothing else.
    assert len(rd.accepted) == len(good)
    assert all(req.status == 200 for req in rd.requests if req.path.startswith("/platform"))
    _assert_results_match_mock(kafka_bootstrap, topics, rd, len(good))

    # Each result points at its source record: the source record's key is the result's key.
    results = read_topic(kafka_bootstrap, topics.results, 1, len(good))
    source = {
        (m.partition(), m.offset()): m.key() for m in read_topic(kafka_bootstrap, topics.source, 3, len(messages))
    }
    for message, record in zip(results, decode_results(results), strict=True):
        assert record["source_topic"] == topics.source
        assert message.key() == source[(record["source_partition"], record["source_offset"])]

    # Every malformed record is in the dead-letter topic with its reason; original bytes kept.
    letters = read_topic(kafka_bootstrap, topics.dlq, 1, 15)
    reasons = collections.Counter(dict(m.headers() or [])["rdc.error.reason"] for m in letters)
    assert sum(reasons.values()) == 15
    assert set(reasons) == {
        b"bad_magic_byte",
        b"unknown_fingerprint",
        b"truncated_body",
        b"removed_event_type",
        b"invalid_email",
    }
    bad_values = {m.value for m in messages if m.malformed is not None}
    assert {m.value() for m in letters} == bad_values


def test_rd_down_commits_nothing_then_everything(kafka_bootstrap: str, topics: Topics, rd: MockRdServer) -> None:
    rd.configure(error_5xx_ratio=1.0)
    messages = generate_messages(300, seed=3)
    ends = produce_acked(kafka_bootstrap, topics.source, [(m.key, m.value) for m in messages])
    running = start_pipeline(connector_env(kafka_bootstrap, rd.url, topics))
    try:
        assert wait_until(lambda: len(rd.requests) >= 5, 20)  # it is trying, and failing
        time.sleep(0.5)
        nothing = committed_offsets(kafka_bootstrap, topics.group, topics.source, 3)
        assert all(offset < 0 for offset in nothing.values()), nothing
        assert running.pipeline.stats.delivered == 0
        rd.configure(error_5xx_ratio=0.0)
        assert wait_until(lambda: running.settled() == len(messages), 30)
        assert wait_until(lambda: committed_offsets(kafka_bootstrap, topics.group, topics.source, 3) == ends, 10)
    finally:
        assert running.stop() == 0
    assert len(rd.accepted) == len(messages)
    _assert_results_match_mock(kafka_bootstrap, topics, rd, len(messages))


def test_batches_are_full_under_backlog_and_never_over_the_cap(
    kafka_bootstrap: str, topics: Topics, rd: MockRdServer
) -> None:
    cap = 20_000
    messages = generate_messages(3000, seed=11)
    produce_acked(kafka_bootstrap, topics.source, [(m.key, m.value) for m in messages])
    env = connector_env(kafka_bootstrap, rd.url, topics, RDC_BATCH_MAX_BYTES=str(cap), RDC_BATCH_LINGER_MS="2000")
    running = start_pipeline(env)
    try:
        assert wait_until(lambda: running.settled() == len(messages), 60)
    finally:
        running.stop()
    sizes = [req.body_bytes for req in rd.requests if req.path == "/platform/events/batch"]
    assert max(sizes) <= cap
    assert len(sizes) > 20
    full = sizes[:-1]  # the last batch closes on linger or shutdown, not on size
    fill = sum(full) / len(full) / cap
    assert fill >= 0.97, f"mean fill {fill:.3f} over {len(full)} batches"


def test_a_lone_event_is_sent_within_linger(kafka_bootstrap: str, topics: Topics, rd: MockRdServer) -> None:
    linger_ms = 300
    env = connector_env(kafka_bootstrap, rd.url, topics, RDC_BATCH_LINGER_MS=str(linger_ms))
    running = start_pipeline(env)
    try:
        warm_up, message = generate_messages(2, seed=5)
        produce_acked(kafka_bootstrap, topics.source, [(warm_up.key, warm_up.value)])
        assert rd.wait_for_accepted(1, timeout=20)  # joined the group and fetching
        time.sleep(0.5)
        produced_at = time.monotonic()
        produce_acked(kafka_bootstrap, topics.source, [(message.key, message.value)])
        assert rd.wait_for_accepted(2, timeout=5)
        elapsed_ms = (time.monotonic() - produced_at) * 1000
    finally:
        running.stop()
    assert elapsed_ms <= linger_ms + 250, f"lone event took {elapsed_ms:.0f} ms"


def test_a_backlogs_tail_is_sent_once_everything_is_read(
    kafka_bootstrap: str, topics: Topics, rd: MockRdServer
) -> None:
    # Events that reached Kafka a minute ago, read as a backlog: once the consumer is at the end of every
    # partition, the last (partial) batch goes at once; it would otherwise wait a whole linger (30 s here).
    messages = generate_messages(600, seed=13)
    a_minute_ago_ms = int((time.time() - 60) * 1000)
    produce_acked(kafka_bootstrap, topics.source, [(m.key, m.value) for m in messages], timestamp_ms=a_minute_ago_ms)
    env = connector_env(kafka_bootstrap, rd.url, topics, RDC_BATCH_MAX_BYTES="20000", RDC_BATCH_LINGER_MS="30000")
    running = start_pipeline(env)
    try:
        assert wait_until(lambda: running.settled() == len(messages), 15), running.pipeline.stats
    finally:
        assert running.stop() == 0
    sizes = [req.body_bytes for req in rd.requests if req.path == "/platform/events/batch"]
    assert len(sizes) > 10 and sizes[-1] < 19_000  # full batches, then the tail


def test_old_events_of_a_trickle_still_take_their_linger(
    kafka_bootstrap: str, topics: Topics, rd: MockRdServer
) -> None:
    # Old by their timestamps (event time, a skewed producer clock) but no backlog (no full batch before
    # them): the batch waits its linger to fill, as every trickle's does.
    messages = generate_messages(3, seed=17)
    long_ago_ms = int((time.time() - 3600) * 1000)
    produce_acked(kafka_bootstrap, topics.source, [(m.key, m.value) for m in messages], timestamp_ms=long_ago_ms)
    running = start_pipeline(connector_env(kafka_bootstrap, rd.url, topics, RDC_BATCH_LINGER_MS="1500"))
    try:
        assert wait_until(lambda: running.pipeline.stats.consumed == len(messages), 20)
        time.sleep(0.9)  # well inside the linger (at most 0.1 s of it is backdated): nothing may be sent yet
        assert not rd.accepted
        assert rd.wait_for_accepted(len(messages), timeout=5)
    finally:
        assert running.stop() == 0


def _oversized_event() -> bytes:
    record = {
        "event_id": "7d6f1d7e-3c1a-4c55-9f55-3f1f0c9b7a10",
        "occurred_at": 1_767_225_600_000,
        "event_type": "CONVERSION",
        "payload_json": orjson.dumps(
            {"conversion_identifier": "big", "email": "big@example.com", "cf_notes": "x" * 30_000}
        ).decode(),
    }
    return Encoder().single_object(f"{NAMESPACE}.RdEvent", record)


def test_oversized_event_is_dead_lettered_and_the_stream_goes_on(
    kafka_bootstrap: str, topics: Topics, rd: MockRdServer
) -> None:
    messages = generate_messages(50, seed=2)
    values = [m.value for m in messages[:25]] + [_oversized_event()] + [m.value for m in messages[25:]]
    produce_acked(kafka_bootstrap, topics.source, [(b"same-key", v) for v in values])  # one partition, in order
    env = connector_env(kafka_bootstrap, rd.url, topics, RDC_BATCH_MAX_BYTES="20000")
    running = start_pipeline(env)
    try:
        assert wait_until(lambda: running.settled() == len(values), 30)
    finally:
        running.stop()
    letters = read_topic(kafka_bootstrap, topics.dlq, 1, 1)
    assert [dict(m.headers() or [])["rdc.error.reason"] for m in letters] == [b"event_too_large"]
    assert len(rd.accepted) == 50
    # Per-partition order: RD received the events in offset order.
    results = decode_results(read_topic(kafka_bootstrap, topics.results, 1, 50))
    by_uuid = {r["event_uuid"]: r["source_offset"] for r in results}
    offsets = [by_uuid[e.event_uuid] for e in rd.accepted]
    assert offsets == sorted(offsets)


def test_kill_9_and_restart_loses_nothing(
    kafka_bootstrap: str, topics: Topics, rd: MockRdServer, tmp_path: Path
) -> None:
    rd.configure(latency_ms=30)
    messages = generate_messages(4000, seed=13)
    ends = produce_acked(kafka_bootstrap, topics.source, [(m.key, m.value) for m in messages])
    env = connector_env(kafka_bootstrap, rd.url, topics, RDC_BATCH_MAX_BYTES="20000")
    first = spawn_connector(env, str(tmp_path / "first.log"))
    try:
        assert wait_until(lambda: len(rd.accepted) >= 800, 30)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert len(rd.accepted) < len(messages), "killed too late to test anything"
    rd.configure(latency_ms=0)
    second = spawn_connector(env, str(tmp_path / "second.log"))
    try:
        assert wait_until(lambda: committed_offsets(kafka_bootstrap, topics.group, topics.source, 3) == ends, 60)
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(30) == 0
    accepted = {orjson.dumps(e.event["payload"]) for e in rd.accepted}
    assert accepted == expected_payloads([m.value for m in messages])  # every event reached RD at least once
    results = decode_results(read_topic(kafka_bootstrap, topics.results, 1, len(messages)))
    covered = {(r["source_partition"], r["source_offset"]) for r in results}
    assert len(covered) == len(messages)  # results cover every event
    # The ledger suppresses every event whose result was acknowledged before the kill. What remains is a
    # batch RD accepted whose results Kafka had not acknowledged when the process died (the window): it
    # has no result, and it was sent again. So every duplicate is such an orphan, and nothing else is.
    result_uuids = {r["event_uuid"] for r in results}
    assert result_uuids <= {e.event_uuid for e in rd.accepted}
    orphans = [e for e in rd.accepted if e.event_uuid not in result_uuids]
    duplicates = len(rd.accepted) - len(messages)
    assert duplicates == len(orphans)
    print(f"kill -9: {len(messages)} events, {len(rd.accepted)} accepted, {duplicates} duplicates (window hits)")


def test_two_members_share_partitions_and_hand_over_without_loss(
    kafka_bootstrap: str, topics: Topics, rd: MockRdServer, tmp_path: Path
) -> None:
    rd.configure(latency_ms=20)
    env = connector_env(kafka_bootstrap, rd.url, topics, RDC_BATCH_MAX_BYTES="20000")
    a = spawn_connector(env, str(tmp_path / "a.log"))
    b = spawn_connector(env, str(tmp_path / "b.log"))
    try:
        messages = generate_messages(3000, seed=17)
        ends = produce_acked(kafka_bootstrap, topics.source, [(m.key, m.value) for m in messages])
        assert wait_until(lambda: len(rd.accepted) >= 600, 30)
        a.send_signal(signal.SIGTERM)
        assert a.wait(30) == 0
        assert wait_until(lambda: committed_offsets(kafka_bootstrap, topics.group, topics.source, 3) == ends, 60)
    finally:
        for proc in (a, b):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(30)
    logs = (tmp_path / "a.log").read_text() + (tmp_path / "b.log").read_text()
    assert logs.count("assigned partitions=") >= 2  # both members got partitions
    assert "test-token-secret" not in logs
    accepted = {orjson.dumps(e.event["payload"]) for e in rd.accepted}
    assert accepted == expected_payloads([m.value for m in messages])


def test_lanes_send_concurrently_and_keep_partition_order(
    kafka_bootstrap: str, make_topic: Callable[..., str], group_id: str, rd: MockRdServer
) -> None:
    topics = Topics(make_topic("src", 8), make_topic("results"), make_topic("dlq"), 8, group_id)
    rd.configure(latency_ms=40)
    messages = generate_messages(4000, seed=19)
    ends = produce_acked(kafka_bootstrap, topics.source, [(m.key, m.value) for m in messages])
    env = connector_env(kafka_bootstrap, rd.url, topics, RDC_MAX_IN_FLIGHT="4", RDC_BATCH_MAX_BYTES="20000")
    running = start_pipeline(env)
    try:
        assert wait_until(lambda: committed_offsets(kafka_bootstrap, topics.group, topics.source, 8) == ends, 60)
    finally:
        assert running.stop() == 0
    results = decode_results(read_topic(kafka_bootstrap, topics.results, 1, len(messages)))
    where = {r["event_uuid"]: (r["source_partition"], r["source_offset"]) for r in results}
    by_partition: dict[int, list[int]] = collections.defaultdict(list)
    for event in rd.accepted:
        partition, offset = where[event.event_uuid]
        by_partition[partition].append(offset)
    assert len(by_partition) == 8
    assert all(offsets == sorted(offsets) for offsets in by_partition.values())  # per-partition order held
    # Requests overlapped: each takes 40 ms from its arrival, and some arrived while another was in progress.
    arrivals = sorted(r.at for r in rd.requests if r.path == "/platform/events/batch")
    assert sum(later - earlier < 0.035 for earlier, later in itertools.pairwise(arrivals)) > len(arrivals) // 4

"""Effectively-once delivery: the results topic as a ledger. Commits are held back (a long
RDC_COMMIT_INTERVAL_MS, a setting, not a sleep race) so the kill lands after RD's 200 and the results'
acknowledgement but before any commit."""

from __future__ import annotations

import collections
import re
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from connector.sample import generate_messages
from connector.testing.kafka_tools import committed_offsets, produce_acked, read_topic
from connector.testing.mock_rd import MockRdServer
from tests.integration.pipeline_support import Topics, connector_env, decode_results, spawn_connector, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def topics(make_topic: Callable[..., str], group_id: str) -> Topics:
    return Topics(make_topic("src", 3), make_topic("results", 2), make_topic("dlq"), 3, group_id)


def _results(bootstrap: str, topics: Topics, count: int) -> list[dict[str, object]]:
    return decode_results(read_topic(bootstrap, topics.results, 2, count, timeout_s=20))


def test_kill_after_results_before_commit_posts_nothing_twice(
    kafka_bootstrap: str, topics: Topics, tmp_path: Path
) -> None:
    with MockRdServer() as rd:
        messages = generate_messages(1500, seed=23)
        ends = produce_acked(kafka_bootstrap, topics.source, [(m.key, m.value) for m in messages])
        held = connector_env(
            kafka_bootstrap, rd.url, topics, RDC_COMMIT_INTERVAL_MS="600000", RDC_BATCH_MAX_BYTES="30000"
        )
        first = spawn_connector(held, str(tmp_path / "first.log"))
        try:
            assert wait_until(lambda: len(rd.accepted) == len(messages), 30)
            assert len(_results(kafka_bootstrap, topics, len(messages))) == len(messages)  # all acknowledged
            assert all(o < 0 for o in committed_offsets(kafka_bootstrap, topics.group, topics.source, 3).values())
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait()
        second = spawn_connector(connector_env(kafka_bootstrap, rd.url, topics), str(tmp_path / "second.log"))
        try:
            assert wait_until(lambda: committed_offsets(kafka_bootstrap, topics.group, topics.source, 3) == ends, 30)
        finally:
            second.send_signal(signal.SIGTERM)
            assert second.wait(30) == 0
        assert len(rd.accepted) == len(messages)  # every event exactly once
    log = (tmp_path / "second.log").read_text()
    assert log.count("ledger_scan") == 3 and "already_delivered=0 " not in log


def test_partitions_moving_to_a_second_instance_are_not_posted_twice(
    kafka_bootstrap: str, topics: Topics, tmp_path: Path
) -> None:
    with MockRdServer() as rd:
        held = connector_env(
            kafka_bootstrap, rd.url, topics, RDC_COMMIT_INTERVAL_MS="600000", RDC_BATCH_MAX_BYTES="30000"
        )
        a = spawn_connector(held, str(tmp_path / "a.log"))  # never commits before it dies
        b = spawn_connector(connector_env(kafka_bootstrap, rd.url, topics), str(tmp_path / "b.log"))
        try:
            assert wait_until(lambda: (tmp_path / "b.log").read_text().count("ledger_scan") >= 1, 20)
            messages = generate_messages(1500, seed=29)
            ends = produce_acked(kafka_bootstrap, topics.source, [(m.key, m.value) for m in messages])
            assert wait_until(lambda: len(rd.accepted) == len(messages), 30)
            assert len(_results(kafka_bootstrap, topics, len(messages))) == len(messages)
            a.send_signal(signal.SIGKILL)  # a's partitions move to b, uncommitted
            a.wait()
            assert wait_until(lambda: committed_offsets(kafka_bootstrap, topics.group, topics.source, 3) == ends, 30)
            b.send_signal(signal.SIGTERM)
            assert b.wait(30) == 0
        finally:
            for proc in (a, b):
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        assert len(rd.accepted) == len(messages)  # nothing posted twice
        found = [int(n) for n in re.findall(r"already_delivered=(\d+)", (tmp_path / "b.log").read_text())]
        assert sum(found) > 0  # b found a's delivered-but-uncommitted records in the ledger and skipped them
        counts = collections.Counter(e.event_uuid for e in rd.accepted)
        assert max(counts.values()) == 1

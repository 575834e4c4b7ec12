"""Effectively-once delivery: the results topic as a ledger. Commits are held back (a long
RDC_COMMIT_INTERVAL_MS, a setting, not a sleep race) so the kill lands after RD's 200 and the results'
acknowledgement but before any commit."""

from __future__ import annotations

import collections
import re
import signal
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import orjson
import pytest

from connector.commands.sample import generate_messages
from connector.pipeline import PipelineStats
from connector.testing.kafka_tools import commit_offsets, committed_offsets, produce_acked, read_topic
from connector.testing.mock_rd import MockRdServer
from tests.integration.pipeline_support import (
    Topics,
    connector_env,
    decode_results,
    spawn_connector,
    start_pipeline,
    wait_until,
)

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


def _deliver_all(env: dict[str, str], bootstrap: str, topics: Topics, ends: dict[int, int]) -> PipelineStats:
    """Run an in-process connector until its group committed `ends`; stop it; its stats."""
    running = start_pipeline(env)
    try:
        assert wait_until(lambda: committed_offsets(bootstrap, topics.group, topics.source, 3) == ends, 60)
    finally:
        assert running.stop() == 0
    return running.pipeline.stats


def test_a_second_group_sharing_the_results_topic_delivers_everything(
    kafka_bootstrap: str, topics: Topics, group_id: str
) -> None:
    """Two deployments (groups, RD accounts) share one results topic and ledger topic: the second one's
    RD gets every record, although the first one's results of the same source records are there."""
    messages = generate_messages(600, seed=31)
    ends = produce_acked(kafka_bootstrap, topics.source, [(m.key, m.value) for m in messages])
    other = replace(topics, group=f"{group_id}-other")
    with MockRdServer() as rd_first, MockRdServer() as rd_second:
        _deliver_all(connector_env(kafka_bootstrap, rd_first.url, topics), kafka_bootstrap, topics, ends)
        assert len(rd_first.accepted) == len(messages)
        second = connector_env(kafka_bootstrap, rd_second.url, other, RDC_RD_ACCESS_TOKEN="another-account-token")
        stats = _deliver_all(second, kafka_bootstrap, other, ends)
        assert len(rd_second.accepted) == len(messages)  # nothing skipped for the first group's results
        assert stats.duplicates_suppressed == 0
        assert len(rd_first.accepted) == len(messages)


def test_resetting_the_group_backwards_replays_everything(kafka_bootstrap: str, topics: Topics) -> None:
    """After a full delivery and commit, an operator resets the group's offsets to 0 (the connector is
    stopped): the next run sends every record again, as docs/decisions/0004 promises."""
    messages = generate_messages(600, seed=37)
    ends = produce_acked(kafka_bootstrap, topics.source, [(m.key, m.value) for m in messages])
    with MockRdServer() as rd:
        env = connector_env(kafka_bootstrap, rd.url, topics)
        _deliver_all(env, kafka_bootstrap, topics, ends)
        assert len(rd.accepted) == len(messages)
        commit_offsets(kafka_bootstrap, topics.group, topics.source, {p: 0 for p in range(3)})
        assert committed_offsets(kafka_bootstrap, topics.group, topics.source, 3) == {p: 0 for p in range(3)}
        stats = _deliver_all(env, kafka_bootstrap, topics, ends)
        assert len(rd.accepted) == 2 * len(messages)  # every record re-sent
        assert stats.duplicates_suppressed == 0
        counts = collections.Counter(orjson.dumps(e.event) for e in rd.accepted)
        assert set(counts.values()) == {2}
    # At the reset the scan moved each partition's checkpoint to 0 and past the old results, so a crash
    # during the replay would not take them for the replay's own.
    checkpoints = [orjson.loads(m.value() or b"") for m in read_topic(kafka_bootstrap, env["RDC_LEDGER_TOPIC"], 1, 6)]
    assert sum(1 for c in checkpoints if c["committed"] == 0 and c["results_offset"] > 0) == 3


def test_hostile_values_in_the_results_and_ledger_topics_are_read_past(
    kafka_bootstrap: str, topics: Topics, make_topic: Callable[..., str]
) -> None:
    """Undecodable results, records of other schemas and checkpoints of the wrong shape (keyed as ours)
    settle nothing and stop no scan: every record is delivered."""
    ledger = make_topic("ledger")
    other_schema = generate_messages(1, seed=43)[0].value
    produce_acked(
        kafka_bootstrap,
        topics.results,
        [(None, b"\x00garbage"), (None, b"\xc3\x01" + b"\x07" * 20), (None, other_schema), (None, b"")],
    )
    hostile = [b"not json", b"[1]", b'{"committed": null}', b'{"committed": "x", "results_partition": 0}']
    keys = [f"{topics.group}\x00{topics.source}\x00{p}".encode() for p in range(3)]
    produce_acked(kafka_bootstrap, ledger, [(key, value) for key in keys for value in hostile])
    messages = generate_messages(300, seed=47)
    ends = produce_acked(kafka_bootstrap, topics.source, [(m.key, m.value) for m in messages])
    with MockRdServer() as rd:
        env = connector_env(kafka_bootstrap, rd.url, topics, RDC_LEDGER_TOPIC=ledger)
        stats = _deliver_all(env, kafka_bootstrap, topics, ends)
        assert len(rd.accepted) == len(messages) and stats.duplicates_suppressed == 0

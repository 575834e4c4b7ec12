"""Issue 14 item 2 on the broker: records that once killed the decode worker (and so the connector, on every
restart) are dead-lettered with their reasons between good ones; the connector delivers the good ones,
commits everything, keeps running and exits 0 on stop, in-process and with the decode worker."""

from __future__ import annotations

import collections

import pytest

from connector.commands.sample import generate_messages
from connector.testing.kafka_tools import committed_offsets, produce_acked, read_topic
from connector.testing.mock_rd import MockRdServer
from tests.hostile import HOSTILE
from tests.integration.pipeline_support import Topics, connector_env, start_pipeline, wait_until

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("workers", ["0", "1"], ids=["in-process", "decode-worker"])
def test_hostile_records_are_dead_lettered_and_the_connector_goes_on(
    kafka_bootstrap: str, topics: Topics, rd: MockRdServer, workers: str
) -> None:
    good = [(m.key, m.value) for m in generate_messages(60, seed=14)]
    hostile = [(name.encode(), value) for name, value, _ in HOSTILE]
    first = [*good[:20], *hostile, *good[20:40]]
    ends = produce_acked(kafka_bootstrap, topics.source, first)
    running = start_pipeline(connector_env(kafka_bootstrap, rd.url, topics, RDC_DECODE_WORKERS=workers))
    try:
        assert wait_until(lambda: running.settled() == len(first), 60), running.pipeline.stats
        # Still running after them: a later batch is delivered too, and every offset is committed.
        ends.update(produce_acked(kafka_bootstrap, topics.source, good[40:]))  # later offsets of the same partitions
        assert wait_until(lambda: running.settled() == len(first) + 20, 30), running.pipeline.stats
        assert wait_until(lambda: committed_offsets(kafka_bootstrap, topics.group, topics.source, 3) == ends, 10)
        assert running.thread.is_alive()
    finally:
        assert running.stop() == 0

    assert len(rd.accepted) == len(good)
    assert running.pipeline.stats.dead_lettered == len(HOSTILE)
    letters = read_topic(kafka_bootstrap, topics.dlq, 1, len(HOSTILE))
    by_key = {m.key(): dict(m.headers() or []) for m in letters}
    assert collections.Counter(h["rdc.error.reason"] for h in by_key.values()) == collections.Counter(
        reason.encode() for _, _, reason in HOSTILE
    )
    for name, _, reason in HOSTILE:
        headers = by_key[name.encode()]
        assert (headers["rdc.error.stage"], headers["rdc.error.reason"]) == (b"map", reason.encode())
        assert headers["rdc.error.detail"]
    assert {m.value() for m in letters} == {value for _, value, _ in HOSTILE}

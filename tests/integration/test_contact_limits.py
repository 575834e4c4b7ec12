"""RD's per-contact limit on the real broker and the mock: a few contacts over RD's limit (its `lead_limiter`
429) cost their own events only. Every other event is delivered at once, those contacts' events are
dead-lettered once each (`contact_rate_limited`, `rdc.retry.after`), and the committed offsets reach the end."""

from __future__ import annotations

import collections
import datetime
import math
import random
import time
from collections.abc import Callable

import orjson
import pytest

from connector.avro import Encoder
from connector.avro.catalog import NAMESPACE
from connector.commands.sample import generate_messages
from connector.testing.kafka_tools import committed_offsets, produce_acked, read_topic
from connector.testing.mock_rd import MockRdServer
from tests.integration.pipeline_support import Topics, connector_env, decode_results, start_pipeline, wait_until

pytestmark = pytest.mark.integration

REMAINING_S = 43_067  # what RD's lead_limiter says is left of the contact's 24 h window
CONTACTS = [f"busy{n}@over-limit.example.com" for n in range(3)]


def _event_of(contact: str, n: int) -> bytes:
    payload = {"conversion_identifier": f"limited-{n}", "email": contact}
    record = {
        "event_id": f"00000000-0000-4000-8000-{n:012d}",
        "occurred_at": 1_767_225_600_000,
        "event_type": "CONVERSION",
        "payload_json": orjson.dumps(payload).decode(),
    }
    return Encoder().single_object(f"{NAMESPACE}.RdEvent", record)


def test_contacts_over_rds_limit_are_dead_lettered_and_every_other_event_flows(
    kafka_bootstrap: str, make_topic: Callable[..., str], group_id: str, rd: MockRdServer
) -> None:
    topics = Topics(make_topic("src", 1), make_topic("results"), make_topic("dlq"), 1, group_id)
    rd.configure(limited_contacts=CONTACTS, contact_limit_remaining_s=REMAINING_S)
    values = [m.value for m in generate_messages(1_994, seed=17)]
    positions = sorted(random.Random(9).sample(range(2_000), 6))  # two events of each of the three contacts
    for n, position in enumerate(positions):
        values.insert(position, _event_of(CONTACTS[n % 3], n))
    ends = produce_acked(kafka_bootstrap, topics.source, [(None, v) for v in values])
    began_wall = time.time()
    began = time.monotonic()
    running = start_pipeline(connector_env(kafka_bootstrap, rd.url, topics))
    try:
        assert wait_until(lambda: running.settled() == len(values), 30), running.pipeline.stats
        settle_s = time.monotonic() - began
        assert wait_until(lambda: committed_offsets(kafka_bootstrap, topics.group, topics.source, 1) == ends, 10)
    finally:
        assert running.stop() == 0
    ended_wall = time.time()
    assert settle_s < 30  # a minute is the brief's bound; RD's 12 h window is never waited on

    letters = read_topic(kafka_bootstrap, topics.dlq, 1, 6)
    headers = [dict(m.headers() or []) for m in letters]
    assert sorted(int(h["rdc.source.offset"] or b"-1") for h in headers) == positions  # once each
    assert {h["rdc.error.reason"] for h in headers} == {b"contact_rate_limited"}
    assert all(b"lead_limiter" in (h["rdc.error.detail"] or b"") for h in headers)  # RD's body travels along
    for h in headers:
        raw = h["rdc.retry.after"]
        assert isinstance(raw, bytes)
        retry_after = datetime.datetime.strptime(raw.decode(), "%Y-%m-%dT%H:%M:%SZ")
        at = retry_after.replace(tzinfo=datetime.UTC).timestamp()
        assert began_wall + REMAINING_S - 1 <= at <= ended_wall + REMAINING_S

    assert len(rd.accepted) == 1_994
    assert not any(e.event["payload"].get("email") in CONTACTS for e in rd.accepted)
    results = decode_results(read_topic(kafka_bootstrap, topics.results, 1, 1_994))
    offset_of = {r["event_uuid"]: r["source_offset"] for r in results}
    delivered = [offset_of[e.event_uuid] for e in rd.accepted]
    assert delivered == sorted(delivered)  # in offset order
    batch_requests = [r for r in rd.requests if r.path == "/platform/events/batch"]
    limited = [r for r in batch_requests if r.status == 429]
    largest_batch = max(collections.Counter(r["event_batch_uuid"] for r in results).values())
    bound = 6 * (2 * math.ceil(math.log2(largest_batch)) + 1)
    assert len(limited) <= bound, (len(limited), bound)
    print(
        f"contact limits: settled {len(values)} events in {settle_s:.2f} s; {len(batch_requests)} requests "
        f"({len(limited)} lead_limiter 429s, bound {bound}; largest batch {largest_batch})"
    )

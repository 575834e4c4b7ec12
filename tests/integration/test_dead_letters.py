"""Dead letters on the real broker: records too large for the dead-letter topic are cut to fit (and the
connector goes on and commits), the size limit is learned from Kafka, and log lines keep the record's values
out unless RDC_LOG_RECORD_VALUES is on."""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any, cast

import orjson
import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from connector.avro import Encoder
from connector.avro.catalog import NAMESPACE
from connector.commands.sample import generate_messages
from connector.settle.dead_letters import DeadLetter, Headers, fit_letter, record_size
from connector.settle.letter_limit import KAFKA_DEFAULT_MAX_MESSAGE_BYTES, learn_letter_limit
from connector.settle.reporter import Reporter
from connector.testing.kafka_tools import committed_offsets, produce_acked, read_topic
from connector.testing.mock_rd import MockRdServer
from tests.integration.pipeline_support import Topics, connector_env, start_pipeline, wait_until

pytestmark = pytest.mark.integration

MB = 1_000_000
#: The test's own producer and source topic take records up to 8 MB (Tansu enforces no limit; Kafka does).
BIG_PRODUCER = {"message.max.bytes": 8 * MB}
BIG_TOPIC = {"max.message.bytes": str(8 * MB)}


def _garbage(size: int) -> bytes:
    """Undecodable (first byte neither 00 nor C3): dead-lettered as `bad_magic_byte`."""
    pattern = bytes(range(1, 256))
    return (b"\xff" + pattern * (size // len(pattern) + 1))[:size]


def _event(notes_bytes: int, email: str = "big@example.com") -> bytes:
    """A valid CONVERSION whose encoded RD event is a little over `notes_bytes`."""
    record = {
        "event_id": str(uuid.uuid4()),
        "occurred_at": 1_767_225_600_000,
        "event_type": "CONVERSION",
        "payload_json": orjson.dumps(
            {"conversion_identifier": "big", "email": email, "cf_notes": "x" * notes_bytes}
        ).decode(),
    }
    return Encoder().single_object(f"{NAMESPACE}.RdEvent", record)


def _headers(message: Any) -> dict[str, bytes]:
    return {name: value for name, value in message.headers() or []}


@pytest.mark.parametrize(
    ("big", "reason", "dlq_config", "limit"),
    [
        pytest.param(lambda: _garbage(5 * MB), b"bad_magic_byte", None, MB, id="5MB-undecodable"),
        pytest.param(lambda: _event(1_900_000), b"event_too_large", None, MB, id="1.9MB-event-too-large"),
        pytest.param(
            lambda: _event(1_900_000),
            b"event_too_large",
            {"max.message.bytes": "300000"},
            300_000,
            id="1.9MB-event-dlq-topic-limit",
        ),
    ],
)
def test_a_dead_letter_too_large_for_kafka_is_cut_to_fit_and_the_connector_commits(
    kafka_bootstrap: str,
    make_topic: Callable[..., str],
    group_id: str,
    rd: MockRdServer,
    big: Callable[[], bytes],
    reason: bytes,
    dlq_config: dict[str, str] | None,
    limit: int,
) -> None:
    topics = Topics(
        make_topic("src", 1, BIG_TOPIC), make_topic("results"), make_topic("dlq", 1, dlq_config), 1, group_id
    )
    good = [m.value for m in generate_messages(20, seed=4)]
    original = big()
    values = [*good[:10], original, *good[10:]]
    ends = produce_acked(kafka_bootstrap, topics.source, [(b"same-key", v) for v in values], config=BIG_PRODUCER)
    running = start_pipeline(connector_env(kafka_bootstrap, rd.url, topics))
    try:
        assert wait_until(lambda: running.settled() == len(values), 60), running.pipeline.stats
        assert wait_until(lambda: committed_offsets(kafka_bootstrap, topics.group, topics.source, 1) == ends, 10)
        assert running.thread.is_alive()  # it went on: no crash
    finally:
        assert running.stop() == 0
    assert running.pipeline.stats.dead_lettered == 1
    assert len(rd.accepted) == 20

    [letter] = read_topic(kafka_bootstrap, topics.dlq, 1, 1)
    headers = _headers(letter)
    assert headers["rdc.error.reason"] == reason
    assert (headers["rdc.source.topic"], headers["rdc.source.partition"], headers["rdc.source.offset"]) == (
        topics.source.encode(),
        b"0",
        b"10",
    )
    assert b"value" in headers["rdc.truncated"].split(b",")
    assert headers["rdc.original.size"] == str(len(original)).encode()
    assert headers["rdc.original.sha256"] == hashlib.sha256(original).hexdigest().encode()
    value = letter.value() or b""
    assert original.startswith(value)
    assert record_size(letter.key(), value, cast(Headers, letter.headers() or [])) <= limit
    assert len(value) > limit * 0.9  # a prefix as long as the limit allows
    assert letter.key() == b"same-key"


def test_the_limit_is_learned_from_the_dead_letter_topic(kafka_bootstrap: str, make_topic: Callable[..., str]) -> None:
    topic = make_topic("dlq", 1, {"max.message.bytes": "250000"})
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    limit = learn_letter_limit(admin, topic, {"bootstrap.servers": kafka_bootstrap})
    assert (limit.bytes, limit.broker_bytes, limit.source) == (250_000, 250_000, "topic")
    # The producer's own message.max.bytes, when smaller, wins.
    limit = learn_letter_limit(admin, topic, {"message.max.bytes": "100000"})
    assert limit.bytes == 100_000


def test_a_limit_kafka_does_not_name_falls_back_to_kafkas_default(
    kafka_bootstrap: str, make_topic: Callable[..., str], caplog: pytest.LogCaptureFixture
) -> None:
    """Tansu names no max.message.bytes for a topic created without one, nor for the broker; a real Kafka
    always does (its default), so there the topic's value is used."""
    topic = make_topic("dlq")
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    with caplog.at_level(logging.INFO, logger="connector.settle.letter_limit"):
        limit = learn_letter_limit(admin, topic, {})
    assert limit.bytes == 1_000_000  # the producer's default is the smaller
    if limit.source == "unknown":  # Tansu
        assert limit.broker_bytes is None
        assert any("dead_letter_limit_unknown" in r.getMessage() for r in caplog.records)
    else:  # Kafka
        assert limit.source == "topic" and limit.broker_bytes == KAFKA_DEFAULT_MAX_MESSAGE_BYTES


def test_an_unreadable_limit_falls_back_to_a_safe_default_with_a_log_line(caplog: pytest.LogCaptureFixture) -> None:
    admin = AdminClient({"bootstrap.servers": "127.0.0.1:1"})  # nothing listens there
    with caplog.at_level(logging.INFO, logger="connector.settle.letter_limit"):
        limit = learn_letter_limit(admin, "rd.dlq", {}, timeout_s=1.0)
    assert (limit.bytes, limit.broker_bytes, limit.source) == (1_000_000, None, "unreadable")
    assert any("dead_letter_limit_unreadable" in r.getMessage() for r in caplog.records)


def test_letters_fitted_to_the_producers_limit_are_never_refused_by_librdkafka() -> None:
    """`record_size` over-estimates what librdkafka counts: a letter fitted to `message.max.bytes` passes its
    check in produce() (it only queues locally here: nothing listens on the address)."""
    producer = Producer({"bootstrap.servers": "127.0.0.1:1", "message.max.bytes": 100_000, "linger.ms": 60_000})
    for header_count in (0, 1, 30):
        for key in (None, b"k" * 5_000):
            letter = DeadLetter(
                topic="t" * 249,
                partition=7,
                offset=123456789,
                key=key,
                value=b"v" * 300_000,
                headers=[(f"h{i}", b"x" * 500) for i in range(header_count)],
                stage="decode",
                reason="bad_magic_byte",
                detail="d" * 5000,
            )
            fitted = fit_letter(letter, 100_000)
            producer.produce("t", fitted.value, fitted.key, headers=fitted.headers)  # raises if too large
    producer.purge()


@pytest.mark.external_broker
def test_a_misjudged_limit_is_cut_further_when_the_broker_refuses_the_letter(
    kafka_bootstrap: str, make_topic: Callable[..., str]
) -> None:
    """Kafka enforces a topic's max.message.bytes (Tansu does not): a reporter told a limit above it gets
    MSG_SIZE_TOO_LARGE in the delivery report, cuts the letter to half and produces it again."""
    dlq = make_topic("dlq", 1, {"max.message.bytes": "100000"})
    settled: list[tuple[str, int, int, int, bool]] = []
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "linger.ms": 0, "message.timeout.ms": 10_000})
    reporter = Reporter(producer, "unused.results", dlq, lambda *a: settled.append(a), letter_max_bytes=1_000_000)
    original = _garbage(800_000)
    reporter.dead_letter(
        DeadLetter(
            topic="src",
            partition=0,
            offset=5,
            key=b"k",
            value=original,
            headers=None,
            stage="decode",
            reason="bad_magic_byte",
            detail="first bytes ff01",
        )
    )
    deadline = time.monotonic() + 30
    while not settled and time.monotonic() < deadline:
        reporter.poll(0.1)
    assert settled == [("src", 0, 5, 0, False)]
    [letter] = read_topic(kafka_bootstrap, dlq, 1, 1)
    value = letter.value() or b""
    assert original.startswith(value) and len(value) < 100_000
    assert _headers(letter)["rdc.original.sha256"] == hashlib.sha256(original).hexdigest().encode()


# --- personal data in log lines ------------------------------------------------------------------------------

EMAIL, NAME, PHONE = "ana.souza@example.com", "Ana Souza", "+5511987654321"


def _personal_records() -> list[bytes]:
    """Records refused with the person's data in their message: a bad email (the value is quoted), a
    payload_json that is not JSON (its start is quoted), an unknown event type (quoted)."""
    encoder = Encoder()

    def rd_event(event_type: str, payload_json: str) -> bytes:
        record = {
            "event_id": str(uuid.uuid4()),
            "occurred_at": 1_767_225_600_000,
            "event_type": event_type,
            "payload_json": payload_json,
        }
        return encoder.single_object(f"{NAMESPACE}.RdEvent", record)

    person = {"email": EMAIL, "name": NAME, "mobile_phone": PHONE}
    return [
        rd_event("CONVERSION", orjson.dumps({"conversion_identifier": "c", "email": f"{NAME} {PHONE}"}).decode()),
        rd_event("CONVERSION", orjson.dumps(person).decode()[:-1]),  # cut: not JSON
        rd_event(EMAIL, orjson.dumps(person).decode()),
    ]


@pytest.mark.parametrize("values_on", [False, True], ids=["default", "RDC_LOG_RECORD_VALUES=true"])
def test_dead_letter_log_lines_hold_no_personal_data_unless_asked(
    kafka_bootstrap: str, topics: Topics, rd: MockRdServer, caplog: pytest.LogCaptureFixture, values_on: bool
) -> None:
    records = _personal_records()
    produce_acked(kafka_bootstrap, topics.source, [(b"k", v) for v in records])
    env = connector_env(kafka_bootstrap, rd.url, topics, RDC_LOG_RECORD_VALUES=str(values_on).lower())
    with caplog.at_level(logging.DEBUG):
        running = start_pipeline(env)
        try:
            assert wait_until(lambda: running.settled() == len(records), 30), running.pipeline.stats
        finally:
            assert running.stop() == 0
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("dead_letter ")]
    assert len(lines) == len(records)
    assert {line.split(" reason=")[1].split()[0] for line in lines} == {
        "invalid_email",
        "invalid_payload_json",
        "unknown_event_type",
    }
    everything = "\n".join(r.getMessage() for r in caplog.records)
    for secret in (EMAIL, NAME, PHONE):
        assert (secret in everything) is values_on, secret
    # The dead-letter topic holds the full message either way (it holds the record anyway).
    letters = read_topic(kafka_bootstrap, topics.dlq, 1, len(records))
    details = b"\n".join(_headers(m)["rdc.error.detail"] for m in letters)
    assert EMAIL.encode() in details and NAME.encode() in details

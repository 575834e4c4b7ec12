"""The consumer settings the pipeline runs with: a partition EOF, then pause + resume (backpressure), must not
skip a record. librdkafka before 2.14 stored a position one past the end after an EOF, and a resume fetched
from there: one record lost per pause (found in review; `EOF_IS_SAFE` keeps EOF off on such clients)."""

from __future__ import annotations

import time
from collections.abc import Callable

from confluent_kafka import Consumer, KafkaError, TopicPartition

from connector.config import load_settings
from connector.testing.kafka_tools import produce_acked


def _offsets(consumer: Consumer, count: int, until_eof: bool) -> list[int]:
    seen: list[int] = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        for message in consumer.consume(100, 0.1):
            error = message.error()
            if error is None:
                seen.append(message.offset())  # type: ignore[arg-type]
            elif until_eof and error.code() == KafkaError._PARTITION_EOF and len(seen) >= count:
                return seen
        if not until_eof and len(seen) >= count:
            return seen
    raise AssertionError(f"read {seen} in 20 s, expected {count} records")


def test_eof_then_pause_and_resume_reads_every_record(kafka_bootstrap: str, make_topic: Callable[..., str]) -> None:
    topic = make_topic("eof", 1)
    produce_acked(kafka_bootstrap, topic, ((None, b"v%d" % i) for i in range(5)))
    settings = load_settings(
        {
            "RDC_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
            "RDC_TOPICS": topic,
            "RDC_RD_BASE_URL": "http://127.0.0.1:1",
            "RDC_RD_ACCESS_TOKEN": "unused",
            "RDC_GROUP_ID": f"{topic}-group",
        }
    )
    consumer = Consumer(settings.consumer_config())
    partition = TopicPartition(topic, 0, 0)
    consumer.assign([partition])
    try:
        # Read to the end (an EOF event where the client supports it safely), then pause as backpressure does.
        assert _offsets(consumer, 5, until_eof=settings.consumer_config()["enable.partition.eof"]) == list(range(5))
        consumer.pause([partition])
        produce_acked(kafka_bootstrap, topic, ((None, b"v%d" % i) for i in range(5, 8)))
        assert not [m for m in consumer.consume(100, 0.3) if m.error() is None]  # paused: nothing
        consumer.resume([partition])
        assert _offsets(consumer, 3, until_eof=False) == [5, 6, 7]
    finally:
        consumer.close()

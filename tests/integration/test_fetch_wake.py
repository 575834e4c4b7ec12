"""wake_fetchers: resumed partitions are fetched at once, not when librdkafka's sleeping fetcher next wakes."""

from __future__ import annotations

import time
from collections.abc import Callable

from confluent_kafka import Consumer, TopicPartition

from connector.consume.fetch_wake import wake_fetchers
from connector.testing.kafka_tools import produce_acked


def _first_message_after(consumer: Consumer, partitions: list[TopicPartition], wake: bool) -> float:
    """Pause, idle long enough for the fetcher to fall asleep, resume; seconds until a record arrives."""
    consumer.pause(partitions)
    idle_until = time.monotonic() + 1.2  # past librdkafka's 1 s maximum block: the fetcher is asleep
    while time.monotonic() < idle_until:
        assert not [m for m in consumer.consume(100, 0.05) if m.error() is None]
    consumer.resume(partitions)
    began = time.monotonic()
    if wake:
        thread = wake_fetchers(consumer, partitions)
        assert thread is not None
    while time.monotonic() - began < 5:
        if [m for m in consumer.consume(100, 0.005) if m.error() is None]:
            return time.monotonic() - began
    raise AssertionError("no record within 5 s of resume")


def test_resumed_partitions_are_fetched_at_once(kafka_bootstrap: str, make_topic: Callable[..., str]) -> None:
    topic = make_topic("wake", 4)
    produce_acked(kafka_bootstrap, topic, ((None, b"v%d" % i) for i in range(400)))
    consumer = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": "wake-test", "fetch.wait.max.ms": 50})
    partitions = [TopicPartition(topic, p, 0) for p in range(4)]
    consumer.assign(partitions)
    try:
        # Unwoken, each delay falls anywhere in [0, 1 s] (the fetcher's sleep phase at the resume): three
        # trials all under 300 ms by chance is ~3%. Woken, it is a few ms.
        delays = [_first_message_after(consumer, partitions, wake=True) for _ in range(3)]
    finally:
        consumer.close()
    assert max(delays) < 0.3, f"resumed partitions waited {[round(d * 1000) for d in delays]} ms for a fetch"


def test_nothing_to_wake() -> None:
    assert wake_fetchers(Consumer({"group.id": "unused"}), []) is None

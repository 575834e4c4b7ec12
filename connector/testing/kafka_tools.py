"""Small Kafka helpers for tests, the demo and benchmarks: produce with end offsets taken from the
acknowledgements (Tansu answers queried end offsets wrongly, see ../shared/tansu.md), read a whole
topic with `assign()` (no group join), and read or set a group's committed offsets.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

from confluent_kafka import Consumer, Message, Producer, TopicPartition

__all__ = ["commit_offsets", "committed_offsets", "produce_acked", "read_topic"]


def produce_acked(
    bootstrap_servers: str,
    topic: str,
    messages: Iterable[tuple[bytes | None, bytes | None]],
    timestamp_ms: int | None = None,
    config: Mapping[str, Any] | None = None,
) -> dict[int, int]:
    """Produce (key, value) pairs (with `timestamp_ms` as every record's time, if given); return
    partition -> end offset (last acknowledged offset + 1). `config` adds producer settings (e.g. a higher
    `message.max.bytes`). Raises RuntimeError if any record is not acknowledged."""
    ends: dict[int, int] = {}
    errors: list[Any] = []

    def on_delivery(err: Any, msg: Message) -> None:
        if err is not None:
            errors.append(err)
            return
        partition, offset = msg.partition(), msg.offset()
        if partition is not None and offset is not None:
            ends[partition] = max(ends.get(partition, 0), offset + 1)

    producer = Producer(
        {"bootstrap.servers": bootstrap_servers, "linger.ms": 5, "message.timeout.ms": 30_000, **(config or {})}
    )
    for key, value in messages:
        while True:
            try:
                # timestamp 0 is librdkafka's "now"
                producer.produce(topic, value, key, on_delivery=on_delivery, timestamp=timestamp_ms or 0)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    if producer.flush(60) or errors:
        raise RuntimeError(f"produce to {topic} failed: {errors[:3]}")
    return ends


def read_topic(
    bootstrap_servers: str, topic: str, partitions: int, expected: int, timeout_s: float = 30.0
) -> list[Message]:
    """Read `topic` from the beginning with `assign()` until `expected` records arrived (or timeout, then
    return what came) and, for half a second more, check that no extra record shows up."""
    consumer = Consumer({"bootstrap.servers": bootstrap_servers, "group.id": "rdc-reader", "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    found: list[Message] = []
    deadline = time.monotonic() + timeout_s
    quiet_until: float | None = None
    try:
        while time.monotonic() < deadline:
            for message in consumer.consume(1000, 0.1):
                if message.error() is None:
                    found.append(message)
            if len(found) >= expected:
                quiet_until = quiet_until or time.monotonic() + 0.5
                if time.monotonic() >= quiet_until:
                    break
    finally:
        consumer.close()
    return found


def committed_offsets(bootstrap_servers: str, group_id: str, topic: str, partitions: int) -> dict[int, int]:
    """partition -> committed offset of `group_id` (negative: nothing committed)."""
    consumer = Consumer({"bootstrap.servers": bootstrap_servers, "group.id": group_id, "enable.auto.commit": False})
    try:
        committed = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
    finally:
        consumer.close()
    return {tp.partition: tp.offset for tp in committed}


def commit_offsets(bootstrap_servers: str, group_id: str, topic: str, offsets: dict[int, int]) -> None:
    """Commit partition -> offset for `group_id` (an operator's offset reset): the group must have no
    active member. Raises KafkaException if the commit is refused."""
    consumer = Consumer({"bootstrap.servers": bootstrap_servers, "group.id": group_id, "enable.auto.commit": False})
    try:
        done = consumer.commit(offsets=[TopicPartition(topic, p, o) for p, o in offsets.items()], asynchronous=False)
        failed = [tp for tp in done or [] if tp.error is not None]
        if failed:
            raise RuntimeError(f"commit for {group_id} refused: {failed}")
    finally:
        consumer.close()

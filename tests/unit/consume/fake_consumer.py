"""A stand-in for confluent_kafka.Consumer that records what the consume/ and settle/ units ask of it."""

from __future__ import annotations

from typing import Any

from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, KafkaError, KafkaException, TopicPartition

from connector.deliver.batch import Batch
from connector.errors import ConnectorError
from connector.partition_keys import TopicPartitionKey


class FakeConsumer:
    def __init__(self, committed: dict[TopicPartitionKey, int] | None = None) -> None:
        self.paused: set[TopicPartitionKey] = set()
        self.calls: list[tuple[str, list[TopicPartitionKey]]] = []  # ("pause" | "resume" | "assign"..., keys)
        self.seeks: list[tuple[TopicPartitionKey, int]] = []
        self.commits: list[dict[TopicPartitionKey, int]] = []
        self.committed_offsets = committed or {}
        self.fail_commits = 0
        self.fail_committed = False
        self.high: dict[TopicPartitionKey, int] = {}

    def pause(self, partitions: list[TopicPartition]) -> None:
        keys = [(p.topic, p.partition) for p in partitions]
        self.calls.append(("pause", keys))
        self.paused.update(keys)

    def resume(self, partitions: list[TopicPartition]) -> None:
        keys = [(p.topic, p.partition) for p in partitions]
        self.calls.append(("resume", keys))
        self.paused.difference_update(keys)

    def seek(self, partition: TopicPartition) -> None:
        self.seeks.append(((partition.topic, partition.partition), partition.offset))

    def assign(self, partitions: list[TopicPartition]) -> None:
        self.calls.append(("assign", [(p.topic, p.partition) for p in partitions]))

    def incremental_assign(self, partitions: list[TopicPartition]) -> None:
        self.calls.append(("incremental_assign", [(p.topic, p.partition) for p in partitions]))

    def committed(self, partitions: list[TopicPartition], timeout: float) -> list[TopicPartition]:
        if self.fail_committed:
            raise KafkaException(KafkaError(KafkaError._TIMED_OUT))
        return [
            TopicPartition(p.topic, p.partition, self.committed_offsets.get((p.topic, p.partition), -1001))
            for p in partitions
        ]

    def commit(self, offsets: list[TopicPartition], asynchronous: bool) -> None:
        assert asynchronous is False
        if self.fail_commits:
            self.fail_commits -= 1
            raise KafkaException(KafkaError(KafkaError._TRANSPORT))
        self.commits.append({(p.topic, p.partition): p.offset for p in offsets})

    def get_watermark_offsets(self, partition: TopicPartition, **kwargs: Any) -> tuple[int, int] | None:
        high = self.high.get((partition.topic, partition.partition))
        return None if high is None else (0, high)


def no_wake(consumer: Any, partitions: list[TopicPartition]) -> None:
    """`Partitions(wake=...)` for tests: no wake-up thread."""
    return None


class FakeMessage:
    """A consumed record of partition ("t", 0): its value is b"v<offset>" unless given (None: a tombstone)."""

    def __init__(self, offset: int, value: bytes | int | None = 0, error: KafkaError | None = None) -> None:
        self._offset, self._error = offset, error
        self._value = b"v%d" % offset if value == 0 else value

    def error(self) -> KafkaError | None:
        return self._error

    def topic(self) -> str:
        return "t"

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset

    def value(self) -> bytes | None:
        return self._value  # type: ignore[return-value]

    def key(self) -> None:
        return None

    def headers(self) -> None:
        return None

    def timestamp(self) -> tuple[int, int]:
        return (TIMESTAMP_NOT_AVAILABLE, 0)


class FakeLane:
    """A `deliver.lanes.LaneLike` without a thread: keeps what it is given; `waiting` is what it says is queued."""

    fatal: ConnectorError | None = None

    def __init__(self) -> None:
        self.blocked = False
        self.batches: list[Batch] = []
        self.waiting = 0

    def submit(self, batch: Batch) -> None:
        self.batches.append(batch)

    def queued(self) -> int:
        return self.waiting

    def abandon(self) -> None:
        pass

    def close(self, timeout: float) -> None:
        pass

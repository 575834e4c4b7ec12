"""`Replay` against a fake consumer and producer: the order produce -> acknowledged -> commit, what a refused
replay or a crash before the commit leaves, and that a resumed run sends nothing twice (beyond that batch)."""

from __future__ import annotations

import io
from typing import Any

import pytest
from confluent_kafka import KafkaException, TopicPartition

from connector.commands.dlq import Replay, ReplayFailed, Summary
from connector.commands.dlq_plan import Filters

DLQ = "rd.dlq"


class FakeMessage:
    def __init__(self, offset: int, reason: str = "invalid_email") -> None:
        self._offset = offset
        self._headers = [("rdc.error.reason", reason.encode()), ("rdc.source.topic", b"orders"),
                         ("rdc.source.partition", b"0")]  # fmt: skip

    def error(self) -> None:
        return None

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset

    def timestamp(self) -> tuple[int, int]:
        return 1, 1_000

    def key(self) -> bytes:
        return f"k{self._offset}".encode()

    def value(self) -> bytes:
        return f"v{self._offset}".encode()

    def headers(self) -> list[tuple[str, bytes]]:
        return self._headers


class Topic:
    def __init__(self, partitions: list[int]) -> None:
        self.partitions = {p: None for p in partitions}
        self.error = None


class Metadata:
    def __init__(self, topics: dict[str, Topic]) -> None:
        self.topics = topics


class FakeConsumer:
    """One partition holding `letters`; commits kept across runs in `group`."""

    def __init__(self, letters: list[FakeMessage], group: dict[int, int], log: list[str]) -> None:
        self._letters, self._group, self._log, self._next = letters, group, log, 0
        self.fail_commit = False

    def list_topics(self, topic: str, timeout: float) -> Metadata:
        return Metadata({DLQ: Topic([0])})

    def committed(self, tps: list[TopicPartition], timeout: float) -> list[TopicPartition]:
        return [TopicPartition(DLQ, 0, self._group.get(0, -1001))]

    def get_watermark_offsets(self, tp: TopicPartition, timeout: float = 0, cached: bool = False) -> tuple[int, int]:
        return 0, len(self._letters)

    def assign(self, tps: list[TopicPartition]) -> None:
        self._next = max(tps[0].offset, 0)

    def pause(self, tps: list[TopicPartition]) -> None:
        pass

    def consume(self, count: int, timeout: float) -> list[FakeMessage]:
        found = self._letters[self._next : self._next + count]
        self._next += len(found)
        return found

    def commit(self, offsets: list[TopicPartition], asynchronous: bool) -> list[TopicPartition]:
        if self.fail_commit:
            raise KafkaException("coordinator gone")
        self._log.append(f"commit {offsets[0].offset}")
        self._group[0] = offsets[0].offset
        return offsets


class FakeProducer:
    def __init__(self, log: list[str], refuse: set[bytes] = frozenset()) -> None:  # type: ignore[assignment]
        self._log, self._refuse, self._pending, self.sent = log, refuse, [], []  # type: ignore[var-annotated]

    def list_topics(self, topic: str, timeout: float) -> Metadata:
        return Metadata({topic: Topic([0, 1])})

    def produce(self, topic: str, value: bytes, key: bytes, headers: Any, on_delivery: Any, **extra: Any) -> None:
        self._log.append(f"produce {key.decode()}")
        self._pending.append((key, on_delivery))

    def flush(self, timeout: float) -> int:
        for key, on_delivery in self._pending:
            refused = key in self._refuse
            if not refused:
                self.sent.append(key)
            self._log.append(f"ack {key.decode()}")
            on_delivery("refused" if refused else None, None)
        self._pending = []
        return 0

    def poll(self, timeout: float) -> int:
        return 0


def replay(consumer: FakeConsumer, producer: FakeProducer | None, batch: int = 2, **filters: Any) -> Summary:
    summary = Summary("g", producer is None)
    return Replay(consumer, producer, DLQ, Filters(**filters), summary, io.StringIO(), batch=batch).run()


def test_each_batch_is_acknowledged_before_its_commit() -> None:
    log: list[str] = []
    group: dict[int, int] = {}
    summary = replay(FakeConsumer([FakeMessage(o) for o in range(3)], group, log), FakeProducer(log))
    assert log == ["produce k0", "produce k1", "ack k0", "ack k1", "commit 2", "produce k2", "ack k2", "commit 3"]
    assert summary.replayed == {"invalid_email": 3} and group == {0: 3}


def test_a_refused_replay_commits_only_what_came_before_it() -> None:
    log: list[str] = []
    group: dict[int, int] = {}
    letters = [FakeMessage(o) for o in range(4)]
    with pytest.raises(ReplayFailed, match="offset 1"):
        replay(FakeConsumer(letters, group, log), FakeProducer(log, refuse={b"k1"}), batch=4)
    assert group == {0: 1}  # k0 acknowledged and committed; k1 and after wait for the next run


def test_a_crash_before_the_commit_resends_that_batch_only() -> None:
    log: list[str] = []
    group: dict[int, int] = {}
    letters = [FakeMessage(o) for o in range(5)]
    consumer, producer = FakeConsumer(letters, group, log), FakeProducer(log)
    consumer.fail_commit = True
    with pytest.raises(ReplayFailed, match="rerun re-sends"):
        replay(consumer, producer, batch=2)
    consumer.fail_commit = False
    replay(FakeConsumer(letters, group, log), producer, batch=2)  # resumed
    assert producer.sent == [b"k0", b"k1", b"k0", b"k1", b"k2", b"k3", b"k4"]  # the one batch, twice; no loss


def test_letters_passed_over_are_committed_and_a_dry_run_commits_nothing() -> None:
    log: list[str] = []
    group: dict[int, int] = {}
    letters = [FakeMessage(0, "rejected_by_rd"), FakeMessage(1), FakeMessage(2, "rejected_by_rd")]
    dry = replay(FakeConsumer(letters, group, log), None, reasons=frozenset({"invalid_email"}))
    assert (dry.replayed, dry.committed, group, log) == ({"invalid_email": 1}, {}, {}, [])
    summary = replay(FakeConsumer(letters, group, log), FakeProducer(log), reasons=frozenset({"invalid_email"}))
    assert summary.skipped == {"reason": 2} and group == {0: 3}

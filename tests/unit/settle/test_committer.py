"""Commits with a fake consumer and a fake clock: interval, failures, ledger checkpoints after the commit."""

from __future__ import annotations

from collections.abc import Mapping

from connector.consume.partitions import Partitions
from connector.ops.metrics import Metrics
from connector.partition_keys import TopicPartitionKey
from connector.settle.committer import Committer
from connector.settle.offsets import OffsetTracker
from tests.unit.consume.fake_consumer import FakeConsumer, no_wake

A0, A1 = ("a", 0), ("a", 1)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Ledger:
    topic = "ledger"

    def checkpoint(self, positions: Mapping[TopicPartitionKey, int]) -> list[tuple[bytes, bytes]]:
        return [(f"{t}/{p}".encode(), str(o).encode()) for (t, p), o in sorted(positions.items())]


class Reporter:
    def __init__(self) -> None:
        self.plain: list[tuple[str, bytes, bytes]] = []

    def produce_plain(self, topic: str, key: bytes, value: bytes) -> None:
        self.plain.append((topic, key, value))


def _rig(ledger: Ledger | None = None) -> tuple[Committer, FakeConsumer, OffsetTracker, Clock, Reporter, Partitions]:
    consumer, tracker, clock, reporter = FakeConsumer(), OffsetTracker(), Clock(), Reporter()
    partitions = Partitions(consumer, lambda tp: 0, wake=no_wake)
    partitions.add([A0, A1])
    committer = Committer(
        consumer=consumer,
        tracker=tracker,
        owned=partitions.owned,
        reporter=reporter,  # type: ignore[arg-type]
        metrics=Metrics(),
        ledger=ledger,  # type: ignore[arg-type]
        interval_s=0.2,
        clock=clock,
    )
    return committer, consumer, tracker, clock, reporter, partitions


def test_commits_at_most_every_interval_unless_forced() -> None:
    committer, consumer, tracker, clock, _, partitions = _rig()
    tracker.track(A0, 0)
    tracker.settle(A0, (0,))
    committer.commit()
    assert consumer.commits == [{A0: 1}] and partitions.owned[A0].committed == 1
    tracker.track(A0, 1)
    tracker.settle(A0, (1,))
    clock.now += 0.1
    committer.commit()
    assert len(consumer.commits) == 1
    committer.commit(force=True)
    assert consumer.commits[-1] == {A0: 2} and committer.commits == 2


def test_only_settled_prefixes_are_committed() -> None:
    committer, consumer, tracker, *_ = _rig()
    for offset in (0, 1, 2):
        tracker.track(A0, offset)
    tracker.settle(A0, (0, 2))
    committer.commit(force=True)
    assert consumer.commits == [{A0: 1}]  # 1 is unsettled: 2 waits behind it


def test_a_failed_commit_is_retried_and_writes_no_checkpoint_until_it_succeeds() -> None:
    committer, consumer, tracker, clock, reporter, _ = _rig(Ledger())
    tracker.track(A1, 4)
    tracker.settle(A1, (4,))
    consumer.fail_commits = 1
    committer.commit(force=True)
    assert consumer.commits == [] and reporter.plain == [] and committer.commits == 0
    clock.now += 1
    committer.commit()
    assert consumer.commits == [{A1: 5}] and reporter.plain == [("ledger", b"a/1", b"5")]


def test_the_oldest_unsettled_age_follows_the_first_unsettled_offset() -> None:
    committer, _, tracker, clock, _, partitions = _rig()
    metrics = committer._metrics
    tracker.track(A0, 0)
    tracker.track(A0, 1)
    committer.commit(force=True)
    assert partitions.owned[A0].unsettled_since == (0, 100.0)
    clock.now = 103.0
    committer.commit(force=True)
    assert metrics.oldest_unsettled_age._value.get() == 3.0
    tracker.settle(A0, (0,))
    clock.now = 104.0
    committer.commit(force=True)
    assert partitions.owned[A0].unsettled_since == (1, 104.0)  # a new first unsettled offset: its age restarts
    tracker.settle(A0, (1,))
    committer.commit(force=True)
    assert partitions.owned[A0].unsettled_since is None


def test_the_stop_report_names_unsettled_held_and_uncommitted_work() -> None:
    committer, consumer, tracker, _, _, partitions = _rig()
    assert committer.report_unsettled(1.0) is None
    partitions.owned[A1].held_until = 5.0
    assert committer.report_unsettled(1.0) == 0  # nothing unsettled, but a held partition is left
    partitions.owned[A1].held_until = None
    tracker.track(A0, 0)
    tracker.track(A0, 1)
    tracker.settle(A0, (0,))
    consumer.fail_commits = 1
    committer.commit(force=True)
    assert committer.report_unsettled(1.0) == 1


def test_a_commit_drops_the_ledgers_delivered_offsets_below_it() -> None:
    committer, _consumer, tracker, _clock, _, partitions = _rig()
    partitions.owned[A0].skip = {1, 3, 7}
    for offset in range(4):
        tracker.track(A0, offset)
    tracker.settle(A0, range(4))
    committer.commit(force=True)
    assert partitions.owned[A0].committed == 4 and partitions.owned[A0].skip == {7}

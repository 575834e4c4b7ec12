"""The pipeline's hand-off to an overlapping transform: a failure never lets a commit pass an unhandled record.

Fakes stand in for the consumer, transform, lanes and reporter (the real ones are covered by the integration
tests); what is under test is the pipeline's own bookkeeping of the batches it keeps in flight.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from connector.deliver.batch import Batch
from connector.errors import ConnectorError
from connector.in_flight import Item, item_weight
from connector.pipeline import Pipeline
from connector.settle.reporter import SettledCallback
from connector.transform.outcomes import Outcome, Ready, RegistryDown, SkippedByMapping
from tests.unit.consume.fake_consumer import FakeMessage

TP = ("t", 0)


class FakeConsumer:
    """Hands out the given batches, then asks the pipeline to stop. `seek` fails (an erroneous state)."""

    def __init__(self, batches: list[list[int]]) -> None:
        self.batches = [[FakeMessage(o) for o in batch] for batch in batches]
        self.commits: list[int] = []
        self.closed = False
        self.pipeline: Pipeline | None = None

    def subscribe(self, topics: list[str], on_assign: Callable[..., None], **callbacks: Any) -> None:
        on_assign(self, [])
        assert self.pipeline is not None
        self.pipeline._partitions.add([TP])

    def consume(self, count: int, timeout: float) -> list[FakeMessage]:
        if not self.batches:
            assert self.pipeline is not None
            self.pipeline.stop()
            return []
        return self.batches.pop(0)

    def pause(self, partitions: Any) -> None:
        pass

    def resume(self, partitions: Any) -> None:
        pass

    def seek(self, partition: Any) -> None:
        raise KafkaException(KafkaError(KafkaError._STATE))

    def commit(self, offsets: Any, asynchronous: bool) -> None:
        self.commits += [tp.offset for tp in offsets]

    def get_watermark_offsets(self, *args: Any, **kwargs: Any) -> tuple[int, int]:
        return (0, 0)

    def close(self) -> None:
        self.closed = True


class FakeTransform:
    """Overlapping. The `down` value answers RegistryDown, the `broken` one an outcome the pipeline cannot
    handle (a bug: no bytes); from collect number `dies_at` on, collect raises (a dead worker)."""

    depth = 1

    def __init__(
        self, down: bytes = b"", broken: bytes = b"", dies_at: int = 0, skip: bytes = b"", trims: int = 0
    ) -> None:
        self._pending: list[list[Outcome]] = []
        self._down, self._broken, self._dies_at, self._collects = down, broken, dies_at, 0
        self._skip, self._trims = skip, trims

    def _outcome(self, value: bytes) -> Outcome:
        if value == self._down:
            return RegistryDown("down")
        if value == self._skip:
            return SkippedByMapping("drafts")
        return Ready("e", None, None, 0) if value == self._broken else Ready("e", None, b"{}", self._trims)  # type: ignore[arg-type]

    def submit(self, work: Sequence[tuple[str, bytes]]) -> None:
        self._pending.append([self._outcome(value) for _, value in work])

    def collect(self) -> list[Outcome]:
        self._collects += 1
        if self._dies_at and self._collects >= self._dies_at:
            raise ConnectorError("the decode worker process died")
        return self._pending.pop(0)

    def close(self) -> None:
        pass


class FakeReporter:
    def __init__(self, on_settled: SettledCallback) -> None:
        self.on_settled = on_settled

    def poll(self, timeout: float) -> None:
        pass

    def flush(self, timeout: float) -> None:
        pass


class InstantLane:
    """Delivers every batch at once: each event is settled as delivered when submitted."""

    fatal = None
    blocked = False
    delivered: list[int]

    def __init__(self, index: int, reporter: FakeReporter) -> None:
        self._reporter = reporter
        self.delivered = []

    def submit(self, batch: Batch) -> None:
        for item in batch.items:
            self.delivered.append(item.offset)
            self._reporter.on_settled(item.topic, item.partition, (item.offset,), item_weight(item), True)

    def queued(self) -> int:
        return 0

    def close(self, timeout: float) -> None:
        pass

    def abandon(self) -> None:
        pass


class QueueingLane(InstantLane):
    """Keeps what it is given; `waiting` is how many batches it says are queued."""

    def __init__(self, index: int, reporter: FakeReporter) -> None:
        super().__init__(index, reporter)
        self.batches: list[list[int]] = []
        self.waiting = 0

    def submit(self, batch: Batch) -> None:
        self.batches.append([item.offset for item in batch.items])

    def queued(self) -> int:
        return self.waiting


def _item(offset: int) -> Item:
    return Item(TP[0], TP[1], offset, None, "e", None, b"{}")


def _pipeline(
    consumer: FakeConsumer,
    transform: FakeTransform,
    lane_type: type[InstantLane] = InstantLane,
    batch_max_events: int = 1,
) -> tuple[Pipeline, list[InstantLane]]:
    lanes: list[InstantLane] = []

    def lane(index: int, reporter: Any) -> Any:
        lanes.append(lane_type(index, reporter))
        return lanes[-1]

    pipeline = Pipeline(
        consumer=consumer,  # type: ignore[arg-type]
        topics=[TP[0]],
        transform=transform,
        reporter_factory=FakeReporter,  # type: ignore[arg-type]
        lane_factory=lane,
        lanes=1,
        batch_max_bytes=10**6,
        batch_max_events=batch_max_events,
        linger_s=0.0,  # a batch that is not full is due as soon as it is checked
        shutdown_timeout_s=1.0,
        commit_interval_s=0.0,
    )
    consumer.pipeline = pipeline
    return pipeline, lanes


def test_a_failure_inside_a_batch_never_lets_the_next_batch_through() -> None:
    # A bug at offset 4 stops batch [3, 4, 5] half-handled: 4 and 5 are never tracked. The batch behind it,
    # [6, 7, 8], was already consumed; handling it on the way out would let the final commit pass 4 and 5.
    consumer = FakeConsumer([[0, 1, 2], [3, 4, 5], [6, 7, 8]])
    pipeline, lanes = _pipeline(consumer, FakeTransform(broken=b"v4"))
    with pytest.raises(TypeError):
        pipeline.run()
    assert lanes[0].delivered == [0, 1, 2, 3]
    assert max(consumer.commits) == 4 and consumer.closed


def test_a_registry_outage_with_a_failing_seek_commits_nothing_past_it() -> None:
    consumer = FakeConsumer([[0, 1, 2], [3, 4, 5], [6, 7, 8]])
    pipeline, lanes = _pipeline(consumer, FakeTransform(down=b"v4"))
    with pytest.raises(KafkaException):
        pipeline.run()
    assert lanes[0].delivered == [0, 1, 2, 3]
    assert max(consumer.commits) == 4 and consumer.closed


def test_a_dead_worker_still_commits_what_settled_and_closes() -> None:
    consumer = FakeConsumer([[0, 1, 2], [3, 4, 5], [6, 7, 8]])
    pipeline, lanes = _pipeline(consumer, FakeTransform(dies_at=2))
    with pytest.raises(ConnectorError, match="died"):
        pipeline.run()
    assert lanes[0].delivered == [0, 1, 2]
    assert max(consumer.commits) == 3 and consumer.closed


def test_batches_flow_through_in_order() -> None:
    consumer = FakeConsumer([[0, 1, 2], [3, 4, 5], [6, 7, 8]])
    pipeline, lanes = _pipeline(consumer, FakeTransform())
    assert pipeline.run() == 0
    assert lanes[0].delivered == list(range(9))
    assert max(consumer.commits) == 9 and consumer.closed


def test_a_lingering_batch_waits_while_its_lane_has_batches_queued() -> None:
    # Its events would wait behind the queued batches anyway: it keeps filling instead of going out partial.
    consumer = FakeConsumer([[0, 1, 2]])
    pipeline, lanes = _pipeline(consumer, FakeTransform(), QueueingLane, batch_max_events=100)
    lane = lanes[0]
    assert isinstance(lane, QueueingLane)
    pipeline._partitions.add([TP])
    lane.waiting = 2
    pipeline._step()  # consumes [0, 1, 2] (kept in flight by the overlapping transform)
    pipeline._step()  # handles them: the batch is due, but the lane has 2 batches waiting
    pipeline._step()
    assert lane.batches == []
    lane.waiting = 0  # the lane took up its last batch
    pipeline._step()
    assert lane.batches == [[0, 1, 2]]
    # Held and overdue, it is looked at again shortly, not in a busy loop (a zero timeout would spin).
    pipeline._lanes.batcher(0).add(_item(9), 0.0)  # an overdue open batch
    lane.waiting = 1
    assert pipeline._lanes.poll_timeout(100.0) > 0
    lane.waiting = 0
    assert pipeline._lanes.poll_timeout(100.0) == 0  # not held: overdue means now


def test_a_skipped_record_is_committed_counted_and_never_sent() -> None:
    consumer = FakeConsumer([[0, 1, 2], [3, 4, 5]])
    pipeline, lanes = _pipeline(consumer, FakeTransform(skip=b"v4"))
    assert pipeline.run() == 0
    assert lanes[0].delivered == [0, 1, 2, 3, 5]
    assert max(consumer.commits) == 6 and pipeline.stats.skipped == 1
    assert 'rdc_events_skipped_total{mapping="drafts"} 1.0' in pipeline._metrics.render().decode()


def test_trims_are_counted_once_per_batch_in_the_metric_and_the_stop_line() -> None:
    consumer = FakeConsumer([[0, 1, 2], [3, 4]])
    pipeline, _ = _pipeline(consumer, FakeTransform(trims=2))
    assert pipeline.run() == 0
    assert pipeline.stats.trimmed == 10
    assert "rdc_values_trimmed_total 10.0" in pipeline._metrics.render().decode()


class RebalancingConsumer(FakeConsumer):
    """Batch 1 is read; the second consume call serves a revoke (a session timeout) yet still returns records
    fetched before it; the third serves the assignment again, and reading restarts at the committed offset."""

    def subscribe(self, topics: list[str], on_assign: Callable[..., None], **callbacks: Any) -> None:
        from confluent_kafka import TopicPartition

        self.callbacks = {"assign": on_assign, **callbacks}
        self.partition = [TopicPartition(*TP)]
        on_assign(self, self.partition)
        self.calls = 0

    def consume(self, count: int, timeout: float) -> list[FakeMessage]:
        self.calls += 1
        if self.calls == 2:
            self.callbacks["on_revoke"](self, self.partition)
            return [FakeMessage(o) for o in (3, 4)]  # fetched before the revoke
        if self.calls == 3:
            self.callbacks["assign"](self, self.partition)
            return [FakeMessage(o) for o in (3, 4, 5)]  # from the committed offset, 3
        return super().consume(count, timeout)

    def assign(self, partitions: Any) -> None:
        pass

    def committed(self, partitions: Any, timeout: float) -> Any:
        return partitions


def test_records_a_revoke_left_behind_are_not_tracked_and_the_partition_is_read_again() -> None:
    consumer = RebalancingConsumer([[0, 1, 2]])
    consumer.batches.append([])  # placeholder: calls 2 and 3 are the rebalance's
    consumer.batches.append([])
    pipeline, lanes = _pipeline(consumer, FakeTransform())
    assert pipeline.run() == 0
    assert lanes[0].delivered == [0, 1, 2, 3, 4, 5]  # 3 and 4 once: the copies from before the revoke dropped
    assert max(consumer.commits) == 6 and consumer.closed


class _PartitionMessage(FakeMessage):
    def __init__(self, partition: int, offset: int, value: bytes | int = 0) -> None:
        super().__init__(offset, value)
        self._partition = partition

    def partition(self) -> int:
        return self._partition


class SeekingConsumer:
    """Partition 0 has offsets 0-11, two a call, its offset 2 answering RegistryDown the first time; partition 1
    one record a call. Pause, resume and seek act as a broker's would."""

    def __init__(self, clock: list[float]) -> None:
        self.position = {0: 0, 1: 0}
        self.paused: set[int] = set()
        self.down_once = {2}
        self.commits: list[dict[int, int]] = []
        self.calls = 0
        self.clock = clock
        self.pipeline: Pipeline | None = None

    def subscribe(self, topics: list[str], on_assign: Callable[..., None], **callbacks: Any) -> None:
        on_assign(self, [])
        assert self.pipeline is not None
        self.pipeline._partitions.add([("t", 0), ("t", 1)])

    def consume(self, count: int, timeout: float) -> list[_PartitionMessage]:
        assert self.pipeline is not None
        self.clock[0] += 0.01
        self.calls += 1
        if self.calls > 40:
            self.pipeline.stop()
            return []
        out = []
        for _ in range(0 if 0 in self.paused else 2):
            offset = self.position[0]
            if offset < 12:
                out.append(_PartitionMessage(0, offset, b"down" if offset in self.down_once else 0))
                self.down_once.discard(offset)
                self.position[0] += 1
        out.append(_PartitionMessage(1, self.position[1]))
        self.position[1] += 1
        return out

    def pause(self, partitions: Any) -> None:
        self.paused.update(p.partition for p in partitions)

    def resume(self, partitions: Any) -> None:
        self.paused.difference_update(p.partition for p in partitions)

    def seek(self, partition: Any) -> None:
        self.position[partition.partition] = partition.offset

    def commit(self, offsets: Any, asynchronous: bool) -> None:
        self.commits.append({tp.partition: tp.offset for tp in offsets})

    def get_watermark_offsets(self, *args: Any, **kwargs: Any) -> tuple[int, int]:
        return (0, 0)

    def close(self) -> None:
        pass


class RecordingLane(InstantLane):
    """Also notes each delivered event's partition."""

    def __init__(self, index: int, reporter: FakeReporter) -> None:
        super().__init__(index, reporter)
        self.coordinates: list[tuple[int, int]] = []

    def submit(self, batch: Batch) -> None:
        self.coordinates += [(item.partition, item.offset) for item in batch.items]
        super().submit(batch)


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_a_registry_hold_drops_every_batch_fetched_before_its_seek_whatever_the_depth(depth: int) -> None:
    # The batch holding offset 2 comes back after the worker waited 10 s on the registry: later than the hold's
    # 2 s retry. With several batches in flight, one fetched before the seek (offsets 4-7) must still be dropped,
    # not taken as read again after the release (delivered before 2-5, committed past them).
    clock = [0.0]

    class SlowOnRegistry(FakeTransform):
        def collect(self) -> list[Outcome]:
            outcomes = super().collect()
            if any(type(o) is RegistryDown for o in outcomes):
                clock[0] += 10.0
            return outcomes

    transform = SlowOnRegistry(down=b"down")
    transform.depth = depth
    consumer = SeekingConsumer(clock)
    lanes: list[RecordingLane] = []

    def lane(index: int, reporter: Any) -> Any:
        lanes.append(RecordingLane(index, reporter))
        return lanes[-1]

    pipeline = Pipeline(
        consumer=consumer,  # type: ignore[arg-type]
        topics=["t"],
        transform=transform,
        reporter_factory=FakeReporter,  # type: ignore[arg-type]
        lane_factory=lane,
        lanes=1,
        batch_max_bytes=10**6,
        batch_max_events=1,
        linger_s=0.0,
        shutdown_timeout_s=1.0,
        commit_interval_s=0.0,
        clock=lambda: clock[0],
    )
    consumer.pipeline = pipeline
    pipeline.run()
    delivered_p0 = [offset for partition, offset in lanes[0].coordinates if partition == 0]
    assert delivered_p0 == list(range(12))  # each once, in order
    commits_p0 = [c[0] for c in consumer.commits if 0 in c]
    assert commits_p0 == sorted(commits_p0) and commits_p0[-1] == 12

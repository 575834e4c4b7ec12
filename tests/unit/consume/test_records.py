"""Each consumed record is tracked before anything can settle it, and settles in exactly one way."""

from __future__ import annotations

from typing import Any

from confluent_kafka import KafkaError

from connector.consume.backpressure import Backpressure
from connector.consume.holds import RegistryHolds
from connector.consume.partitions import Partitions
from connector.consume.records import PipelineStats, RecordRouter
from connector.deliver.lanes import LaneSet
from connector.in_flight import item_weight
from connector.ops.metrics import Metrics
from connector.settle.dead_letters import DeadLetter
from connector.settle.offsets import OffsetTracker
from connector.transform.outcomes import Outcome, Ready, Refused, RegistryDown, SkippedByMapping
from tests.unit.consume.fake_consumer import FakeConsumer, FakeLane, FakeMessage, no_wake

TP = ("t", 0)


class Reporter:
    def __init__(self) -> None:
        self.letters: list[DeadLetter] = []

    def dead_letter(self, letter: DeadLetter) -> None:
        self.letters.append(letter)


class Rig:
    def __init__(self, max_events: int = 2, max_bytes: int = 1000) -> None:
        self.consumer = FakeConsumer()
        self.lane = FakeLane()
        self.lanes = LaneSet([self.lane], max_bytes, max_events, linger_s=1.0)
        self.partitions = Partitions(self.consumer, self.lanes.lane_of, wake=no_wake)
        self.partitions.add([TP])
        self.tracker = OffsetTracker()
        self.pressure = Backpressure(1, 10**6, self.partitions)
        self.reporter = Reporter()
        self.metrics = Metrics()
        self.stats = PipelineStats()
        self.router = RecordRouter(
            partitions=self.partitions,
            tracker=self.tracker,
            lanes=self.lanes,
            backpressure=self.pressure,
            holds=RegistryHolds(self.consumer, self.partitions),
            reporter=self.reporter,  # type: ignore[arg-type]
            metrics=self.metrics,
            stats=self.stats,
            linger_s=1.0,
        )

    def handle(self, offset: int, outcome: Outcome | None, value: bytes | None = b"v") -> None:
        self.router.handle(FakeMessage(offset, value), 0.0, outcome)  # type: ignore[arg-type]

    def committable(self) -> int | None:
        return self.tracker.committable().get(TP)


READY = Ready("ECOMMERCE_ORDER_PLACED", "e-1", b'{"event_type":"ECOMMERCE_ORDER_PLACED"}', 0)


def test_tombstones_and_skipped_records_settle_at_once() -> None:
    rig = Rig()
    rig.handle(0, None, value=None)
    rig.handle(1, SkippedByMapping("drafts"))
    assert rig.committable() == 2
    assert (rig.stats.consumed, rig.stats.tombstones, rig.stats.skipped) == (2, 1, 1)
    assert 'rdc_events_skipped_total{mapping="drafts"} 1.0' in rig.metrics.render().decode()


def test_a_refused_record_is_tracked_and_waits_for_its_dead_letter() -> None:
    rig = Rig()
    rig.handle(0, Refused("map", "invalid_email", "email 'x' is not valid", "email is not valid"))
    assert rig.committable() is None  # tracked, not settled: its dead letter's acknowledgement settles it
    [letter] = rig.reporter.letters
    assert (letter.offset, letter.stage, letter.reason, letter.log_detail) == (
        0,
        "map",
        "invalid_email",
        "email is not valid",
    )


def test_an_event_too_large_for_any_batch_is_dead_lettered() -> None:
    rig = Rig(max_bytes=20)
    rig.handle(0, READY)
    [letter] = rig.reporter.letters
    assert letter.reason == "event_too_large" and "capped at 20" in letter.detail
    assert rig.lane.batches == [] and rig.tracker.unsettled(TP) == 1


def test_ready_events_are_batched_weighed_and_a_full_batch_goes_to_the_lane() -> None:
    rig = Rig(max_events=2)
    rig.handle(0, READY._replace(trims=2))
    assert rig.lane.batches == [] and rig.stats.trimmed == 2
    weight = rig.pressure.buffered[0]
    rig.handle(1, READY)
    [batch] = rig.lane.batches
    assert [item.offset for item in batch.items] == [0, 1]
    assert weight == item_weight(batch.items[0]) and rig.pressure.buffered[0] == 2 * weight
    assert rig.tracker.unsettled(TP) == 2 and rig.committable() is None


def test_a_registry_outage_holds_the_partition_untracked_and_ignores_what_was_already_fetched() -> None:
    rig = Rig()
    rig.handle(0, SkippedByMapping("drafts"))
    rig.handle(1, RegistryDown("registry down"))
    rig.handle(2, READY)  # fetched before the seek: read again later
    assert rig.consumer.seeks == [(TP, 1)] and rig.consumer.paused == {TP}
    assert rig.tracker.unsettled(TP) == 0 and rig.committable() == 1
    assert rig.stats.consumed == 2 and rig.pressure.buffered[0] == 0  # the held one counts again when re-read


def test_offsets_the_ledger_found_delivered_are_settled_and_counted_not_sent() -> None:
    rig = Rig()
    rig.partitions.owned[TP].skip = {1}
    for offset in (0, 1, 2):
        rig.handle(offset, READY)
    assert [item.offset for batch in rig.lane.batches for item in batch.items] == [0, 2]
    assert rig.stats.duplicates_suppressed == 1 and rig.partitions.owned[TP].skip == {1}  # until committed past
    rig.tracker.settle(TP, (0,))
    assert rig.committable() == 2  # 1 settled at once: the watermark passes it as soon as 0 settles


def test_a_record_the_ledger_found_delivered_read_again_after_a_rewind_is_still_not_sent() -> None:
    # A cooperative revoke abandons a lane and rewinds a kept partition to its first unsettled offset: the
    # records read again include one the ledger said RD already has.
    rig = Rig()
    rig.partitions.owned[TP].skip = {1}
    for offset in (0, 1, 2):
        rig.handle(offset, READY)
    rig.tracker.forget([TP])  # what `Rebalance.rewind` does before seeking back to 0
    for offset in (0, 1, 2):
        rig.handle(offset, READY)
    sent = [item.offset for batch in rig.lane.batches for item in batch.items]
    assert sent.count(1) == 0 and rig.stats.duplicates_suppressed == 2


def test_end_of_partition_marks_it_caught_up_unless_it_is_held() -> None:
    rig = Rig()
    eof: Any = KafkaError(KafkaError._PARTITION_EOF)
    rig.router.handle(FakeMessage(5, error=eof), 0.0, None)  # type: ignore[arg-type]
    assert rig.partitions.owned[TP].at_end and rig.stats.consumed == 0
    rig.handle(5, READY)
    assert not rig.partitions.owned[TP].at_end
    rig.handle(6, RegistryDown("down"))
    rig.router.handle(FakeMessage(7, error=eof), 0.0, None)  # type: ignore[arg-type]
    assert not rig.partitions.owned[TP].at_end  # sought back: not at its end


def test_a_record_of_a_partition_no_longer_owned_is_dropped_and_the_next_owner_reads_it_again() -> None:
    # Seen in a benchmark: a session timeout revoked the partitions; the consume call that served the revoke
    # still returned records fetched before it; tracking them (up to 7999) and then reading the partition
    # again from its committed offset (0) crashed the connector ("offset 0 tracked after 7999").
    rig = Rig()
    rig.partitions.forget([TP])
    for offset in (7998, 7999):
        rig.handle(offset, READY)
    assert rig.tracker.unsettled() == 0 and rig.stats.consumed == 0 and rig.lane.batches == []
    rig.partitions.add([TP])  # assigned again: read from the committed offset
    rig.handle(0, READY)
    assert rig.tracker.unsettled(TP) == 1


def test_events_go_to_their_accounts_batcher_and_the_default_takes_unnamed_ones() -> None:
    rig = Rig(max_events=10)
    slots = [{"default": FakeLane(), "b": FakeLane()}]
    rig.lanes = LaneSet(slots, 1000, 10, linger_s=1.0)
    rig.router._lanes = rig.lanes
    rig.handle(0, Ready("E", None, b"{}", 0, "b"))
    rig.handle(1, Ready("E", None, b"{}", 0, None))
    rig.lanes.send_open()
    assert [[i.offset for i in b.items] for b in slots[0]["b"].batches] == [[0]]
    assert [[(i.offset, i.account) for i in b.items] for b in slots[0]["default"].batches] == [[(1, "default")]]


def test_an_event_without_an_account_when_none_is_default_is_dead_lettered_unknown_account() -> None:
    rig = Rig(max_events=10)
    rig.lanes = LaneSet([{"a": FakeLane(), "b": FakeLane()}], 1000, 10, linger_s=1.0)
    rig.router._lanes = rig.lanes
    rig.router._default_account = None
    rig.handle(0, Ready("E", None, b"{}", 0, None))
    [letter] = rig.reporter.letters
    assert letter.reason == "unknown_account" and "without a 'default'" in letter.detail
    assert rig.tracker.unsettled(TP) == 1  # tracked: it settles when its dead letter is acknowledged

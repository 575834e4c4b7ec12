"""Assign, revoke, lost and the ledger's assignment scans, with a fake consumer and a fake ledger."""

from __future__ import annotations

from typing import Any

from confluent_kafka import TopicPartition

from connector.consume.partitions import Partitions
from connector.consume.rebalance import Rebalance
from connector.deliver.lanes import LaneSet
from connector.ledger.scan import LedgerScan
from connector.ops.metrics import Metrics
from connector.ops.probe_server import Health
from connector.partition_keys import TopicPartitionKey
from connector.settle.offsets import OffsetTracker
from tests.unit.consume.fake_consumer import FakeConsumer, FakeLane, no_wake

A0, A1 = ("a", 0), ("a", 1)


class FakeLedger:
    topic = "ledger"

    def __init__(self) -> None:
        self.scans: list[dict[TopicPartitionKey, int | None]] = []
        self.done: list[LedgerScan] = []
        self.forgotten: list[TopicPartitionKey] = []
        self.cancelled = 0

    def scan(self, committed: dict[TopicPartitionKey, int | None]) -> None:
        self.scans.append(dict(committed))

    def completed(self) -> list[LedgerScan]:
        done, self.done = self.done, []
        return done

    def forget(self, tps: list[TopicPartitionKey]) -> None:
        self.forgotten += tps

    def cancel(self) -> None:
        self.cancelled += 1


class FakeReporter:
    def __init__(self) -> None:
        self.plain: list[tuple[str, bytes, bytes]] = []

    def produce_plain(self, topic: str, key: bytes, value: bytes) -> None:
        self.plain.append((topic, key, value))


class IdleLane(FakeLane):
    def submit(self, batch: Any) -> None:
        raise AssertionError("nothing is sent in these tests")


class Rig:
    def __init__(
        self,
        ledger: FakeLedger | None = None,
        committed: dict[TopicPartitionKey, int] | None = None,
        lanes: int = 1,
        cooperative: bool = False,
    ) -> None:
        self.consumer = FakeConsumer(committed)
        self.lanes = LaneSet([IdleLane() for _ in range(lanes)], 1000, 10, 1.0)
        self.partitions = Partitions(self.consumer, self.lanes.lane_of, wake=no_wake)
        self.tracker = OffsetTracker()
        self.ledger = ledger
        self.reporter = FakeReporter()
        self.health = Health()
        self.log: list[Any] = []
        self.rebalance = Rebalance(
            consumer=self.consumer,
            partitions=self.partitions,
            lanes=self.lanes,
            tracker=self.tracker,
            ledger=ledger,  # type: ignore[arg-type]
            reporter=self.reporter,  # type: ignore[arg-type]
            metrics=Metrics(),
            health=self.health,
            revoke_timeout_s=7.0,
            drain=self._drain,
            handle_lost=lambda lost: self.log.append(("handle_lost", lost)),
            commit=lambda: self.log.append("commit"),
            abandon=lambda slots: self.log.append(("abandon", None if slots is None else sorted(slots))),
            cooperative=cooperative,
        )
        self.settle_on_drain: set[TopicPartitionKey] = set()  # what "RD" finishes while a revoke waits

    def _drain(self, timeout_s: float, only: Any) -> None:
        self.log.append(("drain", timeout_s, None if only is None else sorted(only)))
        for tp in self.settle_on_drain:
            part = self.tracker._parts.get(tp)
            if part is not None:
                self.tracker.settle(tp, list(part.pending))

    def assign(self, *tps: TopicPartitionKey) -> None:
        self.rebalance.on_assign(self.consumer, [TopicPartition(*tp) for tp in tps])

    def revoke(self, *tps: TopicPartitionKey) -> None:
        self.rebalance.on_revoke(self.consumer, [TopicPartition(*tp) for tp in tps])


def _scan(tp: TopicPartitionKey, delivered: set[int], checkpoint: tuple[bytes, bytes] | None = None) -> LedgerScan:
    return LedgerScan(tp, 10, delivered, scanned=5, seconds=0.01, start=0, checkpoint=checkpoint)


def test_without_a_ledger_an_assignment_fetches_at_once() -> None:
    rig = Rig()
    rig.assign(A0, A1)
    assert set(rig.partitions) == {A0, A1} and rig.consumer.calls == []
    assert rig.partitions.fetchable(A0) and "not_assigned" not in str(rig.health.readiness())


def test_an_assignment_to_a_paused_lane_is_assigned_and_paused_so_the_pause_sticks() -> None:
    rig = Rig()
    rig.partitions.paused_lanes.add(0)
    rig.assign(A0)
    assert rig.consumer.calls == [("assign", [A0]), ("pause", [A0])]


def test_with_a_ledger_partitions_wait_for_their_scan_which_says_what_to_skip() -> None:
    ledger = FakeLedger()
    rig = Rig(ledger, committed={A0: 10})
    rig.assign(A0, A1)
    assert rig.consumer.calls == [("assign", [A0, A1]), ("pause", [A0, A1])]
    assert ledger.scans == [{A0: 10, A1: -1001}]  # A1 never committed: the broker's "invalid offset"
    assert rig.partitions.owned[A0].scanning and not rig.partitions.fetchable(A0)
    ledger.done = [_scan(A0, {11, 12}, checkpoint=(b"k", b"v"))]
    rig.rebalance.finish_scans()
    assert rig.partitions.owned[A0].skip == {11, 12}
    assert rig.consumer.paused == {A1}  # A0 fetches; A1 still waits for its scan
    assert rig.reporter.plain == [("ledger", b"k", b"v")]  # a reset backwards moves the checkpoint


def test_when_the_committed_offsets_are_unknown_nothing_is_skipped() -> None:
    ledger = FakeLedger()
    rig = Rig(ledger)
    rig.consumer.fail_committed = True
    rig.assign(A0)
    assert ledger.scans == [{A0: None}]


def test_a_scan_finishing_after_its_partition_was_revoked_is_ignored() -> None:
    ledger = FakeLedger()
    rig = Rig(ledger, cooperative=True)
    rig.assign(A0, A1)
    rig.revoke(A0)
    ledger.done = [_scan(A0, {1})]
    rig.rebalance.finish_scans()
    assert A0 not in rig.partitions and ("resume", [A0]) not in rig.consumer.calls
    assert ledger.forgotten == [A0] and ledger.cancelled == 0
    rig.revoke(A1)
    assert ledger.cancelled == 1  # nothing owned: the running scans stop


def _track(rig: Rig, *tps: TopicPartitionKey) -> None:
    """Offsets 5, 6, 7 of each partition in flight, 5 settled."""
    for tp in tps:
        for offset in (5, 6, 7):
            rig.tracker.track(tp, offset)
        rig.tracker.settle(tp, (5,))


def test_an_eager_revoke_drains_everything_commits_abandons_every_lane_and_forgets() -> None:
    rig = Rig(lanes=2)
    rig.assign(A0, A1)
    _track(rig, A0, A1)
    rig.revoke(A0, A1)
    assert rig.log == [("drain", 7.0, None), "commit", ("abandon", None)]
    assert len(rig.partitions) == 0 and rig.tracker.partitions() == [] and rig.consumer.seeks == []


def test_a_cooperative_revoke_that_settles_in_time_abandons_nothing_and_the_kept_partitions_flow_on() -> None:
    rig = Rig(lanes=1, cooperative=True)  # one lane: the kept partition shares it with the revoked one
    rig.assign(A0, A1)
    _track(rig, A0, A1)
    rig.settle_on_drain = {A0}
    rig.revoke(A0)
    assert rig.log == [("drain", 7.0, [A0]), "commit"]  # waits for A0 only; no abandon
    assert rig.consumer.seeks == [] and rig.tracker.first_unsettled(A1) == 6  # A1's work stays in flight
    assert set(rig.partitions) == {A1} and rig.tracker.first_unsettled(A0) is None


def test_a_cooperative_revoke_past_its_deadline_abandons_only_its_lanes_and_rereads_their_kept_partitions() -> None:
    rig = Rig(lanes=2, cooperative=True)
    b0 = ("b", 0)
    rig.assign(A0, A1, b0)  # A0 and b0 share lane 0; A1 has lane 1
    assert rig.lanes.lane_of(A0) == rig.lanes.lane_of(b0) != rig.lanes.lane_of(A1)
    _track(rig, A0, A1, b0)
    rig.partitions.owned[b0].at_end = True
    rig.revoke(A0)
    assert rig.log == [("drain", 7.0, [A0]), "commit", ("abandon", [rig.lanes.lane_of(b0)])]
    assert rig.consumer.seeks == [(b0, 6)]  # b0's abandoned work (6, 7) is read again
    assert rig.tracker.first_unsettled(b0) is None and not rig.partitions.owned[b0].at_end
    assert rig.tracker.first_unsettled(A1) == 6  # the other lane was not touched
    assert set(rig.partitions) == {A1, b0} and rig.tracker.first_unsettled(A0) is None


def test_partitions_read_again_after_an_abandon_keep_their_lane_while_its_post_may_be_out() -> None:
    """An abandoned lane may still wait on a POST of a kept partition's events (HTTP cannot be cancelled): a
    respread moving that partition would let its events read again reach RD before the old request."""
    rig = Rig(lanes=2, cooperative=True)
    idle, z0, z1 = ("b", 0), ("z", 0), ("z", 1)
    rig.assign(A0, idle, z0, z1)
    for tp in (A0, idle, z0, z1):  # all on lane 0 (as after earlier rebalances), lane 1 empty
        rig.lanes._owned[tp] = rig.lanes._lane_of[tp] = 0
    _track(rig, A0, z0, z1)
    rig.revoke(A0)  # past its deadline: lane 0 is abandoned, z0 and z1 read again (nothing tracked any more)
    assert ("abandon", [0]) in rig.log and rig.tracker.unsettled() == 0
    assert rig.lanes.lane_of(z0) == rig.lanes.lane_of(z1) == 0  # not spread out while lane 0 may have a POST out


def test_a_kept_partition_read_again_drops_what_its_consume_call_fetched_before_the_seek() -> None:
    from tests.unit.consume.fake_consumer import FakeMessage

    rig = Rig(lanes=1, cooperative=True)
    t0 = ("t", 0)  # FakeMessage's partition
    rig.assign(A0, t0)
    _track(rig, A0, t0)
    rig.rebalance.begin_consume()
    rig.revoke(A0)  # A0 unsettled at the deadline: the shared lane is abandoned, t0 sought back to 6
    assert rig.consumer.seeks == [(t0, 6)]
    fetched_before: list[Any] = [FakeMessage(8), FakeMessage(9)]
    assert rig.rebalance.without_stale(fetched_before) == []  # tracking 8 and then 6 again would crash
    assert rig.consumer.seeks == [(t0, 6), (t0, 6)]  # still from 6, not from 8: nothing skipped


def test_cooperative_assignments_add_incrementally_and_scan_only_the_added() -> None:
    ledger = FakeLedger()
    rig = Rig(ledger, cooperative=True)
    rig.assign(A0)
    rig.assign()  # the empty rounds of a cooperative rebalance change nothing
    rig.assign(A1)
    assert rig.consumer.calls == [
        ("incremental_assign", [A0]),
        ("pause", [A0]),
        ("incremental_assign", [A1]),
        ("pause", [A1]),
    ]  # never assign(): an error under COOPERATIVE
    assert ledger.scans == [{A0: -1001}, {A1: -1001}] and set(rig.partitions) == {A0, A1}


def test_the_budget_share_follows_the_whole_assignment_not_the_increment() -> None:
    from connector.consume.budget_share import BudgetShare

    class Topics:
        def list_topics(self, topic: str, timeout: float) -> Any:
            from types import SimpleNamespace

            partitions = {p: None for p in range(4)}
            return SimpleNamespace(topics={topic: SimpleNamespace(error=None, partitions=partitions)})

    shares: list[float] = []
    rig = Rig(cooperative=True)
    rig.rebalance._budget_share = BudgetShare(Topics(), ["a"], shares.append)
    rig.assign(A0)
    rig.rebalance.update_budget_share()
    rig.assign(A1)  # an increment of one partition: the share is 2 of 4, not 1 of 4
    assert shares == [0.25]  # never inside a callback: list_topics there breaks the next callback
    rig.rebalance.update_budget_share()
    rig.revoke(A0)
    rig.rebalance.update_budget_share()
    rig.rebalance.update_budget_share()  # once per change
    assert shares == [0.25, 0.5, 0.25]


def test_a_gained_share_waits_for_the_scans_a_lost_one_does_not() -> None:
    from types import SimpleNamespace

    from connector.consume.budget_share import BudgetShare

    class Topics:
        calls = 0

        def list_topics(self, topic: str, timeout: float) -> Any:
            Topics.calls += 1
            return SimpleNamespace(topics={topic: SimpleNamespace(error=None, partitions=dict.fromkeys(range(4)))})

    shares: list[float] = []
    ledger = FakeLedger()
    rig = Rig(ledger, cooperative=True)
    rig.rebalance._budget_share = BudgetShare(Topics(), ["a"], shares.append)
    rig.assign(A0, A1)
    rig.rebalance.update_budget_share()
    assert shares == [] and Topics.calls == 0  # A0 and A1 send nothing before their scans end
    ledger.done = [_scan(A0, set())]
    rig.rebalance.finish_scans()
    rig.rebalance.update_budget_share()
    assert shares == []  # A1 still scanning
    ledger.done = [_scan(A1, set())]
    rig.rebalance.finish_scans()
    rig.rebalance.update_budget_share()
    assert shares == [0.5]
    rig.revoke(A0)
    rig.revoke(A1)
    rig.assign(("a", 2))  # two gone, one gained (scanning): the share falls at once, no wait for the scan
    rig.rebalance.update_budget_share()
    assert shares == [0.5, 0.25]


def test_a_revoke_while_closing_only_forgets() -> None:
    rig = Rig()
    rig.assign(A0)
    rig.rebalance.closing = True
    rig.revoke(A0)
    assert rig.log == [] and len(rig.partitions) == 0 and not "not_assigned" not in str(rig.health.readiness())


def test_lost_partitions_are_dropped_from_what_is_handled_and_forgotten() -> None:
    rig = Rig()
    rig.assign(A0, A1)
    rig.tracker.track(A0, 1)
    rig.rebalance.on_lost(rig.consumer, [TopicPartition(*A0)])
    assert rig.log == [("handle_lost", frozenset({A0}))]
    assert set(rig.partitions) == {A1} and rig.tracker.first_unsettled(A0) is None


def test_partitions_are_spread_over_the_lanes_and_evened_out_after_a_revoke() -> None:
    rig = Rig(lanes=4)
    rig.assign(("t", 0), ("t", 1), ("t", 2))  # a hash put 3 partitions on 2 of 4 lanes
    assert sorted(rig.lanes.loads()) == [0, 1, 1, 1]
    rig.assign(("u", 0), ("u", 1), ("u", 2))
    assert sorted(rig.lanes.loads()) == [1, 1, 2, 2]
    before = {tp: rig.lanes.lane_of(tp) for tp in rig.partitions}
    rig.revoke(("t", 0), ("t", 1), ("t", 2))
    assert max(rig.lanes.loads()) - min(rig.lanes.loads()) <= 1 and sum(rig.lanes.loads()) == 3
    assert rig.lanes.lane_of(("t", 0)) == before[("t", 0)]  # a released partition keeps its lane for late acks


def test_after_a_loss_the_kept_partitions_keep_their_lanes() -> None:
    rig = Rig(lanes=2)
    rig.assign(A0, A1, ("b", 0), ("b", 1))
    kept = {tp: rig.lanes.lane_of(tp) for tp in (("b", 0), ("b", 1))}
    rig.rebalance.on_lost(rig.consumer, [TopicPartition(*A0), TopicPartition(*A1)])
    assert {tp: rig.lanes.lane_of(tp) for tp in kept} == kept  # they may have work in flight


def test_records_of_a_partition_revoked_during_the_consume_call_are_dropped() -> None:
    from tests.unit.consume.fake_consumer import FakeMessage

    rig = Rig()
    rig.assign(("t", 0))
    rig.rebalance.begin_consume()
    rig.revoke(("t", 0))
    stale: list[Any] = [FakeMessage(7), FakeMessage(8)]
    assert rig.rebalance.without_stale(stale) == []
    assert rig.consumer.seeks == []  # not ours: its next owner reads them
    rig.rebalance.begin_consume()  # the next call: nothing revoked in it
    fresh: list[Any] = [FakeMessage(0)]
    assert rig.rebalance.without_stale(fresh) == fresh


def test_a_partition_revoked_and_assigned_again_in_one_call_is_read_again_from_the_first_dropped() -> None:
    from tests.unit.consume.fake_consumer import FakeMessage

    rig = Rig()
    rig.assign(("t", 0))
    rig.rebalance.begin_consume()
    rig.revoke(("t", 0))
    rig.assign(("t", 0))
    mixed: list[Any] = [FakeMessage(7), FakeMessage(3), FakeMessage(4)]
    assert rig.rebalance.without_stale(mixed) == []
    assert rig.consumer.seeks == [(("t", 0), 3)]  # stale or fresh, nothing dropped is lost

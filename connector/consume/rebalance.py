"""Rebalance: what this member does when the group gives it partitions, takes them back, or loses them.

- Assigned: each gets its `PartitionState`. With a ledger, they stay paused until the assignment scan has
  read which of their records already have a result of ours written after the group's last commit (those
  are skipped, not sent again: `finish_scans`); a lane over its share keeps them paused too.
- Revoked: the open batches are sent now; the loop waits (bounded by `revoke_timeout_s`) for what is in
  flight, commits what settled, abandons the rest (it will be redelivered to the next owner), then lets the
  partitions go. Abandoned work of partitions we keep (cooperative rebalancing) is read again (`rewind`).
- Lost (the group moved on without us): nothing more is committed for them; records of other partitions
  already consumed still go out.

Lanes: assigned partitions go to the least loaded lanes (`LaneSet.assign`), and after a revoke, when nothing
is in flight, the kept ones are spread again so that lane loads differ by at most one (`respread`). After a
loss the kept partitions may have work in flight, so they keep their lanes until the next rebalance.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaException, Message, TopicPartition

from connector.consume.budget_share import BudgetShare
from connector.consume.partitions import Partitions
from connector.deliver.lanes import LaneSet
from connector.ledger.scan import Ledger
from connector.ops.metrics import Metrics
from connector.ops.probe_server import Health
from connector.partition_keys import TopicPartitionKey
from connector.settle.offsets import OffsetTracker
from connector.settle.reporter import Reporter

__all__ = ["Rebalance"]

_log = logging.getLogger("connector.consume.rebalance")


class Rebalance:
    """The consumer's rebalance callbacks. `drain(timeout_s)` sends the open batches and waits for what is in
    flight; `handle_lost(lost)` handles consumed records except those of `lost`; `commit()` commits now;
    `abandon()` drops what is still in flight. They are the pipeline's."""

    def __init__(
        self,
        *,
        consumer: Any,
        partitions: Partitions,
        lanes: LaneSet,
        tracker: OffsetTracker,
        ledger: Ledger | None,
        reporter: Reporter,
        metrics: Metrics,
        health: Health,
        revoke_timeout_s: float,
        drain: Callable[[float], None],
        handle_lost: Callable[[frozenset[TopicPartitionKey]], None],
        commit: Callable[[], None],
        abandon: Callable[[], None],
        budget_share: BudgetShare | None = None,
    ) -> None:
        self._consumer = consumer
        self._partitions = partitions
        self._lanes = lanes
        self._tracker = tracker
        self._ledger = ledger
        self._reporter = reporter
        self._metrics = metrics
        self._health = health
        self._revoke_timeout_s = revoke_timeout_s
        self._drain, self._handle_lost, self._commit, self._abandon = drain, handle_lost, commit, abandon
        self._budget_share = budget_share
        self._gone: set[TopicPartitionKey] = set()  # revoked or lost during the current consume call
        self.closing = False  # set by `run` once it has drained: a revoke at close only forgets

    def on_assign(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        _log.info("assigned partitions=%s", [f"{p.topic}/{p.partition}" for p in partitions])
        tps = [(p.topic, p.partition) for p in partitions]
        self._lanes.assign(tps)  # new partitions to the least loaded lanes
        self._partitions.add(tps)
        self._owned_changed()
        paused = [p for p in partitions if self._partitions.lane_paused((p.topic, p.partition))]
        if not partitions or (self._ledger is None and not paused):
            return
        # The client applies the assignment after this callback returns, which would undo a pause made
        # here; assigning ourselves first makes the pause stick.
        try:
            consumer.assign(partitions)
        except KafkaException:  # cooperative rebalancing: assignments change incrementally
            consumer.incremental_assign(partitions)
        consumer.pause(partitions if self._ledger is not None else paused)
        if self._ledger is not None:  # paused until the scan says which records were delivered already
            try:
                committed = consumer.committed(partitions, timeout=10)
                positions: dict[TopicPartitionKey, int | None] = {
                    (tp.topic, tp.partition): tp.offset if tp.error is None else None for tp in committed
                }
            except KafkaException as exc:  # unknown: nothing is skipped (a possible duplicate, never a loss)
                _log.warning("committed_unknown error=%s (the ledger skips nothing for these partitions)", exc)
                positions = {tp: None for tp in tps}
            for tp in positions:
                state = self._partitions.owned.get(tp)
                if state is not None:
                    state.scanning = True
            self._ledger.scan(positions)

    def on_revoke(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        revoked = [(p.topic, p.partition) for p in partitions]
        self._gone.update(revoked)
        _log.info("revoked partitions=%s", [f"{t}/{p}" for t, p in revoked])
        if not self.closing:
            self._drain(self._revoke_timeout_s)
            self._commit()
            if self._tracker.unsettled():
                _log.warning("revoke_abandoned unsettled=%d (they will be redelivered)", self._tracker.unsettled())
            self._abandon()
            # Abandoned work of partitions we keep (cooperative rebalancing) must be read again.
            for tp in set(self._partitions) - set(revoked):
                self.rewind(tp)
        self.forget(revoked)
        if not self.closing:  # nothing is in flight now: the kept partitions may change lanes
            self._lanes.respread()

    def on_lost(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        lost = [(p.topic, p.partition) for p in partitions]
        self._gone.update(lost)
        _log.warning("lost partitions=%s (nothing more is committed for them)", [f"{t}/{p}" for t, p in lost])
        self._handle_lost(frozenset(lost))  # others' records still go out
        self.forget(lost)

    def begin_consume(self) -> None:
        """Before each consume call: `without_stale` then knows what that call revoked or lost."""
        self._gone.clear()

    def without_stale(self, messages: list[Message]) -> list[Message]:
        """The messages of a consume call, less those of partitions it revoked or lost: fetched before the
        revoke, they are returned by the call that served it. Seen in a benchmark: a session timeout revoked
        every partition, its call returned records up to offset 7999, and once the partition was assigned
        again and read from its committed offset the tracker refused offset 0 ("tracked after 7999").
        A partition assigned again within the same call is sought back to the first record dropped, so a
        record of the new assignment dropped with the stale ones is read again, never lost."""
        if not self._gone or not messages:
            return messages
        kept: list[Message] = []
        rewind: dict[TopicPartitionKey, int] = {}
        for message in messages:
            tp: TopicPartitionKey = (message.topic(), message.partition())  # type: ignore[assignment]
            if tp not in self._gone:
                kept.append(message)
            elif message.error() is None and tp in self._partitions.owned:
                offset: int = message.offset()  # type: ignore[assignment]
                rewind[tp] = min(rewind.get(tp, offset), offset)
        for tp, offset in rewind.items():
            self._consumer.seek(TopicPartition(tp[0], tp[1], offset))
        if len(kept) < len(messages):
            _log.warning("stale_records_dropped records=%d partitions=%d (read again by their owner)",
                         len(messages) - len(kept), len(self._gone))  # fmt: skip
        return kept

    def finish_scans(self) -> None:
        """Take the ledger's finished scans: their partitions skip what was delivered, and fetch again."""
        if self._ledger is None:
            return
        ready: list[TopicPartitionKey] = []
        for scan in self._ledger.completed():
            state = self._partitions.owned.get(scan.tp)
            if state is None or not state.scanning:
                continue  # revoked meanwhile
            state.scanning = False
            if scan.delivered:
                state.skip = scan.delivered
            if scan.checkpoint is not None:  # reset backwards: later scans start after the replayed results
                self._reporter.produce_plain(self._ledger.topic, *scan.checkpoint)
            _log.info(
                "ledger_scan topic=%s partition=%d committed=%d results_from=%d scanned=%d "
                "already_delivered=%d ms=%.0f",
                scan.tp[0], scan.tp[1], scan.committed, scan.start, scan.scanned, len(scan.delivered),
                scan.seconds * 1000,
            )  # fmt: skip
            ready.append(scan.tp)
        self._partitions.resume(ready)  # those not held by their lane or the registry

    def forget(self, tps: list[TopicPartitionKey]) -> None:
        """Everything this member knew of `tps`, at once."""
        self._tracker.forget(tps)
        self._partitions.forget(tps)
        self._lanes.release(tps)
        if self._ledger is not None:
            self._ledger.forget(tps)
            if not self._partitions.owned:
                self._ledger.cancel()
        self._metrics.forget_partitions(tps)
        self._owned_changed()

    def rewind(self, tp: TopicPartitionKey) -> None:
        """Read `tp` again from its first unsettled offset (its in-flight work was abandoned)."""
        state = self._partitions.owned.get(tp)
        if state is not None:
            state.at_end = False
        first = self._tracker.first_unsettled(tp)
        if first is not None:
            self._tracker.forget([tp])
            self._consumer.seek(TopicPartition(tp[0], tp[1], first))

    def _owned_changed(self) -> None:
        self._metrics.assigned_partitions.set(len(self._partitions))
        self._health.set_assigned(bool(self._partitions))
        if self._budget_share is not None and not self.closing:
            self._budget_share.update(self._partitions.owned.keys())

"""Rebalance: what this member does when the group gives it partitions, takes them back, or loses them.

Both rebalance protocols (consume/rebalance_protocol.py; docs/decisions/0021-cooperative-rebalancing.md).
EAGER: a revoke takes every partition and an assignment gives the whole new set. COOPERATIVE: the callbacks
get only the partitions that move (an assignment adds them, a revoke takes only them, often an empty
assignment in between), and the partitions kept go on flowing: their batches and in-flight work stay.

- Assigned: each gets its `PartitionState`. With a ledger, they stay paused until the assignment scan has
  read which of their records already have a result of ours written after the group's last commit (those
  are skipped, not sent again: `finish_scans`); a lane over its share keeps them paused too. Only the
  partitions added are scanned. To pause at once we apply the assignment ourselves: `assign` (EAGER) or
  `incremental_assign` (COOPERATIVE, where `assign` is an error); else the client applies it after us.
- Revoked: the open batches are sent now; the loop waits (bounded by `revoke_timeout_s`) for what is in
  flight of the revoked partitions (EAGER: all of them), serving and committing the others' meanwhile,
  commits what settled, abandons the rest (redelivered to the next owner), then lets the partitions go.
  EAGER abandons every lane. COOPERATIVE abandons nothing when the revoked partitions settled in time; else
  only the lanes holding their unsettled work, and the kept partitions of those lanes are read again from
  their first unsettled record (`rewind`); the other lanes are not touched.
- Lost (the group moved on without us): nothing more is committed for them; records of other partitions
  already consumed still go out.

The request budget's share is recomputed from the whole assignment after each change (`Partitions.owned`:
the increments applied), never from an increment; inside a callback `consumer.assignment()` does not yet
show a cooperative increment, so it is not what we read. It is recomputed after the consume call, not in the
callback (`update_budget_share`: no `list_topics` inside a rebalance callback).

Lanes: assigned partitions go to the least loaded lanes (`LaneSet.assign`), and after a revoke, when nothing
of the kept partitions is in flight, they are spread again so that lane loads differ by at most one
(`respread`). After a loss, or a cooperative revoke while kept partitions have work in flight, they keep
their lanes until a later rebalance (a partition never changes lane with work in flight: order).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from typing import Any

from confluent_kafka import KafkaException, Message, TopicPartition

from connector.consume.budget_share import BudgetShare
from connector.consume.partitions import Partitions
from connector.consume.rebalance_protocol import COOPERATIVE, EAGER
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
    """The consumer's rebalance callbacks. `drain(timeout_s, only)` sends the open batches and waits for what
    is in flight (of the partitions `only`, or all); `handle_lost(lost)` handles consumed records except those
    of `lost`; `commit()` commits now; `abandon(slots)` drops what the lanes of `slots` (None: all) have in
    flight. They are the pipeline's. `cooperative`: the group's protocol is COOPERATIVE."""

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
        drain: Callable[[float, Collection[TopicPartitionKey] | None], None],
        handle_lost: Callable[[frozenset[TopicPartitionKey]], None],
        commit: Callable[[], None],
        abandon: Callable[[Collection[int] | None], None],
        budget_share: BudgetShare | None = None,
        cooperative: bool = False,
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
        self.cooperative = cooperative
        self._gone: set[TopicPartitionKey] = set()  # revoked, lost or rewound during the current consume call
        self._rewound: dict[TopicPartitionKey, int] = {}  # kept partitions sought back during that call
        self._share_due = False  # the assignment changed: the budget share is recomputed after the call
        self._share_owned = 0  # partitions owned when the share was last recomputed
        self.closing = False  # set by `run` once it has drained: a revoke at close only forgets

    def on_assign(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        tps = [(p.topic, p.partition) for p in partitions]
        if self.cooperative and not tps:
            return  # cooperative rounds without a change for us (common): nothing to log or do
        _log.info("assigned partitions=%s protocol=%s", [f"{t}/{p}" for t, p in tps], self._protocol)
        self._lanes.assign(tps)  # new partitions to the least loaded lanes
        self._partitions.add(tps)
        self._owned_changed()
        paused = [p for p in partitions if self._partitions.lane_paused((p.topic, p.partition))]
        if not partitions or (self._ledger is None and not paused):
            return
        # The client applies the assignment after this callback returns, which would undo a pause made
        # here; assigning ourselves first makes the pause stick. Under COOPERATIVE `assign` is an error.
        if self.cooperative:
            consumer.incremental_assign(partitions)
        else:
            consumer.assign(partitions)
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
        if self.cooperative and not revoked:
            return
        self._gone.update(revoked)
        _log.info("revoked partitions=%s protocol=%s", [f"{t}/{p}" for t, p in revoked], self._protocol)
        abandoned = False
        if not self.closing:
            if self.cooperative:
                abandoned = self._revoke_some(revoked)
            else:
                self._revoke_all()
        self.forget(revoked)
        # A partition changes lane only when nothing of it is in flight (per-partition order). After an abandon
        # the kept partitions read again are not tracked, but a POST of theirs may still be out on the abandoned
        # lane (an HTTP request cannot be cancelled): they stay on that lane, whose next request waits for it.
        if not self.closing and not abandoned and not self._tracker.unsettled():
            self._lanes.respread()

    def _revoke_all(self) -> None:
        """EAGER: everything we own is revoked. Settle what can be, commit, abandon the rest."""
        self._drain(self._revoke_timeout_s, None)
        self._commit()
        if self._tracker.unsettled():
            _log.warning("revoke_abandoned unsettled=%d (they will be redelivered)", self._tracker.unsettled())
        self._abandon(None)

    def _revoke_some(self, revoked: list[TopicPartitionKey]) -> bool:
        """COOPERATIVE: only `revoked` goes. Wait for its work (the others flow meanwhile), commit, and if some
        of it is still unsettled, abandon only the lanes holding it and read their kept partitions again.
        Returns whether lanes were abandoned."""
        self._drain(self._revoke_timeout_s, revoked)
        self._commit()
        left = {tp: n for tp in revoked if (n := self._tracker.unsettled(tp))}
        if not left:
            return False
        slots = {self._lanes.lane_of(tp) for tp in left}
        kept = [tp for tp in self._partitions if tp not in set(revoked) and self._lanes.lane_of(tp) in slots]
        _log.warning(
            "revoke_abandoned unsettled=%d lanes=%s kept_partitions_reread=%d (they will be redelivered)",
            sum(left.values()), sorted(slots), len(kept),
        )  # fmt: skip
        self._abandon(slots)
        for tp in kept:
            self.rewind(tp)
        return True

    def on_lost(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        lost = [(p.topic, p.partition) for p in partitions]
        self._gone.update(lost)
        _log.warning("lost partitions=%s (nothing more is committed for them)", [f"{t}/{p}" for t, p in lost])
        self._handle_lost(frozenset(lost))  # others' records still go out
        self.forget(lost)

    def begin_consume(self) -> None:
        """Before each consume call: `without_stale` then knows what that call revoked or lost."""
        self._gone.clear()
        self._rewound.clear()

    def without_stale(self, messages: list[Message]) -> list[Message]:
        """The messages of a consume call, less those of partitions it revoked or lost: fetched before the
        revoke, they are returned by the call that served it. Seen in a benchmark: a session timeout revoked
        every partition, its call returned records up to offset 7999, and once the partition was assigned
        again and read from its committed offset the tracker refused offset 0 ("tracked after 7999").
        A partition assigned again within the same call is sought back to the first record dropped, so a
        record of the new assignment dropped with the stale ones is read again, never lost. A kept partition
        rewound by a cooperative revoke is treated alike: its records of this call (fetched before the seek)
        are dropped, and it is read again from its rewind point or the first dropped, whichever is lower."""
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
                rewind[tp] = min(rewind.get(tp, offset), offset, self._rewound.get(tp, offset))
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
            self._gone.add(tp)  # this consume call's records of it were fetched before the seek
            self._rewound[tp] = first

    @property
    def _protocol(self) -> str:
        return COOPERATIVE if self.cooperative else EAGER

    def _owned_changed(self) -> None:
        self._metrics.assigned_partitions.set(len(self._partitions))
        self._health.set_assigned(bool(self._partitions))
        self._share_due = self._budget_share is not None and not self.closing

    def update_budget_share(self) -> None:
        """After a consume call, never inside a callback: the share reads the topics' metadata, and
        confluent-kafka's `list_topics` clears the consume call's callback state, so the next rebalance
        callback of that same call aborts the process (`CallState_get: Assertion cs != NULL`; seen with
        cooperative rebalancing, whose revoke and assignment callbacks often share one call)."""
        if not self._share_due or self._budget_share is None or self.closing:
            return
        owned = self._partitions.owned
        if len(owned) > self._share_owned and any(state.scanning for state in owned.values()):
            # Partitions gained and still paused for their ledger scan send nothing yet, so the smaller share
            # stands until the scans end; then `list_topics` (95 ms on Tansu) runs while their first fetch does
            # instead of before it (the scan, 64 ms, ran beside it and waited for it).
            return
        self._share_due = False
        self._share_owned = len(owned)
        self._budget_share.update(owned.keys())

"""Commits: what the offset tracker says is settled, then the ledger's checkpoint.

Only positions below which every tracked offset is settled are committed (settle/offsets.py): an event is
settled when Kafka acknowledged its result (after RD's 200) or its dead letter, or it needed nothing sent.
A commit runs at most every `commit_interval_s` (or forced: revoke, stop). The ledger checkpoint is
produced after the commit succeeded: a crash in between only lengthens the next assignment scan. A failed
commit is retried at the next interval; at worst records are redelivered (never lost).

Each commit interval also refreshes the lag per partition (from the watermarks the consumer caches from its
fetches: never a broker query) and the age of the oldest unsettled offset.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from confluent_kafka import KafkaException, TopicPartition

from connector.ledger.scan import Ledger
from connector.ops.metrics import Metrics
from connector.partition_keys import TopicPartitionKey
from connector.settle.offsets import OffsetTracker
from connector.settle.reporter import Reporter

__all__ = ["Committer", "PartitionProgress"]

_log = logging.getLogger("connector.settle.committer")


class PartitionProgress(Protocol):
    """What the committer reads and keeps of an owned partition (`consume.partitions.PartitionState`)."""

    held_until: float | None
    committed: int | None
    unsettled_since: tuple[int, float] | None
    skip: set[int]  # offsets the ledger found delivered: those below a commit are dropped from it


class Committer:
    """`owned`: the owned partitions' states (the pipeline's `Partitions.owned`; a revoke removes them)."""

    def __init__(
        self,
        *,
        consumer: Any,
        tracker: OffsetTracker,
        owned: Mapping[TopicPartitionKey, PartitionProgress],
        reporter: Reporter,
        metrics: Metrics,
        ledger: Ledger | None,
        interval_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._consumer = consumer
        self._tracker = tracker
        self._owned = owned
        self._reporter = reporter
        self._metrics = metrics
        self._ledger = ledger
        self._interval_s = interval_s
        self._clock = clock
        self._last = 0.0
        self.commits = 0

    def commit(self, force: bool = False) -> None:
        now = self._clock()
        if not force and now - self._last < self._interval_s:
            return
        self._last = now
        self._observe_progress(now)
        positions = self._tracker.committable()
        if not positions:
            return
        offsets = [TopicPartition(topic, partition, offset) for (topic, partition), offset in positions.items()]
        try:
            self._consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            _log.warning("commit_failed error=%s (will retry; at worst records are redelivered)", exc)
            return
        self._tracker.mark_committed(positions)
        for tp, position in positions.items():
            state = self._owned.get(tp)
            if state is not None:
                state.committed = position
                if state.skip:  # the ledger's delivered offsets below the commit are never read again
                    state.skip = {offset for offset in state.skip if offset >= position}
        if self._ledger is not None:  # after the commit: a crash in between only lengthens a scan
            for key, value in self._ledger.checkpoint(positions):
                self._reporter.produce_plain(self._ledger.topic, key, value)
        self.commits += 1
        _log.debug("committed %s", positions)

    def _observe_progress(self, now: float) -> None:
        positions: dict[TopicPartitionKey, int] = {}
        oldest = now
        for tp, state in self._owned.items():
            first = self._tracker.first_unsettled(tp)
            position = state.committed if state.committed is not None else first
            if position is not None:
                positions[tp] = position
            if first is None:
                state.unsettled_since = None
                continue
            seen = state.unsettled_since
            if seen is None or seen[0] != first:
                seen = state.unsettled_since = (first, now)
            oldest = min(oldest, seen[1])
        self._metrics.oldest_unsettled_age.set(now - oldest)
        self._metrics.update_lag(self._consumer, positions)

    def report_unsettled(self, waited_s: float) -> int | None:
        """After the final drain and commit: warn about what is left (consumed but neither delivered nor
        dead-lettered; partitions held for the registry; settled positions whose commit failed). Returns the
        number of unsettled events, or None when nothing at all is left."""
        unsettled = {tp: n for tp in self._tracker.partitions() if (n := self._tracker.unsettled(tp))}
        held = {tp for tp, state in self._owned.items() if state.held_until is not None} - unsettled.keys()
        uncommitted = self._tracker.committable().keys()
        if not (unsettled or held or uncommitted):
            return None
        events = sum(unsettled.values())
        _log.warning(
            "shutdown_unsettled events=%d partitions=%d held_partitions=%d uncommitted_partitions=%d drain_s=%g: "
            "not committed; they will be redelivered to the next owner of those partitions",
            events, len(unsettled), len(held), len(uncommitted), waited_s,
        )  # fmt: skip
        return events

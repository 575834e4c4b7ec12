"""The runner's loop: consume -> transform -> route -> lanes -> RD; settle -> commit. It wires the parts and
holds no rules of its own: each guarantee lives in one module, named below.

This thread owns the consumer, the batchers, the offset tracker and the producer's delivery reports, so
none of them needs a lock (short-lived wake-up threads only ask the consumer for watermarks, see
`consume/fetch_wake.py`; they are joined before it closes). Lanes (threads) only post to RD and produce
results. The loop never waits on the network: consume and producer polls are bounded by the next linger
deadline. It does wait for the transform's outcomes of a consumed batch (a decode worker keeps one batch in
flight).

| guarantee | where it lives |
|---|---|
| commit only after RD's 200 and an acknowledged result | `settle/offsets.py` (watermark), `settle/reporter.py` (acks) |
| commit, then the ledger checkpoint | `settle/committer.py` |
| every consumed record tracked before it can settle; tombstones, skips | `consume/records.py` |
| byte-exact packing, one body builder | `deliver/batch.py` |
| per-partition order (one lane slot per partition, one lane per account in it) | `deliver/lanes.py` |
| per-event results (one UUID per event, in order) | `rd/answers.py` (a 200), `settle/reporter.py` (the topic) |
| dead letters: one builder, always fitting Kafka's limit | `settle/dead_letters.py`, `settle/letter_limit.py` |
| bisection of batches RD rejects | `deliver/bisect.py` |
| retry taxonomy, waits, deadline | `rd/retry.py` (decisions), `deliver/attempt.py` (the loop) |
| OAuth: refresh, refresh once after a 401 | `rd/auth.py`, `deliver/attempt.py` |
| request budget, 429 pauses | `rd/rate.py` |
| duplicate suppression after a crash | `ledger/`, `consume/rebalance.py` (scan at assignment) |
| memory bound (backpressure per lane) | `consume/backpressure.py` |
| registry outages never dead-letter | `consume/holds.py` |
| rebalance: drain, commit, abandon, rewind | `consume/rebalance.py`, per-partition state `consume/partitions.py` |
| exit codes | `errors.py` |

On stop: the same as a revoke with `shutdown_timeout_s`, then the consumer is closed. Work left unsettled at
that deadline (or settled but not committed) is logged (`shutdown_unsettled`) and `run` returns
`EXIT_UNSETTLED` instead of 0: 0 means everything consumed was settled and committed.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Mapping, Sequence

from confluent_kafka import Consumer, Message

from connector.config.accounts import DEFAULT_ACCOUNT
from connector.consume.backpressure import Backpressure
from connector.consume.budget_share import BudgetShare
from connector.consume.holds import RegistryHolds
from connector.consume.partitions import Partitions
from connector.consume.rebalance import Rebalance
from connector.consume.records import PipelineStats, RecordRouter, has_value
from connector.deliver.lanes import LaneLike, LaneSet
from connector.errors import EXIT_CRASH, EXIT_OK, EXIT_UNSETTLED, ConnectorError
from connector.ledger.scan import Ledger
from connector.ops.metrics import Metrics
from connector.ops.probe_server import Health
from connector.partition_keys import TopicPartitionKey
from connector.settle.committer import Committer
from connector.settle.offsets import OffsetTracker
from connector.settle.reporter import Reporter, SettledCallback
from connector.transform.process import Transform

__all__ = ["Pipeline", "PipelineStats"]

_log = logging.getLogger("connector.pipeline")

_CONSUME_BATCH = 1000


class Pipeline:
    """Wires the steps; `run()` blocks until `stop()` (or a fatal lane error) and returns the exit code."""

    def __init__(
        self,
        *,
        consumer: Consumer,
        topics: Sequence[str],
        transform: Transform,
        reporter_factory: Callable[[SettledCallback], Reporter],
        lane_factory: Callable[[int, Reporter], LaneLike | Mapping[str, LaneLike]],
        lanes: int,
        batch_max_bytes: int,
        batch_max_events: int,
        linger_s: float,
        shutdown_timeout_s: float,
        max_buffered_bytes: int = 32 * 1024 * 1024,
        revoke_timeout_s: float = 30.0,
        metrics: Metrics | None = None,
        health: Health | None = None,
        ledger: Ledger | None = None,
        commit_interval_s: float = 0.2,
        clock: Callable[[], float] = time.monotonic,
        budget_share: Callable[[float], None] | None = None,
        default_account: str | None = DEFAULT_ACCOUNT,
        cooperative: bool = False,
    ) -> None:
        """`lane_factory(slot, reporter)`: the slot's lane, or its lane per RD account (account name -> lane).
        `budget_share(share)`: told this member's share of the group's RD request budget at each rebalance
        (consume/budget_share.py). `default_account`: where events whose mapping names no account go.
        `cooperative`: the group's rebalance protocol is COOPERATIVE (consume/rebalance_protocol.py): the
        rebalance callbacks get only the partitions that move."""
        self._consumer = consumer
        self._topics = list(topics)
        self._transform = transform
        self._clock = clock
        self._shutdown_timeout_s = shutdown_timeout_s
        self._stop = threading.Event()
        self._metrics = metrics or Metrics()
        self._health = health or Health()
        self.stats = PipelineStats()
        self._tracker = OffsetTracker()
        self._reporter = reporter_factory(self._on_settled)
        self._lanes = LaneSet(
            [lane_factory(i, self._reporter) for i in range(lanes)], batch_max_bytes, batch_max_events, linger_s
        )
        self._partitions = Partitions(consumer, self._lanes.lane_of)
        self._backpressure = Backpressure(lanes, max_buffered_bytes, self._partitions)
        self._committer = Committer(
            consumer=consumer,
            tracker=self._tracker,
            owned=self._partitions.owned,
            reporter=self._reporter,
            metrics=self._metrics,
            ledger=ledger,
            interval_s=commit_interval_s,
            clock=clock,
        )
        self._holds = RegistryHolds(consumer, self._partitions)
        self._router = RecordRouter(
            partitions=self._partitions,
            tracker=self._tracker,
            lanes=self._lanes,
            backpressure=self._backpressure,
            holds=self._holds,
            reporter=self._reporter,
            metrics=self._metrics,
            stats=self.stats,
            linger_s=linger_s,
            default_account=default_account,
        )
        self._rebalance = Rebalance(
            consumer=consumer,
            partitions=self._partitions,
            lanes=self._lanes,
            tracker=self._tracker,
            ledger=ledger,
            reporter=self._reporter,
            metrics=self._metrics,
            health=self._health,
            revoke_timeout_s=revoke_timeout_s,
            drain=self._drain_for,
            handle_lost=lambda lost: self._handle_transformed(self._clock(), drop=lost),
            commit=lambda: self._commit(force=True),
            abandon=self._abandon,
            cooperative=cooperative,
            budget_share=None if budget_share is None else BudgetShare(consumer, self._topics, budget_share),
        )
        self._transforming: deque[list[Message]] = deque()  # consumed, submitted to the transform, not handled

    # -- public --------------------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask `run` to finish (thread- and signal-safe)."""
        self._stop.set()

    def run(self) -> int:
        """Consume until stopped; drain, commit and close. Returns 0 only if everything consumed was settled
        and committed; else a lane's fatal exit code, 1 (the decode worker died) or `EXIT_UNSETTLED`."""
        rebalance = self._rebalance
        self._consumer.subscribe(
            self._topics, on_assign=rebalance.on_assign, on_revoke=rebalance.on_revoke, on_lost=rebalance.on_lost
        )
        fatal: ConnectorError | None = None
        try:
            while not self._stop.is_set():
                fatal = self._lanes.fatal()
                if fatal is not None:
                    break
                self._step()
        finally:
            wait_s = 0.0 if fatal else self._shutdown_timeout_s
            try:
                self._drain(self._clock() + wait_s)
            except ConnectorError as exc:  # the decode worker died: still commit what settled, and close
                _log.error("drain_failed error=%s", exc)
                fatal = fatal or exc
            self._commit(force=True)
            left = self._committer.report_unsettled(wait_s)
            self.stats.unsettled = left or 0
            self._abandon()
            rebalance.closing = True
            self._partitions.join_wakers()
            self._consumer.close()
            self._lanes.close(1.0)
            self._transform.close()
            self._reporter.flush(5.0)
        if fatal is None:
            fatal = self._lanes.fatal()
        if fatal is not None:
            return int(getattr(fatal, "exit_code", EXIT_CRASH))
        return EXIT_UNSETTLED if left is not None else EXIT_OK

    # -- the loop ------------------------------------------------------------------------------------

    def _step(self) -> None:
        self._health.beat()
        now = self._clock()
        timeout = 0 if self._transforming else self._lanes.poll_timeout(now)
        if self._backpressure.all_paused() and not self._transforming:
            # Nothing to fetch: wait on the acknowledgements that release the buffer instead. Blocking in
            # consume() here served them only every 100 ms and left the lanes idle (4 lanes at 50 ms:
            # 7.5k -> see BENCHMARKS.md).
            self._reporter.poll(timeout)
            timeout = 0
        self._rebalance.begin_consume()
        messages = self._rebalance.without_stale(self._consumer.consume(_CONSUME_BATCH, timeout))
        now = self._clock()
        if messages:
            # Each topic interned: one string object per topic, which pickle then writes once per batch, not once
            # per record (pickling 1,000 pairs to the worker 392 -> 67 us; interning costs 24). `has_value` is
            # the same test `_handle_transformed` pairs the outcomes by.
            intern = sys.intern
            self._transform.submit([(intern(m.topic()), m.value()) for m in messages if has_value(m)])  # type: ignore[arg-type, misc]
            self._transforming.append(messages)
        self._rebalance.update_budget_share()  # outside the callbacks (see there); after the submit: a worker
        # transforms while its metadata call waits
        # A transform in worker processes keeps the newest batches in flight (one per worker) while this thread
        # handles the ones before.
        self._handle_transformed(now, keep=self._transform.depth if messages else 0)
        self._lanes.send_due(now, self._partitions.caught_up)
        self._reporter.poll(0)
        self._rebalance.finish_scans()
        self._holds.release_due(now)
        self._backpressure.apply()
        self._commit()

    def _handle_transformed(self, now: float, keep: int = 0, drop: frozenset[TopicPartitionKey] = frozenset()) -> None:
        """Handle the consumed batches whose transform is done, oldest first, leaving `keep` in flight.
        Records of partitions in `drop` (lost) are left alone: never tracked, never sent."""
        handle = self._router.handle  # bound once: called per record
        holds = self._holds
        while len(self._transforming) > keep:
            messages = self._transforming.popleft()
            held = holds.count
            consumed, tombstones, trimmed = self.stats.consumed, self.stats.tombstones, self.stats.trimmed
            try:
                outcomes = iter(self._transform.collect())
                for message in messages:
                    outcome = next(outcomes) if has_value(message) else None
                    if not drop or (message.topic(), message.partition()) not in drop:
                        handle(message, now, outcome)
            except BaseException:
                # Part of a batch may be tracked and the rest not; handling a later batch would track later
                # offsets and let a commit pass the untracked ones. So nothing more is handled: what was not
                # tracked is never committed and is redelivered.
                self._transforming.clear()
                raise
            if holds.count != held:
                # A partition was held and sought back: the batches still in flight were fetched before the
                # seek, so they are handled now, while it is held (its records are dropped and read again), not
                # after a release: with several workers one could come back later and be taken as read again.
                keep = 0
            self._metrics.events_consumed.inc(self.stats.consumed - consumed)  # once per batch, not per event
            self._metrics.tombstones_skipped.inc(self.stats.tombstones - tombstones)
            self._metrics.values_trimmed.inc(self.stats.trimmed - trimmed)
        self._metrics.buffered_bytes.set(self._backpressure.total())

    def _on_settled(self, topic: str, partition: int, offsets: Sequence[int], weight: int, delivered: bool) -> None:
        """Kafka acknowledged the results (delivered) or the dead letters of these records of one partition."""
        tp = (topic, partition)
        self._tracker.settle(tp, offsets)
        if weight:
            self._backpressure.buffered[self._lanes.lane_of(tp)] -= weight
        if delivered:
            self.stats.delivered += len(offsets)
        else:
            self.stats.dead_lettered += len(offsets)

    def _commit(self, force: bool = False) -> None:
        self._committer.commit(force)
        self.stats.commits = self._committer.commits

    # -- draining ------------------------------------------------------------------------------------

    def _drain(self, deadline: float, only: Collection[TopicPartitionKey] | None = None) -> None:
        """Send every open batch and wait until everything tracked (of the partitions `only`, if given) is
        settled or `deadline` passes; the others' acknowledgements are served and committed meanwhile. A
        transform error is raised after that: what was tracked before it still settles."""
        tracker = self._tracker

        def unsettled() -> int:
            return tracker.unsettled() if only is None else sum(tracker.unsettled(tp) for tp in only)

        try:
            self._handle_transformed(self._clock())
        finally:
            self._lanes.send_open()
            while unsettled() and self._clock() < deadline and self._lanes.fatal() is None:
                self._health.beat()
                self._reporter.poll(0.05)
                self._commit()
            self._reporter.poll(0)

    def _drain_for(self, timeout_s: float, only: Collection[TopicPartitionKey] | None) -> None:
        self._drain(self._clock() + timeout_s, only)

    def _abandon(self, slots: Collection[int] | None = None) -> None:
        """The lanes of `slots` (None: all) drop their work; their buffered weight goes with it."""
        self._lanes.abandon(slots)
        self._backpressure.clear(slots)

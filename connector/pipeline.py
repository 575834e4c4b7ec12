"""The runner's loop: consume -> decode -> map -> encode -> batch -> lanes; settle -> commit.

This thread owns the consumer, the batchers, the offset tracker and the producer's delivery reports, so
none of them needs a lock (short-lived wake-up threads only ask the consumer for watermarks, see
`fetch_wake`; they are joined before it closes). Lanes (threads) only post to RD and produce results. The
loop never waits on the network: consume and producer polls are bounded by the next linger deadline. It
does wait for the transform's outcomes of a consumed batch (a decode worker keeps one batch in flight).

Guarantees kept here:
- An offset is committed only when it and all earlier offsets of its partition are settled (delivered
  and result acknowledged, or dead-lettered and acknowledged, or a skipped tombstone).
- On revoke: batches are sent now; the loop waits (bounded) for what is in flight, commits what settled,
  abandons the rest (it will be redelivered to the next owner), then lets the partitions go.
- On stop: the same with `shutdown_timeout_s`, then the consumer is closed. Work left unsettled at that
  deadline (or settled but not committed) is logged (`shutdown_unsettled`) and `run` returns
  `EXIT_UNSETTLED` instead of 0: 0 means everything consumed was settled and committed.
- Memory: each lane may hold its share of `max_buffered_bytes` (the real memory of its in-flight events);
  a lane over it pauses its own partitions (the loop keeps polling, so the group never evicts us) and
  resumes them below half of it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, Consumer, KafkaError, KafkaException, Message, TopicPartition

from connector.consume.fetch_wake import WAKE_TIMEOUT_S, wake_fetchers
from connector.deliver.batch import Batcher, Item, item_weight
from connector.deliver.lanes import Lane
from connector.errors import EXIT_CRASH, EXIT_OK, EXIT_UNSETTLED, ConnectorError
from connector.ledger.scan import Ledger
from connector.ops.metrics import Metrics
from connector.ops.probe_server import Health
from connector.partition_keys import TopicPartitionKey, stable_slot
from connector.settle.offsets import OffsetTracker
from connector.settle.reporter import DeadLetter, Headers, Reporter, SettledCallback
from connector.transform.process import REFUSED, REGISTRY_DOWN, SKIPPED, Outcome, Transform

__all__ = ["Pipeline", "PipelineStats"]

_log = logging.getLogger("connector.pipeline")

_CONSUME_BATCH = 1000
_MAX_BACKDATE_S = 0.1
_REGISTRY_RETRY_S = 2.0
_HELD_RECHECK_S = 0.005


@dataclass(slots=True)
class PipelineStats:
    consumed: int = 0
    delivered: int = 0
    dead_lettered: int = 0
    tombstones: int = 0
    skipped: int = 0  # by their mapping (`skip`): committed, nothing sent
    trimmed: int = 0
    commits: int = 0
    duplicates_suppressed: int = 0
    unsettled: int = 0  # consumed, neither delivered nor dead-lettered when `run` gave up on them


class Pipeline:
    """Wires the steps; `run()` blocks until `stop()` (or a fatal lane error) and returns the exit code."""

    def __init__(
        self,
        *,
        consumer: Consumer,
        topics: Sequence[str],
        transform: Transform,
        reporter_factory: Callable[[SettledCallback], Reporter],
        lane_factory: Callable[[int, Reporter], Lane],
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
    ) -> None:
        self._consumer = consumer
        self._topics = list(topics)
        self._transform = transform
        self._reporter = reporter_factory(self._on_settled)
        self._lanes = [lane_factory(i, self._reporter) for i in range(lanes)]
        self._batchers = [Batcher(batch_max_bytes, batch_max_events, linger_s) for _ in range(lanes)]
        self._linger_s = linger_s
        self._tracker = OffsetTracker()
        self._shutdown_timeout_s = shutdown_timeout_s
        self._revoke_timeout_s = revoke_timeout_s
        self._max_buffered = max_buffered_bytes
        self._lane_buffered = [0] * lanes  # the cap is shared evenly: each lane pauses only its own partitions
        self._paused_lanes: set[int] = set()
        self._lane_of: dict[TopicPartitionKey, int] = {}
        self._held: dict[TopicPartitionKey, float] = {}  # partitions waiting for the schema registry
        self._assigned: set[TopicPartitionKey] = set()
        self._stop = threading.Event()
        self._last_commit = 0.0
        self._metrics = metrics or Metrics()
        self._health = health or Health()
        self._ledger = ledger
        self._commit_interval_s = commit_interval_s
        self._scanning: set[TopicPartitionKey] = set()  # paused until the ledger scan says what to skip
        self._skip: dict[TopicPartitionKey, set[int]] = {}  # offsets whose result already exists
        self._committed: dict[TopicPartitionKey, int] = {}  # last committed position per owned partition
        self._unsettled_since: dict[TopicPartitionKey, tuple[int, float]] = {}  # first unsettled offset, seen at
        self._wakers: list[threading.Thread] = []
        self._transforming: deque[list[Message]] = deque()  # consumed, submitted to the transform, not handled
        self._at_end: set[TopicPartitionKey] = set()  # read up to the end (a partition EOF since the last record)
        self.stats = PipelineStats()

    # -- public --------------------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask `run` to finish (thread- and signal-safe)."""
        self._stop.set()

    def run(self) -> int:
        """Consume until stopped; drain, commit and close. Returns 0 only if everything consumed was settled
        and committed; else a lane's fatal exit code, 1 (the decode worker died) or `EXIT_UNSETTLED`."""
        self._consumer.subscribe(
            self._topics, on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
        )
        fatal: ConnectorError | None = None
        try:
            while not self._stop.is_set():
                fatal = self._lane_fatal()
                if fatal is not None:
                    break
                self._step()
        finally:
            wait_s = 0.0 if fatal else self._shutdown_timeout_s
            try:
                self._drain(time.monotonic() + wait_s)
            except ConnectorError as exc:  # the decode worker died: still commit what settled, and close
                _log.error("drain_failed error=%s", exc)
                fatal = fatal or exc
            self._commit(force=True)
            left = self._report_unsettled(wait_s)
            self._abandon_all()
            self._closing = True
            for waker in self._wakers:
                waker.join(WAKE_TIMEOUT_S + 1)  # they use the consumer; each gives up within WAKE_TIMEOUT_S
            self._consumer.close()
            for lane in self._lanes:
                lane.close(1.0)
            self._transform.close()
            self._reporter.flush(5.0)
        if fatal is None:
            fatal = self._lane_fatal()
        if fatal is not None:
            return int(getattr(fatal, "exit_code", EXIT_CRASH))
        return EXIT_UNSETTLED if left else EXIT_OK

    # -- the loop ------------------------------------------------------------------------------------

    def _step(self) -> None:
        self._health.beat()
        now = time.monotonic()
        timeout = 0 if self._transforming else self._poll_timeout(now)
        if len(self._paused_lanes) == len(self._lanes) and not self._transforming:
            # Nothing to fetch: wait on the acknowledgements that release the buffer instead. Blocking in
            # consume() here served them only every 100 ms and left the lanes idle (4 lanes at 50 ms:
            # 7.5k -> see BENCHMARKS.md).
            self._reporter.poll(timeout)
            timeout = 0
        messages = self._consumer.consume(_CONSUME_BATCH, timeout)
        now = time.monotonic()
        if messages:
            self._transform.submit([(m.topic(), m.value()) for m in messages if _has_value(m)])  # type: ignore[misc]
            self._transforming.append(messages)
        # An overlapping transform keeps the newest batch in flight while this thread handles the one before.
        self._handle_transformed(now, keep=1 if messages and self._transform.overlaps else 0)
        for index, (lane, batcher) in enumerate(zip(self._lanes, self._batchers, strict=True)):
            if lane.queued():
                # The lane has batches waiting: the open batch would wait behind them anyway, so it keeps
                # filling until the lane takes up its last one, instead of going out partial now. Same
                # delivery time for its events, fuller requests (4 lanes at 50 ms: 758 -> 734 requests,
                # 17.0k -> 17.3k events/s).
                continue
            batch = batcher.due(now, caught_up=batcher.pending > 0 and self._caught_up(index))
            if batch is not None:
                lane.submit(batch)
        self._reporter.poll(0)
        self._finish_scans()
        self._release_held(now)
        self._apply_backpressure()
        self._commit()

    def _handle_transformed(self, now: float, keep: int = 0, drop: frozenset[TopicPartitionKey] = frozenset()) -> None:
        """Handle the consumed batches whose transform is done, oldest first, leaving `keep` in flight.
        Records of partitions in `drop` (lost) are left alone: never tracked, never sent."""
        while len(self._transforming) > keep:
            messages = self._transforming.popleft()
            consumed, tombstones = self.stats.consumed, self.stats.tombstones
            try:
                outcomes = iter(self._transform.collect())
                for message in messages:
                    outcome = next(outcomes) if _has_value(message) else None
                    if not drop or (message.topic(), message.partition()) not in drop:
                        self._handle(message, now, outcome)
            except BaseException:
                # Part of a batch may be tracked and the rest not; handling a later batch would track later
                # offsets and let a commit pass the untracked ones. So nothing more is handled: what was not
                # tracked is never committed and is redelivered.
                self._transforming.clear()
                raise
            self._metrics.events_consumed.inc(self.stats.consumed - consumed)  # once per batch, not per event
            self._metrics.tombstones_skipped.inc(self.stats.tombstones - tombstones)
        self._metrics.buffered_bytes.set(sum(self._lane_buffered))

    def _caught_up(self, lane: int) -> bool:
        """Whether every partition of `lane` has been read to its end (nothing more to batch right now)."""
        return all(tp in self._at_end for tp in self._assigned if self._lane_index(tp) == lane)

    def _poll_timeout(self, now: float) -> float:
        """Until the next batch's linger ends (at most 100 ms). A batch held behind its lane's queue (see
        `_step`) is looked at again within `_HELD_RECHECK_S`: its deadline has passed, and a zero timeout
        would spin this thread, taking the GIL from the lanes, until the lane takes up its last batch."""
        timeout = 0.1
        for lane, batcher in zip(self._lanes, self._batchers, strict=True):
            deadline = batcher.deadline()
            if deadline is not None:
                wait = deadline - now
                timeout = min(timeout, max(wait, _HELD_RECHECK_S) if lane.queued() else wait)
        return max(0.0, timeout)

    def _handle(self, message: Message, now: float, outcome: Outcome | None) -> None:
        """One consumed record; `outcome` is its decode+map+encode result (None for errors, tombstones)."""
        error = message.error()
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                tp = (cast(str, message.topic()), cast(int, message.partition()))
                if tp in self._assigned and tp not in self._held:  # a held one was sought back: not at its end
                    self._at_end.add(tp)
            else:
                _log.warning("consume_error error=%s", error)
            return
        # Annotated, not cast(): this runs for every record, and cast() is a call (as is building `X | None`).
        topic: str = message.topic()  # type: ignore[assignment]
        partition: int = message.partition()  # type: ignore[assignment]
        offset: int = message.offset()  # type: ignore[assignment]
        tp = (topic, partition)
        self._at_end.discard(tp)
        if tp in self._held:
            return  # re-fetched after the registry is back (we seeked to the held offset)
        value = message.value()
        self.stats.consumed += 1
        skip = self._skip.get(tp)
        if skip and offset in skip:  # delivered before a crash: its result is in the ledger
            skip.discard(offset)
            self._tracker.track(tp, offset)
            self._tracker.settle(tp, (offset,))
            self.stats.duplicates_suppressed += 1
            self._metrics.duplicates_suppressed.inc()
            return
        if value is None:
            self._tracker.track(tp, offset)
            self.stats.tombstones += 1
            self._tracker.settle(tp, (offset,))
            return
        lane = self._lane_index(tp)
        batcher = self._batchers[lane]
        assert outcome is not None
        if outcome[0] == REGISTRY_DOWN:
            self._hold(tp, offset, now, outcome[1])
            return
        if outcome[0] == REFUSED:
            self._tracker.track(tp, offset)
            self._dead_letter(message, outcome[1], outcome[2], outcome[3], outcome[4])
            return
        if outcome[0] == SKIPPED:  # like a tombstone: settled at once, so its offset commits with its neighbours'
            self._tracker.track(tp, offset)
            self._tracker.settle(tp, (offset,))
            self.stats.skipped += 1
            self._metrics.skipped(outcome[1])
            return
        _, event_type, event_id, data, trims = outcome
        if not batcher.fits_alone(len(data)):
            self._tracker.track(tp, offset)
            self._dead_letter(
                message,
                "map",
                "event_too_large",
                f"{event_type} event is {len(data)} bytes; a batch body is capped at {batcher.max_bytes}",
            )
            return
        self._tracker.track(tp, offset)
        self.stats.trimmed += trims
        headers: Headers | None = message.headers()  # type: ignore[assignment]
        item = Item(topic, partition, offset, message.key(), event_type, event_id, data, value, headers)
        weight = item_weight(item)
        self._lane_buffered[lane] += weight
        if batcher.opens_batch(len(data)):  # only a batch's first event says when it opened
            age = _broker_age(message)
            closed = batcher.add(item, now - min(age, _MAX_BACKDATE_S, self._linger_s), arrived_at=now - age)
        else:
            closed = batcher.add(item, now)
        for batch in closed:
            self._lanes[lane].submit(batch)

    def _dead_letter(
        self, message: Message, stage: str, reason: str, detail: str, log_detail: str | None = None
    ) -> None:
        self._reporter.dead_letter(
            DeadLetter.of(message, stage=stage, reason=reason, detail=detail, log_detail=log_detail)
        )

    def _on_settled(self, topic: str, partition: int, offset: int, weight: int, delivered: bool) -> None:
        """Kafka acknowledged the result (delivered) or the dead letter of this record."""
        self._tracker.settle((topic, partition), (offset,))
        if weight:
            self._lane_buffered[self._lane_index((topic, partition))] -= weight
        if delivered:
            self.stats.delivered += 1
        else:
            self.stats.dead_lettered += 1

    # -- schema registry outage: hold the partition, retry later ---------------------------------------

    def _hold(self, tp: TopicPartitionKey, offset: int, now: float, exc: object) -> None:
        _log.warning("registry_unavailable topic=%s partition=%d offset=%d retry_s=%.1f error=%s",
                     tp[0], tp[1], offset, _REGISTRY_RETRY_S, exc)  # fmt: skip
        self._held[tp] = now + _REGISTRY_RETRY_S
        self._at_end.discard(tp)
        partition = TopicPartition(tp[0], tp[1], offset)
        self._consumer.pause([partition])
        self._consumer.seek(partition)

    def _release_held(self, now: float) -> None:
        ready = [tp for tp, at in self._held.items() if at <= now]
        for tp in ready:
            del self._held[tp]
            if tp in self._assigned and not self._is_paused(tp) and tp not in self._scanning:
                self._resume([tp])

    # -- backpressure ----------------------------------------------------------------------------------

    def _lane_index(self, tp: TopicPartitionKey) -> int:
        """The lane of a partition: a stable hash, so a partition always uses the same lane (its order)."""
        lane = self._lane_of.get(tp)
        if lane is None:
            lane = self._lane_of[tp] = stable_slot(tp[0], tp[1], len(self._lanes))
        return lane

    def _is_paused(self, tp: TopicPartitionKey) -> bool:
        return self._lane_index(tp) in self._paused_lanes

    def _apply_backpressure(self) -> None:
        """Each lane may buffer its share of `max_buffered_bytes`; a lane over it pauses its own partitions
        and resumes them below half. One shared cap let the partitions fetched first fill the whole buffer
        while the other lanes sat idle (4 lanes at 50 ms ran at 2.3x one lane)."""
        share = self._max_buffered // len(self._lanes)
        for lane, buffered in enumerate(self._lane_buffered):
            if lane not in self._paused_lanes and buffered >= share:
                self._paused_lanes.add(lane)
                self._consumer.pause([TopicPartition(*tp) for tp in self._assigned if self._lane_index(tp) == lane])
                _log.info("paused lane=%d buffered_bytes=%d", lane, buffered)
            elif lane in self._paused_lanes and buffered < share // 2:
                self._paused_lanes.discard(lane)
                held = self._held.keys() | self._scanning
                self._resume([tp for tp in self._assigned if self._lane_index(tp) == lane and tp not in held])
                _log.info("resumed lane=%d buffered_bytes=%d", lane, buffered)

    def _resume(self, tps: list[TopicPartitionKey]) -> None:
        """Resume, and wake the fetchers: librdkafka would otherwise fetch them only within 1 s (fetch_wake)."""
        if not tps:
            return
        partitions = [TopicPartition(*tp) for tp in tps]
        self._consumer.resume(partitions)
        self._wakers = [w for w in self._wakers if w.is_alive()]
        waker = wake_fetchers(self._consumer, partitions)
        if waker is not None:
            self._wakers.append(waker)

    # -- commits ---------------------------------------------------------------------------------------

    def _commit(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_commit < self._commit_interval_s:
            return
        self._last_commit = now
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
        self._committed.update(positions)
        if self._ledger is not None:  # after the commit: a crash in between only lengthens a scan
            for key, value in self._ledger.checkpoint(positions):
                self._reporter.produce_plain(self._ledger.topic, key, value)
        self.stats.commits += 1
        _log.debug("committed %s", positions)

    def _finish_scans(self) -> None:
        if self._ledger is None:
            return
        ready: list[TopicPartitionKey] = []
        for scan in self._ledger.completed():
            if scan.tp not in self._scanning:
                continue  # revoked meanwhile
            self._scanning.discard(scan.tp)
            if scan.delivered:
                self._skip[scan.tp] = scan.delivered
            if scan.checkpoint is not None:  # reset backwards: later scans start after the replayed results
                self._reporter.produce_plain(self._ledger.topic, *scan.checkpoint)
            _log.info(
                "ledger_scan topic=%s partition=%d committed=%d results_from=%d scanned=%d "
                "already_delivered=%d ms=%.0f",
                scan.tp[0], scan.tp[1], scan.committed, scan.start, scan.scanned, len(scan.delivered),
                scan.seconds * 1000,
            )  # fmt: skip
            if not self._is_paused(scan.tp) and scan.tp not in self._held:
                ready.append(scan.tp)
        self._resume(ready)

    def _observe_progress(self, now: float) -> None:
        """Lag per partition (from the watermarks the consumer caches from its fetches: never a broker query)
        and the age of the oldest unsettled offset, refreshed every commit interval."""
        positions: dict[TopicPartitionKey, int] = {}
        oldest = now
        for tp in self._assigned:
            first = self._tracker.first_unsettled(tp)
            committed = self._committed.get(tp)
            position = committed if committed is not None else first
            if position is not None:
                positions[tp] = position
            if first is None:
                self._unsettled_since.pop(tp, None)
                continue
            seen = self._unsettled_since.get(tp)
            if seen is None or seen[0] != first:
                seen = self._unsettled_since[tp] = (first, now)
            oldest = min(oldest, seen[1])
        self._metrics.oldest_unsettled_age.set(now - oldest)
        self._metrics.update_lag(self._consumer, positions)

    # -- draining, rebalance ---------------------------------------------------------------------------

    def _drain(self, deadline: float) -> None:
        """Send every open batch and wait until everything tracked is settled or `deadline` passes. A transform
        error is raised after that: what was tracked before it still settles."""
        try:
            self._handle_transformed(time.monotonic())
        finally:
            self._send_open_batches_and_wait(deadline)

    def _send_open_batches_and_wait(self, deadline: float) -> None:
        for lane, batcher in zip(self._lanes, self._batchers, strict=True):
            batch = batcher.flush()
            if batch is not None:
                lane.submit(batch)
        while self._tracker.unsettled() and time.monotonic() < deadline and self._lane_fatal() is None:
            self._health.beat()
            self._reporter.poll(0.05)
            self._commit()
        self._reporter.poll(0)

    def _report_unsettled(self, waited_s: float) -> bool:
        """After the final drain and commit: warn about what is left (consumed but neither delivered nor
        dead-lettered; partitions held for the registry; settled positions whose commit failed). True if any."""
        unsettled = {tp: n for tp in self._tracker.partitions() if (n := self._tracker.unsettled(tp))}
        held = self._held.keys() - unsettled.keys()
        uncommitted = self._tracker.committable().keys()
        self.stats.unsettled = sum(unsettled.values())
        if not (unsettled or held or uncommitted):
            return False
        _log.warning(
            "shutdown_unsettled events=%d partitions=%d held_partitions=%d uncommitted_partitions=%d drain_s=%g: "
            "not committed; they will be redelivered to the next owner of those partitions",
            self.stats.unsettled, len(unsettled), len(held), len(uncommitted), waited_s,
        )  # fmt: skip
        return True

    def _abandon_all(self) -> None:
        for lane in self._lanes:
            lane.abandon()
        self._lane_buffered = [0] * len(self._lanes)

    def _lane_fatal(self) -> ConnectorError | None:
        return next((lane.fatal for lane in self._lanes if lane.fatal is not None), None)

    _closing = False

    def _on_assign(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        _log.info("assigned partitions=%s", [f"{p.topic}/{p.partition}" for p in partitions])
        self._assigned.update((p.topic, p.partition) for p in partitions)
        self._owned_changed()
        paused = [p for p in partitions if self._is_paused((p.topic, p.partition))]
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
                positions = {(p.topic, p.partition): None for p in partitions}
            self._scanning.update(positions)
            self._ledger.scan(positions)

    def _on_revoke(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        revoked = [(p.topic, p.partition) for p in partitions]
        _log.info("revoked partitions=%s", [f"{t}/{p}" for t, p in revoked])
        if not self._closing:
            self._drain(time.monotonic() + self._revoke_timeout_s)
            self._commit(force=True)
            if self._tracker.unsettled():
                _log.warning("revoke_abandoned unsettled=%d (they will be redelivered)", self._tracker.unsettled())
            self._abandon_all()
            # Abandoned work of partitions we keep (cooperative rebalancing) must be read again.
            for tp in set(self._assigned) - set(revoked):
                self._rewind(tp)
        self._forget(revoked)

    def _on_lost(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        lost = [(p.topic, p.partition) for p in partitions]
        _log.warning("lost partitions=%s (nothing more is committed for them)", [f"{t}/{p}" for t, p in lost])
        self._handle_transformed(time.monotonic(), drop=frozenset(lost))  # others' records still go out
        self._forget(lost)

    def _forget(self, tps: list[TopicPartitionKey]) -> None:
        self._tracker.forget(tps)
        for tp in tps:
            self._assigned.discard(tp)
            self._held.pop(tp, None)
            self._committed.pop(tp, None)
            self._unsettled_since.pop(tp, None)
            self._scanning.discard(tp)
            self._skip.pop(tp, None)
            self._at_end.discard(tp)
        if self._ledger is not None:
            self._ledger.forget(tps)
            if not self._assigned - set(tps):
                self._ledger.cancel()
        self._metrics.forget_partitions(tps)
        self._owned_changed()

    def _owned_changed(self) -> None:
        self._metrics.assigned_partitions.set(len(self._assigned))
        self._health.set_assigned(bool(self._assigned))

    def _rewind(self, tp: TopicPartitionKey) -> None:
        self._at_end.discard(tp)
        first = self._tracker.first_unsettled(tp)
        if first is not None:
            self._tracker.forget([tp])
            self._consumer.seek(TopicPartition(tp[0], tp[1], first))


def _broker_age(message: Message) -> float:
    """How long the record waited in Kafka before we read it (its timestamp to now; 0 if unknown).

    A batch's linger counts from when its first event reached Kafka, not from when a fetch returned it (a
    broker may hold an empty fetch for `fetch.wait.max.ms`), but backdated at most `_MAX_BACKDATE_S`: that
    keeps backlogged (old) records from making every batch due at once, and bounds the effect of producer
    clock skew. The whole age counts only for a backlog's tail (`Batcher.due(now, caught_up=True)`)."""
    kind, timestamp_ms = message.timestamp()
    if kind == TIMESTAMP_NOT_AVAILABLE:
        return 0.0
    return max(0.0, time.time() - timestamp_ms / 1000)


def _has_value(message: Message) -> bool:
    """Whether a consumed message goes to the transform (not an error event, not a tombstone)."""
    return message.error() is None and message.value() is not None

"""What happens to each consumed record, given its transform outcome: the one place a record is tracked.

Every record is tracked (in consumption order) before anything can settle it, and is then settled in one of
four ways: at once (a tombstone, a record its mapping skips, one the ledger says was delivered before a
crash); by the acknowledgement of its dead letter (refused, or too large for any batch); or by the
acknowledgement of its result after RD's 200 (batched here, sent by its lane). A record whose schema the
registry cannot give now is not tracked: its partition is held and sought back to it (holds.py).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, KafkaError, Message

from connector.config.accounts import DEFAULT_ACCOUNT
from connector.consume.backpressure import Backpressure
from connector.consume.holds import RegistryHolds
from connector.consume.partitions import Partitions
from connector.deliver.lanes import LaneSet
from connector.in_flight import Item, item_weight
from connector.ops.metrics import Metrics
from connector.settle.offsets import OffsetTracker
from connector.settle.reporter import DeadLetter, Headers, Reporter
from connector.transform.outcomes import Outcome, Ready, Refused, RegistryDown

__all__ = ["PipelineStats", "RecordRouter", "has_value"]

_log = logging.getLogger("connector.consume.records")

_MAX_BACKDATE_S = 0.1
_new_item = tuple.__new__


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


class RecordRouter:
    """`handle(message, now, outcome)` for each consumed message, in order. Pipeline thread only."""

    def __init__(
        self,
        *,
        partitions: Partitions,
        tracker: OffsetTracker,
        lanes: LaneSet,
        backpressure: Backpressure,
        holds: RegistryHolds,
        reporter: Reporter,
        metrics: Metrics,
        stats: PipelineStats,
        linger_s: float,
        default_account: str | None = DEFAULT_ACCOUNT,
    ) -> None:
        """`default_account`: where events whose mapping names no account go (None: nowhere, several accounts
        and none called `default`; they are dead-lettered `unknown_account`)."""
        self._default_account = default_account
        self._owned = partitions.owned
        self._tracker = tracker
        self._lanes = lanes
        self._buffered = backpressure  # `.buffered` is replaced on clear(): read it per record
        self._holds = holds
        self._reporter = reporter
        self._metrics = metrics
        self.stats = stats
        self._linger_s = linger_s

    def handle(self, message: Message, now: float, outcome: Outcome | None) -> None:
        """One consumed record; `outcome` is its decode+map+encode result (None for errors, tombstones)."""
        error = message.error()
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                state = self._owned.get((message.topic(), message.partition()))  # type: ignore[arg-type]
                if state is not None and state.held_until is None:  # a held one was sought back: not at its end
                    state.at_end = True
            else:
                _log.warning("consume_error error=%s", error)
            return
        # Annotated, not cast(): this runs for every record, and cast() is a call (as is building `X | None`).
        topic: str = message.topic()  # type: ignore[assignment]
        partition: int = message.partition()  # type: ignore[assignment]
        offset: int = message.offset()  # type: ignore[assignment]
        tp = (topic, partition)
        state = self._owned.get(tp)
        if state is None:
            # Not ours (any more): fetched before a revoke or a loss and returned by the consume call that
            # served it. Tracking it would be a lie (and a crash: the next owner of the partition, us again
            # perhaps, reads it again from the committed offset, below what was tracked); whoever owns the
            # partition reads it again.
            return
        tracker = self._tracker
        state.at_end = False
        if state.held_until is not None:
            return  # re-fetched after the registry is back (we seeked to the held offset)
        value = message.value()
        self.stats.consumed += 1
        if state.skip and offset in state.skip:  # delivered before a crash (ledger)
            # Kept until a commit passes it (`Committer`): a cooperative rewind may read it again.
            tracker.track(tp, offset)
            tracker.settle(tp, (offset,))
            self.stats.duplicates_suppressed += 1
            self._metrics.duplicates_suppressed.inc()
            return
        if value is None:
            tracker.track(tp, offset)
            self.stats.tombstones += 1
            tracker.settle(tp, (offset,))
            return
        if type(outcome) is not Ready:
            self._not_ready(message, tp, offset, now, outcome)
            return
        ready: Ready = outcome  # narrowed above
        event_type, event_id, data, trims, account = ready
        lane = self._lanes.lane_of(tp)
        tracker.track(tp, offset)
        try:
            batcher = self._lanes.batcher(lane, account or self._default_account)  # type: ignore[arg-type]
        except KeyError:
            self._dead_letter(message, "map", "unknown_account", _no_account(account, self._lanes.accounts))
            return
        if not batcher.fits_alone(len(data)):
            self._dead_letter(
                message,
                "map",
                "event_too_large",
                f"{event_type} event is {len(data)} bytes; a batch body is capped at {batcher.max_bytes}",
            )
            return
        self.stats.trimmed += trims
        headers: Headers | None = message.headers()  # type: ignore[assignment]
        # Item's fields in order, built as Item.__new__ would but without its Python frame (once per record;
        # measured in b020637 with an inline size check since undone: -0.25 us an event for the two)
        item = _new_item(
            Item, (topic, partition, offset, message.key(), event_type, event_id, data, value, headers, batcher.account)
        )
        self._buffered.buffered[lane] += item_weight(item)
        if batcher.opens_batch(len(data)):  # only a batch's first event says when it opened
            age = _broker_age(message)
            closed = batcher.add(item, now - min(age, _MAX_BACKDATE_S, self._linger_s), arrived_at=now - age)
        else:
            closed = batcher.add(item, now)
        if closed:
            self._lanes.submit(lane, closed)

    def _not_ready(self, message: Message, tp: Any, offset: int, now: float, outcome: Outcome | None) -> None:
        if type(outcome) is RegistryDown:
            self._holds.hold(tp, offset, now, outcome.message)
            return
        self._tracker.track(tp, offset)
        if type(outcome) is Refused:
            self._dead_letter(message, outcome.stage, outcome.reason, outcome.message, outcome.log_message)
            return
        assert outcome is not None and type(outcome) is not Ready
        # Skipped by its mapping: like a tombstone, settled at once, so its offset commits with its neighbours'.
        self._tracker.settle(tp, (offset,))
        self.stats.skipped += 1
        self._metrics.skipped(outcome.mapping)  # type: ignore[union-attr]

    def _dead_letter(
        self, message: Message, stage: str, reason: str, detail: str, log_detail: str | None = None
    ) -> None:
        self._reporter.dead_letter(
            DeadLetter.of(message, stage=stage, reason=reason, detail=detail, log_detail=log_detail)
        )


def _no_account(account: str | None, accounts: list[str]) -> str:
    configured = ", ".join(accounts)
    if account is None:
        return f"its mapping names no RD account, and there are several ({configured}) without a 'default'"
    return f"RD account {account!r} is not configured (configured: {configured})"


def has_value(message: Message) -> bool:
    """Whether a consumed message goes to the transform (not an error event, not a tombstone)."""
    return message.error() is None and message.value() is not None


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

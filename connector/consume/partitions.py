"""Every owned partition's state in one object, and the one rule for whether it fetches.

A partition is paused while any of these holds: its lane is over its share of the buffer (backpressure.py),
it is held for the Schema Registry (holds.py), or the ledger's assignment scan has not said yet which of
its records were delivered already (rebalance.py). Each of those pauses it directly; each release calls
`resume`, which resumes only partitions that nothing holds any more, and wakes the fetchers (librdkafka
would otherwise fetch them only within 1 s: fetch_wake.py). Used by the pipeline thread only.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import TopicPartition

from connector.consume.fetch_wake import WAKE_TIMEOUT_S, wake_fetchers
from connector.partition_keys import TopicPartitionKey

__all__ = ["PartitionState", "Partitions"]


@dataclass(slots=True)
class PartitionState:
    """What this member knows of one partition it owns. `forget` drops all of it at once."""

    at_end: bool = False  # read up to the end (a partition EOF since the last record)
    held_until: float | None = None  # waiting for the Schema Registry until then (monotonic)
    scanning: bool = False  # paused until the ledger scan says which records were delivered already
    skip: set[int] = field(default_factory=set)  # offsets whose result already exists (from the scan)
    committed: int | None = None  # last position committed
    unsettled_since: tuple[int, float] | None = None  # the first unsettled offset, and when it was first seen


class Partitions:
    """The owned partitions (`owned`: key -> state) and their pause/resume on the consumer."""

    def __init__(
        self,
        consumer: Any,
        lane_of: Callable[[TopicPartitionKey], int],
        wake: Callable[[Any, list[TopicPartition]], threading.Thread | None] = wake_fetchers,
    ) -> None:
        self.owned: dict[TopicPartitionKey, PartitionState] = {}
        self.paused_lanes: set[int] = set()  # lanes over their share of the buffer (backpressure.py)
        self._consumer = consumer
        self._lane_of = lane_of
        self._wake = wake
        self._wakers: list[threading.Thread] = []

    def __contains__(self, tp: object) -> bool:
        return tp in self.owned

    def __iter__(self) -> Iterator[TopicPartitionKey]:
        return iter(self.owned)

    def __len__(self) -> int:
        return len(self.owned)

    def add(self, tps: Iterable[TopicPartitionKey]) -> None:
        for tp in tps:
            self.owned.setdefault(tp, PartitionState())

    def forget(self, tps: Iterable[TopicPartitionKey]) -> None:
        for tp in tps:
            self.owned.pop(tp, None)

    def of_lane(self, lane: int) -> list[TopicPartitionKey]:
        return [tp for tp in self.owned if self._lane_of(tp) == lane]

    def lane_paused(self, tp: TopicPartitionKey) -> bool:
        return self._lane_of(tp) in self.paused_lanes

    def caught_up(self, lane: int) -> bool:
        """Whether every partition of `lane` has been read to its end (nothing more to batch right now)."""
        return all(state.at_end for tp, state in self.owned.items() if self._lane_of(tp) == lane)

    def held(self) -> list[TopicPartitionKey]:
        return [tp for tp, state in self.owned.items() if state.held_until is not None]

    def fetchable(self, tp: TopicPartitionKey) -> bool:
        """Owned, and nothing holds it: not its lane, not the registry, not a ledger scan."""
        state = self.owned.get(tp)
        return (
            state is not None
            and state.held_until is None
            and not state.scanning
            and self._lane_of(tp) not in self.paused_lanes
        )

    def pause(self, tps: Iterable[TopicPartitionKey]) -> None:
        partitions = [TopicPartition(*tp) for tp in tps]
        if partitions:
            self._consumer.pause(partitions)

    def resume(self, tps: Iterable[TopicPartitionKey]) -> None:
        """Resume those of `tps` that nothing holds any more, and wake the fetchers."""
        partitions = [TopicPartition(*tp) for tp in tps if self.fetchable(tp)]
        if not partitions:
            return
        self._consumer.resume(partitions)
        self._wakers = [w for w in self._wakers if w.is_alive()]
        waker = self._wake(self._consumer, partitions)
        if waker is not None:
            self._wakers.append(waker)

    def join_wakers(self) -> None:
        """Before the consumer closes: the wake-up threads use it; each gives up within WAKE_TIMEOUT_S."""
        for waker in self._wakers:
            waker.join(WAKE_TIMEOUT_S + 1)

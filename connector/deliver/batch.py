"""Byte-exact batch packing (pure: the clock is an argument).

The body RD receives is exactly `[` + events joined by `,` + `]`, each event encoded once. A batch of n
events whose encodings have lengths l1..ln is therefore `2 + sum(li) + (n - 1)` bytes, and `Batcher`
keeps that figure exact while appending, so no body ever exceeds `max_bytes`. A batch closes when:
- the next event would push the body past `max_bytes` (the event opens the next batch), or
- it holds `max_events` events, or
- its oldest event has waited `linger_s` since it was read (checked with `due(now)`), or
- the consumer is caught up (`due(now, caught_up=True)`: nothing more to read), the batch before it closed
  full less than `linger_s` before this one opened (so this is the tail of a backlog, not a trickle), and
  its oldest event reached Kafka `linger_s` ago:
  waiting longer cannot fill it, and its events have waited their linger already (decision 0006).
Events too large to fit alone (`2 + len > max_bytes`) must be refused by the caller (`fits_alone`);
`add` raises `ValueError` for them, never sends an oversize body.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from connector.config.accounts import DEFAULT_ACCOUNT
from connector.in_flight import Item

__all__ = ["Batch", "Batcher", "body_of"]


def body_of(items: Sequence[Item]) -> bytes:
    """The request body for `items`: `[` + their events joined by `,` + `]` (the only place it is built)."""
    return b"[" + b",".join([item.event for item in items]) + b"]"


@dataclass(slots=True)
class Batch:
    """Events to send in one request, in order. `size` is the exact body length in bytes."""

    opened_at: float
    items: list[Item] = field(default_factory=list)
    size: int = 2
    arrived_at: float = 0.0  # when its oldest event reached Kafka (the caller's clock; opened_at if unknown)
    account: str = DEFAULT_ACCOUNT  # the RD account all its events go to (a batch holds one account's events)

    def body(self) -> bytes:
        return body_of(self.items)

    def __len__(self) -> int:
        return len(self.items)


class Batcher:
    """Accumulates encoded events of one RD account into byte-exact batches. Not thread-safe: one owner."""

    __slots__ = ("_full_at", "_open", "account", "linger_s", "max_bytes", "max_events")

    def __init__(self, max_bytes: int, max_events: int, linger_s: float, account: str = DEFAULT_ACCOUNT) -> None:
        if max_bytes < 3 or max_events < 1 or linger_s < 0:
            raise ValueError("max_bytes >= 3, max_events >= 1 and linger_s >= 0 are required")
        self.account = account
        self.max_bytes = max_bytes
        self.max_events = max_events
        self.linger_s = linger_s
        self._open: Batch | None = None
        self._full_at: float | None = None  # when the last batch closed full (None: it closed by linger or flush)

    def fits_alone(self, event_len: int) -> bool:
        """Whether an event of `event_len` bytes can be sent at all (a one-event body is `2 + len`)."""
        return event_len + 2 <= self.max_bytes

    def opens_batch(self, event_len: int) -> bool:
        """Whether adding an event of `event_len` bytes opens a batch (so its `now`/`arrived_at` matter)."""
        batch = self._open
        return batch is None or batch.size + 1 + event_len > self.max_bytes

    def add(self, item: Item, now: float, arrived_at: float | None = None) -> list[Batch]:
        """Append `item`; return the batches this closed (zero, one, or two when a full batch is followed
        by an event that fills the count cap on its own). `now` opens a batch (its linger counts from it);
        `arrived_at`, when the event reached Kafka (default `now`), matters only for the first event of a
        batch, and only in `due(now, caught_up=True)`."""
        length = len(item.event)
        if not self.fits_alone(length):
            raise ValueError(f"event of {length} bytes cannot fit a body of at most {self.max_bytes} bytes")
        closed: list[Batch] = []
        batch = self._open
        if batch is not None and batch.size + 1 + length > self.max_bytes:
            closed.append(batch)
            batch = None
        if batch is None:
            batch = Batch(now, arrived_at=now if arrived_at is None else min(arrived_at, now), account=self.account)
            batch.items.append(item)
            batch.size += length
        else:
            batch.items.append(item)
            batch.size += 1 + length
        if len(batch.items) >= self.max_events:
            closed.append(batch)
            batch = None
        if closed:
            self._full_at = now
        self._open = batch
        return closed

    def due(self, now: float, caught_up: bool = False) -> Batch | None:
        """Close and return the open batch if its oldest event has waited `linger_s` since the batch opened;
        or, when `caught_up` (the consumer has read everything there is for this batcher) and the batch
        before this one closed full within `linger_s` of its opening, if its oldest event reached Kafka
        `linger_s` ago (a backlog's tail; a batch opened long after a backlog ended is a trickle's)."""
        batch = self._open
        if batch is None:
            return None
        if now - batch.opened_at >= self.linger_s or (
            caught_up
            and self._full_at is not None
            and batch.opened_at - self._full_at <= self.linger_s
            and now - batch.arrived_at >= self.linger_s
        ):
            self._open = None
            self._full_at = None
            return batch
        return None

    def deadline(self) -> float | None:
        """When the open batch becomes due (None if there is none)."""
        return None if self._open is None else self._open.opened_at + self.linger_s

    def flush(self) -> Batch | None:
        """Close and return the open batch, whatever its age (shutdown, rebalance)."""
        batch, self._open = self._open, None
        if batch is not None:
            self._full_at = None
        return batch

    @property
    def pending(self) -> int:
        return 0 if self._open is None else len(self._open.items)

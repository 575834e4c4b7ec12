"""One consumed record on its way to RD: what a batch holds, and what its result or dead letter is made of.

It sits below both `deliver/` (which batches and sends items) and `settle/` (which turns them into results
and dead letters), so neither imports the other for it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from connector.config.accounts import DEFAULT_ACCOUNT

__all__ = ["ITEM_OVERHEAD", "Item", "item_weight", "items_weight"]


class Item(NamedTuple):
    """One event in flight, with the coordinates of the Kafka record it came from."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    event_type: str
    event_id: str | None
    event: bytes  # compact UTF-8 JSON of {"event_type", "event_family", "payload"}
    value: bytes | None = None  # the original Kafka value, for a dead letter if RD rejects the event
    headers: list[tuple[str, str | bytes | None]] | None = None  # the original Kafka headers, likewise
    account: str = DEFAULT_ACCOUNT  # the RD account it goes to (its mapping's `account:`; else the only/default one)


#: Python's own bytes per in-flight event beyond its payloads (sys.getsizeof): the 10-slot tuple (120), three
#: bytes objects' headers (3 x 33), the offset (28) and the event id string (~85). Counted so that the
#: buffer cap bounds real memory, not just the JSON.
ITEM_OVERHEAD = 328


def item_weight(item: Item) -> int:
    """The memory an in-flight event holds: its JSON, the original value and key, and the overhead."""
    return len(item.event) + len(item.value or b"") + len(item.key or b"") + ITEM_OVERHEAD


def items_weight(items: Iterable[Item]) -> int:
    """`item_weight` summed over `items`, in one loop without a call per item (a poll's acknowledgements)."""
    total = count = 0
    for item in items:
        total += len(item.event) + len(item.value or b"") + len(item.key or b"")
        count += 1
    return total + count * ITEM_OVERHEAD

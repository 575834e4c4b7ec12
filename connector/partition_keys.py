"""A source partition's key, and the stable hash that places its results (the results partition)."""

from __future__ import annotations

import zlib

__all__ = ["TopicPartitionKey", "stable_slot"]

TopicPartitionKey = tuple[str, int]


def stable_slot(topic: str, partition: int, slots: int) -> int:
    """One of `slots` for (topic, partition), the same in every process and every run (crc32, not the salted
    `hash()`): every instance finds a partition's results in the same results partition."""
    return zlib.crc32(f"{topic}\x00{partition}".encode()) % slots

"""Schema Registry outages: hold the partition at the record that needs it, and read it again later.

A record whose schema cannot be fetched now is not its own fault, so it is never dead-lettered for it: its
partition is paused and sought back to it, and `REGISTRY_RETRY_S` later resumed (unless something else still
holds it). Records of a held partition consumed meanwhile (already fetched) are ignored: they are read again
after the seek. So every batch fetched before the seek must be handled while the partition is still held: the
pipeline handles all the batches it has in flight as soon as a hold happens (with several decode workers some
could otherwise come back after the release and be taken as read again). A stop while held leaves the
partition uncommitted from that record on (`run` exits 6).
"""

from __future__ import annotations

import logging
from typing import Any

from confluent_kafka import TopicPartition

from connector.consume.partitions import Partitions
from connector.partition_keys import TopicPartitionKey

__all__ = ["REGISTRY_RETRY_S", "RegistryHolds"]

_log = logging.getLogger("connector.consume.holds")

REGISTRY_RETRY_S = 2.0


class RegistryHolds:
    def __init__(self, consumer: Any, partitions: Partitions, retry_s: float = REGISTRY_RETRY_S) -> None:
        self._consumer = consumer
        self._partitions = partitions
        self._retry_s = retry_s
        self.count = 0  # holds so far: the pipeline sees that one happened while it handled a batch

    def hold(self, tp: TopicPartitionKey, offset: int, now: float, error: object) -> None:
        state = self._partitions.owned.get(tp)
        if state is None:  # not ours any more: nothing to hold, nothing of it is committed
            return
        _log.warning("registry_unavailable topic=%s partition=%d offset=%d retry_s=%.1f error=%s",
                     tp[0], tp[1], offset, self._retry_s, error)  # fmt: skip
        state.held_until = now + self._retry_s
        self.count += 1
        state.at_end = False
        partition = TopicPartition(tp[0], tp[1], offset)
        self._consumer.pause([partition])
        self._consumer.seek(partition)

    def release_due(self, now: float) -> None:
        ready = [
            tp
            for tp, state in self._partitions.owned.items()
            if state.held_until is not None and state.held_until <= now
        ]
        for tp in ready:
            self._partitions.owned[tp].held_until = None
        self._partitions.resume(ready)

"""One request budget per consumer group: each member spends its share of `RDC_RD_REQUESTS_PER_MINUTE`.

RD's budget belongs to the account, but each instance used to spend all of it: three replicas at 360/min
against an account limited to 6 req/s sent 9 req/s. So a member's share is its assigned partitions of the
source topics over all their partitions, recomputed at every rebalance (the partition counts are read from
the broker's metadata then: topics grow). Partitions stand in for load: with keyed, evenly spread traffic
they are proportional to it; a skewed topic is what the adaptive rate (rd/rate.py) absorbs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Sequence
from typing import Any

from confluent_kafka import KafkaException

from connector.partition_keys import TopicPartitionKey

__all__ = ["BudgetShare"]

_log = logging.getLogger("connector.consume.budget_share")


class BudgetShare:
    """`update(owned)` after each assignment change; `apply(share)` (0 < share <= 1) when the share moves."""

    def __init__(
        self, consumer: Any, topics: Sequence[str], apply: Callable[[float], None], timeout_s: float = 5.0
    ) -> None:
        self._consumer = consumer
        self._topics = list(topics)
        self._apply = apply
        self._timeout_s = timeout_s
        self._totals: dict[str, int] = {}  # partitions per source topic, as last read
        self.share: float | None = None

    def update(self, owned: Collection[TopicPartitionKey]) -> None:
        mine = sum(1 for topic, _ in owned if topic in self._topics)
        if mine == 0:
            return  # nothing to send: the last share stands until partitions come back
        self._read_totals()
        total = sum(self._totals.get(topic, 0) for topic in self._topics)
        if total < mine:  # metadata not read (yet): spend the whole budget rather than stall
            total = mine
        share = mine / total
        if share != self.share:
            self.share = share
            self._apply(share)
            _log.info("budget_share partitions=%d of=%d share=%.3f", mine, total, share)

    def _read_totals(self) -> None:
        for topic in self._topics:
            try:
                metadata = self._consumer.list_topics(topic, timeout=self._timeout_s).topics.get(topic)
            except KafkaException as exc:  # keep what was read last: a share slightly off, never a stop
                _log.warning("budget_share_metadata_failed topic=%s error=%s", topic, exc)
                continue
            if metadata is not None and metadata.error is None and metadata.partitions:
                self._totals[topic] = len(metadata.partitions)

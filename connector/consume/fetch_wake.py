"""Wake librdkafka's fetchers after a resume, so resumed partitions are fetched now rather than in up to 1 s.

librdkafka fetches on one thread per broker. When every partition that broker leads for us is paused, the
thread sleeps until a request for that broker arrives or its 1 s maximum block time passes; `resume()` is
served on another thread and does not wake it (also seen in confluent-kafka-go#630). Measured on Tansu with
librdkafka 2.16: 560 ms from `resume()` to the first fetch, in every trial; after a pause at assignment (the
ledger scan) that was 0.6 s added to every rebalance. Any request to the broker wakes its thread, so after a
resume we send the cheapest one, a ListOffsets for one resumed partition per leader, and ignore the answer
(1-5 ms to the first fetch here). It runs on a short-lived thread, so the pipeline loop never waits on it;
the pipeline joins these threads before closing the consumer they use.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence

from confluent_kafka import Consumer, KafkaException, TopicPartition

__all__ = ["WAKE_TIMEOUT_S", "wake_fetchers"]

_log = logging.getLogger("connector.consume.fetch_wake")

WAKE_TIMEOUT_S = 2.0  # for all of one wake-up: after it the fetcher wakes on its own anyway


def wake_fetchers(consumer: Consumer, partitions: Sequence[TopicPartition]) -> threading.Thread | None:
    """Send one request to each broker leading one of `partitions`; returns the thread doing it (or None)."""
    if not partitions:
        return None
    wanted = [TopicPartition(tp.topic, tp.partition) for tp in partitions]
    thread = threading.Thread(target=_wake, args=(consumer, wanted), name="rdc-fetch-wake", daemon=True)
    thread.start()
    return thread


def _wake(consumer: Consumer, partitions: list[TopicPartition]) -> None:
    deadline = time.monotonic() + WAKE_TIMEOUT_S
    try:
        for tp in _one_per_leader(consumer, partitions, deadline):
            left = deadline - time.monotonic()
            if left <= 0:
                return
            consumer.get_watermark_offsets(tp, timeout=left, cached=False)
    except (KafkaException, RuntimeError) as exc:  # the fetcher then wakes on its own within 1 s
        _log.debug("fetch_wake_failed error=%s", exc)


def _one_per_leader(consumer: Consumer, partitions: list[TopicPartition], deadline: float) -> list[TopicPartition]:
    """One partition per distinct leader, from metadata (one Metadata request per topic, until `deadline`)."""
    if len(partitions) == 1:
        return partitions
    chosen: dict[int, TopicPartition] = {}
    for topic in sorted({tp.topic for tp in partitions}):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        metadata = consumer.list_topics(topic, timeout=left).topics.get(topic)
        leaders = {p: m.leader for p, m in metadata.partitions.items()} if metadata is not None else {}
        for tp in partitions:
            if tp.topic == topic:
                chosen.setdefault(leaders.get(tp.partition, -1), tp)
    return list(chosen.values())

"""The results topic as a ledger: after a crash, records whose result already exists are not posted again.

RD has no idempotency key, so a crash between RD's 200 and the offset commit would re-post those events.
But every delivered event has a `DeliveryResult` carrying its source topic/partition/offset. So:

- **Local results.** All results of one source partition go to one results partition
  (`results_partition(topic, partition)`, a stable hash), in source-offset order (one lane per source
  partition, an idempotent producer). A scan for one source partition reads one results partition.
- **Checkpoints.** After each successful commit of position C for a source partition, the connector writes
  `{committed: C, results_partition: rp, results_offset: R}` to the compacted ledger topic, keyed by
  group/topic/partition, where R is a results offset at or below the first result of any offset >= C.
  Commit first, checkpoint second: a crash in between leaves an older checkpoint, whose R is lower, so the
  scan is longer but still complete.
- **Scan at assignment.** For each newly assigned partition (paused until its scan is done), read its
  latest checkpoint, then read its results partition from R to the high watermark the fetches report
  (never a queried end offset: wrong on Tansu), keeping the source offsets >= the committed position that
  already have a result. The pipeline skips those records when they arrive (settled, counted as
  suppressed duplicates). Cost: what was produced to that results partition since the last checkpoint.
- **What remains.** A crash after RD's 200 but before Kafka acknowledged the results: nothing records the
  delivery, so the batch is posted again. Results are produced the moment the 200 arrives; the time from
  the 200 to the acknowledgement is that window, measured per batch (`window_s`).

If the ledger or results topic cannot be read, the scan waits and retries (the partition stays paused) and
says why; it never guesses. A partition with no checkpoint is scanned from the start of its results partition.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from connector.avro.decoder import Decoder
from connector.errors import DecodeError

__all__ = ["Ledger", "LedgerScan", "Watermarks", "results_partition"]

_log = logging.getLogger("connector.ledger")

TopicPartitionKey = tuple[str, int]
_RETRY_S = 2.0
_IDLE_FETCH_S = 0.01  # consume() waits this long unless 1,000 records are there: the end check runs after it


def results_partition(topic: str, partition: int, results_partitions: int) -> int:
    """The results partition that holds every result of source partition (topic, partition)."""
    return zlib.crc32(f"{topic}\x00{partition}".encode()) % results_partitions


@dataclass(slots=True)
class LedgerScan:
    """Outcome of one partition's scan: source offsets at/above `committed` that already have a result."""

    tp: TopicPartitionKey
    committed: int
    delivered: set[int]
    scanned: int
    seconds: float
    start: int


class Watermarks:
    """Per source partition: acknowledged results not yet under the commit watermark, in source order, and
    the results offset to checkpoint. Owned by the pipeline thread."""

    __slots__ = ("_acked", "_floor")

    def __init__(self) -> None:
        self._acked: dict[TopicPartitionKey, list[tuple[int, int]]] = {}  # (source offset, results offset)
        self._floor: dict[TopicPartitionKey, int] = {}  # results offset after the last result below the watermark

    def acked(self, tp: TopicPartitionKey, source_offset: int, results_offset: int) -> None:
        self._acked.setdefault(tp, []).append((source_offset, results_offset))

    def checkpoint_offset(self, tp: TopicPartitionKey, committed: int) -> int | None:
        """A results offset at or below the first result of any source offset >= `committed` (None: unknown,
        keep the previous checkpoint)."""
        entries = self._acked.get(tp, [])
        below = [r for s, r in entries if s < committed]
        if below:
            self._floor[tp] = max(below) + 1
        remaining = [(s, r) for s, r in entries if s >= committed]
        self._acked[tp] = remaining
        if remaining:
            return min(r for _, r in remaining)
        return self._floor.get(tp)

    def forget(self, tps: Iterable[TopicPartitionKey]) -> None:
        for tp in tps:
            self._acked.pop(tp, None)
            self._floor.pop(tp, None)


class Ledger:
    """Checkpoints (written after commits) and scans (run on a thread at assignment)."""

    def __init__(
        self,
        *,
        consumer_config: Mapping[str, Any],
        decoder: Decoder,
        results_topic: str,
        results_partitions: int,
        ledger_topic: str,
        group_id: str,
    ) -> None:
        self._config = {
            **{k: v for k, v in consumer_config.items() if not k.startswith(("group.", "partition.assign"))},
            "group.id": f"{group_id}.ledger-reader",
            "enable.auto.commit": False,
            "enable.partition.eof": False,
            # The reader stops at the high watermark; a broker that holds an empty fetch (Tansu, for the
            # whole wait) would otherwise add the consumer's 50 ms per read to every rebalance.
            "fetch.wait.max.ms": 5,
        }
        self._decoder = decoder
        self._results_topic = results_topic
        self._partitions = results_partitions
        self._partition_of: dict[TopicPartitionKey, int] = {}  # memo: the lanes ask once per result
        self.topic = ledger_topic
        self._group = group_id
        self._done: queue.SimpleQueue[LedgerScan] = queue.SimpleQueue()
        self._generation = 0
        self.marks = Watermarks()

    def result_acked(self, topic: str, partition: int, source_offset: int, results_offset: int) -> None:
        """Kafka acknowledged the result of (topic, partition, source_offset) at `results_offset`."""
        self.marks.acked((topic, partition), source_offset, results_offset)

    def results_partition(self, topic: str, partition: int) -> int:
        """`results_partition()` of this results topic, remembered (thread-safe: a dict read or write)."""
        key = (topic, partition)
        known = self._partition_of.get(key)
        if known is None:
            known = self._partition_of[key] = results_partition(topic, partition, self._partitions)
        return known

    def _key(self, tp: TopicPartitionKey) -> bytes:
        return f"{self._group}\x00{tp[0]}\x00{tp[1]}".encode()

    # -- checkpoints (pipeline thread) -----------------------------------------------------------------

    def checkpoint(self, positions: Mapping[TopicPartitionKey, int]) -> list[tuple[bytes, bytes]]:
        """After a successful commit: the (key, value) records to write to the ledger topic, saying where
        the scan for each partition may start."""
        records: list[tuple[bytes, bytes]] = []
        for tp, committed in positions.items():
            start = self.marks.checkpoint_offset(tp, committed)
            if start is None:
                continue
            value = orjson.dumps(
                {"committed": committed, "results_partition": self.results_partition(*tp), "results_offset": start}
            )
            records.append((self._key(tp), value))
        return records

    # -- scans (a thread per assignment) ---------------------------------------------------------------

    def scan(self, committed: Mapping[TopicPartitionKey, int]) -> None:
        """Start scanning for these partitions (committed position each, < 0 if none); results arrive on
        `completed()`. A later `cancel()` drops scans still running."""
        generation = self._generation
        threading.Thread(
            target=self._scan_all, args=(dict(committed), generation), name="rdc-ledger-scan", daemon=True
        ).start()

    def cancel(self) -> None:
        self._generation += 1

    def completed(self) -> list[LedgerScan]:
        found: list[LedgerScan] = []
        while True:
            try:
                found.append(self._done.get_nowait())
            except queue.Empty:
                return found

    def _scan_all(self, committed: dict[TopicPartitionKey, int], generation: int) -> None:
        while committed and generation == self._generation:
            try:
                checkpoints = self._read_checkpoints(set(committed))
                by_results_partition: dict[int, list[TopicPartitionKey]] = {}
                for tp in committed:
                    by_results_partition.setdefault(self.results_partition(*tp), []).append(tp)
                for rp, tps in by_results_partition.items():  # one read per results partition
                    if generation != self._generation:
                        return
                    for scan in self._scan_partition(rp, {tp: committed[tp] for tp in tps}, checkpoints):
                        self._done.put(scan)
                        del committed[scan.tp]
            except (KafkaException, _Unavailable) as exc:
                _log.warning("ledger_scan_waiting partitions=%d retry_s=%.0f reason=%s", len(committed), _RETRY_S, exc)
                time.sleep(_RETRY_S)

    def _read_checkpoints(self, wanted: set[TopicPartitionKey]) -> dict[TopicPartitionKey, dict[str, Any]]:
        keys = {self._key(tp): tp for tp in wanted}
        latest: dict[TopicPartitionKey, dict[str, Any]] = {}
        for message in _read_to_end(self._config, self.topic, None, 0):
            tp = keys.get(message.key() or b"")
            if tp is not None and message.value() is not None:
                try:
                    latest[tp] = orjson.loads(message.value() or b"")
                except orjson.JSONDecodeError:
                    continue
        return latest

    def _scan_partition(
        self, rp: int, committed: dict[TopicPartitionKey, int], checkpoints: Mapping[TopicPartitionKey, dict[str, Any]]
    ) -> list[LedgerScan]:
        """Read results partition `rp` once, from the lowest start any of `committed`'s partitions needs."""
        began = time.monotonic()
        starts = {tp: _start(checkpoints.get(tp), rp, position) for tp, position in committed.items()}
        delivered: dict[TopicPartitionKey, set[int]] = {tp: set() for tp in committed}
        scanned = 0
        for message in _read_to_end(self._config, self._results_topic, rp, min(starts.values())):
            scanned += 1
            try:
                record = self._decoder.decode(message.value() or b"", self._results_topic).record
            except DecodeError:
                continue
            tp = (record.get("source_topic"), record.get("source_partition"))
            found = delivered.get(tp)  # type: ignore[arg-type]
            if found is not None and int(record["source_offset"]) >= committed[tp]:  # type: ignore[index]
                found.add(int(record["source_offset"]))
        seconds = time.monotonic() - began
        return [LedgerScan(tp, committed[tp], delivered[tp], scanned, seconds, starts[tp]) for tp in committed]


def _start(checkpoint: dict[str, Any] | None, rp: int, committed: int) -> int:
    """Where the results of a partition committed at `committed` may start (0 without a usable checkpoint)."""
    if checkpoint and checkpoint.get("results_partition") == rp and 0 <= int(checkpoint["committed"]) <= committed:
        return int(checkpoint["results_offset"])
    return 0


class _Unavailable(Exception):
    pass


def _read_to_end(config: Mapping[str, Any], topic: str, partition: int | None, start: int) -> Iterable[Any]:
    """Every record of `topic` (one partition, or all) from `start` up to the high watermark the fetch
    responses report. Raises `_Unavailable` if the topic cannot be read within 30 s."""
    consumer = Consumer(dict(config))
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics.get(topic)  # KafkaException: unreachable
        error = getattr(metadata, "error", None)
        if metadata is None or (error is not None and error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART):
            # The broker answered and the topic does not exist: no checkpoints (or no results) to read.
            _log.warning("ledger_topic_missing topic=%s: nothing to read there", topic)
            return
        if error is not None:
            raise _Unavailable(f"topic {topic} cannot be read: {error}")
        partitions = [partition] if partition is not None else list(metadata.partitions)
        consumer.assign([TopicPartition(topic, p, start if partition is not None else 0) for p in partitions])
        position = {p: (start if partition is not None else 0) for p in partitions}
        deadline = time.monotonic() + 30
        while True:
            for message in consumer.consume(1000, _IDLE_FETCH_S):
                offset = message.offset()
                if message.error() is None and offset is not None:
                    position[message.partition()] = offset + 1
                    yield message
            ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), cached=True) for p in partitions}
            if all(w is not None and w[1] >= 0 and position[p] >= w[1] for p, w in ends.items()):
                return
            if time.monotonic() > deadline:
                raise _Unavailable(f"no high watermark for {topic} within 30 s")
    finally:
        consumer.close()

"""The scans at assignment: the ledger and results topics read back on a thread, to say what is settled.

**Scan at assignment.** For each newly assigned partition (paused until its scan is done), read its
latest checkpoint, then read its results partition from R to the high watermark the fetches report
(never a queried end offset: wrong on Tansu); `Suppression` decides which source offsets are settled
already. The pipeline skips those records when they arrive (settled, counted as suppressed duplicates).
Cost: what was produced to that results partition since the last checkpoint.

If the ledger or results topic (or the Schema Registry) cannot be read, the scan waits and retries (the
partition stays paused) and says why; it never guesses. A value it cannot read (undecodable, another
schema, wrong types) settles nothing. A partition with no checkpoint is scanned from the start of its
results partition.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from connector.avro.decoder import Decoder
from connector.errors import DecodeError, SchemaRegistryUnavailable
from connector.ledger.checkpoints import Checkpoint, checkpoint_key, checkpoint_record, parse_checkpoint
from connector.ledger.results import destination_set, our_result
from connector.ledger.suppression import Suppression
from connector.ops.kafka_clients import new_consumer
from connector.partition_keys import TopicPartitionKey

__all__ = ["LedgerReader", "LedgerScan"]

_log = logging.getLogger("connector.ledger.scan")  # the ledger's log lines keep the name they always had

_RETRY_S = 2.0
_IDLE_FETCH_S = 0.01  # consume() waits this long unless 1,000 records are there: the end check runs after it


@dataclass(slots=True)
class LedgerScan:
    """Outcome of one partition's scan: source offsets at/above `committed` (-1: none or unknown) that
    already have a result of ours; `reset` when the group was reset backwards, with the ledger record
    (key, value) that moves the partition's checkpoint to the reset position (`checkpoint`)."""

    tp: TopicPartitionKey
    committed: int
    delivered: set[int]
    scanned: int
    seconds: float
    start: int
    reset: bool = False
    checkpoint: tuple[bytes, bytes] | None = None


class LedgerReader:
    """Scans (run on a thread per `start()`), their outcomes on `completed()`; `cancel()` drops those running."""

    def __init__(
        self,
        *,
        consumer_config: Mapping[str, Any],
        decoder: Decoder,
        results_topic: str,
        ledger_topic: str,
        group_id: str,
        destinations: Collection[str],
        results_partition: Callable[[str, int], int],
    ) -> None:
        """`destinations`: `rd_destination()` of each RD account results are delivered to (a result of any of
        them is ours). `results_partition`: the results partition of a source partition (the `Ledger`'s,
        remembered)."""
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
        self._results_partition = results_partition
        self._topic = ledger_topic
        self._group = group_id
        self._destinations = destination_set(destinations)
        self._done: queue.SimpleQueue[LedgerScan] = queue.SimpleQueue()
        self._generation = 0

    def start(self, committed: Mapping[TopicPartitionKey, int | None]) -> None:
        """Scan these partitions (committed position each: negative if none, None if unknown) on a thread."""
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

    def _scan_all(self, committed: dict[TopicPartitionKey, int | None], generation: int) -> None:
        while committed and generation == self._generation:
            try:
                checkpoints = self._read_checkpoints(set(committed))
                by_results_partition: dict[int, list[TopicPartitionKey]] = {}
                for tp in committed:
                    by_results_partition.setdefault(self._results_partition(*tp), []).append(tp)
                for rp, tps in by_results_partition.items():  # one read per results partition
                    if generation != self._generation:
                        return
                    for scan in self._scan_partition(rp, {tp: committed[tp] for tp in tps}, checkpoints):
                        self._done.put(scan)
                        del committed[scan.tp]
            except (KafkaException, _Unavailable, SchemaRegistryUnavailable) as exc:
                _log.warning("ledger_scan_waiting partitions=%d retry_s=%.0f reason=%s", len(committed), _RETRY_S, exc)
                time.sleep(_RETRY_S)

    def _read_checkpoints(self, wanted: set[TopicPartitionKey]) -> dict[TopicPartitionKey, Checkpoint]:
        keys = {checkpoint_key(self._group, tp): tp for tp in wanted}
        latest: dict[TopicPartitionKey, Checkpoint] = {}
        for message in _read_to_end(self._config, self._topic, None, 0):
            tp = keys.get(message.key() or b"")
            if tp is not None and message.value() is not None:
                checkpoint = parse_checkpoint(message.value())
                if checkpoint is not None:
                    latest[tp] = checkpoint
        return latest

    def _scan_partition(
        self,
        rp: int,
        committed: dict[TopicPartitionKey, int | None],
        checkpoints: Mapping[TopicPartitionKey, Checkpoint],
    ) -> list[LedgerScan]:
        """Read results partition `rp` once, from the lowest start any of `committed`'s partitions needs."""
        began = time.monotonic()
        starts = {tp: _start(checkpoints.get(tp), rp, position) for tp, position in committed.items()}
        rules = {tp: Suppression(position, _checkpointed(checkpoints.get(tp))) for tp, position in committed.items()}
        scanned = 0
        end = min(starts.values())
        for message in _read_to_end(self._config, self._results_topic, rp, min(starts.values())):
            scanned += 1
            end = max(end, message.offset() + 1)
            found = self._our_result(message.value())
            if found is None:
                continue
            tp, source_offset, base = found
            rule = rules.get(tp)
            # Below the partition's own start are results older than its checkpoint (another partition
            # sharing this results partition needed them): an older run's bases must not look like a reset.
            if rule is not None and message.offset() >= starts[tp]:
                rule.add(source_offset, base)
        seconds = time.monotonic() - began
        scans = []
        for tp, position in committed.items():
            rule = rules[tp]
            scan = LedgerScan(tp, _known(position), rule.offsets, scanned, seconds, starts[tp], rule.reset)
            if rule.reset and position is not None:
                scan.checkpoint = checkpoint_record(self._group, tp, position, rp, end)
                _log.warning(
                    "ledger_replay topic=%s partition=%d committed=%d (the group's offsets were reset backwards:"
                    " every record from there is sent again)", tp[0], tp[1], position,
                )  # fmt: skip
            scans.append(scan)
        return scans

    def _our_result(self, value: bytes | None) -> tuple[TopicPartitionKey, int, int] | None:
        """`our_result()` of a results value; None if it does not decode. Raises SchemaRegistryUnavailable
        (the scan waits: a result it could not read might be one of ours)."""
        if not value:
            return None
        try:
            decoded = self._decoder.decode(value, self._results_topic)
        except DecodeError:
            return None
        return our_result(decoded.full_name, decoded.record, self._group, self._destinations)


def _start(checkpoint: Checkpoint | None, rp: int, committed: int | None) -> int:
    """Where the scan of a partition committed at `committed` may start: its checkpoint's results offset
    (also after a reset backwards, where only the end of the results is needed), 0 without a checkpoint of
    this results partition or without a committed position (then every result of ours counts)."""
    if checkpoint is None or checkpoint.results_partition != rp or (committed is not None and committed < 0):
        return 0
    return checkpoint.results_offset


def _checkpointed(checkpoint: Checkpoint | None) -> int | None:
    return None if checkpoint is None else checkpoint.committed


def _known(position: int | None) -> int:
    return -1 if position is None or position < 0 else position


class _Unavailable(Exception):
    pass


def _read_to_end(config: Mapping[str, Any], topic: str, partition: int | None, start: int) -> Iterable[Any]:
    """Every record of `topic` (one partition, or all) from `start` up to the high watermark the fetch
    responses report. Raises `_Unavailable` if the topic cannot be read within 30 s."""
    consumer = new_consumer(config)
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

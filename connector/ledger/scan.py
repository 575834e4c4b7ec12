"""The results topic as a ledger: after a crash, records whose result already exists are not posted again.

RD has no idempotency key, so a crash between RD's 200 and the offset commit would re-post those events.
But every delivered event has a `DeliveryResult` carrying its source topic/partition/offset. So:

- **Local results.** All results of one source partition go to one results partition
  (`results_partition(topic, partition)`, a stable hash), in source-offset order (one lane per source
  partition, an idempotent producer). A scan for one source partition reads one results partition.
- **Who wrote it.** Each result carries `writer_group` (our consumer group), `writer_destination` (a
  fingerprint of the RD base URL and account credential, `rd_destination`) and `writer_base` (the committed
  position of its source partition the writer knew: -1 before any commit). Only a result of our group and
  destination can settle a record (`our_result`); other groups' results, and results of older connectors
  (no writer fields), are read past. Results topics are shared between deployments by default.
- **Checkpoints.** After each successful commit of position C for a source partition, the connector writes
  `{committed: C, results_partition: rp, results_offset: R}` to the compacted ledger topic, keyed by
  group/topic/partition, where R is a results offset at or below the first result of any offset >= C.
  Commit first, checkpoint second: a crash in between leaves an older checkpoint, whose R is lower, so the
  scan is longer but still complete.
- **Scan at assignment.** For each newly assigned partition (paused until its scan is done), read its
  latest checkpoint, then read its results partition from R to the high watermark the fetches report
  (never a queried end offset: wrong on Tansu); `Suppression` decides which source offsets are settled
  already. The pipeline skips those records when they arrive (settled, counted as suppressed duplicates).
  Cost: what was produced to that results partition since the last checkpoint.
- **Crash or reset.** Commits only move forward, so after a crash the committed position is at or above
  every `writer_base` and every checkpoint of ours. A committed position below one of them means the
  group's offsets were reset backwards: then nothing is skipped (the reset replays), and a checkpoint at
  the reset position whose R is the end of the scan is written, so later scans (a crash during the replay)
  start after the old results.
- **What remains.** A crash after RD's 200 but before Kafka acknowledged the results: nothing records the
  delivery, so the batch is posted again. Results are produced the moment the 200 arrives; the time from
  the 200 to the acknowledgement is that window, measured per batch (`window_s`).

If the ledger or results topic (or the Schema Registry) cannot be read, the scan waits and retries (the
partition stays paused) and says why; it never guesses. A value it cannot read (undecodable, another
schema, wrong types) settles nothing. A partition with no checkpoint is scanned from the start of its
results partition. Whoever can write to the results or ledger topic is trusted: a forged result of our
group and destination makes a record be skipped.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from connector.avro.decoder import Decoder
from connector.avro.encoder import DELIVERY_RESULT
from connector.errors import DecodeError, SchemaRegistryUnavailable
from connector.partition_keys import TopicPartitionKey, stable_slot

__all__ = [
    "Checkpoint",
    "Ledger",
    "LedgerScan",
    "Suppression",
    "Watermarks",
    "our_result",
    "parse_checkpoint",
    "rd_destination",
    "results_partition",
]

_log = logging.getLogger("connector.ledger.scan")

_RETRY_S = 2.0
_IDLE_FETCH_S = 0.01  # consume() waits this long unless 1,000 records are there: the end check runs after it


def results_partition(topic: str, partition: int, results_partitions: int) -> int:
    """The results partition that holds every result of source partition (topic, partition)."""
    return stable_slot(topic, partition, results_partitions)


def rd_destination(base_url: str, credential: str, client_id: str | None = None) -> str:
    """The `writer_destination` of results delivered to this RD account: 16 hex digits of a SHA-256 of the
    base URL (without a trailing slash), the app's client id (refresh flow) and the configured credential
    (the refresh token in the refresh flow, else the access token). The credential itself never leaves.

    RD shows no account id to the API, so the account is known by the credential that reaches it. A new
    credential for the same account (a re-authorisation, a new static token) is another destination: the
    records delivered but not committed at that restart are sent again (a possible duplicate, the safe
    side), where the client id alone would call two accounts authorised by one app the same destination
    (a record delivered to one would be skipped for the other)."""
    identity = "\x00".join(("rd-connector destination v1", base_url.rstrip("/"), client_id or "", credential))
    return hashlib.sha256(identity.encode()).hexdigest()[:16]


def our_result(full_name: str, record: Any, group: str, destination: str) -> tuple[TopicPartitionKey, int, int] | None:
    """((source topic, partition), source offset, writer base) of a decoded results value written by
    `group` for `destination`; None for anything else: another group or destination, an older connector's
    result (no writer fields), another record type, a value of the wrong types."""
    if full_name != DELIVERY_RESULT or not isinstance(record, dict):
        return None
    if record.get("writer_group") != group or record.get("writer_destination") != destination:
        return None
    topic, partition = record.get("source_topic"), record.get("source_partition")
    offset, base = record.get("source_offset"), record.get("writer_base")
    # type() is int: a bool is an int too, and a hostile schema could carry one
    if not isinstance(topic, str) or not all(type(v) is int for v in (partition, offset, base)):
        return None
    if partition < 0 or offset < 0 or base < -1:  # type: ignore[operator]
        return None
    return (topic, partition), offset, base  # type: ignore[return-value]


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A ledger record: `committed` was committed; results of offsets >= it start at or after
    `results_offset` of `results_partition`."""

    committed: int
    results_partition: int
    results_offset: int


def parse_checkpoint(value: bytes | None) -> Checkpoint | None:
    """A ledger value as a `Checkpoint`, or None if it is not one (undecodable, wrong types, negative)."""
    try:
        data = orjson.loads(value or b"")
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict):
        return None
    fields = (data.get("committed"), data.get("results_partition"), data.get("results_offset"))
    if not all(type(v) is int and v >= 0 for v in fields):
        return None
    return Checkpoint(*fields)  # type: ignore[arg-type]


class Suppression:
    """Which records of one source partition are delivered already, from what its scan found (pure).

    `committed`: the group's committed position at assignment (None: unknown; negative: none).
    `checkpointed`: the committed position of the partition's latest checkpoint (None: none). Feed every
    result of our group and destination in the scanned range to `add(source offset, writer base)`; then
    `offsets` are the records to skip and `reset` says the group was reset backwards. The rule:

    - committed unknown: nothing is skipped (it could be a reset; a possible duplicate, never a loss);
    - no committed position (a new group, or its offsets expired or were deleted): every result of ours
      settles its record, as nothing can be compared;
    - committed C >= 0: commits only move forward, so a checkpoint above C or a writer base above C means
      the offsets were reset backwards: nothing is skipped (the replay the operator asked for). Otherwise
      (base <= C for all, a crash or a hand-over) each result of an offset >= C settles it.
    """

    __slots__ = ("_committed", "offsets", "reset")

    def __init__(self, committed: int | None, checkpointed: int | None) -> None:
        self._committed = committed
        self.offsets: set[int] = set()
        self.reset = committed is not None and committed >= 0 and checkpointed is not None and checkpointed > committed

    def add(self, offset: int, base: int) -> None:
        committed = self._committed
        if committed is None or self.reset:
            return
        if committed >= 0 and base > committed:  # written after a commit above today's: a reset backwards
            self.reset = True
            self.offsets.clear()
        elif offset >= committed:
            self.offsets.add(offset)


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
        destination: str,
    ) -> None:
        """`destination`: `rd_destination()` of the RD account results are delivered to."""
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
        self._destination = destination
        self._base: dict[TopicPartitionKey, int] = {}  # committed position known per partition (-1: none)
        self._done: queue.SimpleQueue[LedgerScan] = queue.SimpleQueue()
        self._generation = 0
        self.marks = Watermarks()

    def base(self, topic: str, partition: int) -> int | None:
        """The `writer_base` of a result of (topic, partition) written now: the committed position read at
        assignment or committed since (-1: none), None when unknown (such a result never settles a record).
        Thread-safe (a dict read): lanes ask it."""
        return self._base.get((topic, partition))

    def forget(self, tps: Iterable[TopicPartitionKey]) -> None:
        """The partitions are no longer ours."""
        self.marks.forget(tps)
        for tp in tps:
            self._base.pop(tp, None)

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
        the scan for each partition may start. Results written from now on carry the new base."""
        records: list[tuple[bytes, bytes]] = []
        for tp, committed in positions.items():
            self._base[tp] = committed
            start = self.marks.checkpoint_offset(tp, committed)
            if start is not None:
                records.append(self._checkpoint_record(tp, committed, self.results_partition(*tp), start))
        return records

    def _checkpoint_record(self, tp: TopicPartitionKey, committed: int, rp: int, start: int) -> tuple[bytes, bytes]:
        value = {"committed": committed, "results_partition": rp, "results_offset": start}
        return self._key(tp), orjson.dumps(value)

    # -- scans (a thread per assignment) ---------------------------------------------------------------

    def scan(self, committed: Mapping[TopicPartitionKey, int | None]) -> None:
        """Start scanning for these newly assigned partitions (committed position each: negative if none,
        None if unknown); results arrive on `completed()`. A later `cancel()` drops scans still running.
        Results of these partitions written from now on carry this committed position as their base."""
        for tp, position in committed.items():
            if position is None:
                self._base.pop(tp, None)
            else:
                self._base[tp] = max(position, -1)
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
                    by_results_partition.setdefault(self.results_partition(*tp), []).append(tp)
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
        keys = {self._key(tp): tp for tp in wanted}
        latest: dict[TopicPartitionKey, Checkpoint] = {}
        for message in _read_to_end(self._config, self.topic, None, 0):
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
                scan.checkpoint = self._checkpoint_record(tp, position, rp, end)
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
        return our_result(decoded.full_name, decoded.record, self._group, self._destination)


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

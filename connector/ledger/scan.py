"""The results topic as a ledger: after a crash, records whose result already exists are not posted again.

RD has no idempotency key, so a crash between RD's 200 and the offset commit would re-post those events.
But every delivered event has a `DeliveryResult` carrying its source topic/partition/offset. So results
go to a known results partition and say who wrote them (`connector.ledger.results`); after each commit a
checkpoint says where a scan may start (`connector.ledger.checkpoints`); at assignment a scan reads them
back (`connector.ledger.reader`) and `Suppression` (`connector.ledger.suppression`) decides which records
are settled already, telling a crash from a reset backwards. `Ledger` is the pipeline's face of all this.

**What remains.** A crash after RD's 200 but before Kafka acknowledged the results: nothing records the
delivery, so the batch is posted again. Results are produced the moment the 200 arrives; the time from
the 200 to the acknowledgement is that window, measured per batch (`window_s`).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

from connector.avro.decoder import Decoder
from connector.ledger.checkpoints import Checkpoint, Watermarks, checkpoint_record, parse_checkpoint
from connector.ledger.reader import LedgerReader, LedgerScan
from connector.ledger.results import our_result, rd_destination, results_partition
from connector.ledger.suppression import Suppression
from connector.partition_keys import TopicPartitionKey

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
        destinations: Collection[str],
    ) -> None:
        """`destinations`: `rd_destination()` of each RD account results are delivered to; a result of our
        group and any of them settles a record (a plain string is a `TypeError`)."""
        self._partitions = results_partitions
        self._partition_of: dict[TopicPartitionKey, int] = {}  # memo: the lanes ask once per result
        self.topic = ledger_topic
        self._group = group_id
        self._base: dict[TopicPartitionKey, int] = {}  # committed position known per partition (-1: none)
        self._reader = LedgerReader(
            consumer_config=consumer_config,
            decoder=decoder,
            results_topic=results_topic,
            ledger_topic=ledger_topic,
            group_id=group_id,
            destinations=destinations,
            results_partition=self.results_partition,
        )
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

    def results_acked(self, topic: str, partition: int, written: Sequence[tuple[int, int]]) -> None:
        """Kafka acknowledged the results of these (source offset, results offset) of (topic, partition)."""
        self.marks.acked((topic, partition), written)

    def results_partition(self, topic: str, partition: int) -> int:
        """`results_partition()` of this results topic, remembered (thread-safe: a dict read or write)."""
        key = (topic, partition)
        known = self._partition_of.get(key)
        if known is None:
            known = self._partition_of[key] = results_partition(topic, partition, self._partitions)
        return known

    # -- checkpoints (pipeline thread) -----------------------------------------------------------------

    def checkpoint(self, positions: Mapping[TopicPartitionKey, int]) -> list[tuple[bytes, bytes]]:
        """After a successful commit: the (key, value) records to write to the ledger topic, saying where
        the scan for each partition may start. Results written from now on carry the new base."""
        records: list[tuple[bytes, bytes]] = []
        for tp, committed in positions.items():
            self._base[tp] = committed
            start = self.marks.checkpoint_offset(tp, committed)
            if start is not None:
                records.append(checkpoint_record(self._group, tp, committed, self.results_partition(*tp), start))
        return records

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
        self._reader.start(committed)

    def cancel(self) -> None:
        self._reader.cancel()

    def completed(self) -> list[LedgerScan]:
        return self._reader.completed()

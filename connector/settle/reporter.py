"""The Kafka edge that reports outcomes: results (one `DeliveryResult` per delivered event) and dead letters.

`produce` may be called from any thread (confluent-kafka's Producer is thread-safe), but delivery reports
are served only by the pipeline thread (`poll`), so `on_settled` always runs there. A record is settled
only when Kafka acknowledged its report; a failed report is produced again by the next `poll` (never
dropped, never settled without an acknowledgement, never produced from inside a delivery callback). A
result's acknowledgement is noted by its own delivery callback and settled at the end of the `poll` that
served it, in bulk: one `on_settled` per source partition per poll, not a chain of calls per result.
When librdkafka's local queue is full, the pipeline thread serves delivery reports to make room; a lane
thread waits for the pipeline thread to do so.

A dead letter carries Kafka Connect's `__connect.errors.*` headers (`connector.settle.connect_headers`; the
connector name is the writer group) and is cut to fit `letter_max_bytes` (`connector.settle.dead_letters.fit_letter`).
If Kafka refuses it as too large anyway (`MSG_SIZE_TOO_LARGE`, in `produce()` or in its delivery report: the
limit was misjudged), it is cut to half that size and produced again, and later letters get that lower limit too.
The `dead_letter` log line names coordinates, stage, reason and a detail without the record's values
(`log_values` adds them).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any, Protocol

from confluent_kafka import KafkaError, KafkaException

from connector.avro.encoder import encode_delivery_results
from connector.config.accounts import DEFAULT_ACCOUNT
from connector.in_flight import Item, items_weight
from connector.ops.metrics import Metrics
from connector.settle.connect_headers import connect_headers
from connector.settle.dead_letters import MIN_LIMIT, DeadLetter, Fitted, Headers, fit_letter

__all__ = ["DeadLetter", "Headers", "KafkaProducer", "Reporter", "ResultOffsetsCallback", "SettledCallback"]

_log = logging.getLogger("connector.settle.reporter")

#: (topic, partition, offsets, buffered bytes they all released, delivered to RD (else dead-lettered)): Kafka
#: acknowledged the result (or the dead letter) of each of these offsets of one source partition.
SettledCallback = Callable[[str, int, Sequence[int], int, bool], None]
#: (topic, partition, [(source offset, results offset)]): where Kafka wrote the results of one source partition
ResultOffsetsCallback = Callable[[str, int, Sequence[tuple[int, int]]], None]


class KafkaProducer(Protocol):
    def produce(self, topic: str, *args: Any, **kwargs: Any) -> None: ...
    def poll(self, timeout: float = ...) -> int: ...
    def flush(self, timeout: float = ...) -> int: ...
    def purge(self, *args: Any, **kwargs: Any) -> None: ...
    def __len__(self) -> int: ...


class _BatchAcks:
    """Results of one batch still waiting for Kafka's acknowledgement, and when RD answered 200."""

    __slots__ = ("answered_at", "handed_over_s", "latest_ack_s", "remaining")

    def __init__(self, remaining: int, answered_at: float) -> None:
        self.handed_over_s = 0.0  # from the 200 to the last result handed to librdkafka
        self.latest_ack_s = 0.0  # the longest produce-to-broker-ack latency librdkafka measured
        self.remaining = remaining
        self.answered_at = answered_at


class Reporter:
    """Produces results and dead letters; calls `on_settled` once Kafka acknowledged each."""

    def __init__(
        self,
        producer: KafkaProducer,
        results_topic: str,
        dlq_topic: str,
        on_settled: SettledCallback,
        result_schema_id: int | None = None,
        producer_factory: Callable[[], KafkaProducer] | None = None,
        metrics: Metrics | None = None,
        results_partition: Callable[[str, int], int] | None = None,
        on_result_offsets: ResultOffsetsCallback | None = None,
        letter_max_bytes: int = 1_000_000,
        log_values: bool = False,
        writer: tuple[str, Mapping[str, str] | str] | None = None,
        base_of: Callable[[str, int], int | None] | None = None,
    ) -> None:
        """`producer_factory`, when given, replaces a producer whose reports time out (see `poll`).
        `letter_max_bytes`: the most a dead-letter record may take (`connector.settle.letter_limit`); `log_values`:
        whether `dead_letter` log lines quote the record's values (`RDC_LOG_RECORD_VALUES`).
        `writer` (group id, destinations: account name -> `rd_destination()` of that RD account) and
        `base_of(topic, partition)` fill each result's writer_* fields (the ledger trusts only results of its
        own group, destinations and base); a plain destination string means {"default": it}. Each result
        carries its item's `account` as `rd_account` and that account's destination; an account missing
        from `destinations` is a programming error (`KeyError` from `publish_results`)."""
        self._producer = producer
        self._factory = producer_factory
        self._retired: list[KafkaProducer] = []
        self._stale = False
        self._metrics = metrics
        self._results_partition = results_partition  # source (topic, partition) -> results partition
        self._on_result_offsets = on_result_offsets
        self._results_topic = results_topic
        self._dlq_topic = dlq_topic
        self._on_settled = on_settled
        self._schema_id = result_schema_id
        self._writer_group: str | None = None
        self._destinations: Mapping[str, str] | None = None
        if writer is not None:
            self._writer_group = writer[0]
            self._destinations = {DEFAULT_ACCOUNT: writer[1]} if isinstance(writer[1], str) else dict(writer[1])
        self._base_of = base_of
        self._owner = threading.get_ident()  # the pipeline thread: the only one that serves reports
        self._letter_limit = letter_max_bytes
        self._log_values = log_values
        self._failed: list[Callable[[], None]] = []  # reports to produce again at the next poll
        self._acked: list[tuple[Item, int | None]] = []  # results acknowledged (results offset), not yet settled

    def publish_results(self, items: Sequence[Item], uuids: Sequence[str], batch_uuid: str) -> None:
        """One DeliveryResult per item, `uuids[i]` for `items[i]`. Call the moment RD answers 200: until
        Kafka acknowledges these, a crash would re-post the batch (the window, measured per batch)."""
        acks = _BatchAcks(len(items), time.monotonic())
        values = encode_delivery_results(
            [(item.event_type, item.topic, item.partition, item.offset, item.event_id, item.account) for item in items],
            uuids,
            event_batch_uuid=batch_uuid,
            delivered_at_ms=int(time.time() * 1000),
            schema_id=self._schema_id,
            writer_group=self._writer_group,
            destinations=self._destinations,
            base_of=self._base_of,
        )
        topic, acked, partition_of = self._results_topic, self._result_acked, self._results_partition
        partitions: dict[tuple[str, int], int] = {}  # source partition -> results partition, for this batch
        for item, value in zip(items, values, strict=True):
            partition = -1
            if partition_of is not None:
                source = (item.topic, item.partition)
                partition = partitions.get(source, -1)
                if partition < 0:
                    partition = partitions[source] = partition_of(*source)
            on_delivery = partial(acked, item, value, partition, acks)  # ties the acknowledgement to its item
            try:  # `_produce` only when the queue is full: one call less per result
                self._producer.produce(topic, value, item.key, partition=partition, on_delivery=on_delivery)
            except BufferError:
                self._produce(topic, item.key, value, None, on_delivery, partition)
        acks.handed_over_s = time.monotonic() - acks.answered_at

    def produce_plain(self, topic: str, key: bytes, value: bytes) -> None:
        """A record whose delivery settles nothing (ledger checkpoints: losing one only lengthens a scan)."""
        self._produce(topic, key, value, None, None)

    def dead_letter(self, letter: DeadLetter) -> None:
        """Produce `letter` (cut to fit); it settles when Kafka acknowledged it. Any thread."""
        fitted = self._fit(letter)
        where = (letter.topic, letter.partition, letter.offset, letter.stage, letter.reason)
        detail = (letter.detail if self._log_values else letter.log_detail)[:300]
        line = "dead_letter topic=%s partition=%d offset=%d stage=%s reason=%s detail=%s"
        if fitted.truncated:  # each value is one logfmt field (the formatter quotes arguments)
            cut = (",".join(fitted.truncated), len(letter.value or b""), fitted.size)
            _log.warning(line + " truncated=%s original_bytes=%d bytes=%d", *where, detail, *cut)
        else:
            _log.warning(line, *where, detail)
        if self._metrics is not None:
            self._metrics.dead_lettered(letter.stage, letter.reason)
        self._produce_letter(letter, fitted)

    def _fit(self, letter: DeadLetter) -> Fitted:
        """`letter` with Kafka Connect's headers (their message quotes values only if `log_values`), cut to fit."""
        context = connect_headers(letter, connector_name=self._writer_group, with_values=self._log_values)
        return fit_letter(letter, self._letter_limit, context)

    def _produce_letter(self, letter: DeadLetter, fitted: Fitted) -> None:
        while True:
            try:
                self._produce(
                    self._dlq_topic,
                    fitted.key,
                    fitted.value,
                    fitted.headers,
                    partial(self._letter_acked, letter, fitted),
                )
                return
            except KafkaException as exc:  # librdkafka's own size check: our limit is above its message.max.bytes
                if not _too_large(exc.args[0]) or fitted.size <= MIN_LIMIT:
                    raise
                fitted = self._shrink(letter, fitted, exc.args[0])

    def _shrink(self, letter: DeadLetter, refused: Fitted, err: Any) -> Fitted:
        """Kafka refused `refused` as too large: the limit was misjudged. Half its size, for it and the rest."""
        self._letter_limit = min(self._letter_limit, max(MIN_LIMIT, refused.size // 2))
        fitted = self._fit(letter)
        _log.warning(
            "dead_letter_too_large topic=%s partition=%d offset=%d bytes=%d error=%s (cut to %d bytes; the limit "
            "for dead letters is now %d)",
            letter.topic, letter.partition, letter.offset, refused.size, err, fitted.size, self._letter_limit,
        )  # fmt: skip
        return fitted

    def _produce(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Headers | None,
        on_delivery: Any,
        partition: int = -1,
    ) -> None:
        extra = {"partition": partition} if partition >= 0 else {}
        while True:
            try:
                self._producer.produce(topic, value, key, headers=headers, on_delivery=on_delivery, **extra)
                return
            except BufferError:  # local queue full: acknowledgements must be served to make room
                if threading.get_ident() == self._owner:
                    self._producer.poll(0.005)
                    self._settle_acked()  # at once, as `poll` does: a drain, rewind or commit may look next
                else:
                    time.sleep(0.005)

    def _result_acked(self, item: Item, value: bytes, partition: int, acks: _BatchAcks, err: Any, msg: Any) -> None:
        if err is not None:
            self._note_failure(err)
            _log.warning(
                "result_retry topic=%s partition=%d offset=%d error=%s", item.topic, item.partition, item.offset, err
            )
            retry = partial(self._result_acked, item, value, partition, acks)
            self._failed.append(partial(self._produce, self._results_topic, item.key, value, None, retry, partition))
            return
        if msg is None:  # a test's fake producer
            self._acked.append((item, None))
        else:
            self._acked.append((item, msg.offset()))
            latency = msg.latency()
            if latency is not None and latency > acks.latest_ack_s:
                acks.latest_ack_s = latency
        acks.remaining -= 1
        if acks.remaining == 0 and self._metrics is not None:
            # The window closes when the broker acknowledged the last result (librdkafka's own latency),
            # not when this callback got its turn on the pipeline thread.
            self._metrics.observe_result_window(acks.handed_over_s + acks.latest_ack_s)

    def _settle_acked(self) -> None:
        """Settle the results acknowledged since the last call (pipeline thread): per source partition, one
        ledger call with their results offsets, then one `on_settled`."""
        if not self._acked:
            return
        acked, self._acked = self._acked, []
        by_source: dict[tuple[str, int], list[tuple[Item, int | None]]] = {}
        for entry in acked:
            item = entry[0]
            by_source.setdefault((item.topic, item.partition), []).append(entry)
        for (topic, partition), entries in by_source.items():
            if self._on_result_offsets is not None:
                written = [(item.offset, at) for item, at in entries if at is not None]
                if written:
                    self._on_result_offsets(topic, partition, written)
            offsets = [item.offset for item, _ in entries]
            self._on_settled(topic, partition, offsets, items_weight([item for item, _ in entries]), True)

    def _letter_acked(self, letter: DeadLetter, fitted: Fitted, err: Any, _msg: Any) -> None:
        if err is not None:
            self._note_failure(err)
            if _too_large(err) and fitted.size > MIN_LIMIT:
                fitted = self._shrink(letter, fitted, err)
            else:  # produced again as it was, until Kafka acknowledges it
                _log.warning("dead_letter_retry topic=%s offset=%d error=%s", letter.topic, letter.offset, err)
            self._failed.append(partial(self._produce_letter, letter, fitted))
            return
        self._on_settled(letter.topic, letter.partition, (letter.offset,), letter.weight, False)

    def _note_failure(self, err: Any) -> None:
        code = err.code() if hasattr(err, "code") else None
        if code == KafkaError._MSG_TIMED_OUT or (hasattr(err, "fatal") and err.fatal()):
            self._stale = True

    def _replace_producer(self) -> None:
        """A report timed out: the producer may be wedged (an idempotent producer whose broker lost its
        state never recovers on its own). Retire it: purge what it holds (each purged report fails and is
        produced again) and continue with a fresh one."""
        self._stale = False
        if self._factory is None:
            return
        old, self._producer = self._producer, self._factory()
        _log.warning("producer_replaced reason=report_timed_out retired_with=%d", len(old))
        old.purge()
        self._retired.append(old)

    def poll(self, timeout: float = 0.0) -> int:
        """Serve delivery reports, produce again the reports that failed, settle the results acknowledged
        (pipeline thread only)."""
        served = self._poll(self._producer, timeout)
        for old in list(self._retired):
            served += self._poll(old, 0)
            if len(old) == 0:
                self._retired.remove(old)
        if self._stale:
            self._replace_producer()
        failed, self._failed = self._failed, []
        for produce_again in failed:
            produce_again()
        self._settle_acked()
        return served

    def _poll(self, producer: KafkaProducer, timeout: float) -> int:
        """`producer.poll`, except that a fatal error (an idempotent producer whose broker lost its state:
        UNKNOWN_PRODUCER_ID after a broker restart) retires the producer instead of stopping the connector.
        Without an `error_cb`, confluent-kafka raises a fatal error from `poll`, ahead of the delivery
        reports that would have said so; those reports are served by the retired producer's later polls."""
        try:
            return producer.poll(timeout)
        except KafkaException as exc:
            error: Any = exc.args[0] if exc.args else None
            if not getattr(error, "fatal", lambda: False)():
                raise
            _log.warning("producer_fatal error=%s (the producer is replaced; its reports are produced again)", error)
            if producer is self._producer:
                self._stale = True
            return 0

    def flush(self, timeout: float) -> int:
        left = self._producer.flush(timeout) + sum(old.flush(0) for old in self._retired)
        self._settle_acked()
        return left


def _too_large(err: Any) -> bool:
    return hasattr(err, "code") and err.code() == KafkaError.MSG_SIZE_TOO_LARGE

"""The Reporter against a fake producer: result and dead-letter records, settlement only on acknowledgement,
re-production of failed reports, and BufferError back-pressure."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, Message

from connector.avro import Decoder, default_catalog
from connector.in_flight import Item, item_weight
from connector.settle.dead_letters import record_size
from connector.settle.reporter import DeadLetter, Reporter, SettledCallback

RESULTS = "rd.results"
DLQ = "rd.dlq"
DELIVERY_RESULT = "io.rdconnector.events.DeliveryResult"

Headers = list[tuple[str, str | bytes | None]]


class KafkaErrorStub:
    """Stands in for confluent_kafka.KafkaError (the Reporter only checks it is not None)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        return self.text


@dataclass
class Produced:
    topic: str
    value: bytes | None
    key: bytes | None
    headers: Headers | None
    on_delivery: Callable[[Any, Any], None]

    def ack(self) -> None:
        self.on_delivery(None, None)

    def fail(self, text: str = "Local: Message timed out") -> None:
        self.on_delivery(KafkaErrorStub(text), None)


def _produce_args(
    topic: str,
    value: bytes | None = None,
    key: bytes | None = None,
    partition: int = -1,
    on_delivery: Callable[[Any, Any], None] | None = None,
    timestamp: int = 0,
    headers: Headers | None = None,
) -> Produced:
    """confluent_kafka.Producer.produce's signature, so positional and keyword calls both land right."""
    assert on_delivery is not None, "every report needs a delivery callback"
    return Produced(topic, value, key, headers, on_delivery)


class FakeProducer:
    """Records produce calls; raises BufferError for the next `buffer_errors` calls."""

    def __init__(self) -> None:
        self.produced: list[Produced] = []
        self.buffer_errors = 0
        self.attempts = 0
        self.polls: list[float] = []
        self.flushes: list[float] = []

    def produce(self, topic: str, *args: Any, **kwargs: Any) -> None:
        self.attempts += 1
        if self.buffer_errors > 0:
            self.buffer_errors -= 1
            raise BufferError("Local: Queue full")
        self.produced.append(_produce_args(topic, *args, **kwargs))

    def poll(self, timeout: float = 0.0) -> int:
        self.polls.append(timeout)
        return 7

    def flush(self, timeout: float = 0.0) -> int:
        self.flushes.append(timeout)
        return 0

    def purge(self, *args: Any, **kwargs: Any) -> None:
        raise AssertionError("only a reporter with a producer factory replaces (and purges) its producer")

    def __len__(self) -> int:
        return 0


Settled = tuple[str, int, tuple[int, ...], int, bool]  # one `on_settled` call: (topic, partition, offsets, ...)


def recorder(settled: list[Settled]) -> SettledCallback:
    def on_settled(topic: str, partition: int, offsets: Sequence[int], weight: int, delivered: bool) -> None:
        settled.append((topic, partition, tuple(offsets), weight, delivered))

    return on_settled


@dataclass
class Rig:
    producer: FakeProducer
    reporter: Reporter
    settled: list[Settled]


@pytest.fixture
def rig() -> Rig:
    producer = FakeProducer()
    settled: list[Settled] = []
    return Rig(producer, Reporter(producer, RESULTS, DLQ, recorder(settled)), settled)


def make_item(offset: int, *, key: bytes | None = None, event_id: str | None = None) -> Item:
    return Item(
        topic="orders",
        partition=2,
        offset=offset,
        key=key,
        event_type="ORDER_PLACED",
        event_id=event_id,
        event=b'{"event_type":"ORDER_PLACED","n":' + str(offset).encode() + b"}",
        value=b"avro-bytes",
        headers=[("trace", b"t")],
    )


def make_letter(**overrides: Any) -> DeadLetter:
    fields: dict[str, Any] = {
        "topic": "orders",
        "partition": 1,
        "offset": 42,
        "key": b"customer-7",
        "value": b"\xc3\x01original-value",
        "headers": [("trace", b"abc"), ("empty", None), ("text", "plain")],
        "stage": "send",
        "reason": "rejected_by_rd",
        "detail": '400 {"errors": "bad"}',
        "weight": 99,
    }
    fields.update(overrides)
    return DeadLetter(**fields)


# --- results ------------------------------------------------------------------------------------------------


def test_results_are_delivery_result_records_keyed_by_item_key(rig: Rig) -> None:
    items = [make_item(10, key=b"k-10", event_id="ev-10"), make_item(11, key=None), make_item(12, key=b"k-12")]
    before = int(time.time() * 1000)
    rig.reporter.publish_results(items, ["u-10", "u-11", "u-12"], "batch-9")
    after = int(time.time() * 1000)

    decoder = Decoder(default_catalog())
    assert len(rig.producer.produced) == 3
    for produced, item, uuid in zip(rig.producer.produced, items, ["u-10", "u-11", "u-12"], strict=True):
        assert produced.topic == RESULTS
        assert produced.key == item.key
        assert produced.headers is None
        assert produced.value is not None
        assert produced.value[:2] == b"\xc3\x01"  # single-object framing
        decoded = decoder.decode(produced.value, RESULTS)
        assert decoded.full_name == DELIVERY_RESULT
        record = dict(decoded.record)
        delivered_at = record.pop("delivered_at")
        assert before <= delivered_at <= after
        assert record == {
            "event_uuid": uuid,
            "event_batch_uuid": "batch-9",
            "event_type": "ORDER_PLACED",
            "source_topic": "orders",
            "source_partition": 2,
            "source_offset": item.offset,
            "source_event_id": item.event_id,
            "writer_group": None,  # a reporter told nothing about its writer: such results never settle
            "writer_destination": None,
            "writer_base": None,
            "rd_account": "default",  # the item's account, with or without a writer
        }


def test_results_say_who_wrote_them_and_from_which_committed_position(rig: Rig) -> None:
    bases = {("orders", 2): 40, ("orders", 3): -1}
    reporter = Reporter(
        rig.producer,
        RESULTS,
        DLQ,
        lambda *args: None,
        writer=("group-a", "0123abcd"),
        base_of=lambda t, p: bases.get((t, p)),
    )
    items = [make_item(41), make_item(7)._replace(partition=3), make_item(9)._replace(partition=4)]
    reporter.publish_results(items, ["u-1", "u-2", "u-3"], "batch-1")
    decoder = Decoder(default_catalog())
    records = [decoder.decode(p.value or b"", RESULTS).record for p in rig.producer.produced]
    assert [(r["writer_group"], r["writer_destination"], r["writer_base"]) for r in records] == [
        ("group-a", "0123abcd", 40),
        ("group-a", "0123abcd", -1),
        ("group-a", "0123abcd", None),  # base unknown: written, but it never settles a record
    ]
    # a plain destination string is the account `default`'s
    assert [r["rd_account"] for r in records] == ["default", "default", "default"]


def test_each_result_carries_its_items_account_and_that_accounts_destination(rig: Rig) -> None:
    destinations = {"shop-br": "dest-br-0000000", "shop-ar": "dest-ar-0000000"}
    reporter = Reporter(rig.producer, RESULTS, DLQ, lambda *args: None, writer=("group-a", destinations))
    items = [
        make_item(1)._replace(account="shop-br"),
        make_item(2)._replace(account="shop-ar"),
        make_item(3)._replace(account="shop-br"),
        make_item(4)._replace(account="shop-ar", partition=5),
    ]
    reporter.publish_results(items, ["u-1", "u-2", "u-3", "u-4"], "batch-1")
    decoder = Decoder(default_catalog())
    records = [decoder.decode(p.value or b"", RESULTS).record for p in rig.producer.produced]
    assert [(r["source_offset"], r["rd_account"], r["writer_destination"], r["writer_group"]) for r in records] == [
        (1, "shop-br", "dest-br-0000000", "group-a"),
        (2, "shop-ar", "dest-ar-0000000", "group-a"),
        (3, "shop-br", "dest-br-0000000", "group-a"),
        (4, "shop-ar", "dest-ar-0000000", "group-a"),
    ]


def test_an_account_without_a_destination_is_a_programming_error(rig: Rig) -> None:
    reporter = Reporter(rig.producer, RESULTS, DLQ, lambda *args: None, writer=("group-a", {"shop-br": "d-br"}))
    with pytest.raises(KeyError, match="shop-xx"):
        reporter.publish_results([make_item(1)._replace(account="shop-xx")], ["u-1"], "batch-1")
    assert rig.producer.produced == []  # nothing half-written


def test_results_with_a_schema_id_use_confluent_framing(rig: Rig) -> None:
    reporter = Reporter(rig.producer, RESULTS, DLQ, lambda *args: None, result_schema_id=17)
    reporter.publish_results([make_item(1)], ["u-1"], "b")
    value = rig.producer.produced[0].value
    assert value is not None
    assert value[:5] == b"\x00" + (17).to_bytes(4, "big")


def test_result_settles_only_after_the_ack(rig: Rig) -> None:
    items = [make_item(5), make_item(6)]
    rig.reporter.publish_results(items, ["u-5", "u-6"], "b")
    assert rig.settled == []

    rig.producer.produced[1].ack()
    assert rig.settled == []  # acknowledged: settled by the poll that served the acknowledgement
    rig.reporter.poll()
    assert rig.settled == [("orders", 2, (6,), item_weight(items[1]), True)]
    rig.producer.produced[0].ack()
    rig.reporter.poll()
    assert rig.settled[1:] == [("orders", 2, (5,), item_weight(items[0]), True)]
    rig.reporter.poll()
    assert len(rig.settled) == 2  # each once


def test_a_polls_acknowledgements_settle_in_one_call_per_source_partition_with_their_results_offsets() -> None:
    producer = FakeProducer()
    settled: list[Settled] = []
    written: list[tuple[str, int, tuple[tuple[int, int], ...]]] = []
    reporter = Reporter(
        producer,
        RESULTS,
        DLQ,
        recorder(settled),
        results_partition=lambda topic, partition: partition % 2,
        on_result_offsets=lambda topic, partition, pairs: written.append((topic, partition, tuple(pairs))),
    )
    items = [make_item(5), make_item(6), make_item(7)._replace(partition=3), make_item(8)]
    reporter.publish_results(items, ["u-5", "u-6", "u-7", "u-8"], "b")
    for index in (3, 2, 0):  # in any order, item 6's still outstanding
        report = producer.produced[index]
        report.on_delivery(None, Message(topic=RESULTS, partition=0, offset=100 + index, latency=0.001))
    assert settled == [] and written == []
    reporter.poll()
    assert written == [("orders", 2, ((8, 103), (5, 100))), ("orders", 3, ((7, 102),))]
    assert settled == [
        ("orders", 2, (8, 5), item_weight(items[3]) + item_weight(items[0]), True),
        ("orders", 3, (7,), item_weight(items[2]), True),
    ]
    reporter.poll()
    assert len(settled) == 2  # nothing twice
    producer.produced[1].ack()  # a test's ack carries no message: settled, no results offset
    reporter.poll()
    assert settled[2:] == [("orders", 2, (6,), item_weight(items[1]), True)] and len(written) == 2


def test_failed_result_is_produced_again_and_settles_on_a_later_success(rig: Rig) -> None:
    item = make_item(8, key=b"k")
    rig.reporter.publish_results([item], ["u-8"], "b")
    first = rig.producer.produced[0]

    first.fail()
    rig.reporter.poll()  # failed reports are produced again by the next poll
    assert rig.settled == []
    assert len(rig.producer.produced) == 2
    second = rig.producer.produced[1]
    assert (second.topic, second.key, second.value, second.headers) == (RESULTS, b"k", first.value, None)

    second.fail("Broker: Not enough in-sync replicas")
    rig.reporter.poll()  # failed reports are produced again by the next poll
    assert rig.settled == []
    assert len(rig.producer.produced) == 3
    third = rig.producer.produced[2]
    assert third.value == first.value

    third.ack()
    rig.reporter.poll()
    assert rig.settled == [("orders", 2, (8,), item_weight(item), True)]
    assert len(rig.producer.produced) == 3  # nothing more after the success


# --- dead letters -------------------------------------------------------------------------------------------


def test_dead_letter_keeps_key_value_and_appends_rdc_and_kafka_connect_headers(rig: Rig) -> None:
    letter = make_letter()
    rig.reporter.dead_letter(letter)

    [produced] = rig.producer.produced
    assert produced.topic == DLQ
    assert produced.key == b"customer-7"
    assert produced.value == b"\xc3\x01original-value"
    assert produced.headers == [
        ("trace", b"abc"),
        ("empty", None),
        ("text", "plain"),
        ("rdc.error.stage", b"send"),
        ("rdc.error.reason", b"rejected_by_rd"),
        ("rdc.error.detail", b'400 {"errors": "bad"}'),
        ("rdc.source.topic", b"orders"),
        ("rdc.source.partition", b"1"),
        ("rdc.source.offset", b"42"),
        ("__connect.errors.topic", b"orders"),
        ("__connect.errors.partition", b"1"),
        ("__connect.errors.offset", b"42"),
        ("__connect.errors.stage", b"TASK_PUT"),
        ("__connect.errors.class.name", b"connector.deliver.attempt.Sender"),
        ("__connect.errors.exception.class.name", b"connector.errors.RecordError"),
        ("__connect.errors.exception.message", b'rejected_by_rd: 400 {"errors": "bad"}'),
    ]
    assert rig.settled == []
    produced.ack()
    assert rig.settled == [("orders", 1, (42,), 99, False)]


def test_dead_letter_without_original_headers_key_or_value(rig: Rig) -> None:
    rig.reporter.dead_letter(make_letter(key=None, value=None, headers=None, stage="decode", reason="bad_magic_byte"))
    [produced] = rig.producer.produced
    assert produced.key is None
    assert produced.value is None
    assert produced.headers is not None
    assert [name for name, _ in produced.headers if name.startswith("rdc.")] == [
        "rdc.error.stage",
        "rdc.error.reason",
        "rdc.error.detail",
        "rdc.source.topic",
        "rdc.source.partition",
        "rdc.source.offset",
    ]
    assert dict(produced.headers)["rdc.error.stage"] == b"decode"
    assert dict(produced.headers)["rdc.error.reason"] == b"bad_magic_byte"


def _connect_message(reporter: Reporter, letter: DeadLetter) -> bytes | None:
    reporter.dead_letter(letter)
    headers = dict(reporter._producer.produced[-1].headers)  # type: ignore[attr-defined]
    value = headers["__connect.errors.exception.message"]
    assert value is None or isinstance(value, bytes)
    return value


def test_kafka_connect_message_keeps_the_records_values_out_unless_log_values(rig: Rig) -> None:
    letter = make_letter(
        stage="map", reason="invalid_email", detail="email: 'ana@x' is not an email", log_detail="email: not an email"
    )
    assert _connect_message(rig.reporter, letter) == b"invalid_email: email: not an email"
    assert dict(rig.producer.produced[-1].headers or [])["rdc.error.detail"] == b"email: 'ana@x' is not an email"
    logging_values = Reporter(rig.producer, RESULTS, DLQ, lambda *args: None, log_values=True)
    assert _connect_message(logging_values, letter) == b"invalid_email: email: 'ana@x' is not an email"


def test_kafka_connect_connector_name_is_the_writer_group(rig: Rig) -> None:
    reporter = Reporter(rig.producer, RESULTS, DLQ, lambda *args: None, writer=("shop-connector", "dest"))
    reporter.dead_letter(make_letter(stage="decode", reason="bad_magic_byte"))
    headers = dict(rig.producer.produced[-1].headers or [])
    assert headers["__connect.errors.connector.name"] == b"shop-connector"
    assert headers["__connect.errors.stage"] == b"VALUE_CONVERTER"
    assert headers["__connect.errors.exception.class.name"] == b"connector.errors.DecodeError"
    assert "__connect.errors.task.id" not in headers  # no task number means anything here


def test_dead_letter_detail_is_capped(rig: Rig) -> None:
    rig.reporter.dead_letter(make_letter(detail="x" * 10_000))
    headers = rig.producer.produced[0].headers
    assert headers is not None
    assert dict(headers)["rdc.error.detail"] == b"x" * 4000


def test_dead_letter_detail_cap_keeps_valid_utf8(rig: Rig) -> None:
    rig.reporter.dead_letter(make_letter(detail="x" * 3999 + "é"))
    headers = rig.producer.produced[0].headers
    assert headers is not None
    detail = dict(headers)["rdc.error.detail"]
    assert isinstance(detail, bytes)
    detail.decode("utf-8")


def test_failed_dead_letter_is_produced_again_and_settles_on_a_later_success(rig: Rig) -> None:
    letter = make_letter()
    rig.reporter.dead_letter(letter)
    first = rig.producer.produced[0]
    first.fail()
    rig.reporter.poll()  # failed reports are produced again by the next poll
    assert rig.settled == []
    assert len(rig.producer.produced) == 2
    second = rig.producer.produced[1]
    assert (second.topic, second.key, second.value, second.headers) == (DLQ, first.key, first.value, first.headers)
    second.ack()
    assert rig.settled == [("orders", 1, (42,), 99, False)]


# --- back-pressure and delegation ---------------------------------------------------------------------------


def test_buffer_error_on_a_result_is_retried(rig: Rig) -> None:
    rig.producer.buffer_errors = 3
    rig.reporter.publish_results([make_item(1, key=b"k")], ["u-1"], "b")
    assert rig.producer.attempts == 4
    assert len(rig.producer.produced) == 1
    rig.producer.produced[0].ack()
    rig.reporter.poll()
    assert rig.settled == [("orders", 2, (1,), item_weight(make_item(1, key=b"k")), True)]


def test_acknowledgements_served_to_make_room_settle_at_once(rig: Rig) -> None:
    # The pipeline thread serves reports itself when the queue is full; the results acknowledged there settle
    # before it goes on (a drain, a rewind or a commit may look next), not at the next `poll`.
    acked: list[Produced] = []

    def poll(timeout: float = 0.0) -> int:
        for produced in rig.producer.produced:
            if produced not in acked:
                acked.append(produced)
                produced.ack()
        return len(acked)

    rig.producer.poll = poll  # type: ignore[method-assign]
    rig.reporter.publish_results([make_item(1)], ["u-1"], "b")
    rig.producer.buffer_errors = 2  # the direct produce and the first retry: one poll in between
    rig.reporter.publish_results([make_item(2)], ["u-2"], "b")  # full: serves (and acknowledges) the first
    assert rig.settled == [("orders", 2, (1,), item_weight(make_item(1)), True)]


def test_buffer_error_on_a_dead_letter_is_retried(rig: Rig) -> None:
    rig.producer.buffer_errors = 2
    rig.reporter.dead_letter(make_letter())
    assert rig.producer.attempts == 3
    [produced] = rig.producer.produced
    assert produced.topic == DLQ
    produced.ack()
    assert rig.settled == [("orders", 1, (42,), 99, False)]


def test_buffer_error_while_reproducing_a_failed_report_is_retried(rig: Rig) -> None:
    rig.reporter.publish_results([make_item(3)], ["u-3"], "b")
    rig.producer.buffer_errors = 2
    rig.producer.produced[0].fail()
    rig.reporter.poll()  # failed reports are produced again by the next poll
    assert rig.producer.attempts == 4
    assert len(rig.producer.produced) == 2
    rig.producer.produced[1].ack()
    rig.reporter.poll()
    assert [s[2] for s in rig.settled] == [(3,)]


def test_poll_and_flush_delegate_to_the_producer(rig: Rig) -> None:
    assert rig.reporter.poll(0.25) == 7
    assert rig.reporter.flush(3.0) == 0
    assert rig.producer.polls == [0.25]
    assert rig.producer.flushes == [3.0]


# --- a wedged producer is replaced -------------------------------------------------------------------------


class PurgeableProducer(FakeProducer):
    """A FakeProducer that can be purged: purge fails every outstanding report with a purge error."""

    def __init__(self) -> None:
        super().__init__()
        self.purged = False
        self.outstanding: list[Produced] = []

    def produce(self, topic: str, *args: Any, **kwargs: Any) -> None:
        super().produce(topic, *args, **kwargs)
        self.outstanding.append(self.produced[-1])

    def purge(self, *args: Any, **kwargs: Any) -> None:
        self.purged = True
        pending, self.outstanding = self.outstanding, []
        for report in pending:
            report.fail("Local: Purged in queue")

    def __len__(self) -> int:
        return len(self.outstanding)


def test_timed_out_report_replaces_the_producer_and_is_produced_on_the_new_one() -> None:
    made: list[PurgeableProducer] = []

    def factory() -> PurgeableProducer:
        made.append(PurgeableProducer())
        return made[-1]

    settled: list[Settled] = []
    first = factory()
    reporter = Reporter(first, RESULTS, DLQ, recorder(settled), None, factory)
    reporter.publish_results([make_item(1), make_item(2)], ["u-1", "u-2"], "b")
    timed_out = first.outstanding.pop(0)
    timed_out.on_delivery(KafkaTimeout(), None)  # item 1 timed out; item 2 is still queued in `first`
    reporter.poll()
    assert len(made) == 2 and first.purged  # replaced; item 2 was purged from the old producer...
    second = made[1]
    assert sorted(p.value is not None for p in second.produced) == [True, True]  # ...and both went to the new one
    for report in list(second.outstanding):
        report.ack()
    reporter.poll()
    assert sorted(o for s in settled for o in s[2]) == [1, 2]
    reporter.poll()
    assert len(made) == 2  # no further replacement once reports succeed


class FatalOnPollProducer(PurgeableProducer):
    """Raises a fatal KafkaException from its first poll, as confluent-kafka does without an error_cb."""

    def poll(self, timeout: float = 0.0) -> int:
        if not self.polls:
            self.polls.append(timeout)
            from confluent_kafka import KafkaError, KafkaException

            raise KafkaException(KafkaError(KafkaError.UNKNOWN_PRODUCER_ID, "unknown producer id", fatal=True))
        return super().poll(timeout)


def test_a_fatal_error_from_poll_retires_the_producer_instead_of_stopping_the_connector() -> None:
    made: list[PurgeableProducer] = []

    def factory() -> PurgeableProducer:
        made.append(PurgeableProducer())
        return made[-1]

    settled: list[Settled] = []
    first = FatalOnPollProducer()
    reporter = Reporter(first, RESULTS, DLQ, recorder(settled), None, factory)
    reporter.publish_results([make_item(1)], ["u-1"], "b")
    reporter.poll()  # the fatal error: no exception escapes, the producer is replaced
    assert len(made) == 1 and first.purged
    reporter.poll()  # the purged report (served by the retired producer) is produced on the new one
    [report] = made[0].outstanding
    report.ack()
    reporter.poll()
    assert [s[2] for s in settled] == [(1,)]


def test_an_error_from_poll_that_is_not_fatal_still_raises() -> None:
    class Broken(FakeProducer):
        def poll(self, timeout: float = 0.0) -> int:
            from confluent_kafka import KafkaError, KafkaException

            raise KafkaException(KafkaError(KafkaError._STATE, "not fatal"))

    reporter = Reporter(Broken(), RESULTS, DLQ, lambda *a: None, None, PurgeableProducer)
    with pytest.raises(Exception, match="not fatal"):
        reporter.poll()


class KafkaTimeout:
    def code(self) -> int:
        from confluent_kafka import KafkaError

        return int(KafkaError._MSG_TIMED_OUT)

    def fatal(self) -> bool:
        return False

    def __str__(self) -> str:
        return "Local: Message timed out"


# --- dead letters too large for Kafka ------------------------------------------------------------------------


class KafkaTooLarge:
    """A delivery-report error: the broker refused the record as too large."""

    def code(self) -> int:
        return int(KafkaError.MSG_SIZE_TOO_LARGE)

    def fatal(self) -> bool:
        return False

    def __str__(self) -> str:
        return "Broker: Message size too large"


class SizeCheckingProducer(FakeProducer):
    """Refuses in produce(), like librdkafka, a record whose size is over `max_bytes`."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__()
        self.max_bytes = max_bytes

    def produce(self, topic: str, *args: Any, **kwargs: Any) -> None:
        report = _produce_args(topic, *args, **kwargs)
        if record_size(report.key, report.value, report.headers or []) > self.max_bytes:
            self.attempts += 1
            raise KafkaException(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE))
        super().produce(topic, *args, **kwargs)


def _size(produced: Produced) -> int:
    return record_size(produced.key, produced.value, produced.headers or [])


def test_a_dead_letter_over_the_limit_is_produced_cut_to_fit(rig: Rig) -> None:
    reporter = Reporter(rig.producer, RESULTS, DLQ, recorder(rig.settled), letter_max_bytes=50_000)
    original = b"\xff" * 200_000
    reporter.dead_letter(make_letter(value=original, weight=0))
    [produced] = rig.producer.produced
    assert _size(produced) <= 50_000
    assert produced.value is not None and original.startswith(produced.value)
    headers = dict(produced.headers or [])
    assert headers["rdc.original.size"] == b"200000" and headers["rdc.truncated"] == b"value"
    produced.ack()
    assert rig.settled == [("orders", 1, (42,), 0, False)]


def test_a_letter_refused_in_produce_as_too_large_is_cut_further_at_once() -> None:
    producer = SizeCheckingProducer(max_bytes=60_000)
    settled: list[Settled] = []
    reporter = Reporter(producer, RESULTS, DLQ, recorder(settled), letter_max_bytes=1_000_000)
    reporter.dead_letter(make_letter(value=b"v" * 500_000))  # misjudged limit: must not raise
    [produced] = producer.produced
    assert _size(produced) <= 60_000
    assert producer.attempts == 5  # 500 KB, then cut to 250 KB, 125 KB, 62.5 KB, 31 KB
    produced.ack()
    assert [s[2] for s in settled] == [(42,)]
    reporter.dead_letter(make_letter(offset=43, value=b"v" * 500_000))  # later letters get the lower limit
    assert producer.attempts == 6


def test_a_letter_the_broker_refuses_as_too_large_is_cut_to_half_and_produced_again(rig: Rig) -> None:
    reporter = Reporter(rig.producer, RESULTS, DLQ, recorder(rig.settled), letter_max_bytes=1_000_000)
    original = b"v" * 800_000
    reporter.dead_letter(make_letter(value=original))
    first = rig.producer.produced[0]
    first.on_delivery(KafkaTooLarge(), None)
    assert rig.settled == []
    reporter.poll()
    second = rig.producer.produced[1]
    assert _size(second) <= _size(first) // 2
    assert second.value is not None and original.startswith(second.value)
    assert dict(second.headers or [])["rdc.original.sha256"] == hashlib.sha256(original).hexdigest().encode()
    second.ack()
    assert rig.settled == [("orders", 1, (42,), 99, False)]


def test_other_errors_on_a_cut_letter_produce_the_same_bytes_again(rig: Rig) -> None:
    reporter = Reporter(rig.producer, RESULTS, DLQ, recorder(rig.settled), letter_max_bytes=50_000)
    reporter.dead_letter(make_letter(value=b"v" * 200_000))
    first = rig.producer.produced[0]
    first.fail("Broker: Not enough in-sync replicas")
    reporter.poll()
    second = rig.producer.produced[1]
    assert (second.key, second.value, second.headers) == (first.key, first.value, first.headers)
    assert rig.settled == []


# --- personal data in the log line ---------------------------------------------------------------------------


def _personal_letter() -> DeadLetter:
    return make_letter(
        stage="map",
        reason="invalid_email",
        detail="CONVERSION: email='Ana Souza +5511987654321': email is not a valid email.",
        log_detail="CONVERSION: email: email is not a valid email.",
    )


@pytest.mark.parametrize("log_values", [False, True])
def test_the_dead_letter_log_line_quotes_values_only_when_asked(
    log_values: bool, caplog: pytest.LogCaptureFixture
) -> None:
    reporter = Reporter(FakeProducer(), RESULTS, DLQ, lambda *a: None, log_values=log_values)
    with caplog.at_level(logging.WARNING, logger="connector.settle.reporter"):
        reporter.dead_letter(_personal_letter())
    [line] = [r.getMessage() for r in caplog.records]
    assert line.startswith("dead_letter topic=orders partition=1 offset=42 stage=map reason=invalid_email")
    assert "email" in line  # the field is named either way
    assert ("Ana Souza" in line) is log_values and ("5511987654321" in line) is log_values


def test_the_dead_letter_header_keeps_the_full_detail_by_default() -> None:
    producer = FakeProducer()
    Reporter(producer, RESULTS, DLQ, lambda *a: None).dead_letter(_personal_letter())
    assert b"Ana Souza" in dict(producer.produced[0].headers or [])["rdc.error.detail"]  # type: ignore[operator]


def test_a_cut_letter_says_so_in_its_log_line(caplog: pytest.LogCaptureFixture) -> None:
    reporter = Reporter(FakeProducer(), RESULTS, DLQ, lambda *a: None, letter_max_bytes=50_000)
    with caplog.at_level(logging.WARNING, logger="connector.settle.reporter"):
        reporter.dead_letter(make_letter(value=b"v" * 200_000))
    [line] = [r.getMessage() for r in caplog.records]
    assert " truncated=value original_bytes=200000 bytes=" in line

"""librdkafka properties: the consumer-only and producer-only tables proved against the librdkafka installed
(a client of the other kind logs a CONFWARN for each), each client's configuration from `Settings` free of
CONFWARNs, and which properties hold secrets."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer

from connector.config import load_settings
from connector.config.librdkafka import CONSUMER_ONLY, PRODUCER_ONLY, for_client, is_secret_property
from connector.ops.kafka_clients import KAFKA_LOGGER, LibrdkafkaLog, drain_log, new_admin, new_consumer, new_producer

NOWHERE = "127.0.0.1:1"  # no broker: a CONFWARN is written when the client is created

# A valid value for each property of the tables (librdkafka's defaults); callbacks cannot be set as text.
CONSUMER_VALUES = {
    "group.id": "g", "group.instance.id": "i", "partition.assignment.strategy": "range",
    "session.timeout.ms": "45000", "heartbeat.interval.ms": "3000", "group.protocol.type": "consumer",
    "group.protocol": "classic", "group.remote.assignor": "uniform", "coordinator.query.interval.ms": "600000",
    "max.poll.interval.ms": "300000", "enable.auto.commit": "true", "auto.commit.interval.ms": "5000",
    "enable.auto.offset.store": "true", "queued.min.messages": "100000", "queued.max.messages.kbytes": "65536",
    "fetch.wait.max.ms": "500", "fetch.queue.backoff.ms": "1000", "fetch.message.max.bytes": "1048576",
    "max.partition.fetch.bytes": "1048576", "fetch.max.bytes": "52428800", "fetch.min.bytes": "1",
    "fetch.error.backoff.ms": "500", "offset.store.method": "broker", "isolation.level": "read_committed",
    "enable.partition.eof": "false", "check.crcs": "false", "max.poll.records": "500",
    "share.acknowledgement.mode": "implicit", "auto.commit.enable": "true", "auto.offset.reset": "largest",
    "offset.store.path": ".", "offset.store.sync.interval.ms": "-1", "consume.callback.max.messages": "0",
}  # fmt: skip
PRODUCER_VALUES = {
    "transactional.id": "t", "transaction.timeout.ms": "60000", "enable.idempotence": "false",
    "enable.gapless.guarantee": "false", "queue.buffering.max.messages": "100000",
    "queue.buffering.max.kbytes": "1048576", "queue.buffering.max.ms": "5", "linger.ms": "5",
    "message.send.max.retries": "2147483647", "retries": "2147483647",
    "queue.buffering.backpressure.threshold": "1", "compression.codec": "none", "compression.type": "none",
    "batch.num.messages": "10000", "batch.size": "1000000", "delivery.report.only.error": "false",
    "sticky.partitioning.linger.ms": "10", "request.required.acks": "-1", "acks": "-1",
    "request.timeout.ms": "30000", "message.timeout.ms": "300000", "delivery.timeout.ms": "300000",
    "queuing.strategy": "fifo", "produce.offset.report": "false", "partitioner": "consistent_random",
    "compression.level": "-1",
}  # fmt: skip
CALLBACKS = {"consume_cb", "rebalance_cb", "offset_commit_cb", "dr_cb", "dr_msg_cb", "partitioner_cb", "msg_order_cmp"}
# librdkafka names an alias by the property it stands for.
ALIASES = {
    "max.partition.fetch.bytes": "fetch.message.max.bytes", "linger.ms": "queue.buffering.max.ms",
    "retries": "message.send.max.retries", "compression.type": "compression.codec",
    "acks": "request.required.acks", "delivery.timeout.ms": "message.timeout.ms",
}  # fmt: skip
_OTHER_KIND = re.compile(r"Configuration property (\S+) is a (?:consumer|producer) property")


class Captured(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def confwarns(self) -> list[str]:
        return [r.getMessage() for r in self.records if isinstance(r.args, tuple) and r.args[:1] == ("CONFWARN",)]


@pytest.fixture
def captured() -> Iterator[Captured]:
    """What librdkafka logs through `connector.kafka` (the clients made by `kafka_clients`)."""
    logger = logging.getLogger(KAFKA_LOGGER)
    handler, level = Captured(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


def test_the_tables_name_every_value_given_in_these_tests() -> None:
    assert set(CONSUMER_VALUES) | (CONSUMER_ONLY & CALLBACKS) == CONSUMER_ONLY
    assert set(PRODUCER_VALUES) | (PRODUCER_ONLY & CALLBACKS) == PRODUCER_ONLY
    assert not CONSUMER_ONLY & PRODUCER_ONLY


def _warned_other_kind(lines: list[str]) -> set[str]:
    return {m.group(1) for line in lines if (m := _OTHER_KIND.search(line))}


def test_librdkafka_calls_every_consumer_only_property_a_consumer_property() -> None:
    handler, logger = Captured(), logging.getLogger("test.librdkafka.consumer_only")
    logger.addHandler(handler)
    producer = Producer({"bootstrap.servers": NOWHERE, **CONSUMER_VALUES, "logger": LibrdkafkaLog(logger)})
    producer.poll(0)
    assert _warned_other_kind(handler.confwarns()) == {ALIASES.get(k, k) for k in CONSUMER_VALUES}


def test_librdkafka_calls_every_producer_only_property_a_producer_property() -> None:
    handler, logger = Captured(), logging.getLogger("test.librdkafka.producer_only")
    logger.addHandler(handler)
    consumer = Consumer(
        {"bootstrap.servers": NOWHERE, "group.id": "g", **PRODUCER_VALUES, "logger": LibrdkafkaLog(logger)}
    )
    try:
        consumer.consume(1, 0)
        assert _warned_other_kind(handler.confwarns()) == {ALIASES.get(k, k) for k in PRODUCER_VALUES}
    finally:
        consumer.close()


@pytest.mark.parametrize(
    ("kind", "kept"),
    [
        pytest.param("consumer", {"bootstrap.servers", "client.id", "group.id"}, id="consumer"),
        pytest.param("producer", {"bootstrap.servers", "client.id", "linger.ms"}, id="producer"),
        pytest.param("admin", {"bootstrap.servers", "client.id"}, id="admin"),
    ],
)
def test_for_client(kind: Any, kept: set[str]) -> None:
    config = {"bootstrap.servers": NOWHERE, "client.id": "c", "group.id": "g", "linger.ms": 5}
    assert set(for_client(config, kind)) == kept


#: Every kind of passthrough setting a user may give, consumer- and producer-only ones included.
MIXED_ENV = {
    "RDC_KAFKA_BOOTSTRAP_SERVERS": NOWHERE,
    "RDC_TOPICS": "orders",
    "RDC_KAFKA__SESSION_TIMEOUT_MS": "6000",
    "RDC_KAFKA__HEARTBEAT_INTERVAL_MS": "500",
    "RDC_KAFKA__AUTO_OFFSET_RESET": "latest",
    "RDC_KAFKA__ISOLATION_LEVEL": "read_committed",
    "RDC_KAFKA__MAX_POLL_INTERVAL_MS": "600000",
    "RDC_KAFKA__COMPRESSION_TYPE": "lz4",
    "RDC_KAFKA__MESSAGE_TIMEOUT_MS": "60000",
    "RDC_KAFKA__QUEUE_BUFFERING_MAX_KBYTES": "65536",
    "RDC_KAFKA__CLIENT_ID": "rdc",
    "RDC_KAFKA__SOCKET_KEEPALIVE_ENABLE": "true",
}


def _settings_configs() -> Mapping[str, dict[str, Any]]:
    settings = load_settings(MIXED_ENV)
    return {
        "consumer": settings.consumer_config(),
        "producer": settings.producer_config(),
        "admin": settings.kafka_common(),
    }


def test_settings_give_each_client_its_own_settings_only() -> None:
    configs = _settings_configs()
    consumer, producer, admin = configs["consumer"], configs["producer"], configs["admin"]
    assert not set(consumer) & PRODUCER_ONLY and not set(producer) & CONSUMER_ONLY
    assert not set(admin) & (CONSUMER_ONLY | PRODUCER_ONLY)
    assert (consumer["session.timeout.ms"], consumer["auto.offset.reset"]) == ("6000", "latest")  # the user's win
    assert (producer["compression.type"], producer["message.timeout.ms"]) == ("lz4", "60000")
    assert consumer["client.id"] == producer["client.id"] == admin["client.id"] == "rdc"  # shared ones reach all


def test_the_clients_made_from_settings_log_no_confwarn(captured: Captured) -> None:
    configs = _settings_configs()
    consumer = new_consumer(configs["consumer"])
    producer = new_producer(configs["producer"])
    admin = new_admin(configs["admin"])
    try:
        consumer.consume(1, 0)
        producer.poll(0)
        drain_log(admin)
    finally:
        consumer.close()
    assert captured.confwarns() == []


def test_the_factories_drop_the_other_kinds_settings(captured: Captured) -> None:
    """Even given everything (as the token store gives its clients), no client is told the other kind's."""
    everything = {"bootstrap.servers": NOWHERE, "group.id": "g", "session.timeout.ms": "6000", "linger.ms": "5"}
    producer = new_producer(everything)
    producer.poll(0)
    drain_log(new_admin(everything))
    consumer = new_consumer(everything)
    try:
        consumer.consume(1, 0)
    finally:
        consumer.close()
    assert captured.confwarns() == []


def test_a_confwarn_reaches_python_logging_as_a_warning_with_its_fields(captured: Captured) -> None:
    log = LibrdkafkaLog(logging.getLogger(KAFKA_LOGGER))
    Producer({"bootstrap.servers": NOWHERE, "session.timeout.ms": "6000", "logger": log}).poll(0)
    (record,) = [r for r in captured.records if isinstance(r.args, tuple) and r.args[:1] == ("CONFWARN",)]
    assert record.levelno == logging.WARNING and record.name == KAFKA_LOGGER
    assert record.msg == "librdkafka facility=%s client=%s thread=%s: %s"
    assert isinstance(record.args, tuple)
    facility, client, thread, text = record.args
    assert (facility, thread) == ("CONFWARN", "app") and str(client).startswith("rdkafka#producer-")
    assert str(text).startswith("Configuration property session.timeout.ms is a consumer property")


@pytest.mark.parametrize(
    ("key", "secret"),
    [
        pytest.param("sasl.password", True, id="sasl.password"),
        pytest.param("ssl.key.password", True, id="ssl.key.password"),
        pytest.param("ssl.keystore.password", True, id="ssl.keystore.password"),
        pytest.param("sasl.oauthbearer.client.secret", True, id="oauthbearer-client-secret"),
        pytest.param("sasl.oauthbearer.assertion.private.key.passphrase", True, id="assertion-passphrase"),
        pytest.param("ssl.key.pem", True, id="ssl.key.pem"),
        pytest.param("sasl.oauthbearer.assertion.private.key.pem", True, id="assertion-key-pem"),
        pytest.param("sasl.oauthbearer.config", True, id="oauthbearer-config"),
        pytest.param("ssl.key.location", False, id="ssl.key.location"),
        pytest.param("ssl.certificate.location", False, id="ssl.certificate.location"),
        pytest.param("sasl.kerberos.keytab", False, id="sasl.kerberos.keytab"),
        pytest.param("ssl.keystore.location", False, id="ssl.keystore.location"),
        pytest.param("sasl.oauthbearer.assertion.private.key.file", False, id="assertion-key-file"),
        pytest.param("ssl.certificate.pem", False, id="ssl.certificate.pem"),
        pytest.param("sasl.username", False, id="sasl.username"),
        pytest.param("sasl.oauthbearer.token.endpoint.url", False, id="token-endpoint-url"),
    ],
)
def test_is_secret_property(key: str, secret: bool) -> None:
    assert is_secret_property(key) is secret


def test_paths_are_neither_redacted_nor_hidden_and_passwords_are() -> None:
    settings = load_settings(
        {
            **MIXED_ENV,
            "RDC_KAFKA__SSL_KEY_LOCATION": "/etc/rdc/client.key",
            "RDC_KAFKA__SSL_KEY_PASSWORD": "key-pass-1",
            "RDC_KAFKA__SASL_OAUTHBEARER_CLIENT_SECRET": "oauth-secret-1",
        }
    )
    assert set(settings.secret_values()) == {"key-pass-1", "oauth-secret-1"}
    assert "/etc/rdc/client.key" in repr(settings)
    assert "key-pass-1" not in repr(settings) and "oauth-secret-1" not in repr(settings)

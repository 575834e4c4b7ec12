"""The dead-letter size limit, learned once at start from Kafka (`learn_letter_limit` is the only I/O here).

A dead letter must fit both:

- the producer's `message.max.bytes` (librdkafka refuses a larger record in `produce()`; default 1,000,000);
- the broker's limit for the dead-letter topic: the topic's `max.message.bytes` (Kafka answers the effective
  value: the broker's `message.max.bytes` unless the topic overrides it) or, when the topic does not exist
  yet (it is auto-created by the first produce), the broker's `message.max.bytes`.

Both are read with DescribeConfigs. When Kafka does not say (no permission to describe configs, a timeout, or
a broker that answers no value: Tansu answers only the settings a topic was created with), the broker's limit
is taken to be Kafka's default (1,048,588) and a log line says so. A limit misjudged anyway is caught when
producing: the `Reporter` cuts the letter further and produces it again.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Final, NamedTuple

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import ConfigResource, ResourceType  # type: ignore[attr-defined]

from connector.errors import ConfigError
from connector.settle.dead_letters import MIN_LIMIT

__all__ = [
    "KAFKA_DEFAULT_MAX_MESSAGE_BYTES",
    "PRODUCER_DEFAULT_MAX_MESSAGE_BYTES",
    "LetterLimit",
    "choose_limit",
    "learn_letter_limit",
    "producer_config_for",
]

_log = logging.getLogger("connector.settle.letter_limit")

KAFKA_DEFAULT_MAX_MESSAGE_BYTES: Final = 1_048_588
PRODUCER_DEFAULT_MAX_MESSAGE_BYTES: Final = 1_000_000
_BATCH_SIZE_DEFAULT: Final = 1_000_000  # librdkafka's batch.size


class LetterLimit(NamedTuple):
    """`bytes`: the most a dead-letter record may take. `broker_bytes`: the broker's limit for the topic, and
    `source` where it came from: `topic`, `broker`, `unknown` (Kafka named none) or `unreadable` (asking failed)."""

    bytes: int
    broker_bytes: int | None
    source: str


def choose_limit(producer_max: int, broker_max: int | None) -> int:
    """The smaller of the two limits (an unknown broker limit counts as Kafka's default). Pure.

    Raises `ConfigError` when it is below `MIN_LIMIT`: no dead letter could hold its coordinates and error."""
    if producer_max < MIN_LIMIT:
        raise ConfigError(
            f"RDC_KAFKA__MESSAGE_MAX_BYTES={producer_max} is too small for a dead letter (its headers alone take "
            f"up to ~5 KB): expected at least {MIN_LIMIT}"
        )
    if broker_max is not None and broker_max < MIN_LIMIT:
        raise ConfigError(
            f"the dead-letter topic (RDC_DLQ_TOPIC) accepts records of at most {broker_max} bytes "
            f"(max.message.bytes): raise it to at least {MIN_LIMIT}"
        )
    return min(producer_max, KAFKA_DEFAULT_MAX_MESSAGE_BYTES if broker_max is None else broker_max)


def _producer_max(producer_config: Mapping[str, Any]) -> int:
    raw = producer_config.get("message.max.bytes", PRODUCER_DEFAULT_MAX_MESSAGE_BYTES)
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise ConfigError(f"RDC_KAFKA__MESSAGE_MAX_BYTES={raw!r} is invalid: expected a number of bytes") from None


def _described(admin: Any, resource: Any, name: str, timeout_s: float) -> int | None:
    entries = admin.describe_configs([resource], request_timeout=timeout_s)[resource].result(timeout_s)
    entry = entries.get(name)
    return int(entry.value) if entry is not None and entry.value is not None else None


def _broker_max(admin: Any, topic: str, timeout_s: float) -> tuple[int | None, str]:
    try:
        value = _described(admin, ConfigResource(ResourceType.TOPIC, topic), "max.message.bytes", timeout_s)
    except KafkaException as exc:
        if exc.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
            raise
        value = None  # not created yet: the broker's default applies
    if value is not None:
        return value, "topic"
    brokers = admin.list_topics(timeout=timeout_s).brokers
    for broker in sorted(brokers):
        value = _described(admin, ConfigResource(ResourceType.BROKER, str(broker)), "message.max.bytes", timeout_s)
        if value is not None:
            return value, "broker"
    return None, "unknown"


def learn_letter_limit(
    admin: Any, topic: str, producer_config: Mapping[str, Any], timeout_s: float = 10.0
) -> LetterLimit:
    """Ask Kafka (`admin`: a confluent-kafka `AdminClient`) for the dead-letter `topic`'s limit and combine it
    with the producer's. Never fails for want of an answer (logs and assumes Kafka's default); raises
    `ConfigError` for a limit too small to hold any dead letter (see `choose_limit`)."""
    producer_max = _producer_max(producer_config)
    try:
        broker_max, source = _broker_max(admin, topic, timeout_s)
    except (KafkaException, TimeoutError, ValueError) as exc:
        _log.warning(
            "dead_letter_limit_unreadable topic=%s error=%s (assuming Kafka's default max.message.bytes=%d)",
            topic, exc, KAFKA_DEFAULT_MAX_MESSAGE_BYTES,
        )  # fmt: skip
        broker_max, source = None, "unreadable"
    else:
        if broker_max is None:
            _log.info("dead_letter_limit_unknown topic=%s: the broker names no max.message.bytes", topic)
    limit = choose_limit(producer_max, broker_max)
    _log.info(
        "dead_letter_limit bytes=%d producer_max=%d broker_max=%s source=%s",
        limit, producer_max, broker_max if broker_max is not None else "unknown", source,
    )  # fmt: skip
    return LetterLimit(limit, broker_max, source)


def producer_config_for(config: Mapping[str, Any], limit: LetterLimit) -> dict[str, Any]:
    """`config` with `batch.size` at most the broker's limit: librdkafka packs several records into one batch
    (up to `batch.size`, 1,000,000 by default), and a broker refuses a batch over the topic's
    `max.message.bytes` even when each record fits."""
    result = dict(config)
    if limit.broker_bytes is not None and int(result.get("batch.size", _BATCH_SIZE_DEFAULT)) > limit.broker_bytes:
        result["batch.size"] = limit.broker_bytes
    return result

"""What a librdkafka property is to the connector: consumer-only, producer-only, or a secret.

`for_client(config, kind)` keeps the properties that apply to one kind of client: a consumer gets no
producer-only property, a producer no consumer-only one, an admin client neither (it is a producer-type handle
that uses none of them). librdkafka would ignore them anyway, but it says so at every start with a
`CONFWARN` line per property. Properties in neither table (bootstrap, security, `client.id`, timeouts shared
by every client...) reach every client, and so does an unknown name (librdkafka refuses it when the client
is created: a typo stops the start).

The tables are the properties librdkafka's CONFIGURATION.md (2.15) marks `C` and `P`, aliases included
(`linger.ms`, `acks`...); tests/unit/config/test_librdkafka.py proves each against the librdkafka installed:
a client of the other kind created with it logs a CONFWARN naming it.

`is_secret_property(key)`: whether a property's value is a secret (a password, a passphrase, a client secret,
a private key in PEM, the free-form OAUTHBEARER config); a path to a key file (`ssl.key.location`,
`sasl.kerberos.keytab`) is not one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final, Literal, TypeVar

__all__ = ["CONSUMER_ONLY", "PRODUCER_ONLY", "ClientKind", "for_client", "is_secret_property"]

ClientKind = Literal["consumer", "producer", "admin"]
V = TypeVar("V")

CONSUMER_ONLY: Final = frozenset(
    {
        # global
        "group.id", "group.instance.id", "partition.assignment.strategy", "session.timeout.ms",
        "heartbeat.interval.ms", "group.protocol.type", "group.protocol", "group.remote.assignor",
        "coordinator.query.interval.ms", "max.poll.interval.ms", "enable.auto.commit", "auto.commit.interval.ms",
        "enable.auto.offset.store", "queued.min.messages", "queued.max.messages.kbytes", "fetch.wait.max.ms",
        "fetch.queue.backoff.ms", "fetch.message.max.bytes", "max.partition.fetch.bytes", "fetch.max.bytes",
        "fetch.min.bytes", "fetch.error.backoff.ms", "offset.store.method", "isolation.level", "consume_cb",
        "rebalance_cb", "offset_commit_cb", "enable.partition.eof", "check.crcs", "max.poll.records",
        "share.acknowledgement.mode",
        # topic
        "auto.commit.enable", "auto.offset.reset", "offset.store.path", "offset.store.sync.interval.ms",
        "consume.callback.max.messages",
    }
)  # fmt: skip

PRODUCER_ONLY: Final = frozenset(
    {
        # global
        "transactional.id", "transaction.timeout.ms", "enable.idempotence", "enable.gapless.guarantee",
        "queue.buffering.max.messages", "queue.buffering.max.kbytes", "queue.buffering.max.ms", "linger.ms",
        "message.send.max.retries", "retries", "queue.buffering.backpressure.threshold", "compression.codec",
        "compression.type", "batch.num.messages", "batch.size", "delivery.report.only.error", "dr_cb",
        "dr_msg_cb", "sticky.partitioning.linger.ms",
        # topic
        "request.required.acks", "acks", "request.timeout.ms", "message.timeout.ms", "delivery.timeout.ms",
        "queuing.strategy", "produce.offset.report", "partitioner", "partitioner_cb", "msg_order_cmp",
        "compression.level",
    }
)  # fmt: skip

_NOT_FOR: Final[dict[str, frozenset[str]]] = {
    "consumer": PRODUCER_ONLY,
    "producer": CONSUMER_ONLY,
    "admin": CONSUMER_ONLY | PRODUCER_ONLY,
}


def for_client(config: Mapping[str, V], kind: ClientKind) -> dict[str, V]:
    """`config` without the properties that do not apply to a client of this `kind`. Pure."""
    excluded = _NOT_FOR[kind]
    return {key: value for key, value in config.items() if key not in excluded}


# password, passphrase, secret or token as the property's last word; a private key given inline (PEM);
# sasl.oauthbearer.config, free text that may carry a client secret. Not `.location`, `.keytab`, `.file`.
_SECRET_PROPERTY: Final = re.compile(r"(?:password|passphrase|secret|token)$|key\.pem$|^sasl\.oauthbearer\.config$")


def is_secret_property(key: str) -> bool:
    """Whether the value of librdkafka property `key` is a secret (redacted in logs and reprs)."""
    return _SECRET_PROPERTY.search(key.lower()) is not None

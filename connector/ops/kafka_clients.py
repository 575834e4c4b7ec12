"""Every confluent-kafka client the connector creates is made here (`new_consumer`, `new_producer`, `new_admin`).

Each gets:

- only the librdkafka settings that apply to its kind (`connector.config.librdkafka.for_client`), so librdkafka
  has no `CONFWARN` to print about the other kind's settings;
- its librdkafka log through Python logging (confluent-kafka's `logger` setting), logger `connector.kafka`:
  each line goes through the connector's handler, in `RDC_LOG_FORMAT` and redacted, instead of librdkafka's
  own `%4|...|FAC|...` on stderr. A line reads `librdkafka facility=CONFWARN client=rdkafka#producer-1
  thread=app: <librdkafka's text>`. Levels: confluent-kafka maps syslog's 0-2 to CRITICAL, 3 to ERROR, 4 to
  WARNING, 5-6 to INFO and 7 (only with librdkafka's `debug` setting) to DEBUG.

With a `logger`, librdkafka queues its lines and confluent-kafka hands them over only when the client is
served: `poll`/`consume` of a consumer, `poll`/`flush` of a producer or an admin client. The pipeline's
consumer and producers are served all the time; the ledger reader's and the token store's clients at each
use. An admin client is used for a few requests and dropped: call `drain_log(admin)` after them (it serves
the queue without waiting). Lines librdkafka writes while a client closes or is destroyed are dropped (there
is no poll after close): they are about the shutdown of that client, never lost records.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Mapping
from typing import Any, Final

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient

from connector.config.librdkafka import ClientKind, for_client

__all__ = ["KAFKA_LOGGER", "LibrdkafkaLog", "drain_log", "new_admin", "new_consumer", "new_producer"]

KAFKA_LOGGER: Final = "connector.kafka"
# librdkafka starts most lines with the thread that wrote them: "[thrd:app]: Configuration property ..."
_THREAD: Final = re.compile(r"\[thrd:(?P<thread>[^\]]*)\]:\s*")


class LibrdkafkaLog(logging.LoggerAdapter[logging.Logger]):
    """The `logger` confluent-kafka calls with each librdkafka line: `log(level, "%s [%s] %s", facility,
    client name, text)`. It logs `librdkafka facility=%s client=%s thread=%s: %s` instead, so that the JSON
    format has the facility, client and thread as fields and librdkafka's text as `msg`. Any other call
    passes through as it is."""

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        if msg == "%s [%s] %s" and len(args) == 3:
            facility, client, text = (str(arg) for arg in args)
            match = _THREAD.match(text)
            thread = match.group("thread") if match else "-"
            body = text[match.end() :] if match else text
            self.logger.log(level, "librdkafka facility=%s client=%s thread=%s: %s", facility, client, thread, body)
        else:
            self.logger.log(level, msg, *args, **kwargs)


_LOG: Final = LibrdkafkaLog(logging.getLogger(KAFKA_LOGGER))


def _config(config: Mapping[str, Any], kind: ClientKind) -> dict[str, Any]:
    return {"logger": _LOG, **for_client(config, kind)}


def new_consumer(config: Mapping[str, Any]) -> Consumer:
    """A `Consumer` with `config`'s consumer settings (producer-only ones dropped), logging to `connector.kafka`
    unless `config` names its own `logger`."""
    return Consumer(_config(config, "consumer"))


def new_producer(config: Mapping[str, Any]) -> Producer:
    """A `Producer` with `config`'s producer settings (consumer-only ones dropped), logging to `connector.kafka`
    unless `config` names its own `logger`."""
    return Producer(_config(config, "producer"))


def new_admin(config: Mapping[str, Any]) -> AdminClient:
    """An `AdminClient` with `config`'s settings for every client (consumer- and producer-only ones dropped),
    logging to `connector.kafka` unless `config` names its own `logger`. Call `drain_log` after using it."""
    return AdminClient(_config(config, "admin"))


def drain_log(admin: Any) -> None:
    """Hand over the log lines an admin client queued (its requests' connection errors, its CONFWARNs), without
    waiting. Never raises: a broken client's lines are not worth a failed start."""
    with contextlib.suppress(Exception):  # only log lines are at stake
        admin.poll(0)

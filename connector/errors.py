"""The connector's exception tree. Every error the connector raises on purpose is one of these.

```
ConnectorError
├── ConfigError            a setting is missing or invalid (raised at start, names the setting)
├── RecordError            one Kafka record cannot be delivered; the pipeline dead-letters it and goes on
│   ├── DecodeError        the bytes are not a record of a known schema
│   └── MappingError       the record decodes but RD would refuse it (or it is too large to send)
├── SchemaRegistryUnavailable  the Schema Registry cannot be reached or refuses us (not the record's fault:
│                          retry later, never dead-letter the record for it)
└── BrokerError            the embedded broker (tests and demo) failed to start or stop
```

`RecordError.reason` is a stable, machine-readable code (part of the public contract: operators filter
dead letters by it, see README "Dead letters"); `str(error)` is the human message naming field and value
(it goes to the dead-letter topic); `log_message` is the same without the record's values (for the logs).
Lower-level errors are translated with `raise ... from exc` at the edge where they happen.

Exit codes of `rd-connector run` (README "Exit codes"; a fatal error carries its own as `exit_code`):
0 stopped, everything consumed settled and committed; 1 unexpected error (`EXIT_CRASH`, also a dead
decode worker); 2 configuration error (`EXIT_CONFIG`); 3 RD refused us for good (`AuthFatal`,
`sender.LaneFatal`); 4 ambiguous RD answer (`sender.AmbiguousAnswer`); 5 a batch failed past
`RDC_RETRY_MAX_ELAPSED_S` (`sender.RetryDeadlineExceeded`); 6 stopped with consumed work left unsettled at the
shutdown deadline (`pipeline.EXIT_UNSETTLED`).
"""

from __future__ import annotations

from typing import Self

__all__ = [
    "BrokerError",
    "ConfigError",
    "ConnectorError",
    "DecodeError",
    "MappingError",
    "RecordError",
    "SchemaRegistryUnavailable",
]


class ConnectorError(Exception):
    """Base of every error the connector raises on purpose."""


class ConfigError(ConnectorError):
    """A configuration value is missing or invalid. The message names the setting, the value
    (never a secret's value) and what is accepted."""


class BrokerError(ConnectorError):
    """The embedded broker could not be started or stopped."""


class RecordError(ConnectorError):
    """One record cannot be delivered. `stage` is where it failed (`decode`, `map`, `send`)."""

    stage = "record"

    def __init__(self, reason: str, message: str, log_message: str | None = None) -> None:
        """`log_message` is required when `message` quotes the record's data (its default is `message`)."""
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.log_message = message if log_message is None else log_message

    def __repr__(self) -> str:
        return f"{type(self).__name__}(reason={self.reason!r}, message={self.message!r})"

    def prefixed(self, prefix: str) -> Self:
        """The same refusal with `prefix` (e.g. `mapping <name>: `) before both its messages."""
        return type(self)(self.reason, prefix + self.message, prefix + self.log_message)


class DecodeError(RecordError):
    """The value is not a decodable record: bad framing, unknown schema, truncated or corrupt body."""

    stage = "decode"


class MappingError(RecordError):
    """The record decoded but cannot become an RD event RD would accept."""

    stage = "map"


class SchemaRegistryUnavailable(ConnectorError):
    """The Schema Registry could not answer (transport error, timeout, 5xx, 401/403). The record may be
    fine: the caller retries it later (or stops); it is never a reason to dead-letter the record."""

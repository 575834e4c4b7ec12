"""Every exception the connector raises on purpose, and every exit code of its commands.

```
Exception
├── ConnectorError              base of everything the connector raises on purpose
│   ├── ConfigError             a setting is missing or invalid (raised at start, names the setting)
│   │   ├── mapping.spec.MappingFileError   a mapping file is wrong (file:line, what to fix)
│   │   └── mapping.yaml_lines.YamlError    a YAML file does not parse
│   ├── RecordError             one Kafka record cannot be delivered; the pipeline dead-letters it and goes on
│   │   ├── DecodeError         the bytes are not a record of a known schema
│   │   └── MappingError        the record decodes but RD would refuse it (or it is too large to send)
│   ├── SchemaRegistryUnavailable  the Schema Registry cannot answer (not the record's fault: held, retried)
│   ├── BrokerError             the embedded broker (tests and demo) failed to start or stop
│   ├── AuthUnavailable         the token endpoint cannot answer now (retried)
│   └── fatal: stop `run` with their `exit_code`
│       ├── AuthFatal               3  RD refused our credentials for good
│       ├── LaneFatal               3  RD answered what retrying cannot fix (403, 404, ...)
│       ├── AmbiguousAnswer         4  a 200 that does not name one distinct UUID per event
│       ├── RetryDeadlineExceeded   5  a batch kept failing past RDC_RETRY_MAX_ELAPSED_S
│       └── LaneCrashed             1  a bug in a lane (logged with its traceback)
└── ValueError
    └── BadAnswer               a 200 body that does not say what RD accepted (becomes AmbiguousAnswer)
```
Private control-flow exceptions (`deliver`'s abandoned batch, the ledger's unavailable scan, mapping's
path and fit errors) never leave their module.

`RecordError.reason` is a stable, machine-readable code (part of the public contract: operators filter
dead letters by it, see README "Dead letters"); `str(error)` is the human message naming field and value
(it goes to the dead-letter topic); `log_message` is the same without the record's values (for the logs).
Lower-level errors are translated with `raise ... from exc` at the edge where they happen.

Exit codes (README "Exit codes"). `rd-connector run`: 0 stopped, everything consumed settled and committed;
1 unexpected error (a bug, a dead decode worker); 2 configuration error; 3 RD refused us for good; 4 ambiguous
RD answer; 5 a batch failed past `RDC_RETRY_MAX_ELAPSED_S`; 6 stopped with consumed work left unsettled (or
settled but uncommitted) at the shutdown deadline. `check`, `dry-run`, `mapping test`: 0 passed, 1 a check
failed (or RD / the broker could not be reached), 2 the configuration or a mapping file is broken.
"""

from __future__ import annotations

from typing import Final, Self

__all__ = [
    "EXIT_AMBIGUOUS_ANSWER",
    "EXIT_CONFIG",
    "EXIT_CRASH",
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_RD_REFUSED",
    "EXIT_RETRY_DEADLINE",
    "EXIT_UNSETTLED",
    "AmbiguousAnswer",
    "AuthFatal",
    "AuthUnavailable",
    "BadAnswer",
    "BrokerError",
    "ConfigError",
    "ConnectorError",
    "DecodeError",
    "LaneCrashed",
    "LaneFatal",
    "MappingError",
    "RecordError",
    "RetryDeadlineExceeded",
    "SchemaRegistryUnavailable",
]

EXIT_OK: Final = 0
#: `run`: an unexpected error (a bug, a dead decode worker).
EXIT_CRASH: Final = 1
#: `check`, `dry-run`, `mapping test`: a check failed, or what it checks could not be reached.
EXIT_FAILED: Final = 1
#: every command: the configuration or a mapping file is broken (the message names what to fix).
EXIT_CONFIG: Final = 2
EXIT_RD_REFUSED: Final = 3
EXIT_AMBIGUOUS_ANSWER: Final = 4
EXIT_RETRY_DEADLINE: Final = 5
#: `run` stopped with consumed work unsettled or uncommitted at the deadline (it will be redelivered).
EXIT_UNSETTLED: Final = 6


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


class AuthUnavailable(ConnectorError):
    """The token endpoint could not answer now; try again later."""


class AuthFatal(ConnectorError):
    """RD refused our credentials for good. `status`: the token endpoint's HTTP status, if it answered."""

    exit_code = EXIT_RD_REFUSED

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class LaneFatal(ConnectorError):
    """RD answered in a way retrying cannot fix (auth refused, forbidden, not found)."""

    exit_code = EXIT_RD_REFUSED


class AmbiguousAnswer(ConnectorError):
    """RD answered 200 but not with one distinct UUID per event (or with an answer too long to read): we
    cannot tell which events it accepted."""

    exit_code = EXIT_AMBIGUOUS_ANSWER


class RetryDeadlineExceeded(ConnectorError):
    """A batch kept failing for longer than `RDC_RETRY_MAX_ELAPSED_S` (raised by the deadline, not after a
    wait past it)."""

    exit_code = EXIT_RETRY_DEADLINE


class LaneCrashed(ConnectorError):
    """A lane met an exception nothing planned for: a bug. `run` exits 1; the traceback is logged."""

    exit_code = EXIT_CRASH


class BadAnswer(ValueError):
    """A 200 body that does not say, event by event, what RD accepted. The message says what is wrong."""

"""Every setting, declared once: its name, its parser and its help text (`SPECS`).

Every setting is declared once in `SPECS` (name, parser, default, help); the README's configuration table
lists the same names (a test keeps them in step). Invalid values raise `ConfigError` naming the setting,
the value (never a secret's) and what is accepted.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

from connector.config.secret import Secret
from connector.errors import ConfigError

__all__ = ["ENV_PREFIX", "SPECS", "Parser", "Spec"]

ENV_PREFIX: Final = "RDC_"


Parser = Callable[[str, Any], Any]


def _text(name: str, raw: Any) -> str:
    if not isinstance(raw, str | int | float) or isinstance(raw, bool):
        raise ConfigError(f"{name}={raw!r} is invalid: expected a string")
    return str(raw).strip()


def _nonempty(name: str, raw: Any) -> str:
    value = _text(name, raw)
    if not value:
        raise ConfigError(f"{name} is empty: expected a non-empty string")
    return value


def _secret(name: str, raw: Any) -> Secret:
    if not isinstance(raw, str) or not raw.strip():
        raise ConfigError(f"{name} is invalid: expected a non-empty string (value not shown, it is a secret)")
    return Secret(raw.strip())


def _between(convert: Callable[[Any], float], kind: str, low: float, high: float) -> Parser:
    def parse(name: str, raw: Any) -> Any:
        try:
            value = convert(raw) if not isinstance(raw, bool) else None
        except (TypeError, ValueError, OverflowError):  # OverflowError: int(inf) of a TOML `inf`
            value = None
        if isinstance(raw, float) and value != raw:  # int(12.7) is 12: a TOML fraction is no integer (nor is nan)
            value = None
        if value is None or not low <= value <= high:
            raise ConfigError(f"{name}={raw!r} is invalid: expected {kind} from {low} to {high}")
        return value

    return parse


def _int_between(low: int, high: int) -> Parser:
    return _between(int, "an integer", low, high)


def _float_between(low: float, high: float) -> Parser:
    return _between(float, "a number", low, high)


def _workers(name: str, raw: Any) -> int | None:
    """`auto` (None: decided at start from the usable CPUs) or 0-64 worker processes."""
    if isinstance(raw, str) and raw.strip().lower() == "auto":
        return None
    try:
        return int(_int_between(0, 64)(name, raw))
    except ConfigError:
        raise ConfigError(f"{name}={raw!r} is invalid: expected auto or a number of worker processes, 0-64") from None


def _avro_decoder(name: str, raw: Any) -> str:
    """fastavro, cavro (only when installed: the `fast` extra) or auto."""
    value = _text(name, raw).lower()
    if value not in ("fastavro", "cavro", "auto"):
        raise ConfigError(f"{name}={raw!r} is invalid: expected fastavro, cavro or auto")
    if value == "cavro" and importlib.util.find_spec("cavro") is None:
        raise ConfigError(f"{name}=cavro but cavro is not installed: pip install 'rd-connector[fast]'")
    return value


def _url(name: str, raw: Any) -> str:
    value = _nonempty(name, raw).rstrip("/")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{name}={value!r} is invalid: expected an http:// or https:// URL")
    if parts.username or parts.password:
        raise ConfigError(f"{name} is invalid: put credentials in their own settings, not in the URL")
    return value


def _names(name: str, raw: Any) -> tuple[str, ...]:
    items = raw if isinstance(raw, list) else _text(name, raw).split(",")
    values = tuple(_text(name, item) for item in items)
    if not values or any(not v for v in values):
        raise ConfigError(f"{name}={raw!r} is invalid: expected a comma-separated list of non-empty names")
    return values


def _topic_map(name: str, raw: Any) -> Mapping[str, str]:
    if isinstance(raw, Mapping):
        pairs: list[tuple[Any, Any]] = [(str(k), v) for k, v in raw.items()]
    else:
        pairs = [p.partition("=")[::2] for p in _text(name, raw).split(",")]
    result = {_text(name, k): _text(name, v) for k, v in pairs}
    if any(not k or not v for k, v in result.items()):
        raise ConfigError(f"{name}={raw!r} is invalid: expected topic=namespace.RecordName pairs, comma-separated")
    return result


def _bool(name: str, raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    value = _text(name, raw).lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}={raw!r} is invalid: expected true or false")


def _log_format(name: str, raw: Any) -> str:
    value = _text(name, raw).lower()
    if value not in ("kv", "json"):
        raise ConfigError(f"{name}={raw!r} is invalid: expected kv or json")
    return value


def _log_level(name: str, raw: Any) -> str:
    value = _text(name, raw).upper()
    if value not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError(f"{name}={raw!r} is invalid: expected one of DEBUG, INFO, WARNING, ERROR")
    return value


@dataclass(frozen=True, slots=True)
class Spec:
    """One setting: its field name in `Settings` (env var: RDC_ + upper-case name), parser and help text.
    Its default is the `Settings` field default."""

    name: str
    parse: Parser
    help: str

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()


SPECS: Final[tuple[Spec, ...]] = (
    Spec("kafka_bootstrap_servers", _nonempty, "Kafka bootstrap servers, host:port[,host:port]"),
    Spec("group_id", _nonempty, "Kafka consumer group id"),
    Spec("topics", _names, "source topics, comma-separated"),
    Spec("results_topic", _nonempty, "topic for one DeliveryResult per delivered event"),
    Spec("dlq_topic", _nonempty, "dead-letter topic"),
    Spec("rd_base_url", _url, "RD Station API base URL"),
    Spec(
        "allow_insecure_http",
        _bool,
        "allow plain http:// to a host that is not loopback for RD (and a Schema Registry with credentials)",
    ),
    Spec("rd_access_token", _secret, "RD access token (bearer), when not using the refresh flow"),
    Spec("rd_client_id", _nonempty, "RD app client id (refresh flow)"),
    Spec("rd_client_secret", _secret, "RD app client secret (refresh flow)"),
    Spec("rd_refresh_token", _secret, "RD refresh token (refresh flow)"),
    Spec("rd_token_file", _nonempty, "file keeping the newest (rotated) refresh token across restarts"),
    Spec(
        "rd_requests_per_minute",
        _int_between(0, 1_000_000),
        "the RD account's request budget for the whole consumer group (each member spends its share; 0: no limit)",
    ),
    Spec(
        "token_store",
        _bool,
        "keep each account's rotated refresh token and access token, encrypted, in RDC_TOKEN_STORE_TOPIC (replicas "
        "share it); false: RDC_RD_TOKEN_FILE only",
    ),
    Spec("token_store_topic", _nonempty, "compacted topic of the encrypted token store (created if missing)"),
    Spec(
        "token_store_key",
        _secret,
        "passphrase the token store's key is derived from (default: each account's client secret)",
    ),
    Spec(
        "account_retry_s",
        _float_between(0.1, 3600),
        "with several accounts, how often an account whose credentials RD refused is tried again",
    ),
    Spec("batch_max_bytes", _int_between(64, 10_000_000), "cap on a batch body, in bytes"),
    Spec("batch_max_events", _int_between(1, 100_000), "cap on events per batch"),
    Spec("batch_linger_ms", _int_between(0, 600_000), "max wait of a batch's oldest event before sending"),
    Spec(
        "max_in_flight",
        _int_between(1, 64),
        "lanes sending concurrently; partitions are spread evenly over them, each keeping its lane while "
        "anything of it is in flight",
    ),
    Spec(
        "max_buffered_bytes",
        _int_between(1_000_000, 16_000_000_000),
        "pause consuming above this many buffered event bytes",
    ),
    Spec(
        "decode_workers",
        _workers,
        "1: decode, map and encode in a worker process (a second core); n: n such processes; "
        "auto: 1 if 2+ CPUs are usable",
    ),
    Spec(
        "avro_decoder",
        _avro_decoder,
        "Avro body decoder: fastavro, cavro (the `fast` extra; same records, decoding in 25-50% less time) or "
        "auto (cavro if installed)",
    ),
    Spec("http_timeout_s", _float_between(0.1, 600), "timeout of one RD request"),
    Spec("retry_backoff_initial_ms", _int_between(1, 600_000), "first retry backoff"),
    Spec("retry_backoff_max_ms", _int_between(1, 3_600_000), "cap on the retry backoff"),
    Spec("retry_max_elapsed_s", _float_between(0, 31_536_000), "give up on a failing batch after this long (0: never)"),
    Spec("shutdown_timeout_s", _float_between(0, 3600), "on SIGTERM, time allowed to send what is pending"),
    Spec("schema_registry_url", _url, "Confluent Schema Registry URL (enables Confluent framing)"),
    Spec("schema_registry_username", _nonempty, "Schema Registry basic-auth user"),
    Spec("schema_registry_password", _secret, "Schema Registry basic-auth password"),
    Spec("schema_dir", _nonempty, "extra directory of .avsc files for single-object decoding"),
    Spec("topic_writer_schemas", _topic_map, "plain Avro topics: topic=full.RecordName,..."),
    Spec("mappings", _nonempty, "your own records -> RD events: a mapping file, or a directory of *.yaml"),
    Spec("effectively_once", _bool, "skip records whose result is already in the results topic (the ledger)"),
    Spec("ledger_topic", _nonempty, "compacted topic of ledger checkpoints (created if missing)"),
    Spec("commit_interval_ms", _int_between(10, 600_000), "how often settled offsets are committed"),
    Spec("log_level", _log_level, "DEBUG, INFO, WARNING or ERROR"),
    Spec("log_format", _log_format, "kv (key=value lines) or json (one object per line)"),
    Spec("log_record_values", _bool, "quote the record's values (emails, names...) in log lines: for debugging only"),
    Spec("metrics_port", _int_between(0, 65535), "port of /metrics, /healthz, /readyz (0: no server)"),
    Spec("metrics_host", _nonempty, "bind address of the metrics and probe server"),
    Spec("ready_max_failing_s", _float_between(1, 86400), "/readyz fails once RD requests fail for this long"),
)

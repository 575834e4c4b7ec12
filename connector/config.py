"""Configuration: one frozen, typed `Settings` built from an optional TOML file plus `RDC_*` environment
variables (the environment wins). Nothing reads the environment at import time.

Every setting is declared once in `SPECS` (name, parser, default, help); the README's configuration table
lists the same names (a test keeps them in step). Invalid values raise `ConfigError` naming the setting,
the value (never a secret's) and what is accepted. librdkafka settings pass through untouched:
`RDC_KAFKA__SECURITY_PROTOCOL=SASL_SSL` becomes `security.protocol`, and so does `[kafka]` in the file.
"""

from __future__ import annotations

import ipaddress
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import confluent_kafka

from connector.errors import ConfigError

__all__ = ["EOF_IS_SAFE", "SPECS", "Secret", "Settings", "Spec", "load_settings"]

#: librdkafka 2.14+: partition EOF events are safe to enable (see `Settings.consumer_config`).
EOF_IS_SAFE: Final = confluent_kafka.libversion()[1] >= 0x020E0000

ENV_PREFIX: Final = "RDC_"
KAFKA_ENV_PREFIX: Final = "RDC_KAFKA__"


class Secret:
    """A value that never shows itself in a repr, a str or a log line. `reveal()` is explicit."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


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
        except (TypeError, ValueError):
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
    """`auto` (None: decided at start from the usable CPUs), 0 or 1."""
    if isinstance(raw, str) and raw.strip().lower() == "auto":
        return None
    try:
        return int(_int_between(0, 1)(name, raw))
    except ConfigError:
        raise ConfigError(f"{name}={raw!r} is invalid: expected auto, 0 or 1") from None


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
    Spec("rd_requests_per_minute", _int_between(0, 1_000_000), "client-side request budget (0: no limit)"),
    Spec("batch_max_bytes", _int_between(64, 10_000_000), "cap on a batch body, in bytes"),
    Spec("batch_max_events", _int_between(1, 100_000), "cap on events per batch"),
    Spec("batch_linger_ms", _int_between(0, 600_000), "max wait of a batch's oldest event before sending"),
    Spec("max_in_flight", _int_between(1, 64), "lanes sending concurrently; a partition always uses the same lane"),
    Spec(
        "max_buffered_bytes",
        _int_between(1_000_000, 16_000_000_000),
        "pause consuming above this many buffered event bytes",
    ),
    Spec(
        "decode_workers",
        _workers,
        "1: decode, map and encode in a worker process (a second core); auto: 1 if 2+ CPUs are usable",
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

_SPEC_BY_NAME: Final = {spec.name: spec for spec in SPECS}


@dataclass(frozen=True, slots=True)
class Settings:
    """The whole configuration. Build it with `load_settings`; secrets are `Secret`s."""

    kafka_bootstrap_servers: str | None = None
    group_id: str = "rd-connector"
    topics: tuple[str, ...] = ()
    results_topic: str = "rd-connector.results"
    dlq_topic: str = "rd-connector.dlq"
    rd_base_url: str = "https://api.rd.services"
    allow_insecure_http: bool = False
    rd_access_token: Secret | None = None
    rd_client_id: str | None = None
    rd_client_secret: Secret | None = None
    rd_refresh_token: Secret | None = None
    rd_token_file: str | None = None
    rd_requests_per_minute: int = 120
    batch_max_bytes: int = 200_000
    batch_max_events: int = 10_000
    batch_linger_ms: int = 1000
    max_in_flight: int = 1
    max_buffered_bytes: int = 32 * 1024 * 1024  # 64 MiB bought no events/s, only ~40 MiB of RSS
    decode_workers: int | None = None  # auto
    http_timeout_s: float = 30.0
    retry_backoff_initial_ms: int = 500
    retry_backoff_max_ms: int = 30_000
    retry_max_elapsed_s: float = 0.0
    shutdown_timeout_s: float = 30.0
    schema_registry_url: str | None = None
    schema_registry_username: str | None = None
    schema_registry_password: Secret | None = None
    schema_dir: str | None = None
    topic_writer_schemas: Mapping[str, str] = field(default_factory=dict)
    mappings: str | None = None
    effectively_once: bool = True
    ledger_topic: str = "rd-connector.ledger"
    commit_interval_ms: int = 200
    log_level: str = "INFO"
    log_format: str = "kv"
    log_record_values: bool = False
    metrics_port: int = 9464
    metrics_host: str = "0.0.0.0"
    ready_max_failing_s: float = 120.0
    kafka: Mapping[str, str] = field(default_factory=dict)

    def secret_values(self) -> list[str]:
        """Every secret this configuration holds (for log redaction), librdkafka passwords included."""
        secrets = [s.reveal() for s in (self.rd_access_token, self.rd_client_secret, self.rd_refresh_token,
                                        self.schema_registry_password) if s is not None]  # fmt: skip
        return secrets + [v for k, v in self.kafka.items() if _is_secret_key(k) and v]

    def require_pipeline(self) -> None:
        """Check what `rd-connector run` needs beyond valid values; raise `ConfigError` naming what is missing."""
        if not self.kafka_bootstrap_servers:
            raise ConfigError("RDC_KAFKA_BOOTSTRAP_SERVERS is not set: expected host:port[,host:port]")
        if not self.topics:
            raise ConfigError("RDC_TOPICS is not set: expected a comma-separated list of source topics")
        refresh_flow = (self.rd_client_id, self.rd_client_secret, self.rd_refresh_token)
        if any(refresh_flow) and not all(refresh_flow):
            raise ConfigError(
                "RD refresh flow is incomplete: set all of RDC_RD_CLIENT_ID, RDC_RD_CLIENT_SECRET, RDC_RD_REFRESH_TOKEN"
            )
        if not self.rd_access_token and not all(refresh_flow):
            raise ConfigError(
                "no RD credentials: set RDC_RD_ACCESS_TOKEN, or RDC_RD_CLIENT_ID + RDC_RD_CLIENT_SECRET + "
                "RDC_RD_REFRESH_TOKEN"
            )
        if self.retry_backoff_max_ms < self.retry_backoff_initial_ms:
            raise ConfigError(
                f"RDC_RETRY_BACKOFF_MAX_MS={self.retry_backoff_max_ms} is invalid: expected >= "
                f"RDC_RETRY_BACKOFF_INITIAL_MS ({self.retry_backoff_initial_ms})"
            )

    def kafka_common(self) -> dict[str, str]:
        """librdkafka settings shared by consumer and producers (bootstrap + passthrough)."""
        common = {"bootstrap.servers": self.kafka_bootstrap_servers or ""}
        common.update(self.kafka)
        return common

    def consumer_config(self) -> dict[str, Any]:
        """The source consumer: manual commits only, offsets stored by the connector, earliest on no commit."""
        config: dict[str, Any] = {
            "group.id": self.group_id,
            "auto.offset.reset": "earliest",
            "partition.assignment.strategy": "range",
            # A fetch that finds no data waits at most this long: it bounds the latency of a lone event
            # on brokers that hold empty fetches for the whole wait (Tansu does; librdkafka's default is 500).
            "fetch.wait.max.ms": 50,
            # Prefetched records librdkafka keeps per consumer (its default is 64 MiB): the pipeline buffers
            # on its own (RDC_MAX_BUFFERED_BYTES), so a smaller prefetch keeps the whole process small.
            "queued.max.messages.kbytes": 4096,
            # Once the prefetch is full librdkafka waits this long before fetching again (its default: 1 s,
            # which starves a fast consumer of a small prefetch). 1M-event drain, peak RSS of both processes:
            # 8 MiB at the default backoff 24.3k events/s; at 10 ms, 16 MiB 31.1k and 8 MiB 31.7k (180-200
            # MiB); 4 MiB 33.6-34.1k (145-153 MiB).
            "fetch.queue.backoff.ms": 10,
            # Tells the pipeline when a partition has been read to its end: the tail of a backlog is then sent
            # at once instead of after another linger (decision 0006). Not before librdkafka 2.14: after an EOF
            # its stored position was one too far, and a pause + resume (backpressure) skipped a record.
            "enable.partition.eof": EOF_IS_SAFE,
        }
        config.update(self.kafka_common())
        config.update({"enable.auto.commit": False, "enable.auto.offset.store": False})
        return config

    def producer_config(self) -> dict[str, Any]:
        """Results and dead-letter producer: idempotent, acks=all."""
        config: dict[str, Any] = {"linger.ms": 5}
        config.update({k: v for k, v in self.kafka_common().items() if not k.startswith(_CONSUMER_ONLY)})
        config.update({"enable.idempotence": True, "acks": "all"})
        return config

    def __repr__(self) -> str:
        shown = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in fields(self) if f.name != "kafka")
        kafka = {k: ("***" if _is_secret_key(k) else v) for k, v in self.kafka.items()}
        return f"Settings({shown}, kafka={kafka!r})"


_CONSUMER_ONLY: Final = (
    "group.",
    "session.",
    "heartbeat.",
    "auto.offset",
    "max.poll",
    "fetch.",
    "partition.assign",
)


def _is_secret_key(key: str) -> bool:
    return any(word in key for word in ("password", "secret", "token", "key"))


def _env_name_to_kafka_key(env_name: str) -> str:
    return env_name[len(KAFKA_ENV_PREFIX) :].lower().replace("_", ".")


def _kafka_text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _read_file(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {path} does not exist") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc


def _file_values(data: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    values: dict[str, Any] = {}
    kafka: dict[str, str] = {}
    for key, raw in data.items():
        if key == "kafka":
            if not isinstance(raw, Mapping):
                raise ConfigError("[kafka] in the config file must be a table of librdkafka settings")
            kafka.update({str(k): _kafka_text(v) for k, v in raw.items()})
        elif key in _SPEC_BY_NAME:
            values[key] = raw
        else:
            raise ConfigError(
                f"config file: unknown setting {key!r}; known: {', '.join(sorted(_SPEC_BY_NAME))}, [kafka]"
            )
    return values, kafka


def load_settings(env: Mapping[str, str], config_file: str | Path | None = None) -> Settings:
    """Build `Settings` from `config_file` (TOML; optional) overridden by `env` (`RDC_*` variables).

    The file may also be named by `RDC_CONFIG_FILE`. Raises `ConfigError` on the first invalid value.
    """
    path = config_file or env.get("RDC_CONFIG_FILE")
    raw, kafka = _file_values(_read_file(Path(path))) if path else ({}, {})
    for spec in SPECS:
        if env.get(spec.env, "").strip():  # an empty variable counts as unset (compose's ${VAR:-})
            raw[spec.name] = env[spec.env]
    for name, value in env.items():
        if name.startswith(KAFKA_ENV_PREFIX) and len(name) > len(KAFKA_ENV_PREFIX):
            kafka[_env_name_to_kafka_key(name)] = value
    parsed = {name: _SPEC_BY_NAME[name].parse(_SPEC_BY_NAME[name].env, value) for name, value in raw.items()}
    settings = Settings(**parsed, kafka=kafka)
    _refuse_plain_http(settings)
    return settings


def _is_loopback(host: str) -> bool:
    """localhost, 127.0.0.0/8 or ::1 (also written as ::ffff:127.x.y.z): traffic that never leaves the machine."""
    if host.lower() == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def _refuse_plain_http(settings: Settings) -> None:
    """Credentials never go over plain http to another host unless RDC_ALLOW_INSECURE_HTTP says so: every RD
    request carries the bearer token (and the refresh flow the client secret); the Schema Registry gets basic
    auth only when its username or password is set, so without them http stays allowed."""
    if settings.allow_insecure_http:
        return
    checked = [("RDC_RD_BASE_URL", settings.rd_base_url, "the RD access token and client secret")]
    if settings.schema_registry_url and (settings.schema_registry_username or settings.schema_registry_password):
        checked.append(("RDC_SCHEMA_REGISTRY_URL", settings.schema_registry_url, "the Schema Registry credentials"))
    for env, url, what in checked:
        parts = urlsplit(url)
        if parts.scheme == "http" and not _is_loopback(parts.hostname or ""):
            raise ConfigError(
                f"{env}={url} is plain http to a host that is not loopback: {what} would travel unencrypted. "
                "Use https://, or set RDC_ALLOW_INSECURE_HTTP=true if that network is trusted (a local mock, "
                "a sidecar proxy)"
            )

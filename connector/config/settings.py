"""`Settings`: the whole configuration, checked for `run`, and the librdkafka configurations it gives."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Final

import confluent_kafka

from connector.config.accounts import DEFAULT_ACCOUNT, Account
from connector.config.librdkafka import for_client, is_secret_property
from connector.config.secret import Secret
from connector.errors import ConfigError

__all__ = ["EOF_IS_SAFE", "Settings"]

#: librdkafka 2.14+: partition EOF events are safe to enable (see `Settings.consumer_config`).
EOF_IS_SAFE: Final = confluent_kafka.libversion()[1] >= 0x020E0000


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
    avro_decoder: str = "fastavro"  # decision 0022
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
    token_store_topic: str = "rd-connector.tokens"
    token_store_key: Secret | None = None
    token_store: bool = True
    account_retry_s: float = 60.0
    kafka: Mapping[str, str] = field(default_factory=dict)
    accounts: tuple[Account, ...] = ()  # the [accounts.<name>] tables (`rd_accounts()` adds `default`)

    def secret_values(self) -> list[str]:
        """Every secret this configuration holds (for log redaction), librdkafka passwords included."""
        held = (self.rd_access_token, self.rd_client_secret, self.rd_refresh_token, self.schema_registry_password,
                self.token_store_key)  # fmt: skip
        secrets = [s.reveal() for s in held if s is not None]
        secrets += [value for account in self.accounts for value in account.secrets()]
        return secrets + [v for k, v in self.kafka.items() if is_secret_property(k) and v]

    def default_account(self) -> Account | None:
        """The account `default` of the plain RDC_RD_* settings, when they hold credentials."""
        if not (self.rd_access_token or self.rd_client_id or self.rd_client_secret or self.rd_refresh_token):
            return None
        return Account(
            DEFAULT_ACCOUNT,
            self.rd_base_url,
            self.rd_requests_per_minute,
            self.rd_access_token,
            self.rd_client_id,
            self.rd_client_secret,
            self.rd_refresh_token,
            self.rd_token_file,
        )

    def rd_accounts(self) -> tuple[Account, ...]:
        """Every RD account: `default` (RDC_RD_*) first when it has credentials, then the file's tables."""
        default = self.default_account()
        return ((default,) if default is not None else ()) + self.accounts

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
        if not self.rd_access_token and not all(refresh_flow) and not self.accounts:
            raise ConfigError(
                "no RD credentials: set RDC_RD_ACCESS_TOKEN, or RDC_RD_CLIENT_ID + RDC_RD_CLIENT_SECRET + "
                "RDC_RD_REFRESH_TOKEN, or [accounts.<name>] tables in RDC_CONFIG_FILE"
            )
        if self.default_account() is not None and any(a.name == DEFAULT_ACCOUNT for a in self.accounts):
            raise ConfigError(
                "the account 'default' is defined twice: by the RDC_RD_* credentials and by [accounts.default]; "
                "keep one"
            )
        if self.retry_backoff_max_ms < self.retry_backoff_initial_ms:
            raise ConfigError(
                f"RDC_RETRY_BACKOFF_MAX_MS={self.retry_backoff_max_ms} is invalid: expected >= "
                f"RDC_RETRY_BACKOFF_INITIAL_MS ({self.retry_backoff_initial_ms})"
            )

    def kafka_common(self) -> dict[str, str]:
        """librdkafka settings every client takes: bootstrap + the passthrough settings that are neither
        consumer- nor producer-only (`connector.config.librdkafka`). The admin clients' whole configuration."""
        return for_client(self._kafka_all(), "admin")

    def _kafka_all(self) -> dict[str, str]:
        return {"bootstrap.servers": self.kafka_bootstrap_servers or "", **self.kafka}

    def consumer_config(self) -> dict[str, Any]:
        """The source consumer: manual commits only, offsets stored by the connector, earliest on no commit; no
        producer-only setting."""
        config: dict[str, Any] = {
            "group.id": self.group_id,
            "auto.offset.reset": "earliest",
            # Cooperative rebalancing: a member joining or leaving moves only the partitions that change
            # owner, and the others keep flowing (decision 0021). `range` (eager) stops the whole group.
            "partition.assignment.strategy": "cooperative-sticky",
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
        config.update(for_client(self._kafka_all(), "consumer"))  # passthrough: all but producer-only settings
        config.update({"enable.auto.commit": False, "enable.auto.offset.store": False})
        return config

    def producer_config(self) -> dict[str, Any]:
        """Results and dead-letter producer: idempotent, acks=all; no consumer-only setting."""
        config: dict[str, Any] = {"linger.ms": 5}
        config.update(for_client(self._kafka_all(), "producer"))  # passthrough: all but consumer-only settings
        config.update({"enable.idempotence": True, "acks": "all"})
        return config

    def __repr__(self) -> str:
        shown = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in fields(self) if f.name != "kafka")
        kafka = {k: ("***" if is_secret_property(k) else v) for k, v in self.kafka.items()}
        return f"Settings({shown}, kafka={kafka!r})"

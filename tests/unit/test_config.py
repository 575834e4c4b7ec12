"""Configuration: every setting from env and file, env over file, passthrough, bad values, secrets."""

from __future__ import annotations

import os
import re
from dataclasses import fields
from pathlib import Path

import pytest

from connector.commands.run import decode_workers
from connector.config import SPECS, Secret, Settings, load_settings
from connector.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]

GOOD_ENV = {
    "RDC_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9092,127.0.0.1:9093",
    "RDC_GROUP_ID": "shop-events",
    "RDC_TOPICS": "orders, carts",
    "RDC_RESULTS_TOPIC": "rd.results",
    "RDC_DLQ_TOPIC": "rd.dlq",
    "RDC_RD_BASE_URL": "http://127.0.0.1:8765/",
    "RDC_RD_ACCESS_TOKEN": "tok-123",
    "RDC_RD_CLIENT_ID": "client",
    "RDC_RD_CLIENT_SECRET": "shh",
    "RDC_RD_REFRESH_TOKEN": "refresh-1",
    "RDC_RD_TOKEN_FILE": "/var/lib/rdc/token.json",
    "RDC_RD_REQUESTS_PER_MINUTE": "500",
    "RDC_RETRY_MAX_ELAPSED_S": "900",
    "RDC_BATCH_MAX_BYTES": "190000",
    "RDC_BATCH_MAX_EVENTS": "500",
    "RDC_BATCH_LINGER_MS": "250",
    "RDC_MAX_IN_FLIGHT": "4",
    "RDC_MAX_BUFFERED_BYTES": "32000000",
    "RDC_HTTP_TIMEOUT_S": "12.5",
    "RDC_RETRY_BACKOFF_INITIAL_MS": "100",
    "RDC_RETRY_BACKOFF_MAX_MS": "5000",
    "RDC_SHUTDOWN_TIMEOUT_S": "7",
    "RDC_SCHEMA_REGISTRY_URL": "https://registry.local:8081",
    "RDC_SCHEMA_REGISTRY_USERNAME": "sr-user",
    "RDC_SCHEMA_REGISTRY_PASSWORD": "sr-pass",
    "RDC_SCHEMA_DIR": "/etc/rdc/schemas",
    "RDC_TOPIC_WRITER_SCHEMAS": "legacy=io.rdconnector.events.OrderPaid,other=x.Y",
    "RDC_LOG_LEVEL": "debug",
    "RDC_EFFECTIVELY_ONCE": "false",
    "RDC_LEDGER_TOPIC": "rd.ledger",
    "RDC_COMMIT_INTERVAL_MS": "1000",
    "RDC_KAFKA__SECURITY_PROTOCOL": "SASL_SSL",
    "RDC_KAFKA__SASL_MECHANISM": "PLAIN",
    "RDC_KAFKA__SASL_PASSWORD": "kafka-secret",
}


def test_every_setting_from_the_environment() -> None:
    s = load_settings(GOOD_ENV)
    assert s.kafka_bootstrap_servers == "127.0.0.1:9092,127.0.0.1:9093"
    assert s.group_id == "shop-events"
    assert s.topics == ("orders", "carts")
    assert (s.results_topic, s.dlq_topic) == ("rd.results", "rd.dlq")
    assert s.rd_base_url == "http://127.0.0.1:8765"
    assert s.rd_access_token == Secret("tok-123")
    assert s.rd_client_id == "client"
    assert s.rd_client_secret is not None and s.rd_client_secret.reveal() == "shh"
    assert s.rd_refresh_token is not None and s.rd_refresh_token.reveal() == "refresh-1"
    assert (s.rd_token_file, s.rd_requests_per_minute, s.retry_max_elapsed_s) == ("/var/lib/rdc/token.json", 500, 900.0)
    assert (s.batch_max_bytes, s.batch_max_events, s.batch_linger_ms) == (190_000, 500, 250)
    assert (s.max_in_flight, s.max_buffered_bytes) == (4, 32_000_000)
    assert s.http_timeout_s == 12.5
    assert (s.retry_backoff_initial_ms, s.retry_backoff_max_ms) == (100, 5000)
    assert s.shutdown_timeout_s == 7.0
    assert s.schema_registry_url == "https://registry.local:8081"
    assert s.schema_registry_username == "sr-user"
    assert s.schema_registry_password == Secret("sr-pass")
    assert s.schema_dir == "/etc/rdc/schemas"
    assert s.topic_writer_schemas == {"legacy": "io.rdconnector.events.OrderPaid", "other": "x.Y"}
    assert s.log_level == "DEBUG"
    assert (s.effectively_once, s.ledger_topic, s.commit_interval_ms) == (False, "rd.ledger", 1000)
    assert s.kafka == {"security.protocol": "SASL_SSL", "sasl.mechanism": "PLAIN", "sasl.password": "kafka-secret"}
    s.require_pipeline()


def test_defaults() -> None:
    s = load_settings({})
    assert s.rd_base_url == "https://api.rd.services"
    assert s.batch_max_bytes == 200_000
    assert s.batch_linger_ms == 1000
    assert s.group_id == "rd-connector"
    assert s.kafka == {}
    # Topic names are a contract with existing deployments: a renamed default would start an empty ledger
    # (no duplicate suppression after a crash) or write results where nobody reads them.
    assert (s.results_topic, s.dlq_topic, s.ledger_topic) == (
        "rd-connector.results",
        "rd-connector.dlq",
        "rd-connector.ledger",
    )


@pytest.mark.parametrize(("raw", "parsed"), [("auto", None), (" AUTO ", None), ("0", 0), ("1", 1), ("2", 2)])
def test_decode_workers(raw: str, parsed: int | None) -> None:
    assert load_settings({"RDC_DECODE_WORKERS": raw}).decode_workers == parsed


def test_decode_workers_auto_follows_the_usable_cpus(monkeypatch: pytest.MonkeyPatch) -> None:
    auto = load_settings({})
    assert auto.decode_workers is None
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})
    assert decode_workers(auto) == 0
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    assert decode_workers(auto) == 1
    assert decode_workers(load_settings({"RDC_DECODE_WORKERS": "0"})) == 0


def test_file_then_environment_wins(tmp_path: Path) -> None:
    path = tmp_path / "rdc.toml"
    path.write_text(
        'kafka_bootstrap_servers = "file:9092"\n'
        'topics = ["a", "b"]\n'
        "batch_max_events = 42\n"
        "topic_writer_schemas = { legacy = 'x.Y' }\n"
        "[kafka]\n"
        '"security.protocol" = "SSL"\n'
        '"enable.ssl.certificate.verification" = false\n'
    )
    s = load_settings({"RDC_BATCH_MAX_EVENTS": "7", "RDC_KAFKA__SECURITY_PROTOCOL": "SASL_SSL"}, path)
    assert s.kafka_bootstrap_servers == "file:9092"
    assert s.topics == ("a", "b")
    assert s.batch_max_events == 7
    assert s.topic_writer_schemas == {"legacy": "x.Y"}
    assert s.kafka == {"security.protocol": "SASL_SSL", "enable.ssl.certificate.verification": "false"}
    assert load_settings({"RDC_CONFIG_FILE": str(path)}).batch_max_events == 42


def test_empty_variable_counts_as_unset() -> None:
    assert load_settings({"RDC_BATCH_MAX_BYTES": "", "RDC_RD_ACCESS_TOKEN": " "}).batch_max_bytes == 200_000


@pytest.mark.parametrize(
    ("env", "message"),
    [
        pytest.param(
            {"RDC_BATCH_MAX_BYTES": "big"}, "RDC_BATCH_MAX_BYTES='big' is invalid: expected an integer", id="int"
        ),
        pytest.param({"RDC_BATCH_MAX_BYTES": "10"}, "from 64 to 10000000", id="int-range"),
        pytest.param({"RDC_BATCH_MAX_EVENTS": "0"}, "RDC_BATCH_MAX_EVENTS='0'", id="events-zero"),
        pytest.param({"RDC_BATCH_LINGER_MS": "-1"}, "RDC_BATCH_LINGER_MS='-1'", id="linger-negative"),
        pytest.param(
            {"RDC_HTTP_TIMEOUT_S": "soon"}, "RDC_HTTP_TIMEOUT_S='soon' is invalid: expected a number", id="float"
        ),
        pytest.param({"RDC_RD_BASE_URL": "ftp://x"}, "expected an http:// or https:// URL", id="url-scheme"),
        pytest.param({"RDC_RD_BASE_URL": "https://u:p@x"}, "credentials in their own settings", id="url-creds"),
        pytest.param({"RDC_SCHEMA_REGISTRY_URL": "registry:8081"}, "RDC_SCHEMA_REGISTRY_URL", id="registry-url"),
        pytest.param({"RDC_TOPICS": "a,,b"}, "comma-separated list", id="topics"),
        pytest.param({"RDC_TOPIC_WRITER_SCHEMAS": "legacy"}, "topic=namespace.RecordName", id="topic-map"),
        pytest.param({"RDC_LOG_LEVEL": "LOUD"}, "expected one of DEBUG", id="log-level"),
        pytest.param({"RDC_EFFECTIVELY_ONCE": "maybe"}, "expected true or false", id="bool"),
        pytest.param({"RDC_LOG_FORMAT": "xml"}, "expected kv or json", id="log-format"),
        pytest.param(
            {"RDC_DECODE_WORKERS": "65"},
            "RDC_DECODE_WORKERS='65' is invalid: expected auto or a number of worker processes, 0-64",
            id="workers",
        ),
    ],
)
def test_bad_values_name_setting_value_and_what_is_accepted(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_settings(env)


def test_bad_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings({}, tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("topics = [")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings({}, bad)
    bad.write_text("batch_size = 3")
    with pytest.raises(ConfigError, match="unknown setting 'batch_size'"):
        load_settings({}, bad)
    bad.write_text("batch_max_bytes = true")
    with pytest.raises(ConfigError, match="RDC_BATCH_MAX_BYTES=True"):
        load_settings({}, bad)


@pytest.mark.parametrize(
    ("value", "shown"),
    [("inf", "inf"), ("-inf", "-inf"), ("nan", "nan"), ("1000.5", "1000.5"), ("1e400", "inf")],
)
def test_integer_setting_refuses_a_toml_float_that_is_no_integer(tmp_path: Path, value: str, shown: str) -> None:
    """int(inf) raised OverflowError (a traceback, not a ConfigError) and int(1000.5) passed as 1000."""
    config = tmp_path / "rdc.toml"
    config.write_text(f"batch_max_bytes = {value}\n")
    with pytest.raises(ConfigError, match=re.escape(f"RDC_BATCH_MAX_BYTES={shown} is invalid: expected an integer")):
        load_settings({}, config)
    config.write_text("batch_max_bytes = 1e5\n")  # an integral float is still an integer
    assert load_settings({}, config).batch_max_bytes == 100_000


@pytest.mark.parametrize(
    ("drop", "message"),
    [
        pytest.param("RDC_KAFKA_BOOTSTRAP_SERVERS", "RDC_KAFKA_BOOTSTRAP_SERVERS is not set", id="bootstrap"),
        pytest.param("RDC_TOPICS", "RDC_TOPICS is not set", id="topics"),
        pytest.param("RDC_RD_CLIENT_SECRET", "refresh flow is incomplete", id="partial-refresh-flow"),
    ],
)
def test_pipeline_requirements(drop: str, message: str) -> None:
    env = {k: v for k, v in GOOD_ENV.items() if k != drop}
    with pytest.raises(ConfigError, match=message):
        load_settings(env).require_pipeline()


def test_credentials_required_and_either_flow_suffices() -> None:
    base = {"RDC_KAFKA_BOOTSTRAP_SERVERS": "k:9092", "RDC_TOPICS": "t"}
    with pytest.raises(ConfigError, match="no RD credentials"):
        load_settings(base).require_pipeline()
    load_settings({**base, "RDC_RD_ACCESS_TOKEN": "x"}).require_pipeline()
    load_settings(
        {**base, "RDC_RD_CLIENT_ID": "c", "RDC_RD_CLIENT_SECRET": "s", "RDC_RD_REFRESH_TOKEN": "r"}
    ).require_pipeline()
    with pytest.raises(ConfigError, match="RDC_RETRY_BACKOFF_MAX_MS=10 is invalid"):
        load_settings({**base, "RDC_RD_ACCESS_TOKEN": "x", "RDC_RETRY_BACKOFF_MAX_MS": "10"}).require_pipeline()


def test_secrets_never_show(tmp_path: Path) -> None:
    s = load_settings(GOOD_ENV)
    text = repr(s) + str(s)
    for secret in ("tok-123", "shh", "refresh-1", "sr-pass", "kafka-secret"):
        assert secret not in text
    assert "shop-events" in text  # the repr still shows the rest
    path = tmp_path / "rdc.toml"
    path.write_text("rd_access_token = 123456789\n")
    with pytest.raises(ConfigError, match="RDC_RD_ACCESS_TOKEN is invalid") as info:
        load_settings({}, path)
    assert "123456789" not in str(info.value)


def test_librdkafka_configs() -> None:
    s = load_settings({**GOOD_ENV, "RDC_KAFKA__SESSION_TIMEOUT_MS": "2000", "RDC_KAFKA__ENABLE_AUTO_COMMIT": "true"})
    consumer = s.consumer_config()
    assert consumer["bootstrap.servers"] == GOOD_ENV["RDC_KAFKA_BOOTSTRAP_SERVERS"]
    assert consumer["group.id"] == "shop-events"
    assert consumer["enable.auto.commit"] is False  # never overridable: commits follow delivery
    assert consumer["session.timeout.ms"] == "2000"
    assert consumer["security.protocol"] == "SASL_SSL"
    producer = s.producer_config()
    assert producer["enable.idempotence"] is True and producer["acks"] == "all"
    assert "session.timeout.ms" not in producer and producer["sasl.password"] == "kafka-secret"


def test_specs_match_settings_and_readme() -> None:
    names = {f.name for f in fields(Settings)} - {"kafka", "accounts"}
    assert names == {spec.name for spec in SPECS}
    readme = (ROOT / "README.md").read_text()
    missing = [spec.env for spec in SPECS if f"`{spec.env}`" not in readme]
    assert not missing, f"README configuration table lacks {missing}"


# -- plain http carries credentials in clear: only to loopback, unless allowed ------------------------


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("http://127.0.0.1:8765", id="ipv4-loopback"),
        pytest.param("http://127.8.9.10", id="ipv4-loopback-net"),
        pytest.param("http://localhost:8765", id="localhost"),
        pytest.param("http://LocalHost", id="localhost-case"),
        pytest.param("http://[::1]:8765", id="ipv6-loopback"),
        pytest.param("http://[::ffff:127.0.0.1]:8765", id="ipv4-mapped-loopback"),
        pytest.param("https://api.rd.services", id="https"),
        pytest.param("https://10.0.0.5:8443", id="https-ip"),
    ],
)
def test_rd_url_accepted(url: str) -> None:
    assert load_settings({"RDC_RD_BASE_URL": url}).rd_base_url == url


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("http://api.rd.services", id="public-host"),
        pytest.param("http://mock-rd:8765", id="compose-host"),
        pytest.param("http://10.0.0.5:8765", id="private-ip"),
        pytest.param("http://0.0.0.0:8765", id="any-address"),
        pytest.param("http://[::ffff:10.0.0.5]", id="ipv4-mapped"),
        pytest.param("http://localhost.example.com", id="localhost-lookalike"),
        pytest.param("http://127.0.0.1.nip.io", id="loopback-lookalike"),
    ],
)
def test_plain_http_rd_url_refused_unless_allowed(url: str) -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings({"RDC_RD_BASE_URL": url, "RDC_RD_ACCESS_TOKEN": "tok-123"})
    message = str(refused.value)
    assert message.startswith(f"RDC_RD_BASE_URL={url} is plain http to a host that is not loopback")
    assert "https://" in message and "RDC_ALLOW_INSECURE_HTTP=true" in message and "tok-123" not in message
    allowed = load_settings({"RDC_RD_BASE_URL": url, "RDC_ALLOW_INSECURE_HTTP": "true"})
    assert allowed.rd_base_url == url and allowed.allow_insecure_http


def test_plain_http_refused_from_the_config_file_too(tmp_path: Path) -> None:
    config = tmp_path / "rdc.toml"
    config.write_text('rd_base_url = "http://rd.internal"\n')
    with pytest.raises(ConfigError, match=r"RDC_RD_BASE_URL=http://rd\.internal is plain http"):
        load_settings({}, config)
    config.write_text('rd_base_url = "http://rd.internal"\nallow_insecure_http = true\n')
    assert load_settings({}, config).allow_insecure_http


def test_plain_http_registry_refused_only_with_credentials() -> None:
    registry = {"RDC_SCHEMA_REGISTRY_URL": "http://schema-registry:8081"}
    assert load_settings(registry).schema_registry_url == "http://schema-registry:8081"  # nothing secret travels
    for credential in ({"RDC_SCHEMA_REGISTRY_USERNAME": "sr"}, {"RDC_SCHEMA_REGISTRY_PASSWORD": "sr-pass"}):
        with pytest.raises(ConfigError) as refused:
            load_settings({**registry, **credential})
        assert str(refused.value).startswith("RDC_SCHEMA_REGISTRY_URL=http://schema-registry:8081 is plain http")
        assert "sr-pass" not in str(refused.value)
        assert load_settings({**registry, **credential, "RDC_ALLOW_INSECURE_HTTP": "1"}).schema_registry_url
    local = {"RDC_SCHEMA_REGISTRY_URL": "http://127.0.0.1:8081", "RDC_SCHEMA_REGISTRY_PASSWORD": "sr-pass"}
    assert load_settings(local).schema_registry_password == Secret("sr-pass")

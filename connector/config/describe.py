"""The settings as a reader sees them: grouped by what they are about (`GROUPS`), each with its environment
variable, its default (the `Settings` field's) and its meaning (the `SPECS` help), rendered as plain text
that fits a given width (`settings_help`: `rd-connector run --help`), and a value as `config` shows it.

Every spec is in exactly one group (a unit test keeps it so); one left out would still be listed, under
"Other", so a new setting can never be missing from `--help`.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from dataclasses import MISSING, fields
from typing import Any, Final

from connector.config.secret import Secret
from connector.config.settings import Settings
from connector.config.specs import SPECS, Spec

__all__ = ["GROUPS", "default_of", "grouped_specs", "settings_help", "shown_value"]

GROUPS: Final[tuple[tuple[str, tuple[str, ...]], ...]] = (
    ("Kafka", ("kafka_bootstrap_servers", "group_id", "topics", "results_topic", "dlq_topic", "commit_interval_ms")),
    (
        "RD Station (the account `default`)",
        (
            "rd_base_url",
            "rd_access_token",
            "rd_client_id",
            "rd_client_secret",
            "rd_refresh_token",
            "rd_token_file",
            "rd_requests_per_minute",
            "account_retry_s",
            "allow_insecure_http",
        ),
    ),
    ("Token store (replicas share RD tokens)", ("token_store", "token_store_topic", "token_store_key")),
    (
        "Batches and throughput",
        (
            "batch_max_bytes",
            "batch_max_events",
            "batch_linger_ms",
            "max_in_flight",
            "max_buffered_bytes",
            "decode_workers",
            "avro_decoder",
        ),
    ),
    (
        "Retries and shutdown",
        (
            "http_timeout_s",
            "retry_backoff_initial_ms",
            "retry_backoff_max_ms",
            "retry_max_elapsed_s",
            "shutdown_timeout_s",
        ),
    ),
    (
        "Schemas and mappings",
        (
            "schema_registry_url",
            "schema_registry_username",
            "schema_registry_password",
            "schema_dir",
            "topic_writer_schemas",
            "mappings",
        ),
    ),
    ("Duplicate suppression after a crash (the ledger)", ("effectively_once", "ledger_topic")),
    ("Logs", ("log_level", "log_format", "log_record_values")),
    ("Metrics and probes", ("metrics_port", "metrics_host", "ready_max_failing_s")),
)

_SPEC_BY_NAME: Final = {spec.name: spec for spec in SPECS}


def _field_defaults() -> dict[str, Any]:
    defaults: dict[str, Any] = {}
    for f in fields(Settings):
        if f.default is not MISSING:
            defaults[f.name] = f.default
        elif f.default_factory is not MISSING:
            defaults[f.name] = f.default_factory()
    return defaults


_DEFAULTS: Final = _field_defaults()
#: Defaults whose value is a sentinel: `decode_workers=None` is decided at start from the usable CPUs.
_DEFAULT_WORDS: Final = {"decode_workers": "auto"}


def grouped_specs() -> list[tuple[str, list[Spec]]]:
    """Every spec, once, in its group; specs of no group last, under "Other"."""
    groups = [(title, [_SPEC_BY_NAME[name] for name in names]) for title, names in GROUPS]
    grouped = {name for _, names in GROUPS for name in names}
    other = [spec for spec in SPECS if spec.name not in grouped]
    return groups + ([("Other", other)] if other else [])


def shown_value(value: Any, name: str = "") -> str:
    """A setting's value as text: secrets as `***`, unset as `(unset)`, lists comma-separated."""
    if isinstance(value, Secret):
        return "***"
    if value is None:
        return _DEFAULT_WORDS.get(name, "(unset)")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value) if value else "(unset)"
    if isinstance(value, Mapping):
        return ",".join(f"{k}={v}" for k, v in value.items()) if value else "(unset)"
    return str(value)


def default_of(spec: Spec) -> str:
    """The default as text ("(unset)" when the setting has none)."""
    return shown_value(_DEFAULTS.get(spec.name), spec.name)


def settings_help(width: int = 80) -> str:
    """Every setting, grouped: `  RDC_NAME  default: X` then its meaning, indented and wrapped to `width`."""
    wrap = textwrap.TextWrapper(
        width=max(width, 40), initial_indent=" " * 6, subsequent_indent=" " * 6, break_on_hyphens=False
    )
    lines = [
        "settings: environment variables, or keys of the TOML file (RDC_CONFIG_FILE or --config) written as the",
        'lower-case name without RDC_ (topics = ["orders"]); the environment wins. An empty variable is unset.',
    ]
    lines = textwrap.wrap(" ".join(lines), max(width, 40))
    for title, specs in grouped_specs():
        lines += ["", f"{title}:"]
        for spec in specs:
            lines.append(f"  {spec.env}  default: {default_of(spec)}")
            lines += wrap.wrap(spec.help)
    lines += ["", "librdkafka:", "  RDC_KAFKA__<KEY>  default: (unset)"]
    lines += wrap.wrap(
        "any librdkafka setting: RDC_KAFKA__SECURITY_PROTOCOL=SASL_SSL -> security.protocol (or a [kafka] table "
        "in the file)"
    )
    lines += ["", "More RD accounts:", "  [accounts.<name>] tables in the file (README: RD accounts and replicas)"]
    lines += [
        "",
        *textwrap.wrap("rd-connector config shows the effective value of each and where it comes from.", width),
    ]
    return "\n".join(lines)

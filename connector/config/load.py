"""`load_settings`: `Settings` from an optional TOML file plus `RDC_*` environment variables.

librdkafka settings pass through untouched: `RDC_KAFKA__SECURITY_PROTOCOL=SASL_SSL` becomes
`security.protocol`, and so does `[kafka]` in the file. Credentials never go over plain http to a host that
is not loopback unless `RDC_ALLOW_INSECURE_HTTP` says so.
"""

from __future__ import annotations

import ipaddress
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from connector.config.accounts import parse_accounts
from connector.config.settings import Settings
from connector.config.specs import SPECS
from connector.errors import ConfigError

__all__ = ["KAFKA_ENV_PREFIX", "load_settings", "set_in_env"]

KAFKA_ENV_PREFIX: Final = "RDC_KAFKA__"

_SPEC_BY_NAME: Final = {spec.name: spec for spec in SPECS}


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


def _file_values(data: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str], Any]:
    values: dict[str, Any] = {}
    kafka: dict[str, str] = {}
    accounts: Any = {}
    for key, raw in data.items():
        if key == "accounts":
            accounts = raw
        elif key == "kafka":
            if not isinstance(raw, Mapping):
                raise ConfigError("[kafka] in the config file must be a table of librdkafka settings")
            kafka.update({str(k): _kafka_text(v) for k, v in raw.items()})
        elif key in _SPEC_BY_NAME:
            values[key] = raw
        else:
            raise ConfigError(
                f"config file: unknown setting {key!r}; known: {', '.join(sorted(_SPEC_BY_NAME))}, [kafka], "
                "[accounts.<name>]"
            )
    return values, kafka, accounts


def set_in_env(env: Mapping[str, str], name: str) -> bool:
    """Whether the variable `name` sets its setting: an empty variable counts as unset (compose's ${VAR:-})."""
    return bool(env.get(name, "").strip())


def load_settings(
    env: Mapping[str, str], config_file: str | Path | None = None, *, account_secrets: bool = True
) -> Settings:
    """Build `Settings` from `config_file` (TOML; optional) overridden by `env` (`RDC_*` variables).

    The file may also be named by `RDC_CONFIG_FILE`. Raises `ConfigError` on the first invalid value.
    `account_secrets=False`: the `[accounts.<name>]` credentials given by `<key>_file` or `<key>_env` are not
    read (they hold a placeholder), for commands that need only the accounts' names (`mapping check`).
    """
    path = config_file or env.get("RDC_CONFIG_FILE")
    raw, kafka, tables = _file_values(_read_file(Path(path))) if path else ({}, {}, {})
    for spec in SPECS:
        if set_in_env(env, spec.env):
            raw[spec.name] = env[spec.env]
    for name, value in env.items():
        if name.startswith(KAFKA_ENV_PREFIX) and len(name) > len(KAFKA_ENV_PREFIX):
            kafka[_env_name_to_kafka_key(name)] = value
    parsed = {name: _SPEC_BY_NAME[name].parse(_SPEC_BY_NAME[name].env, value) for name, value in raw.items()}
    defaults = Settings(**parsed)
    unread: dict[str, Any] = {} if account_secrets else {"read_file": lambda path: _UNREAD}
    accounts = parse_accounts(
        tables,
        env if account_secrets else _Unread(),
        base_url=defaults.rd_base_url,
        requests_per_minute=defaults.rd_requests_per_minute,
        parse_url=_SPEC_BY_NAME["rd_base_url"].parse,
        parse_budget=_SPEC_BY_NAME["rd_requests_per_minute"].parse,
        **unread,
    )
    settings = Settings(**parsed, kafka=kafka, accounts=accounts)
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
    what = "the account's RD access token and client secret"
    checked += [(f"[accounts.{a.name}] base_url", a.base_url, what) for a in settings.accounts]
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


_UNREAD: Final = "(not read)"


class _Unread(Mapping[str, str]):
    """An environment where every variable is set (to a placeholder): account credentials left unread."""

    def __getitem__(self, key: str) -> str:
        return _UNREAD

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0

"""Where each value of a configuration comes from: the `Settings` default, the TOML file or the environment
(`config_sources`), by the same rules as `load_settings` (the environment wins; an empty variable is unset),
for `rd-connector config`.

Call it after `load_settings` succeeded with the same arguments: it reads the file again and assumes it valid.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

from connector.config.load import KAFKA_ENV_PREFIX, _env_name_to_kafka_key, _file_values, _read_file, set_in_env
from connector.config.specs import SPECS

__all__ = ["CREDENTIAL_KEYS", "AccountSources", "Source", "Sources", "config_sources"]

Source = Literal["default", "file", "env"]

#: The credential keys of an `[accounts.<name>]` table (each also as `<key>_file` and `<key>_env`).
CREDENTIAL_KEYS: Final = ("rd_access_token", "rd_client_id", "rd_client_secret", "rd_refresh_token")


@dataclass(frozen=True, slots=True)
class AccountSources:
    """One `[accounts.<name>]` table: for each key it sets, how (`file`: in the table; `file:<path>` for
    `<key>_file`; `env:<NAME>` for `<key>_env`)."""

    given: dict[str, str] = field(default_factory=dict)

    def of(self, key: str) -> tuple[Source, str]:
        """(source, detail) of `key`: ("default", ""), ("file", ""), ("file", path) or ("env", variable)."""
        how = self.given.get(key)
        if how is None:
            return "default", ""
        kind, _, detail = how.partition(":")
        return ("env" if kind == "env" else "file"), detail


@dataclass(frozen=True, slots=True)
class Sources:
    """`path`: the configuration file read (None: none). `settings`: spec name -> source. `kafka`: librdkafka
    key -> source. `accounts`: account name -> its table's sources."""

    path: str | None
    settings: dict[str, Source]
    kafka: dict[str, Source]
    accounts: dict[str, AccountSources]


def config_sources(env: Mapping[str, str], config_file: str | Path | None = None) -> Sources:
    """The source of every setting, librdkafka key and account key of the configuration `load_settings(env,
    config_file)` builds."""
    path = config_file or env.get("RDC_CONFIG_FILE")
    in_file, kafka_file, tables = _file_values(_read_file(Path(path))) if path else ({}, {}, {})
    settings: dict[str, Source] = {}
    for spec in SPECS:
        settings[spec.name] = "env" if set_in_env(env, spec.env) else "file" if spec.name in in_file else "default"
    kafka: dict[str, Source] = {key: "file" for key in kafka_file}
    for name in env:
        if name.startswith(KAFKA_ENV_PREFIX) and len(name) > len(KAFKA_ENV_PREFIX):
            kafka[_env_name_to_kafka_key(name)] = "env"
    accounts = {str(name): _account_sources(table) for name, table in dict(tables).items()}
    return Sources(str(path) if path else None, settings, kafka, accounts)


def _account_sources(table: Mapping[str, Any]) -> AccountSources:
    given: dict[str, str] = {}
    for key in CREDENTIAL_KEYS:
        if key in table:
            given[key] = "file"
        elif f"{key}_file" in table:
            given[key] = f"file:{str(table[f'{key}_file']).strip()}"
        elif f"{key}_env" in table:
            given[key] = f"env:{str(table[f'{key}_env']).strip()}"
    given.update({key: "file" for key in ("base_url", "requests_per_minute") if key in table})
    return AccountSources(given)

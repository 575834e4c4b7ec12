"""RD accounts: `[accounts.<name>]` tables of the TOML configuration, and the account `default` that the
plain `RDC_RD_*` settings define.

Each account has its own credentials (a static `rd_access_token`, or the refresh flow's `rd_client_id`,
`rd_client_secret` and `rd_refresh_token`), its own request budget (`requests_per_minute`, the whole
group's, as `RDC_RD_REQUESTS_PER_MINUTE`) and optionally its own `base_url`. A credential is written in the
table (development), read from a file (`<key>_file`: a Kubernetes secret mount) or from an environment
variable (`<key>_env`: the variable's name); exactly one of the three. Pure: the environment and the file
reader are arguments.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from connector.config.secret import Secret
from connector.errors import ConfigError

__all__ = ["DEFAULT_ACCOUNT", "Account", "default_account_of", "parse_accounts"]

#: The account the plain RDC_RD_* settings define.
DEFAULT_ACCOUNT: Final = "default"

#: An account's name is a metric label, a log field and part of the token store's record key.
_NAME: Final = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
#: Outcomes of a mapping's `account` cases, never account names (`dead_letter` would be ambiguous there).
_RESERVED: Final = ("dead_letter", "skip")

_CREDENTIALS: Final = ("rd_access_token", "rd_client_id", "rd_client_secret", "rd_refresh_token")
_SECRET_KEYS: Final = ("rd_access_token", "rd_client_secret", "rd_refresh_token")
_PLAIN_KEYS: Final = ("requests_per_minute", "base_url")
_KNOWN: Final = (
    *_CREDENTIALS,
    *(f"{key}_file" for key in _CREDENTIALS),
    *(f"{key}_env" for key in _CREDENTIALS),
    *_PLAIN_KEYS,
)


@dataclass(frozen=True, slots=True)
class Account:
    """One RD account: where its requests go, with which credentials, within which budget."""

    name: str
    base_url: str
    requests_per_minute: int
    access_token: Secret | None = None
    client_id: str | None = None
    client_secret: Secret | None = None
    refresh_token: Secret | None = None
    token_file: str | None = None  # RDC_RD_TOKEN_FILE: the default account's only

    @property
    def refresh_flow(self) -> bool:
        """Whether the account uses the refresh flow (it wins over a static token when both are set)."""
        return bool(self.client_id and self.client_secret and self.refresh_token)

    def secrets(self) -> list[str]:
        return [s.reveal() for s in (self.access_token, self.client_secret, self.refresh_token) if s is not None]

    def require(self, where: str) -> None:
        """Raise `ConfigError` unless the credentials are complete. `where` names the account's table; the
        message names its keys."""
        flow = {"rd_client_id": self.client_id, "rd_client_secret": self.client_secret,
                "rd_refresh_token": self.refresh_token}  # fmt: skip
        missing = [key for key, value in flow.items() if not value]
        if 0 < len(missing) < len(flow):
            raise ConfigError(f"RD refresh flow of {where} is incomplete: set {' and '.join(missing)} too (in the "
                              "table, as <key>_file or as <key>_env), or remove the rest of the flow")  # fmt: skip
        if not self.access_token and missing:
            raise ConfigError(f"{where} has no RD credentials: set rd_access_token, or rd_client_id + "
                              "rd_client_secret + rd_refresh_token (each in the table, as <key>_file or as "
                              "<key>_env)")  # fmt: skip


def parse_accounts(
    tables: Any,
    env: Mapping[str, str],
    *,
    base_url: str,
    requests_per_minute: int,
    parse_url: Callable[[str, Any], str],
    parse_budget: Callable[[str, Any], int],
    read_file: Callable[[Path], str] = lambda path: path.read_text("utf-8"),
) -> tuple[Account, ...]:
    """The `[accounts.<name>]` tables of a configuration file, in the file's order. `base_url` and
    `requests_per_minute` are the defaults (RDC_RD_BASE_URL, RDC_RD_REQUESTS_PER_MINUTE); `parse_url` and
    `parse_budget` the settings' own parsers. Raises `ConfigError` naming the account and key."""
    if not isinstance(tables, Mapping):
        raise ConfigError("config file: 'accounts' must be tables, one per account: [accounts.<name>]")
    accounts = []
    for name, table in tables.items():
        if str(name) in _RESERVED:
            raise ConfigError(
                f"config file: account name {name!r} is reserved (mapping files use it in 'account:' cases): "
                "choose another"
            )
        if not _NAME.fullmatch(str(name)):
            raise ConfigError(
                f"config file: account name {name!r} is invalid: expected lower-case letters, digits, '-' or '_' "
                "(at most 63, starting with a letter or digit)"
            )
        if not isinstance(table, Mapping):
            raise ConfigError(
                f"config file: [accounts.{name}] must be a table of the account's keys, not a value: write "
                f"[accounts.{name}] on a line of its own and its keys below"
            )
        unknown = sorted(set(table) - set(_KNOWN))
        if unknown:
            raise ConfigError(
                f"config file: [accounts.{name}] has unknown key(s) {', '.join(unknown)}; known: {', '.join(_KNOWN)}"
            )
        where = f"[accounts.{name}]"
        values = {key: _credential(where, key, table, env, read_file) for key in _CREDENTIALS}
        budget = table.get("requests_per_minute", requests_per_minute)
        account = Account(
            name=name,
            base_url=parse_url(f"{where} base_url", table["base_url"]) if "base_url" in table else base_url,
            requests_per_minute=parse_budget(f"{where} requests_per_minute", budget),
            access_token=_as_secret(values["rd_access_token"]),
            client_id=values["rd_client_id"],
            client_secret=_as_secret(values["rd_client_secret"]),
            refresh_token=_as_secret(values["rd_refresh_token"]),
        )
        account.require(where)
        accounts.append(account)
    return tuple(accounts)


def _credential(
    where: str, key: str, table: Mapping[str, Any], env: Mapping[str, str], read_file: Callable[[Path], str]
) -> str | None:
    """The value of `key`: in the table, in the file `<key>_file` names, or in the variable `<key>_env` names."""
    given = [k for k in (key, f"{key}_file", f"{key}_env") if k in table]
    if len(given) > 1:
        raise ConfigError(f"{where} sets {' and '.join(given)}: give {key} one way only")
    if not given:
        return None
    source = given[0]
    raw = table[source]
    if not isinstance(raw, str) or not raw.strip():
        shown = "" if key in _SECRET_KEYS and source == key else f" {raw!r}"
        raise ConfigError(f"{where} {source}{shown} is invalid: expected a non-empty string")
    if source == key:
        return raw.strip()
    if source.endswith("_env"):
        value = env.get(raw.strip(), "").strip()
        if not value:
            raise ConfigError(
                f"{where} {source}: the environment variable {raw.strip()} is not set or empty: set it, or give "
                f"{key} another way"
            )
        return value
    path = Path(raw.strip())
    try:
        value = read_file(path).strip()
    except (OSError, ValueError) as exc:  # ValueError: not UTF-8 (UnicodeDecodeError), a NUL in the path
        raise ConfigError(
            f"{where} {source}: cannot read {path} ({type(exc).__name__}): expected a readable UTF-8 file holding {key}"
        ) from exc
    if not value:
        raise ConfigError(f"{where} {source}: {path} is empty: expected it to hold {key}")
    return value


def _as_secret(value: str | None) -> Secret | None:
    return Secret(value) if value else None


def default_account_of(names: Sequence[str]) -> str | None:
    """Where events whose mapping names no account go: `default`, or the only account (None: several, none
    of them `default`)."""
    if DEFAULT_ACCOUNT in names:
        return DEFAULT_ACCOUNT
    return names[0] if len(names) == 1 else None

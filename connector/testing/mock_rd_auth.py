"""Auth state of the mock RD API: the RD accounts' app credentials, refresh tokens and issued access tokens.

Without accounts the mock models one RD account, named None, whose credentials are checked only when
configured. With accounts (`MockAccount` by name) each has its own app (client_id/client_secret), its own
refresh tokens and the access tokens issued to it: a token names its account, and a refresh token of one
account is refused to another's app, as at RD.

Threading: the event-loop thread writes; test threads read and reconfigure. `TokenStore` guards its data
with a lock; `MockAccount` is immutable and replaced as a whole.
"""

from __future__ import annotations

import dataclasses
import math
import secrets
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["ACCOUNT_FIELDS", "AuthRefused", "MockAccount", "TokenStore"]

_INVALID_REFRESH = "The provided refresh token is invalid or was revoked"  # RD's INVALID_REFRESH_TOKEN message
_WRONG_CREDENTIALS = "Wrong credentials provided."  # RD's ACCESS_DENIED message


@dataclass(frozen=True, slots=True)
class MockAccount:
    """One RD account of the mock (the names are a public interface: constructor, CLI and /_mock/accounts).

    client_id / client_secret: its app's credentials; a refresh names its account by client_id and is
    refused (ACCESS_DENIED) on a wrong secret. refresh_tokens: the ones it accepts, plus those it issued by
    rotation (None: any token that was not revoked and belongs to no other account). static_tokens: access
    tokens valid for it without a refresh (they never expire). refuse_refresh: every refresh is answered
    RD's 401 INVALID_REFRESH_TOKEN (access tokens already issued stay valid). rate_limit_per_s: its own
    limit (None: the global `rate_limit_per_s`, which applies to each account on its own anyway).
    """

    client_id: str
    client_secret: str
    refresh_tokens: tuple[str, ...] | None = None
    static_tokens: tuple[str, ...] = ()
    refuse_refresh: bool = False
    rate_limit_per_s: int | None = None

    def __post_init__(self) -> None:
        """ValueError on a bad value; lists of tokens become tuples (JSON has no tuples)."""
        for name in ("refresh_tokens", "static_tokens"):
            if isinstance(getattr(self, name), list):
                object.__setattr__(self, name, tuple(getattr(self, name)))
        for name in ACCOUNT_FIELDS:
            _check_field(name, getattr(self, name))

    @classmethod
    def from_json(cls, data: Any) -> MockAccount:
        """An account from a JSON object. ValueError on a bad one."""
        if not isinstance(data, dict):
            raise ValueError(f"an account must be a JSON object, not {data!r}")
        missing = sorted({"client_id", "client_secret"} - set(data))
        if missing:
            raise ValueError(f"an account needs {missing}")
        _check_names(data)
        return cls(**data)

    def updated(self, changes: Mapping[str, Any]) -> MockAccount:
        """A copy with `changes` applied. ValueError on an unknown setting or a bad value."""
        _check_names(changes)
        return dataclasses.replace(self, **changes)

    def public_json(self) -> dict[str, Any]:
        """The settings that are not secrets (no client_secret, no tokens)."""
        return {
            "client_id": self.client_id,
            "refuse_refresh": self.refuse_refresh,
            "rate_limit_per_s": self.rate_limit_per_s,
        }


ACCOUNT_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(MockAccount))


def _check_names(data: Mapping[str, Any]) -> None:
    unknown = sorted(set(data) - set(ACCOUNT_FIELDS))
    if unknown:
        raise ValueError(f"unknown account settings {unknown}; known: {list(ACCOUNT_FIELDS)}")


def _check_field(name: str, value: Any) -> None:
    if name in ("client_id", "client_secret"):
        ok = isinstance(value, str) and bool(value)
    elif name in ("refresh_tokens", "static_tokens"):
        ok = isinstance(value, tuple) and all(isinstance(v, str) and v for v in value)
        ok = ok or (name == "refresh_tokens" and value is None)
    elif name == "refuse_refresh":
        ok = isinstance(value, bool)
    else:  # rate_limit_per_s
        ok = value is None or (isinstance(value, int) and not isinstance(value, bool) and value > 0)
    if not ok:
        raise ValueError(f"bad value for account {name}: {value!r}")


class AuthRefused(Exception):
    """POST /auth/token refused: `error_type` and `message` go into RD's 401 body. `account`: the account
    whose app credentials the request carried (None when they matched none)."""

    def __init__(self, error_type: str, message: str, account: str | None = None) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.account = account


class TokenStore:
    """Issued access tokens (with expiry and account), known and revoked refresh tokens.

    Without `accounts`, one account named None: credentials are checked only when configured
    (`client_id`/`client_secret` not None); with `refresh_tokens=None` any non-empty refresh token that was
    not revoked is accepted, with a list only those and the ones this store issued by rotation. With
    `accounts`, `client_id`, `client_secret` and `refresh_tokens` must be None (ValueError otherwise).
    """

    def __init__(
        self,
        client_id: str | None,
        client_secret: str | None,
        refresh_tokens: Iterable[str] | None,
        accounts: Mapping[str, MockAccount] | None = None,
    ) -> None:
        if accounts and (client_id is not None or client_secret is not None or refresh_tokens is not None):
            raise ValueError("give the accounts' credentials in `accounts`, not client_id/client_secret/refresh_tokens")
        self._lock = threading.Lock()
        self._client = (client_id, client_secret)  # the unnamed account's (no `accounts`)
        self._any_refresh = refresh_tokens is None  # the unnamed account's
        self._accounts: dict[str, MockAccount] = {}
        self._owner: dict[str, str | None] = dict.fromkeys(refresh_tokens or ())  # refresh token -> account
        self._static: dict[str, str] = {}  # static access token -> account
        self._revoked: set[str] = set()
        self._access: dict[str, tuple[float, str | None]] = {}  # token -> (monotonic expiry, account)
        self._install(dict(accounts or {}))

    @property
    def named(self) -> bool:
        """True when the store models named accounts (False: the single unnamed one)."""
        return bool(self._accounts)

    def accounts(self) -> dict[str, MockAccount]:
        """The accounts as they are now (a copy)."""
        with self._lock:
            return dict(self._accounts)

    def account(self, name: str) -> MockAccount | None:
        """The account `name` as it is now (None: no such account)."""
        with self._lock:
            return self._accounts.get(name)

    def configure(self, changes: Mapping[str, Mapping[str, Any]]) -> dict[str, MockAccount]:
        """Apply `{account: {setting: value}}` all or nothing; returns every account. ValueError on an
        unknown account or setting, a bad value, or a client_id or token another account already has."""
        with self._lock:
            unknown = sorted(set(changes) - set(self._accounts))
            if unknown:
                raise ValueError(f"unknown accounts {unknown}; known: {sorted(self._accounts)}")
            updated = {name: self._accounts[name].updated(change) for name, change in changes.items()}
            self._install({**self._accounts, **updated})
            return dict(self._accounts)

    def restore(self, accounts: Mapping[str, MockAccount]) -> None:
        """Put the accounts back to `accounts` (their start-up settings); issued tokens stay valid."""
        with self._lock:
            self._install(dict(accounts))

    def refresh(
        self, body: Mapping[str, Any], *, ttl_s: float, rotate: bool, now: float
    ) -> tuple[dict[str, Any], str | None]:
        """RD's token answer for a refresh request body and the account it is for, or AuthRefused
        (ACCESS_DENIED, INVALID_REFRESH_TOKEN)."""
        refresh_token = body.get("refresh_token")
        with self._lock:
            account = self._account_of(body.get("client_id"), body.get("client_secret"))
            refused = account is not None and self._accounts[account].refuse_refresh
            if refused or not self._refresh_ok(refresh_token, account):
                raise AuthRefused("INVALID_REFRESH_TOKEN", _INVALID_REFRESH, account)
            assert isinstance(refresh_token, str)
            if rotate:
                self._revoked.add(refresh_token)
                refresh_token = f"mock-rt-{secrets.token_hex(16)}"
                self._owner[refresh_token] = account
            access_token = f"mock-at-{secrets.token_hex(16)}"
            self._access[access_token] = (now + ttl_s, account)
        expires_in = int(ttl_s) if float(ttl_s).is_integer() else ttl_s
        return {"access_token": access_token, "expires_in": expires_in, "refresh_token": refresh_token}, account

    def issued(self) -> list[str]:
        """Every access and refresh token this store has issued or known (for secret-leak tests)."""
        with self._lock:
            return [*self._access, *self._static, *self._owner, *self._revoked]

    def check_access(self, token: str, *, strict: bool, now: float) -> tuple[str | None, str | None]:
        """(verdict, account): verdict None if `token` may call the API, else "expired" or "invalid";
        account the one the token belongs to (None: unknown token, or no named accounts)."""
        with self._lock:
            static = self._static.get(token)
            entry = self._access.get(token)
        if static is not None:
            return None, static
        if entry is None:
            return ("invalid" if strict else None), None
        expiry, account = entry
        return ("expired" if now >= expiry else None), account

    def expire_all(self) -> None:
        """Make every issued access token expired (a test hook: no waiting for `token_ttl_s`). Static
        tokens stay valid."""
        with self._lock:
            self._access = {token: (-math.inf, account) for token, (_, account) in self._access.items()}

    def _install(self, accounts: dict[str, MockAccount]) -> None:
        """Make `accounts` the accounts (lock held or not yet shared), keeping the refresh tokens issued by
        rotation. ValueError, changing nothing, if two accounts share a client_id or a token."""
        issued = {
            t: a for t, a in self._owner.items() if a is None or t not in (self._accounts[a].refresh_tokens or ())
        }
        owner: dict[str, str | None] = dict(issued)
        static: dict[str, str] = {}
        client_ids: dict[str, str] = {}
        for name, account in accounts.items():
            if not isinstance(account, MockAccount):
                raise ValueError(f"account {name!r} is not a MockAccount: {account!r}")
            _claim(client_ids, account.client_id, name, "client_id")
            for token in account.refresh_tokens or ():
                _claim(owner, token, name, "refresh token")
            for token in account.static_tokens:
                _claim(static, token, name, "static token")
        self._accounts, self._owner, self._static = accounts, owner, static

    def _account_of(self, client_id: Any, client_secret: Any) -> str | None:
        """The account these app credentials are for (None: the unnamed one), or AuthRefused(ACCESS_DENIED)."""
        if not (isinstance(client_id, str) and client_id and isinstance(client_secret, str) and client_secret):
            raise AuthRefused("ACCESS_DENIED", _WRONG_CREDENTIALS)
        if not self._accounts:
            if self._client != (None, None) and (client_id, client_secret) != self._client:
                raise AuthRefused("ACCESS_DENIED", _WRONG_CREDENTIALS)
            return None
        for name, account in self._accounts.items():
            if account.client_id == client_id:
                if account.client_secret != client_secret:
                    raise AuthRefused("ACCESS_DENIED", _WRONG_CREDENTIALS)
                return name
        raise AuthRefused("ACCESS_DENIED", _WRONG_CREDENTIALS)

    def _refresh_ok(self, token: Any, account: str | None) -> bool:
        if not isinstance(token, str) or not token or token in self._revoked:
            return False
        if token in self._owner:
            return self._owner[token] == account
        return self._any_refresh if account is None else self._accounts[account].refresh_tokens is None


def _claim(owners: dict[str, Any], key: str, name: str, what: str) -> None:
    """Record `name` as the owner of `key`; ValueError if another account has it."""
    if owners.get(key, name) != name:
        raise ValueError(f"accounts {owners[key]!r} and {name!r} have the same {what}")
    owners[key] = name

"""RD's OAuth refresh flow: an access token from `POST {base}/auth/token`, refreshed ahead of its expiry
and once after a 401, shared by every lane (one refresh at a time, under a lock).

A rotated refresh token is kept and written atomically to `RDC_RD_TOKEN_FILE` (`token_file.py`), which
also takes precedence over `RDC_RD_REFRESH_TOKEN` at start, so a restart uses the newest token. `run` and
`check` both build their `RefreshingToken` with `refresh_flow()` (or `account_tokens()` for an account), so
they read and write that file alike. The file only ever holds what this process obtained from RD.

With a token store (`token_store.py`, shared by the replicas of one RD app), `RefreshingToken`:
- before refreshing, reads the store: an access token there that is newer than ours and valid beyond our
  refresh time is ADOPTED instead of refreshing (and a refresh token there that differs from ours is taken:
  another replica rotated it), so the replicas do not stampede;
- refreshes at `expiry - margin - jitter() * spread` (margin: 5 min, or 20% of a short lifetime; spread:
  10% of the lifetime, at most 60 s), so one replica refreshes first and the others adopt its answer;
- publishes a refresh's answer to the store BEFORE using the new access token (RD has just revoked the
  refresh token the other replicas hold). When the store cannot be written after `PUBLISH_ATTEMPTS`, it
  logs an error and KEEPS the tokens in memory (dropping them would lock everyone out: the old refresh token
  is spent), then retries the publish every `REPUBLISH_EVERY_S` from `token()`;
- on INVALID_REFRESH_TOKEN (another replica won a race), polls the store for ~2.5 s (`STORE_POLLS_S`) for a
  newer refresh token or access token before raising the usual `AuthFatal`; `AuthUnavailable` instead when
  the store could not be read at all then (the lane retries later).
A token read from the store is a secret for the logs too (`redact_also`), like one from RD. Without a store
the jitter is 0: a single instance refreshes exactly at `expiry - margin`, as before.

Each token request is over within `timeout_s` (connect, send, headers, body together) and reads at most
`TOKEN_ANSWER_MAX_BYTES` of the answer (`http_bounded.bounded_request`).

Errors: `AuthFatal` when RD refuses the credentials (`INVALID_REFRESH_TOKEN`, `ACCESS_DENIED`, any other
4xx): retrying cannot help, the connector stops and says what to do. `AuthUnavailable` when the token
endpoint cannot be reached, times out, answers 5xx/429, or answers 200 with no usable token (or more
than the cap): the lane's attempt (deliver/attempt.py) waits and tries again. No token or secret is ever logged.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import httpx

from connector.config import Secret, Settings
from connector.config.accounts import DEFAULT_ACCOUNT, Account
from connector.errors import AuthFatal, AuthUnavailable, ConnectorError
from connector.ops.logs import redact_also
from connector.rd.bounded_http import bounded_request
from connector.rd.client import StaticToken, TokenProvider
from connector.rd.token_file import read_token_file, write_token_file
from connector.rd.token_refusal import refusal_kinds, refusal_message
from connector.rd.token_store import WRITER_ID, AccountTokenStore, KafkaTokenStore, StoredTokens, TokenStoreLike

__all__ = [
    "RefreshingToken",
    "account_tokens",
    "refresh_flow",
    "refresh_margin",
    "refresh_spread",
]

_log = logging.getLogger("connector.rd.auth")

TOKEN_PATH = "/auth/token"

# RD's token answer is an access token (a JWT of ~1 KB), a refresh token (~50 B) and expires_in: 64 KiB is
# 50x that, and all of an error page that `token_refusal.refusal_message` needs.
TOKEN_ANSWER_MAX_BYTES = 64 * 1024

#: After INVALID_REFRESH_TOKEN: read the store at once, then after each of these pauses (2.5 s in all); the
#: replica that won the race may publish its answer a moment after RD gave it.
STORE_POLLS_S: Final = (0.25, 0.25, 0.5, 0.5, 1.0)
#: Writes of a refresh's answer to the store before keeping it in memory only; pauses between them.
PUBLISH_ATTEMPTS: Final = 3
PUBLISH_PAUSE_S: Final = 0.2
#: How often `token()` tries again to publish an answer the store did not take.
REPUBLISH_EVERY_S: Final = 5.0


def refresh_margin(lifetime_s: float) -> float:
    """How long before expiry a token is refreshed: 5 minutes for RD's 24 h tokens, 20% of a short one."""
    return min(300.0, max(0.0, lifetime_s) * 0.2)


def refresh_spread(lifetime_s: float) -> float:
    """The jitter window before the margin that spreads replicas' refreshes: 10% of the lifetime, <= 60 s."""
    return min(60.0, max(0.0, lifetime_s) * 0.1)


class _RefreshTokenRefused(AuthFatal):
    """INVALID_REFRESH_TOKEN from the token endpoint (private: re-raised as a plain `AuthFatal`)."""


class RefreshingToken:
    """A `TokenProvider` for the refresh flow, optionally sharing its tokens through a token store.
    Thread-safe.

    Counters (tests, the closing note): `refreshes` (answers from RD), `rotations` (answers with a new
    refresh token), `adopted` (times tokens were taken from the store instead: an access token, a newer
    refresh token, or both), `recovered_from_store` (INVALID_REFRESH_TOKEN answered by the store's newer
    tokens), `unpublished` (the tokens the store did not take yet, None normally).
    """

    def __init__(
        self,
        client: httpx.Client,
        base_url: str,
        client_id: str,
        client_secret: Secret,
        refresh_token: Secret,
        token_file: Path | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_refresh: Callable[[bool], object] | None = None,
        on_adopt: Callable[[], object] | None = None,
        timeout_s: float = 30.0,
        *,
        store: TokenStoreLike | None = None,
        account: str = DEFAULT_ACCOUNT,
        wall: Callable[[], float] = time.time,
        jitter: Callable[[], float] = random.random,
        sleep: Callable[[float], None] = time.sleep,
        writer: str = WRITER_ID,
    ) -> None:
        """`on_refresh(ok)` is told of every refresh attempt (metrics, readiness), and of every adoption from
        the store unless `on_adopt()` is given, which then is; `timeout_s` bounds each token request
        (`RDC_HTTP_TIMEOUT_S`). `clock` (monotonic) times
        refreshes; `wall` (epoch seconds) dates what goes to the store; `jitter()` is in [0, 1); `sleep`
        paces the store polls; `writer` names this process in the records it writes."""
        self._client = client
        self._url = base_url.rstrip("/") + TOKEN_PATH
        self._client_id = client_id
        self._client_secret = client_secret
        self._token_file = token_file
        self._refresh_token = read_token_file(token_file) or refresh_token
        self._own_refresh_token = self._refresh_token  # the configured one (or the file's): a last resort
        self._clock = clock
        self._wall = wall
        self._jitter = jitter
        self._sleep = sleep
        self._store = store
        self._writer = writer
        self.account = account
        self._access: Secret | None = None
        self._refresh_at = 0.0
        self._lock = threading.Lock()
        self._on_refresh = on_refresh
        self._on_adopt = on_adopt
        self._timeout_s = timeout_s
        self._republish_at = 0.0
        self.refreshes = 0
        self.rotations = 0  # refreshes after which RD sent a new refresh token (the one used is then spent)
        self.adopted = 0
        self.recovered_from_store = 0
        self.unpublished: StoredTokens | None = None
        self.unsaved: str | None = None  # why the newest rotated refresh token is neither in the store nor the file

    @property
    def token_file(self) -> Path | None:
        return self._token_file

    @property
    def url(self) -> str:
        """The token endpoint refreshes go to."""
        return self._url

    @property
    def refresh_at(self) -> float:
        """When (on `clock`) the current access token is due for a refresh."""
        return self._refresh_at

    def token(self) -> Secret:
        """The current access token, renewed first (from the store or RD) when missing or due."""
        with self._lock:
            if self.unpublished is not None and self._clock() >= self._republish_at:
                self._republish_locked()
            if self._access is None or self._clock() >= self._refresh_at:
                self._renew_locked(rejected=None)
            assert self._access is not None
            return self._access

    def refresh(self, rejected: Secret) -> bool:
        """After a 401 for `rejected`: renew unless another lane already did (the store's access token is
        taken only if it is not `rejected`). Always True (a refusal raises `AuthFatal`)."""
        with self._lock:
            if self._access is None or self._access == rejected:
                self._renew_locked(rejected)
            return True

    # renewal

    def _renew_locked(self, rejected: Secret | None) -> None:
        try:
            try:
                stored = self._load_locked()
            except _StoreUnreadable:
                stored = None  # refresh with ours; a refusal polls the store again
            adopted = self._adopt_locked(stored, rejected, strict=True)
            if not adopted:
                self._refresh_locked(rejected)
        except (AuthFatal, AuthUnavailable):
            if self._on_refresh is not None:
                self._on_refresh(False)
            raise
        if adopted and self._on_adopt is not None:
            self._on_adopt()
        elif self._on_refresh is not None:
            self._on_refresh(True)

    def _load_locked(self) -> StoredTokens | None:
        """The store's tokens for our account (None: no store, nothing stored, or unreadable: logged)."""
        if self._store is None:
            return None
        try:
            stored = self._store.load()
        except ConnectorError as exc:
            _log.warning("token_store_unreadable account=%s error=%s", self.account, exc)
            raise _StoreUnreadable from exc
        if stored is not None:
            redact_also(*(t for t in (stored.refresh_token, stored.access_token) if t))
        return stored

    def _adopt_locked(self, stored: StoredTokens | None, rejected: Secret | None, *, strict: bool) -> bool:
        """Take what is newer in `stored`; True when it gave us an access token to use. `strict`: only an
        access token valid beyond its (jittered) refresh time; else any still valid one."""
        if stored is None or self.unpublished is not None:  # unpublished: ours is newer than the store's
            return False
        took_refresh = stored.refresh_token != self._refresh_token.reveal()
        if took_refresh:
            self._refresh_token = Secret(stored.refresh_token)
        access = Secret(stored.access_token) if stored.access_token else None
        due_in = self._due_in(stored.expires_at - stored.written_at, stored.expires_at - self._wall())
        usable = (
            access is not None
            and access != rejected
            and access != self._access
            and (due_in > 0 if strict else stored.expires_at > self._wall())
        )
        if usable:
            self._access = access
            self._refresh_at = self._clock() + max(0.0, due_in)
        if took_refresh or usable:
            self.adopted += 1
            _log.info(
                "token_adopted account=%s from=store writer=%s access=%s refresh=%s expires_in_s=%.0f",
                self.account, stored.writer, usable, took_refresh, stored.expires_at - self._wall(),
            )  # fmt: skip
        return usable

    def _due_in(self, lifetime_s: float, remaining_s: float) -> float:
        """Seconds until a token with `remaining_s` of its `lifetime_s` left is due for a refresh."""
        spread = refresh_spread(lifetime_s) * self._jitter() if self._store is not None else 0.0
        return remaining_s - refresh_margin(lifetime_s) - spread

    def _refresh_locked(self, rejected: Secret | None) -> None:
        used = self._refresh_token
        try:
            answer = self._request_locked(used)
        except _RefreshTokenRefused as refused:
            if self._store is None:
                raise AuthFatal(str(refused), refused.status) from None
            self._recover_locked(used, rejected, refused)
            return
        self._accept_locked(answer, used)

    def _recover_locked(self, used: Secret, rejected: Secret | None, refused: AuthFatal) -> None:
        """After INVALID_REFRESH_TOKEN for `used`: the store's newer tokens, polled for a moment; then the
        configured refresh token (a re-authorised app); then `AuthFatal`."""
        tried = {used.reveal()}
        read_any = False
        for pause in (*STORE_POLLS_S, None):
            try:
                stored = self._load_locked()
                read_any = True
            except _StoreUnreadable:
                stored = None
            if stored is not None and self._try_stored_locked(stored, rejected, tried):
                self.recovered_from_store += 1
                _log.info("token_recovered account=%s from=store writer=%s", self.account, stored.writer)
                return
            if pause is not None:
                self._sleep(pause)
        if self._own_refresh_token.reveal() not in tried:
            try:
                self._accept_locked(self._request_locked(self._own_refresh_token), self._own_refresh_token)
                return
            except _RefreshTokenRefused:
                pass
        if not read_any:
            raise AuthUnavailable(
                "RD refused the refresh token and the token store could not be read to find its successor"
            )
        raise AuthFatal(str(refused), refused.status)

    def _try_stored_locked(self, stored: StoredTokens, rejected: Secret | None, tried: set[str]) -> bool:
        """Recover with `stored`: its valid access token, or a refresh with its untried refresh token."""
        if self._adopt_locked(stored, rejected, strict=False):
            return True
        if stored.refresh_token in tried:
            return False
        tried.add(stored.refresh_token)
        token = Secret(stored.refresh_token)
        try:
            self._accept_locked(self._request_locked(token), token)
        except _RefreshTokenRefused:
            return False
        return True

    # RD's token endpoint

    def _request_locked(self, refresh_token: Secret) -> dict[str, Any]:
        """RD's answer to a refresh with `refresh_token`: a dict with a usable `access_token`."""
        body = {
            "client_id": self._client_id,
            "client_secret": self._client_secret.reveal(),
            "refresh_token": refresh_token.reveal(),
        }
        try:
            response = bounded_request(
                self._client, "POST", self._url, json=body, timeout_s=self._timeout_s, max_bytes=TOKEN_ANSWER_MAX_BYTES
            )
        except httpx.HTTPError as exc:
            raise AuthUnavailable(f"token endpoint unreachable: {type(exc).__name__}") from exc
        if response.status_code == 429 or response.status_code >= 500:
            raise AuthUnavailable(f"token endpoint answered {response.status_code}")
        if response.status_code != 200:
            if "INVALID_REFRESH_TOKEN" in refusal_kinds(response):
                raise _RefreshTokenRefused(refusal_message(response, self.account), response.status_code)
            raise AuthFatal(refusal_message(response, self.account), response.status_code)
        if not response.complete:
            raise AuthUnavailable(f"token endpoint answered 200 with more than {TOKEN_ANSWER_MAX_BYTES} bytes")
        try:
            answer = json.loads(response.body)
            access, expires_in = answer["access_token"], float(answer.get("expires_in", 86_400))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise AuthUnavailable("token endpoint answered 200 without an access_token") from exc
        if not isinstance(access, str) or not access.strip():
            raise AuthUnavailable("token endpoint answered 200 with an empty access_token")
        redact_also(access)  # tokens obtained at run time are secrets for the logs too
        rotated = answer.get("refresh_token")
        if isinstance(rotated, str) and rotated:
            redact_also(rotated)
        return {"access_token": access, "expires_in": expires_in, "refresh_token": rotated}

    def _accept_locked(self, answer: dict[str, Any], used: Secret) -> None:
        """Publish RD's `answer` to the store, then use it."""
        access, expires_in, rotated = answer["access_token"], answer["expires_in"], answer["refresh_token"]
        rotated = rotated if isinstance(rotated, str) and rotated and rotated != used.reveal() else None
        now = self._wall()
        newest = rotated or used.reveal()
        self._publish_locked(StoredTokens(newest, access, now + expires_in, now, self._writer))
        self._access = Secret(access)
        self._refresh_at = self._clock() + self._due_in(expires_in, expires_in)
        self._refresh_token = Secret(newest)
        self.refreshes += 1
        if rotated is not None:
            self.rotations += 1
            self._save_file(rotated)
        _log.info(
            "token_refreshed account=%s expires_in_s=%.0f rotated=%s", self.account, expires_in, rotated is not None
        )

    # the store and the file

    def _publish_locked(self, tokens: StoredTokens) -> None:
        """Write `tokens` to the store; after `PUBLISH_ATTEMPTS` failures keep them as `unpublished`."""
        if self._store is None:
            return
        for attempt in range(1, PUBLISH_ATTEMPTS + 1):
            try:
                self._store.save(tokens)
            except ConnectorError as exc:
                if attempt < PUBLISH_ATTEMPTS:
                    self._sleep(PUBLISH_PAUSE_S * attempt)
                    continue
                self.unpublished = tokens
                self._republish_at = self._clock() + REPUBLISH_EVERY_S
                _log.error(
                    "token_store_write_failed account=%s attempts=%d error=%s: the other replicas will be refused "
                    "(INVALID_REFRESH_TOKEN) until it is written; keeping the tokens in memory, retrying every %.0f s",
                    self.account, attempt, exc, REPUBLISH_EVERY_S,
                )  # fmt: skip
                return
            self.unpublished = None
            return

    def _republish_locked(self) -> None:
        assert self._store is not None and self.unpublished is not None
        try:
            self._store.save(self.unpublished)
        except ConnectorError as exc:
            self._republish_at = self._clock() + REPUBLISH_EVERY_S
            _log.warning("token_store_write_failed account=%s error=%s (retrying)", self.account, exc)
            return
        self.unpublished = None
        _log.info("token_store_written account=%s (after failures)", self.account)

    def _save_file(self, rotated: str) -> None:
        """Keep a rotated refresh token in the token file; say in `unsaved` why not, if not."""
        if self._token_file is None:
            in_store = self._store is not None and self.unpublished is None
            self.unsaved = None if in_store else "RDC_RD_TOKEN_FILE is not set"
            return
        self.unsaved = None
        try:
            write_token_file(self._token_file, rotated)
        except OSError as exc:  # keep delivering; only a restart would need the file
            self.unsaved = f"writing {self._token_file} failed ({type(exc).__name__})"
            _log.error(
                "token_file_write_failed path=%s error=%s: a restart will not know the rotated refresh token",
                self._token_file, type(exc).__name__,
            )  # fmt: skip


class _StoreUnreadable(Exception):
    """The token store could not be read (logged; private to this module)."""


def account_tokens(
    account: Account,
    client: httpx.Client,
    *,
    store: KafkaTokenStore | None = None,
    passphrase: Secret | None = None,
    on_refresh: Callable[[bool], object] | None = None,
    timeout_s: float = 30.0,
    on_adopt: Callable[[], object] | None = None,
) -> TokenProvider:
    """The `TokenProvider` of `account`: a `RefreshingToken` for the refresh flow (sharing its tokens
    through `store` when given, sealed with `passphrase`, RDC_TOKEN_STORE_KEY, else the account's client
    secret), else its static access token. Raises `ValueError` for an account without credentials
    (`Account.require` rules that out)."""
    if account.refresh_flow:
        return _refreshing(account, client, store, passphrase, on_refresh, timeout_s, on_adopt)
    if account.access_token is None:
        raise ValueError(f"account {account.name} has no RD credentials")
    return StaticToken(account.access_token)


def refresh_flow(
    settings: Settings, client: httpx.Client, on_refresh: Callable[[bool], object] | None = None
) -> RefreshingToken | None:
    """The refresh flow of `settings` (its three RDC_RD_* settings and RDC_RD_TOKEN_FILE), or None when it
    is not configured. The one place `run` and `check` get theirs: the same token file, read and written
    the same way. No token store (see `account_tokens`)."""
    account = settings.default_account()
    if account is None or not account.refresh_flow:
        return None
    return _refreshing(account, client, None, None, on_refresh, settings.http_timeout_s)


def _refreshing(
    account: Account,
    client: httpx.Client,
    store: KafkaTokenStore | None,
    passphrase: Secret | None,
    on_refresh: Callable[[bool], object] | None,
    timeout_s: float,
    on_adopt: Callable[[], object] | None = None,
) -> RefreshingToken:
    assert account.client_id and account.client_secret and account.refresh_token
    shared = None
    if store is not None:
        shared = AccountTokenStore(store, account.name, account.client_id, passphrase or account.client_secret)
    return RefreshingToken(
        client,
        account.base_url,
        account.client_id,
        account.client_secret,
        account.refresh_token,
        Path(account.token_file) if account.token_file else None,
        on_refresh=on_refresh,
        on_adopt=on_adopt,
        timeout_s=timeout_s,
        store=shared,
        account=account.name,
    )

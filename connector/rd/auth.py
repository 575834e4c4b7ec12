"""RD's OAuth refresh flow: an access token from `POST {base}/auth/token`, refreshed ahead of its expiry
and once after a 401, shared by every lane (one refresh at a time, under a lock).

A rotated refresh token is kept and written atomically to `RDC_RD_TOKEN_FILE` (JSON, mode 0600), which
also takes precedence over `RDC_RD_REFRESH_TOKEN` at start, so a restart uses the newest token. `run` and
`check` both build their `RefreshingToken` with `refresh_flow()`, so both read and write that file alike.

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
import os
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from connector.config import Secret, Settings
from connector.errors import AuthFatal, AuthUnavailable
from connector.ops.logs import redact_also
from connector.rd.bounded_http import Answer, bounded_request

__all__ = ["RefreshingToken", "refresh_flow", "token_file_problem"]

_log = logging.getLogger("connector.rd.auth")

TOKEN_PATH = "/auth/token"

# RD's token answer is an access token (a JWT of ~1 KB), a refresh token (~50 B) and expires_in: 64 KiB is
# 50x that, and all of an error page that `_refusal_message` needs.
TOKEN_ANSWER_MAX_BYTES = 64 * 1024


class RefreshingToken:
    """A `TokenProvider` for the refresh flow. Thread-safe."""

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
        timeout_s: float = 30.0,
    ) -> None:
        """`on_refresh(ok)` is told of every refresh attempt (metrics, readiness); `timeout_s` bounds each
        token request (`RDC_HTTP_TIMEOUT_S`)."""
        self._client = client
        self._url = base_url.rstrip("/") + TOKEN_PATH
        self._client_id = client_id
        self._client_secret = client_secret
        self._token_file = token_file
        self._refresh_token = _stored_refresh_token(token_file) or refresh_token
        self._clock = clock
        self._access: Secret | None = None
        self._refresh_at = 0.0
        self._lock = threading.Lock()
        self._on_refresh = on_refresh
        self._timeout_s = timeout_s
        self.refreshes = 0
        self.rotations = 0  # refreshes after which RD sent a new refresh token (the one used is then spent)
        self.unsaved: str | None = None  # why the newest rotated refresh token is not in the token file

    @property
    def token_file(self) -> Path | None:
        return self._token_file

    @property
    def url(self) -> str:
        """The token endpoint refreshes go to."""
        return self._url

    def token(self) -> Secret:
        """The current access token, refreshed first when missing or close to expiry."""
        with self._lock:
            if self._access is None or self._clock() >= self._refresh_at:
                self._refresh_locked()
            assert self._access is not None
            return self._access

    def refresh(self, rejected: Secret) -> bool:
        """After a 401 for `rejected`: refresh unless another lane already did. Always True (a refusal
        raises `AuthFatal`)."""
        with self._lock:
            if self._access is None or self._access == rejected:
                self._refresh_locked()
            return True

    def _refresh_locked(self) -> None:
        try:
            self._fetch_locked()
        except (AuthFatal, AuthUnavailable):
            if self._on_refresh is not None:
                self._on_refresh(False)
            raise
        if self._on_refresh is not None:
            self._on_refresh(True)

    def _fetch_locked(self) -> None:
        body = {
            "client_id": self._client_id,
            "client_secret": self._client_secret.reveal(),
            "refresh_token": self._refresh_token.reveal(),
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
            raise AuthFatal(_refusal_message(response), response.status_code)
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
        self._access = Secret(access)
        # Refresh ahead of expiry: 5 minutes early for RD's 24 h tokens, 20% early for short ones.
        self._refresh_at = self._clock() + expires_in - min(300.0, expires_in * 0.2)
        self.refreshes += 1
        rotated = answer.get("refresh_token")
        if isinstance(rotated, str) and rotated and rotated != self._refresh_token.reveal():
            redact_also(rotated)
            self._refresh_token = Secret(rotated)
            self.rotations += 1
            self.unsaved = "RDC_RD_TOKEN_FILE is not set" if self._token_file is None else None
            try:
                self._store(rotated)
            except OSError as exc:  # keep delivering; only a restart would need the file
                self.unsaved = f"writing {self._token_file} failed ({type(exc).__name__})"
                _log.error(
                    "token_file_write_failed path=%s error=%s: a restart will not know the rotated refresh token",
                    self._token_file, type(exc).__name__,
                )  # fmt: skip
        _log.info("token_refreshed expires_in_s=%.0f rotated=%s", expires_in, bool(rotated))

    def _store(self, refresh_token: str) -> None:
        if self._token_file is None:
            return
        directory = self._token_file.parent
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".rdc-token-", dir=directory)
        try:
            with os.fdopen(fd, "w") as handle:
                json.dump({"refresh_token": refresh_token}, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, self._token_file)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def refresh_flow(
    settings: Settings, client: httpx.Client, on_refresh: Callable[[bool], object] | None = None
) -> RefreshingToken | None:
    """The refresh flow of `settings` (its three RDC_RD_* settings and RDC_RD_TOKEN_FILE), or None when it
    is not configured. The one place `run` and `check` get theirs: the same token file, read and written
    the same way."""
    if not (settings.rd_client_id and settings.rd_client_secret and settings.rd_refresh_token):
        return None
    return RefreshingToken(
        client,
        settings.rd_base_url,
        settings.rd_client_id,
        settings.rd_client_secret,
        settings.rd_refresh_token,
        Path(settings.rd_token_file) if settings.rd_token_file else None,
        on_refresh=on_refresh,
        timeout_s=settings.http_timeout_s,
    )


def token_file_problem(token_file: Path) -> str | None:
    """Why a rotated refresh token could not be written to `token_file` (None: it can, as far as a check
    without writing can tell)."""
    if token_file.is_dir():
        return "is a directory"
    directory = token_file.parent
    while not directory.exists() and directory != directory.parent:
        directory = directory.parent  # `_store` creates the missing directories
    if not directory.is_dir() or not os.access(directory, os.W_OK | os.X_OK):
        return f"cannot be written: {directory} is not a writable directory"
    return None


def _stored_refresh_token(token_file: Path | None) -> Secret | None:
    if token_file is None or not token_file.exists():
        return None
    try:
        value = json.loads(token_file.read_text())["refresh_token"]
    except (ValueError, KeyError, TypeError, OSError):
        _log.warning("token_file_unreadable path=%s (using RDC_RD_REFRESH_TOKEN)", token_file)
        return None
    return Secret(value) if isinstance(value, str) and value else None


def _refusal_message(response: Answer) -> str:
    try:
        errors = json.loads(response.body).get("errors")
    except (ValueError, AttributeError):
        errors = None
    kinds = {e.get("error_type") for e in errors if isinstance(e, dict)} if isinstance(errors, list) else set()
    if isinstance(errors, dict):
        kinds.add(errors.get("error_type"))
    if "INVALID_REFRESH_TOKEN" in kinds:
        return (
            "RD refused the refresh token (INVALID_REFRESH_TOKEN: invalid or revoked). Authorise the app again, "
            "set RDC_RD_REFRESH_TOKEN to the new token and remove RDC_RD_TOKEN_FILE if it holds the old one"
        )
    if "ACCESS_DENIED" in kinds:
        return "RD refused the app credentials (ACCESS_DENIED): check RDC_RD_CLIENT_ID and RDC_RD_CLIENT_SECRET"
    return f"RD's token endpoint refused the refresh with HTTP {response.status_code}: check the RDC_RD_* credentials"

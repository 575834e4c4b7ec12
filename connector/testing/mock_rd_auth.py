"""Auth state of the mock RD API: the app credentials, refresh tokens and issued access tokens.

Threading: the event-loop thread writes; test threads read. `TokenStore` guards its data with a lock.
"""

from __future__ import annotations

import math
import secrets
import threading
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["AuthRefused", "TokenStore"]


class AuthRefused(Exception):
    """POST /auth/token refused: `error_type` and `message` go into RD's 401 body."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message


class TokenStore:
    """Issued access tokens (with expiry), known and revoked refresh tokens.

    Credentials are checked only when configured (`client_id`/`client_secret` not None). With
    `refresh_tokens=None` any non-empty refresh token that was not revoked is accepted; with a list,
    only those and the ones this store issued by rotation.
    """

    def __init__(self, client_id: str | None, client_secret: str | None, refresh_tokens: Iterable[str] | None) -> None:
        self._lock = threading.Lock()
        self._client_id = client_id
        self._client_secret = client_secret
        self._known: set[str] | None = None if refresh_tokens is None else set(refresh_tokens)
        self._revoked: set[str] = set()
        self._access: dict[str, float] = {}  # token -> monotonic expiry

    def refresh(self, body: Mapping[str, Any], *, ttl_s: float, rotate: bool, now: float) -> dict[str, Any]:
        """RD's token answer for a refresh request body, or AuthRefused (ACCESS_DENIED, INVALID_REFRESH_TOKEN)."""
        self._check_client(body.get("client_id"), body.get("client_secret"))
        refresh_token = body.get("refresh_token")
        with self._lock:
            if not self._refresh_ok(refresh_token):
                raise AuthRefused("INVALID_REFRESH_TOKEN", "The provided refresh token is invalid or was revoked")
            assert isinstance(refresh_token, str)
            if rotate:
                self._revoked.add(refresh_token)
                refresh_token = f"mock-rt-{secrets.token_hex(16)}"
                if self._known is not None:
                    self._known.add(refresh_token)
            access_token = f"mock-at-{secrets.token_hex(16)}"
            self._access[access_token] = now + ttl_s
        expires_in = int(ttl_s) if float(ttl_s).is_integer() else ttl_s
        return {"access_token": access_token, "expires_in": expires_in, "refresh_token": refresh_token}

    def issued(self) -> list[str]:
        """Every access and refresh token this store has issued or known (for secret-leak tests)."""
        with self._lock:
            return [*self._access, *(self._known or ()), *self._revoked]

    def check_access(self, token: str, *, strict: bool, now: float) -> str | None:
        """None if `token` may call the API, else "expired" or "invalid"."""
        with self._lock:
            expiry = self._access.get(token)
        if expiry is None:
            return "invalid" if strict else None
        return "expired" if now >= expiry else None

    def expire_all(self) -> None:
        """Make every issued access token expired (a test hook: no waiting for `token_ttl_s`)."""
        with self._lock:
            self._access = dict.fromkeys(self._access, -math.inf)

    def _check_client(self, client_id: Any, client_secret: Any) -> None:
        if not (isinstance(client_id, str) and client_id and isinstance(client_secret, str) and client_secret):
            raise AuthRefused("ACCESS_DENIED", "Wrong credentials provided.")
        configured = self._client_id is not None or self._client_secret is not None
        if configured and (client_id, client_secret) != (self._client_id, self._client_secret):
            raise AuthRefused("ACCESS_DENIED", "Wrong credentials provided.")

    def _refresh_ok(self, token: Any) -> bool:
        if not isinstance(token, str) or not token or token in self._revoked:
            return False
        return self._known is None or token in self._known

"""The HTTP edge to RD Station: posts a batch body and returns the raw answer, bounded.

The `httpx.Client` is injected (tests pass `httpx.MockTransport`, integration tests a real server on
loopback; the runner `http_bounded.bounded_client`). Each request is over within `timeout_s` (connect,
send, headers and body together) and reads at most `rd_answers.max_answer_bytes(max_events)` of the answer
(a longer one comes back with `complete=False`). Tokens come from a `TokenProvider`, so the refresh flow
slots in without touching the lanes. The token is never logged: it only ever appears in the
`Authorization` header.
"""

from __future__ import annotations

from typing import Protocol

import httpx

from connector.config import Secret
from connector.rd.answers import max_answer_bytes
from connector.rd.bounded_http import Answer, bounded_request

__all__ = ["BATCH_PATH", "RdClient", "StaticToken", "TokenProvider"]

BATCH_PATH = "/platform/events/batch"


class TokenProvider(Protocol):
    def token(self) -> Secret:
        """The access token to use now (may block while a refresh is in flight)."""
        ...

    def refresh(self, rejected: Secret) -> bool:
        """Called after a 401 for `rejected`; True if a new token is available to retry with."""
        ...


class StaticToken:
    """A fixed bearer token (`RDC_RD_ACCESS_TOKEN`): it cannot be refreshed."""

    def __init__(self, token: Secret) -> None:
        self._token = token

    def token(self) -> Secret:
        return self._token

    def refresh(self, rejected: Secret) -> bool:
        return False


class RdClient:
    """Posts batch bodies. Thread-safe (httpx.Client is); one per process, shared by the lanes."""

    def __init__(
        self,
        base_url: str,
        tokens: TokenProvider,
        client: httpx.Client,
        *,
        timeout_s: float = 30.0,
        max_events: int = 10_000,
    ) -> None:
        """`timeout_s`: `RDC_HTTP_TIMEOUT_S`; `max_events`: `RDC_BATCH_MAX_EVENTS` (sizes the answer cap)."""
        self._url = base_url.rstrip("/") + BATCH_PATH
        self._tokens = tokens
        self._client = client
        self._timeout_s = timeout_s
        self.max_answer_bytes = max_answer_bytes(max_events)

    @property
    def url(self) -> str:
        """The batch endpoint every POST goes to."""
        return self._url

    @property
    def tokens(self) -> TokenProvider:
        return self._tokens

    def post_batch(self, body: bytes, token: Secret) -> Answer:
        """POST `body` (a JSON array) with `token`. Raises httpx transport errors as they come, a timeout
        (`httpx.TimeoutException`) once `timeout_s` has passed in any phase."""
        headers = {"Authorization": f"Bearer {token.reveal()}", "Content-Type": "application/json"}
        return bounded_request(
            self._client,
            "POST",
            self._url,
            content=body,
            headers=headers,
            timeout_s=self._timeout_s,
            max_bytes=self.max_answer_bytes,
        )

    def close(self) -> None:
        self._client.close()

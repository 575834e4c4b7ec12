"""What to do with an answer from RD: one pure function per kind of outcome, and the backoff.

| outcome | action |
|---|---|
| 200 | `DELIVERED` (the sender still checks that one UUID came back per event) |
| 400, 422, 413 | `SPLIT`: bisect the batch until the rejected events are isolated (413: the cap is too high) |
| 408, 429, 5xx, connection errors, timeouts | `RETRY`, after `wait_s` when RD said how long (429) |

A read timeout, or a connection lost after the body was sent, is `possibly_sent`: RD may have accepted the
batch, so resending it may duplicate events (counted, logged, then retried).
| 401 | `REFRESH_AUTH` (a static token cannot be refreshed: the sender treats it as fatal) |
| any other status (403, 404, 415...) | `FATAL`: retrying cannot help; stop and say why |
"""

from __future__ import annotations

import email.utils
import enum
import time
from collections.abc import Mapping
from dataclasses import dataclass

import httpx
import orjson

__all__ = ["Action", "Decision", "backoff_s", "classify_exception", "classify_response", "wait_from_429"]


class Action(enum.Enum):
    DELIVERED = "delivered"
    RETRY = "retry"
    SPLIT = "split"
    REFRESH_AUTH = "refresh_auth"
    FATAL = "fatal"


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    reason: str  # short key for logs and metrics: "status_503", "timeout", ...
    wait_s: float | None = None  # how long RD asked us to wait, when it said
    possibly_sent: bool = False  # the body went out and the answer was lost: RD may have accepted it


def wait_from_429(headers: Mapping[str, str], body: bytes, now: float) -> float | None:
    """Seconds to wait after a 429: `Retry-After` (seconds or HTTP date), else `retry-after-quotas`,
    else the body's `remaining_time`; None when RD gave no hint. `now` is wall-clock epoch seconds."""
    lowered = {k.lower(): v for k, v in headers.items()}
    retry_after = lowered.get("retry-after")
    if retry_after:
        if retry_after.strip().isdigit():
            return float(retry_after.strip())
        try:
            when = email.utils.parsedate_to_datetime(retry_after)
        except (TypeError, ValueError):
            when = None
        if when is not None:
            return max(0.0, when.timestamp() - now)
    quotas = lowered.get("retry-after-quotas", "").strip()
    if quotas.replace(".", "", 1).isdigit():
        return float(quotas)
    try:
        remaining = orjson.loads(body).get("remaining_time") if body else None
    except (orjson.JSONDecodeError, AttributeError):
        remaining = None
    if isinstance(remaining, bool) or not isinstance(remaining, int | float) or remaining < 0:
        return None
    return float(remaining)


def classify_response(status: int, headers: Mapping[str, str], body: bytes, now: float | None = None) -> Decision:
    """The action for an HTTP answer from RD."""
    if status == 200:
        return Decision(Action.DELIVERED, "ok")
    reason = f"status_{status}"
    if status in (400, 413, 422):
        return Decision(Action.SPLIT, reason)
    if status == 401:
        return Decision(Action.REFRESH_AUTH, reason)
    if status == 429:
        return Decision(Action.RETRY, reason, wait_from_429(headers, body, time.time() if now is None else now))
    if status == 408 or status >= 500:
        return Decision(Action.RETRY, reason)
    return Decision(Action.FATAL, reason)


def classify_exception(exc: Exception) -> Decision:
    """The action for an exception raised while talking to RD (every transport error is retried)."""
    if isinstance(exc, httpx.ReadTimeout):
        return Decision(Action.RETRY, "timeout", possibly_sent=True)
    if isinstance(exc, httpx.TimeoutException):
        return Decision(Action.RETRY, "timeout")
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError):
        return Decision(Action.RETRY, "connection_error", possibly_sent=True)
    if isinstance(exc, httpx.TransportError):
        return Decision(Action.RETRY, "connection_error")
    return Decision(Action.FATAL, f"unexpected_{type(exc).__name__}")


def backoff_s(attempt: int, initial_s: float, max_s: float, jitter: float) -> float:
    """Capped exponential backoff with full jitter: `jitter` in [0, 1) times min(max, initial * 2**attempt)."""
    return float(jitter * min(max_s, initial_s * 2.0 ** min(attempt, 30)))

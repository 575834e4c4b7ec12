"""What to do with an answer from RD: one pure function per kind of outcome, the backoff and the waits.

| outcome | action |
|---|---|
| 200 | `DELIVERED` (the attempt still checks the body: `rd.answers.parse_batch_answer`) |
| 400, 422 in RD's error format | `SPLIT`: bisect until the rejected events are isolated |
| 429 whose body names RD's per-contact limiter (`lead_limiter`) | `CONTACT_LIMITED`: bisect to those events |
| 408, 429 (the account's), 5xx, connection errors, timeouts | `RETRY`, after `wait_s` when RD said how long (429) |
| any other 4xx but 401, in RD's error format (403, 404, 415...) | `FATAL`: retrying cannot help; stop and say why |
| 413, or a 4xx (400, 422 too) not in RD's format | `RETRY`, `not_rd`: an outage, never a verdict on records |
| 401 | `REFRESH_AUTH` (a static token cannot be refreshed: the attempt treats it as fatal) |
| any other status (3xx, 2xx but 200), an httpx error that is not a transport error | `FATAL` |
| any other exception | not classified: a bug; the lane stops the connector with exit 1 (`LaneCrashed`) |

A 4xx not in RD's error format came from something in front of RD (a proxy, a load balancer, a WAF): it
says nothing about the records, so nothing is dead-lettered or stopped for it. RD documents no 413 and the
batcher keeps every body under `RDC_BATCH_MAX_BYTES` (default RD's documented 0.2 MB), so a 413 is never
bisected: it is an outage too (docs/decisions/0010-rd-answers-outage-not-verdict.md).

RD limits events per contact (about 120 per contact per 24 h) as well as requests per account. A 429 from
the per-contact limiter (`{"error":"'lead_limiter' rate limit exceeded for 86400 second(s) period...",
"remaining_time":43067}`) is about some contacts in the batch, not the account: waiting hours for it would
hold every other event, so it is `CONTACT_LIMITED` (`wait_s` is when RD takes those contacts again) and is
never a reason to pause the account. Any other 429 (the gateway's `{"message":"API rate limit exceeded"}`
with `retry-after-quotas`, a `Retry-After`, a `remaining_time` of another limiter) is the account's.

A read timeout, or a connection lost after the body was sent, is `possibly_sent`: RD may have accepted the
batch, so resending it may duplicate events (counted, logged, then retried).

Waits: RD's hint (`Retry-After`, `retry-after-quotas`, `remaining_time`) is honoured up to
`MAX_HINTED_WAIT_S`, then RD is asked again; `wait_within` cuts any wait at a batch's retry deadline
(`RDC_RETRY_MAX_ELAPSED_S`) and says when it has passed. Times are passed in: no clock is read here
except `time.time()` when `classify_response` is given no `now`.
"""

from __future__ import annotations

import email.utils
import enum
import time
from collections.abc import Mapping
from dataclasses import dataclass

import httpx
import orjson

from connector.rd.answers import rd_error_types

__all__ = [
    "CONTACT_LIMIT_PERIOD_S",
    "MAX_HINTED_WAIT_S",
    "Action",
    "Decision",
    "backoff_s",
    "classify_exception",
    "classify_response",
    "is_contact_limit",
    "next_wait_s",
    "wait_from_429",
    "wait_within",
]

# However long RD asks us to wait (an 11-day Retry-After, a per-lead limiter's hours of remaining_time),
# RD is asked again after at most this long: a hint that is wrong, or a limit lifted early, costs at most
# a minute, and a probe a minute is 1/120 of RD's documented 120 requests a minute.
MAX_HINTED_WAIT_S = 60.0

#: RD's per-contact window (24 h): when a `lead_limiter` 429 names no `remaining_time`, its events are taken
#: again at the latest this long after.
CONTACT_LIMIT_PERIOD_S = 86_400.0


class Action(enum.Enum):
    DELIVERED = "delivered"
    RETRY = "retry"
    SPLIT = "split"
    CONTACT_LIMITED = "contact_limited"  # a 429 from RD's per-contact limiter: bisect, dead-letter those
    REFRESH_AUTH = "refresh_auth"
    FATAL = "fatal"


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    reason: str  # short key for logs and metrics: "status_503", "timeout", ...
    wait_s: float | None = None  # how long RD asked us to wait, when it said (CONTACT_LIMITED: always set)
    possibly_sent: bool = False  # the body went out and the answer was lost: RD may have accepted it
    not_rd: bool = False  # a 4xx not in RD's error format: something in front of RD answered (an outage)


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


def is_contact_limit(body: bytes) -> bool:
    """True when a 429's body is RD's per-contact limiter's: a JSON object whose `error` names `lead_limiter`."""
    try:
        error = orjson.loads(body).get("error") if body else None
    except (orjson.JSONDecodeError, AttributeError):
        return False
    return isinstance(error, str) and "lead_limiter" in error


def classify_response(status: int, headers: Mapping[str, str], body: bytes, now: float | None = None) -> Decision:
    """The action for an HTTP answer from RD. `body` is the answer's body (empty when it was too long to
    read: then no 4xx is RD's verdict)."""
    if status == 200:
        return Decision(Action.DELIVERED, "ok")
    reason = f"status_{status}"
    if status == 401:
        return Decision(Action.REFRESH_AUTH, reason)
    if status == 429:
        wait_s = wait_from_429(headers, body, time.time() if now is None else now)
        if is_contact_limit(body):
            wait = CONTACT_LIMIT_PERIOD_S if wait_s is None else wait_s
            return Decision(Action.CONTACT_LIMITED, f"{reason}_contact", wait)
        return Decision(Action.RETRY, reason, wait_s)
    if status == 408 or status >= 500:
        return Decision(Action.RETRY, reason)
    if status == 413 or (400 <= status < 500 and rd_error_types(body) is None):
        return Decision(Action.RETRY, f"{reason}_not_rd", not_rd=True)
    if status in (400, 422):
        return Decision(Action.SPLIT, reason)
    return Decision(Action.FATAL, reason)


def classify_exception(exc: httpx.HTTPError) -> Decision:
    """The action for httpx's exception while talking to RD: every transport error is retried; another
    (a redirect loop, an undecodable body) is fatal. Any other exception is a bug, not classified here."""
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


def next_wait_s(decision: Decision, attempt: int, initial_s: float, max_s: float, jitter: float) -> float:
    """The wait before retrying after `decision`: RD's hint capped at `MAX_HINTED_WAIT_S`, else the
    backoff for `attempt` (its cap is `RDC_RETRY_BACKOFF_MAX_MS`, the operator's choice)."""
    if decision.wait_s is not None:
        return min(decision.wait_s, MAX_HINTED_WAIT_S)
    return backoff_s(attempt, initial_s, max_s, jitter)


def wait_within(wait_s: float, now: float, deadline: float | None) -> float | None:
    """`wait_s` cut so that it ends by `deadline` (same clock as `now`; None: no deadline), or None when
    the deadline has passed: give up now rather than wait past it."""
    if deadline is None:
        return max(0.0, wait_s)
    if now >= deadline:
        return None
    return max(0.0, min(wait_s, deadline - now))

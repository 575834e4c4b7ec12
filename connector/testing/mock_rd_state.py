"""State of the mock RD API: fault settings, the rate window and the recordings (tokens: mock_rd_auth).

Threading: the event-loop thread writes; test threads read. `Recorder` guards its data with a lock and
hands out copies; `Faults` is immutable and replaced as a whole.
"""

from __future__ import annotations

import dataclasses
import math
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "FAULT_NAMES",
    "RATE_LIMIT_HEADERS",
    "AcceptedEvent",
    "Faults",
    "RateWindow",
    "RecordedRequest",
    "Recorder",
]

#: `rate_limit_header` styles: `Retry-After`, RD's gateway (`retry-after-quotas`), RD's app (`remaining_time`).
RATE_LIMIT_HEADERS = ("retry-after", "quotas", "remaining_time")


@dataclass(frozen=True, slots=True)
class Faults:
    """Fault and auth settings (the names are a public interface: constructor, CLI and /_mock/config).

    latency_ms: delay before answering an events request. rate_limit_per_s: events requests allowed per
    fixed 1 s window (None: unlimited); with named accounts each has its own window (keyed by the account
    of the access token), its `MockAccount.rate_limit_per_s` overriding this. error_5xx_ratio /
    drop_ratio: share of events requests answered 500/503 or dropped unanswered. token_ttl_s: lifetime of
    issued access tokens. strict_auth: accept only issued (or an account's static) tokens.
    rotate_refresh_token: each refresh revokes the refresh token used and issues a new one.
    max_body_bytes: RD's body cap (413 above it). seed: seeds the fault dice (None: random).
    reject_marker: events whose JSON contains this text are refused (400, field-keyed error with the
    event's index), as RD refuses events our local checks cannot foresee. short_answer: a 200 that carries
    one event_uuid fewer than the batch has events (an ambiguous answer). validate_payloads: False checks
    envelopes only, so that a benchmark measures the connector, not the mock's validation.
    limited_contacts: contacts over RD's per-contact limit (payload `email`, or `identifier`): a batch holding
    an event of one of them is refused whole with RD's `lead_limiter` 429 (no Retry-After, `remaining_time`
    = contact_limit_remaining_s), as RD does past ~120 events per contact per 24 h. daily_quota_s: the
    account's quota (every named account's) is spent (None: it is not): every events request is answered
    RD's gateway 429 (`{"message":"API rate limit exceeded"}`, `retry-after-quotas: <daily_quota_s>`).
    """

    latency_ms: float = 0.0
    rate_limit_per_s: int | None = None
    rate_limit_header: str = "retry-after"
    error_5xx_ratio: float = 0.0
    drop_ratio: float = 0.0
    token_ttl_s: float = 86_400.0
    strict_auth: bool = False
    rotate_refresh_token: bool = False
    max_body_bytes: int = 200_000
    seed: int | None = None
    reject_marker: str | None = None
    short_answer: bool = False
    validate_payloads: bool = True
    limited_contacts: tuple[str, ...] = ()
    contact_limit_remaining_s: int = 43_067
    daily_quota_s: int | None = None

    def updated(self, changes: Mapping[str, Any]) -> Faults:
        """A copy with `changes` applied. Raises ValueError naming an unknown setting or a bad value."""
        unknown = sorted(set(changes) - set(FAULT_NAMES))
        if unknown:
            raise ValueError(f"unknown mock settings {unknown}; known: {list(FAULT_NAMES)}")
        checked = {name: _check_setting(name, value) for name, value in changes.items()}
        return dataclasses.replace(self, **checked)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


FAULT_NAMES: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Faults))


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _check_setting(name: str, value: Any) -> Any:
    """`value` normalised for `name`, or ValueError."""
    if name == "limited_contacts":
        ok = isinstance(value, list | tuple) and all(isinstance(v, str) and v for v in value)
        value = tuple(value) if ok else value
    elif name in ("contact_limit_remaining_s", "daily_quota_s"):
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
        ok = ok or (name == "daily_quota_s" and value is None)
    elif name == "reject_marker":
        ok = value is None or (isinstance(value, str) and bool(value))
    elif name in ("strict_auth", "rotate_refresh_token", "short_answer", "validate_payloads"):
        ok = isinstance(value, bool)
    elif name in ("error_5xx_ratio", "drop_ratio"):
        ok = _is_number(value) and 0 <= value <= 1
    elif name == "rate_limit_header":
        ok = value in RATE_LIMIT_HEADERS
    elif name in ("rate_limit_per_s", "seed"):
        ok = value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 0)
        if name == "rate_limit_per_s" and value == 0:
            value = None
    elif name == "max_body_bytes":
        ok = isinstance(value, int) and not isinstance(value, bool) and value > 0
    elif name == "token_ttl_s":
        ok = _is_number(value) and value > 0
    else:  # latency_ms
        ok = _is_number(value) and value >= 0
    if not ok:
        raise ValueError(f"bad value for {name}: {value!r}")
    return value


class RateWindow:
    """Fixed 1 s windows: the first request opens a window; up to `limit` requests pass in it."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._start = -math.inf
        self._count = 0

    def admit(self, now: float) -> float | None:
        """None if the request passes, else the seconds until the window closes (> 0)."""
        if now - self._start >= 1.0:
            self._start, self._count = now, 0
        self._count += 1
        if self._count <= self.limit:
            return None
        return max(self._start + 1.0 - now, 0.001)


@dataclass(frozen=True, slots=True)
class AcceptedEvent:
    """One event RD accepted: `index` is its position among all accepted events since the last reset.
    `account`: the named account whose access token sent it (None: no named accounts, or an unknown token)."""

    index: int
    event_uuid: str
    event_batch_uuid: str | None  # None for the single-event endpoint
    event: dict[str, Any]
    account: str | None = None

    def as_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request to a non-/_mock path. `status` 0: dropped unanswered. `at`: time.monotonic() of arrival.
    `account`: the named account its credentials identify (the access token's, even expired; for
    /auth/token the app credentials'), None when they identify none."""

    method: str
    path: str
    status: int
    body_bytes: int
    at: float
    account: str | None = None

    def as_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class _AccountCounts:
    """One named account's counters."""

    __slots__ = ("accepted", "batches", "by_status", "requests", "token_refreshes")

    def __init__(self) -> None:
        self.requests = 0
        self.by_status: dict[int, int] = {}
        self.accepted = 0
        self.batches = 0
        self.token_refreshes = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "requests_by_status": {str(k): v for k, v in sorted(self.by_status.items())},
            "rate_limited": self.by_status.get(429, 0),
            "accepted_events": self.accepted,
            "batches": self.batches,
            "token_refreshes": self.token_refreshes,
        }


class Recorder:
    """Accepted events and requests in arrival order, plus counters, in all and per named account (those
    in `accounts` from the start, others from their first request). Safe to read from any thread."""

    def __init__(self, accounts: Iterable[str] = ()) -> None:
        self._cond = threading.Condition()
        self._names = tuple(accounts)
        self._clear()

    def _clear(self) -> None:
        self._accepted: list[AcceptedEvent] = []
        self._requests: list[RecordedRequest] = []
        self._by_status: dict[int, int] = {}
        self._batches = 0
        self._events_bodies = 0
        self._body_max = 0
        self._body_total = 0
        self._token_refreshes = 0
        self._accounts = {name: _AccountCounts() for name in self._names}

    def _counts(self, account: str) -> _AccountCounts:
        counts = self._accounts.get(account)
        if counts is None:
            counts = self._accounts[account] = _AccountCounts()
        return counts

    def record_token_issue(self, account: str | None = None) -> None:
        with self._cond:
            self._token_refreshes += 1
            if account is not None:
                self._counts(account).token_refreshes += 1

    def record_request(self, request: RecordedRequest, *, events_endpoint: bool) -> None:
        with self._cond:
            self._requests.append(request)
            self._by_status[request.status] = self._by_status.get(request.status, 0) + 1
            if request.account is not None:
                counts = self._counts(request.account)
                counts.requests += 1
                counts.by_status[request.status] = counts.by_status.get(request.status, 0) + 1
            if events_endpoint:
                self._events_bodies += 1
                self._body_max = max(self._body_max, request.body_bytes)
                self._body_total += request.body_bytes

    def record_accepted(
        self, events: list[dict[str, Any]], uuids: list[str], batch_uuid: str | None, account: str | None = None
    ) -> None:
        with self._cond:
            start = len(self._accepted)
            self._accepted.extend(
                AcceptedEvent(start + i, uuid, batch_uuid, event, account)
                for i, (uuid, event) in enumerate(zip(uuids, events, strict=True))
            )
            self._batches += batch_uuid is not None
            if account is not None:
                counts = self._counts(account)
                counts.accepted += len(events)
                counts.batches += batch_uuid is not None
            self._cond.notify_all()

    def accepted(self, since: int = 0) -> list[AcceptedEvent]:
        with self._cond:
            return self._accepted[since:]

    def requests(self, since: int = 0) -> list[RecordedRequest]:
        with self._cond:
            return self._requests[since:]

    def wait_for_accepted(self, count: int, timeout: float) -> bool:
        """Block until at least `count` events were accepted (True) or `timeout` seconds pass (False)."""
        with self._cond:
            return self._cond.wait_for(lambda: len(self._accepted) >= count, timeout)

    def stats(self) -> dict[str, Any]:
        """Counters only (no bodies, no tokens). Status keys are strings so the dict is JSON-ready.
        `accounts`: per named account, its requests (by status, 429s as `rate_limited`), accepted events,
        batches and token refreshes ({} without named accounts)."""
        with self._cond:
            return {
                "requests": len(self._requests),
                "requests_by_status": {str(k): v for k, v in sorted(self._by_status.items())},
                "accepted_events": len(self._accepted),
                "batches": self._batches,
                "dropped": self._by_status.get(0, 0),
                "body_bytes_max": self._body_max,
                "body_bytes_mean": self._body_total / self._events_bodies if self._events_bodies else 0.0,
                "token_refreshes": self._token_refreshes,
                "accounts": {name: counts.as_json() for name, counts in self._accounts.items()},
            }

    def reset(self) -> None:
        """Forget every recording and counter."""
        with self._cond:
            self._clear()

"""The request budget shared by every lane: a token bucket, plus a pause that a 429 imposes on all lanes.

RD documents about 120 requests per minute per account (`RDC_RD_REQUESTS_PER_MINUTE`), so the connector
spends its budget itself instead of earning 429s. `reserve()` either takes a token (returns 0) or says how
long to wait before asking again; it never blocks, so callers wait interruptibly. Thread-safe.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

__all__ = ["RateGate"]


class RateGate:
    """Token bucket of `per_minute` requests (0: unlimited) with bursts of up to `burst` requests."""

    def __init__(
        self, per_minute: float, burst: int | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._per_s = per_minute / 60.0
        self._capacity = float(burst if burst is not None else max(1, int(self._per_s)))
        self._tokens = self._capacity
        self._clock = clock
        self._updated = clock()
        self._paused_until = 0.0
        self._lock = threading.Lock()

    def reserve(self) -> float:
        """Take one request from the budget (returns 0.0), or return the seconds to wait first."""
        with self._lock:
            now = self._clock()
            if self._paused_until > now:
                return self._paused_until - now
            if self._per_s <= 0:
                return 0.0
            self._tokens = min(self._capacity, self._tokens + (now - self._updated) * self._per_s)
            self._updated = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return 0.0
            return (1.0 - self._tokens) / self._per_s

    def pause(self, seconds: float) -> None:
        """Hold every lane for `seconds` (RD answered 429 and said how long)."""
        with self._lock:
            self._paused_until = max(self._paused_until, self._clock() + seconds)

    @property
    def paused_for(self) -> float:
        with self._lock:
            return max(0.0, self._paused_until - self._clock())

"""The request budget shared by every lane: an adaptive rate, spaced requests, and a pause that a 429 imposes.

RD documents about 120 requests per minute per account (`RDC_RD_REQUESTS_PER_MINUTE`), so the connector
spends its budget itself instead of earning 429s. `reserve()` either takes a token (returns 0) or says how
long to wait before asking again; it never blocks, so callers wait interruptibly. Thread-safe.

The rate adapts to what RD takes (docs/decisions/0015-adaptive-rate.md):
- `throttled()` (an account-level 429) cuts the rate: to 90 % of the rate RD was seen to accept in the last
  second (the successes counted there) when that second is a fair sample (no pause ended inside it, at
  least `MIN_SAMPLE` successes), otherwise to half. One cut per episode: 429s of requests granted before
  the cut (answers in flight) do not cut again.
- `succeeded()` (a 200) climbs back additively, by `CLIMB_PER_S` of the ceiling per second of successes,
  up to the ceiling: the configured budget times this instance's `set_share` fraction.
- `pause(seconds)` (RD's Retry-After, retry-after-quotas, remaining_time) holds every lane; while paused the
  bucket fills to one token at most (a bank from before is gone): after a pause the first request goes,
  the next ones at the rate's spacing. A pause never ends in a burst.
- Spacing: by default the bucket holds one token (no burst at all: a fixed-window limiter at the rate never
  sees more than it allows); an explicit `burst` lets an idle gate bank up to that many, never across a pause.
- Budget 0 is unlimited, as before, until RD says otherwise: the first 429 sets a learned rate (from the
  successes seen in the last second), which then climbs by `CLIMB_PER_S` of itself per second, unbounded;
  `set_share` does not apply to an unlimited budget.

Each cut, and the climb each time it crosses a tenth of the ceiling (or reaches it), is logged as
`rate_changed account=.. from_per_s=.. to_per_s=.. reason=429|recovered|share`.
"""

from __future__ import annotations

import collections
import logging
import math
import threading
import time
from collections.abc import Callable

__all__ = ["CLIMB_PER_S", "CUT_FACTOR", "CUT_TO_OBSERVED", "MIN_PER_S", "MIN_SAMPLE", "OBSERVE_S", "RateGate"]

_log = logging.getLogger("connector.rd.rate")
_TOLERANCE = 1e-9  # of a token

#: A cut with a fair sample goes to this fraction of the rate RD was seen to accept.
CUT_TO_OBSERVED = 0.9
#: A cut without one (a 429 just after a pause, or no success in the last second) halves the rate.
CUT_FACTOR = 0.5
#: The climb: this fraction of the ceiling (or of the learned rate, for an unlimited budget) per second.
CLIMB_PER_S = 0.005
#: The rate never goes below one request a minute (a probe, like `MAX_HINTED_WAIT_S`).
MIN_PER_S = 1.0 / 60.0
#: A fair sample counts at least this many successes (below 3/s a second says too little: halve instead).
MIN_SAMPLE = 3
#: The window over which the successes RD accepted are counted.
OBSERVE_S = 1.0


class RateGate:
    """Requests spaced at an adaptive rate of at most `per_minute` (0: unlimited) times the share, with an
    idle bank of up to `burst` requests (default 1: none), and a shared pause."""

    def __init__(
        self,
        per_minute: float,
        burst: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        *,
        account: str = "default",
    ) -> None:
        self._budget_per_s = per_minute / 60.0 if per_minute > 0 else math.inf
        self._share = 1.0
        self._rate = self._budget_per_s  # inf: unlimited (never throttled, or budget 0 and not yet learned)
        self._reference = self._rate  # what the climb and its log steps are measured against
        self._capacity = float(max(1, burst if burst is not None else 1))
        self._tokens = self._capacity
        self._clock = clock
        self._updated = clock()
        self._paused_until = -math.inf
        self._successes: collections.deque[float] = collections.deque()
        self._granted_since_cut = 1  # a cut needs a request granted after the previous cut
        self._logged_step = self._step(self._rate)
        self._account = account
        self._lock = threading.Lock()

    # -- the budget ------------------------------------------------------------------------------------

    def reserve(self) -> float:
        """Take one request from the budget (returns 0.0), or return the seconds to wait first."""
        with self._lock:
            now = self._clock()
            if self._paused_until > now:
                return self._paused_until - now
            self._granted_since_cut += 1  # undone below when nothing is granted
            if math.isinf(self._rate):
                return 0.0
            self._refill(now)
            if self._tokens >= 1.0 - _TOLERANCE:  # a wait that rounding left a hair short still grants
                self._tokens = max(0.0, self._tokens - 1.0)
                return 0.0
            self._granted_since_cut -= 1
            return (1.0 - self._tokens) / self._rate

    def pause(self, seconds: float) -> float:
        """Hold every lane for `seconds` (RD answered 429 and said how long). Returns the seconds this adds
        to the pause already in force (0 when it ends before that one)."""
        with self._lock:
            now = self._clock()
            self._refill(now)
            until = now + max(0.0, seconds)
            added = max(0.0, until - max(self._paused_until, now))
            self._paused_until = max(self._paused_until, until)
            return added

    @property
    def paused_for(self) -> float:
        with self._lock:
            return max(0.0, self._paused_until - self._clock())

    # -- adaptation ------------------------------------------------------------------------------------

    def throttled(self) -> None:
        """RD answered an account-level 429: cut the rate (once per episode; see the module docstring)."""
        with self._lock:
            now = self._clock()
            if self._granted_since_cut == 0:
                return  # an answer to a request granted before the last cut: that cut covers it
            self._refill(now)
            self._prune(now)
            before = self._rate
            seen = len(self._successes) / OBSERVE_S
            fair = len(self._successes) >= MIN_SAMPLE and self._paused_until <= now - OBSERVE_S
            if fair:
                after = CUT_TO_OBSERVED * min(before, seen)
            elif math.isinf(before):
                after = max(seen, 1.0)  # unlimited, no fair sample: what the last second took, at least 1/s
            else:
                after = before * CUT_FACTOR
            after = min(before, max(MIN_PER_S, after))
            self._rate = after
            self._tokens = min(self._tokens, 1.0)  # no bank survives a cut
            if math.isinf(self._budget_per_s):
                self._reference = after
            self._granted_since_cut = 0
            self._logged_step = self._step(after)
        self._report(before, after, "429")

    def succeeded(self) -> None:
        """RD accepted a request (a 200): count it, and climb back toward the ceiling."""
        with self._lock:
            now = self._clock()
            self._successes.append(now)
            self._prune(now)
            before = self._rate
            ceiling = self._ceiling()
            if math.isinf(before) or before >= ceiling:
                return
            self._refill(now)
            after = min(ceiling, before + CLIMB_PER_S * self._reference / before)
            self._rate = after
            step = self._step(after)
            report = step > self._logged_step or (after >= ceiling > before)
            if report:
                self._logged_step = step
        if report:
            self._report(before, after, "recovered")

    def set_share(self, fraction: float) -> None:
        """This instance's share of the configured budget (0 < fraction <= 1): the ceiling becomes budget *
        fraction. A rate at the old ceiling moves to the new one; a cut rate stays (climbs to the new one).
        No effect on an unlimited budget."""
        if not (0.0 < fraction <= 1.0) or math.isnan(fraction):
            raise ValueError(f"a share of the request budget is in (0, 1], not {fraction!r}")
        with self._lock:
            if math.isinf(self._budget_per_s):
                self._share = fraction
                return
            now = self._clock()
            self._refill(now)
            before = self._rate
            at_ceiling = before >= self._ceiling()
            self._share = fraction
            ceiling = self._ceiling()
            self._reference = ceiling
            after = ceiling if at_ceiling else min(before, ceiling)
            self._rate = after
            self._logged_step = self._step(after)
        if after != before:
            self._report(before, after, "share")

    @property
    def rate_per_s(self) -> float:
        """The rate in force, requests/s (math.inf: unlimited)."""
        with self._lock:
            return self._rate

    @property
    def ceiling_per_s(self) -> float:
        """The configured budget times the share, requests/s (math.inf: unlimited)."""
        with self._lock:
            return self._ceiling()

    # -- internals (under the lock) --------------------------------------------------------------------

    def _ceiling(self) -> float:
        return self._budget_per_s * self._share

    def _refill(self, now: float) -> None:
        """Tokens earned since the last update at the rate in force. Time paused earns too, but a pause
        leaves at most one token (the bank, if any, is gone): after it one request goes, then the spacing."""
        start = self._updated
        self._updated = now
        if math.isinf(self._rate):
            return
        if self._paused_until > start:
            end = min(now, self._paused_until)
            self._tokens = min(1.0, self._tokens + (end - start) * self._rate)
            start = end
        self._tokens = min(self._capacity, self._tokens + (now - start) * self._rate)

    def _prune(self, now: float) -> None:
        while self._successes and self._successes[0] <= now - OBSERVE_S:
            self._successes.popleft()

    def _step(self, rate: float) -> int:
        """Which tenth of the reference `rate` is in (for the recovered log lines)."""
        if math.isinf(rate) or math.isinf(self._reference) or self._reference <= 0:
            return 10
        return math.floor(rate / self._reference * 10.0 + 1e-9)

    def _report(self, before: float, after: float, reason: str) -> None:
        _log.info(
            "rate_changed account=%s from_per_s=%.3f to_per_s=%.3f reason=%s", self._account, before, after, reason
        )

"""One batch's delivery to RD: the request budget, retries, the deadline, one refresh after a 401, the POST.

For each batch the attempt retries transient failures with capped exponential backoff (full jitter), waits at
most `MAX_HINTED_WAIT_S` on RD's word before asking again, and gives up at `RDC_RETRY_MAX_ELAPSED_S` counted
from the batch's first failure (waits included). A batch RD rejects in its error format (400/422) is
bisected (`deliver.bisect`); so is one RD refuses with its per-contact limiter's 429 (`lead_limiter`), whose
isolated events are dead-lettered `contact_rate_limited` without pausing the account. An account's 429 asking
for longer than `MAX_HINTED_WAIT_S` (a daily quota) pauses every lane, RD asked again every
`MAX_HINTED_WAIT_S`, and makes /readyz not ready until RD's reset time; nothing is dead-lettered for it. A
413, or a 4xx not in RD's format, is an outage, retried like a 5xx. On a 200 with one distinct UUID per event
it publishes the results. It never commits: settlement flows back through the `Reporter`'s acknowledgements
to the pipeline thread.

Time is injected: `clock` (monotonic seconds), `wall` (epoch seconds, for RD's reset times) and
`sleep(seconds)`, which may return early (the lane's sleep wakes up to abandon a batch). Before each request
and after each wait the attempt asks whether its batch was abandoned, and stops there (`_Abandoned`), even
mid-retry.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence

import httpx

from connector.config import Secret
from connector.config.accounts import DEFAULT_ACCOUNT
from connector.deliver.batch import body_of
from connector.deliver.bisect import bisect, contact_rate_limited
from connector.errors import (
    AmbiguousAnswer,
    AuthFatal,
    AuthUnavailable,
    BadAnswer,
    LaneFatal,
    RetryDeadlineExceeded,
)
from connector.in_flight import Item
from connector.ops.metrics import Metrics
from connector.ops.probe_server import Health, rfc3339_utc
from connector.rd.answers import parse_batch_answer
from connector.rd.bounded_http import Answer
from connector.rd.client import RdClient
from connector.rd.rate import RateGate
from connector.rd.retry import (
    MAX_HINTED_WAIT_S,
    Action,
    Decision,
    classify_exception,
    classify_response,
    next_wait_s,
    wait_within,
)
from connector.settle.reporter import Reporter

__all__ = ["Sender"]

_log = logging.getLogger("connector.deliver.lane")  # the lane's logger: its log lines keep their name


class _Abandoned(Exception):
    """The batch was abandoned (rebalance, shutdown): nothing more is sent for it, nothing is settled."""


class Sender:
    """Delivers one lane's batches, one `deliver` call at a time (not thread-safe: the lane's thread)."""

    def __init__(
        self,
        lane: int,
        client: RdClient,
        reporter: Reporter,
        *,
        backoff_initial_s: float,
        backoff_max_s: float,
        max_bytes: int,
        gate: RateGate,
        max_elapsed_s: float,
        metrics: Metrics,
        health: Health,
        max_hinted_wait_s: float = MAX_HINTED_WAIT_S,
        sleep: Callable[[float], object] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        jitter: Callable[[], float] | None = None,
        account: str = DEFAULT_ACCOUNT,
    ) -> None:
        """`lane`: the lane's index, for the logs. `sleep(seconds)` may return early (then `abandoned` is
        asked); `clock` is monotonic seconds, the clock `gate` reads too; `jitter()` is in [0, 1) (default: a
        `random.Random` of this sender's own); `account`: the RD account `client` posts to (metrics, logs)."""
        self._lane = lane
        self._account = account
        self._client = client
        self._reporter = reporter
        self._backoff = (backoff_initial_s, backoff_max_s)
        self._max_bytes = max_bytes
        self._gate = gate
        self._max_elapsed_s = max_elapsed_s
        self._max_hinted_wait_s = max_hinted_wait_s
        self._metrics = metrics
        self._health = health
        self._sleep_for = sleep
        self._clock = clock
        self._wall = wall
        self._jitter = jitter or random.Random().random
        self.requests = 0

    def deliver(self, items: Sequence[Item], abandoned: Callable[[], bool]) -> None:
        """Send `items` until RD accepts them (results published) or rejects them (bisected); raises
        `_Abandoned` once `abandoned()`, and a `ConnectorError` when retrying cannot help or the retry
        deadline has passed."""
        body = body_of(items)
        attempt = 0
        deadline: float | None = None  # RDC_RETRY_MAX_ELAPSED_S after the first failure (monotonic)
        refreshed = False  # a token was refreshed after a 401 and not yet used successfully
        decision = Decision(Action.RETRY, "none")
        while True:
            self._await_budget(abandoned, deadline, items, decision)
            decision, answer, token = self._post(body, len(items))
            if decision.action is Action.DELIVERED and answer is not None:
                self._gate.succeeded()  # the rate climbs back toward the budget
                self._accept(items, answer)
                return
            if decision.action is Action.SPLIT:
                bisect(
                    items, answer, lambda half: self.deliver(half, abandoned), self._reporter.dead_letter, self._metrics
                )
                return
            if decision.action is Action.CONTACT_LIMITED:
                self._contact_limited(items, answer, decision, abandoned)
                return
            if decision.action is Action.REFRESH_AUTH and token is not None:
                refreshed = self._refresh_after_401(token, refreshed)
                continue  # a refresh is not a delivery retry
            refreshed = False
            if decision.action is Action.FATAL:
                raise LaneFatal(f"RD answered {decision.reason}; retrying cannot help: {_excerpt(answer)}")
            now = self._clock()
            if deadline is None and self._max_elapsed_s:
                deadline = now + self._max_elapsed_s
            self._note_retry(decision, len(items), answer)
            wait = next_wait_s(decision, attempt, *self._backoff, self._jitter())
            if _account_429(decision):  # before the pause: the cut reads the last second's successes
                self._metrics.rate_limited("account", self._account)
                self._gate.throttled()
            if decision.wait_s is not None:
                wait = min(wait, self._max_hinted_wait_s)
                # a 429 holds every lane, not just this one (_await_budget waits)
                self._metrics.pause_seconds.inc(self._gate.pause(wait))
                if decision.wait_s > MAX_HINTED_WAIT_S:
                    self._quota_exhausted(decision.wait_s, wait)
            attempt += 1
            _log.warning("batch_retry lane=%d events=%d reason=%s attempt=%d wait_s=%.3f asked_s=%s",
                         self._lane, len(items), decision.reason, attempt, wait, decision.wait_s)  # fmt: skip
            if decision.wait_s is None:
                self._wait(wait, deadline, items, decision, abandoned)

    def _contact_limited(
        self, items: Sequence[Item], answer: Answer | None, decision: Decision, abandoned: Callable[[], bool]
    ) -> None:
        """RD's per-contact limiter refused the batch: bisect to those contacts' events and dead-letter them
        with the time RD takes them again. The account is not paused: every other event flows."""
        self._metrics.rate_limited("contact", self._account)
        retry_after = rfc3339_utc(self._wall() + (decision.wait_s or 0.0))
        _log.info("contact_rate_limited lane=%d events=%d retry_after=%s", self._lane, len(items), retry_after)
        deliver = lambda half: self.deliver(half, abandoned)  # noqa: E731
        bisect(items, answer, deliver, self._reporter.dead_letter, self._metrics, contact_rate_limited(retry_after))

    def _quota_exhausted(self, asked_s: float, probe_s: float) -> None:
        """The account's 429 asks for a long wait (a daily quota): say until when, and keep asking."""
        resets_at = self._wall() + asked_s
        self._health.set_quota_exhausted_until(resets_at)
        self._metrics.rd_quota_reset_timestamp.set(resets_at)
        _log.warning(
            "rd_quota_exhausted lane=%d resets_at=%s asked_s=%.0f: RD's quota for the account is spent; every "
            "lane waits, RD is asked again every %.0f s, nothing is dead-lettered, /readyz is not ready until then",
            self._lane, rfc3339_utc(resets_at), asked_s, probe_s,
        )  # fmt: skip

    def _wait(
        self,
        wait: float,
        deadline: float | None,
        items: Sequence[Item],
        last: Decision,
        abandoned: Callable[[], bool],
    ) -> None:
        """Sleep `wait` seconds; one that would end past the batch's retry deadline sleeps to the deadline
        and raises RetryDeadlineExceeded there (no request goes out after the deadline)."""
        cut = wait_within(wait, self._clock(), deadline)
        if cut is not None and cut >= wait:
            self._sleep(cut, abandoned)
            return
        self._sleep(cut or 0.0, abandoned)
        raise RetryDeadlineExceeded(
            f"a batch of {len(items)} events kept failing for RDC_RETRY_MAX_ELAPSED_S={self._max_elapsed_s:g} s "
            f"(waits included); last answer: {last.reason}; nothing of it is committed"
        )

    def _refresh_after_401(self, rejected: Secret, refreshed: bool) -> bool:
        if refreshed:
            raise AuthFatal(
                f"RD answered 401 again right after a token refresh{self._of_account}: the new token is refused "
                "too. Check that the client id and secret belong to the RD Station Marketing account"
            )
        try:
            if not self._client.tokens.refresh(rejected):
                raise AuthFatal(
                    f"RD refused the access token{self._of_account} (401) and a static token cannot be refreshed: "
                    "set a valid access token (RDC_RD_ACCESS_TOKEN, or the account's rd_access_token), or configure "
                    "the refresh flow (client id, client secret, refresh token)"
                )
        except AuthUnavailable as exc:
            _log.warning("token_refresh_failed lane=%d error=%s", self._lane, exc)
            return False
        return True

    @property
    def _of_account(self) -> str:
        return "" if self._account == DEFAULT_ACCOUNT else f" of account {self._account!r}"

    def _note_retry(self, decision: Decision, events: int, answer: Answer | None) -> None:
        self._metrics.retry(decision.reason, self._account)
        if decision.not_rd:
            _log.warning(
                "rd_answer_not_recognised lane=%d events=%d answer=%r: not in RD's error format, so something in "
                "front of RD (a proxy, a load balancer) answered; treated as an outage: the batch is retried, "
                "nothing is dead-lettered, /readyz fails if it lasts",
                self._lane, events, _excerpt(answer)[:300],
            )  # fmt: skip
        if decision.possibly_sent:
            self._metrics.possible_duplicates.inc(events)
            _log.warning(
                "possible_duplicate lane=%d events=%d reason=%s: RD may have accepted the batch before the "
                "connection failed; it is sent again",
                self._lane, events, decision.reason,
            )  # fmt: skip

    def _await_budget(
        self, abandoned: Callable[[], bool], deadline: float | None, items: Sequence[Item], last: Decision
    ) -> None:
        """Wait for the request budget (and a 429 pause); a batch past its retry deadline gives up."""
        while True:
            if abandoned():
                raise _Abandoned
            wait = self._gate.reserve()
            if wait <= 0:
                return
            self._wait(wait, deadline, items, last, abandoned)

    def _sleep(self, seconds: float, abandoned: Callable[[], bool]) -> None:
        """Wait, waking early only to abandon the batch."""
        if seconds > 0:
            self._sleep_for(seconds)
        if abandoned():
            raise _Abandoned

    def _post(self, body: bytes, events: int) -> tuple[Decision, Answer | None, Secret | None]:
        try:
            token = self._client.tokens.token()
        except AuthUnavailable as exc:
            _log.warning("token_unavailable lane=%d error=%s", self._lane, exc)
            return Decision(Action.RETRY, "auth_unavailable"), None, None
        began = self._clock()
        self.requests += 1
        self._metrics.in_flight_bytes.inc(len(body))
        try:
            answer = self._client.post_batch(body, token)
        except httpx.HTTPError as exc:  # anything else is a bug: it reaches the lane, which exits 1
            decision = classify_exception(exc)
            self._metrics.observe_request(
                None, self._clock() - began, len(body), events, self._max_bytes, self._account
            )
            self._health.record_request_failed()
            _log.info("batch lane=%d events=%d bytes=%d status=%s", self._lane, events, len(body), decision.reason)
            return decision, None, token
        finally:
            self._metrics.in_flight_bytes.dec(len(body))
        status = answer.status_code
        self._metrics.observe_request(status, self._clock() - began, len(body), events, self._max_bytes, self._account)
        # An answer longer than the cap is not read to its end: no 4xx verdict is taken from its first bytes.
        decision = classify_response(status, answer.headers, answer.body if answer.complete else b"")
        if decision.action is Action.RETRY:  # 408, 429, 5xx, a 4xx not from RD: the path to RD is failing
            self._health.record_request_failed(not_rd=decision.not_rd)
        else:
            self._health.record_request_ok()
        _log.info(
            "batch lane=%d events=%d bytes=%d fill=%.3f status=%d latency_ms=%.1f",
            self._lane, events, len(body), len(body) / self._max_bytes, status,
            (self._clock() - began) * 1000,
        )  # fmt: skip
        return decision, answer, token

    def _accept(self, items: Sequence[Item], answer: Answer) -> None:
        try:
            if not answer.complete:
                raise BadAnswer(f"longer than {len(answer.body)} bytes (not read further)")
            uuids, batch_uuid = parse_batch_answer(answer.body, len(items))
        except BadAnswer as exc:
            first, last = items[0], items[-1]
            raise AmbiguousAnswer(
                f"RD answered 200 with an answer that does not name one distinct UUID per event: {exc}; "
                f"a batch of {len(items)} events (from {first.topic}/{first.partition}@{first.offset} "
                f"to {last.topic}/{last.partition}@{last.offset}); nothing of this batch is committed; "
                f"answer: {_excerpt(answer)[:300]}"
            ) from exc
        self._reporter.publish_results(items, uuids, batch_uuid)
        self._metrics.delivered(len(items), self._account)
        self._metrics.batch_done("delivered")


def _account_429(decision: Decision) -> bool:
    """A 429 of the account's limit: it cuts the shared rate (a per-contact limit must not)."""
    return decision.action is Action.RETRY and decision.reason == "status_429"


def _excerpt(answer: Answer | None) -> str:
    return "" if answer is None else answer.excerpt()

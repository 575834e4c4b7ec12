"""A lane: one thread that sends closed batches to RD, in order, one at a time.

Partitions map to lanes by a stable hash, so each partition's events reach RD in offset order. For each
batch the lane retries transient failures with capped exponential backoff (full jitter), waits at most
`MAX_HINTED_WAIT_S` on RD's word before asking again, and gives up at `RDC_RETRY_MAX_ELAPSED_S` counted
from the batch's first failure (waits included). It bisects batches RD rejects in its error format
(400/422) until the rejected events are isolated and dead-lettered; a 413, or a 4xx not in RD's format, is
an outage, retried like a 5xx. On a 200 with one distinct UUID per event it publishes the results. It never
commits: settlement flows back through the `Reporter`'s acknowledgements to the pipeline thread.

Work is tagged with a generation: `abandon()` (rebalance or shutdown past its deadline) bumps it, and the
lane drops older batches, even mid-retry. Their records are not settled, so they are not committed.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections.abc import Sequence

import httpx

from connector.config import Secret
from connector.deliver.batch import Batch, Item, body_of, item_weight
from connector.errors import (
    AmbiguousAnswer,
    AuthFatal,
    AuthUnavailable,
    BadAnswer,
    ConnectorError,
    LaneCrashed,
    LaneFatal,
    RetryDeadlineExceeded,
)
from connector.ops.metrics import Metrics
from connector.ops.probe_server import Health
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
from connector.settle.dead_letters import rd_answer_summary
from connector.settle.reporter import DeadLetter, Reporter

__all__ = ["Lane"]

_log = logging.getLogger("connector.deliver.lane")


class _Abandoned(Exception):
    pass


class Lane:
    """Sends the batches submitted to it on its own thread. `submit` never blocks."""

    def __init__(
        self,
        index: int,
        client: RdClient,
        reporter: Reporter,
        *,
        backoff_initial_s: float,
        backoff_max_s: float,
        max_bytes: int,
        gate: RateGate | None = None,
        max_elapsed_s: float = 0.0,
        metrics: Metrics | None = None,
        health: Health | None = None,
        max_hinted_wait_s: float = MAX_HINTED_WAIT_S,
    ) -> None:
        """`max_hinted_wait_s`: the longest wait on RD's word (tests shorten `MAX_HINTED_WAIT_S`)."""
        self.index = index
        self._client = client
        self._reporter = reporter
        self._backoff = (backoff_initial_s, backoff_max_s)
        self._max_bytes = max_bytes
        self._queue: queue.SimpleQueue[tuple[int, Batch] | None] = queue.SimpleQueue()
        self._generation = 0
        self._wake = threading.Event()
        self._random = random.Random()
        self._gate = gate or RateGate(0)
        self._max_elapsed_s = max_elapsed_s
        self._max_hinted_wait_s = max_hinted_wait_s
        self._metrics = metrics or Metrics()
        self._health = health or Health()
        self.fatal: ConnectorError | None = None
        self.requests = 0
        self.batches = 0
        self._thread = threading.Thread(target=self._run, name=f"rdc-lane-{index}", daemon=True)
        self._thread.start()

    def submit(self, batch: Batch) -> None:
        self._queue.put((self._generation, batch))

    def queued(self) -> int:
        """Batches submitted and not yet taken up (the one being sent is not counted)."""
        return self._queue.qsize()

    def abandon(self) -> None:
        """Drop every batch submitted so far, including one being retried now."""
        self._generation += 1
        self._wake.set()

    def close(self, timeout: float) -> None:
        self._queue.put(None)
        self._wake.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            work = self._queue.get()
            if work is None:
                return
            generation, batch = work
            if generation != self._generation or self.fatal is not None:
                continue
            self._wake.clear()  # a wake-up meant for an abandoned batch must not cut this one's backoff
            try:
                self._deliver(batch.items, generation)
                self.batches += 1
                self._metrics.observe_delivery_latency(time.monotonic() - batch.opened_at)
            except _Abandoned:
                self._metrics.batch_done("abandoned")
                _log.info("batch_abandoned lane=%d events=%d", self.index, len(batch))
            except ConnectorError as exc:
                self._metrics.batch_done("failed")
                if isinstance(exc, AuthFatal):
                    self._health.set_token_valid(False)
                self.fatal = exc
                _log.error("lane_stopped lane=%d error=%s", self.index, exc)
            except Exception as exc:  # a bug: stop the connector (exit 1) rather than guess
                _log.exception("lane_crashed lane=%d", self.index)  # before `fatal`: the stop follows it
                self.fatal = LaneCrashed(f"unexpected error in lane {self.index}: {exc!r}")

    def _deliver(self, items: Sequence[Item], generation: int) -> None:
        body = body_of(items)
        attempt = 0
        deadline: float | None = None  # RDC_RETRY_MAX_ELAPSED_S after the first failure (monotonic)
        refreshed = False  # a token was refreshed after a 401 and not yet used successfully
        decision = Decision(Action.RETRY, "none")
        while True:
            self._await_budget(generation, deadline, items, decision)
            decision, answer, token = self._post(body, len(items))
            if decision.action is Action.DELIVERED and answer is not None:
                self._accept(items, answer)
                return
            if decision.action is Action.SPLIT:
                self._split(items, generation, decision, answer)
                return
            if decision.action is Action.REFRESH_AUTH and token is not None:
                refreshed = self._refresh_after_401(token, refreshed)
                continue  # a refresh is not a delivery retry
            refreshed = False
            if decision.action is Action.FATAL:
                raise LaneFatal(f"RD answered {decision.reason}; retrying cannot help: {_excerpt(answer)}")
            now = time.monotonic()
            if deadline is None and self._max_elapsed_s:
                deadline = now + self._max_elapsed_s
            self._note_retry(decision, len(items), answer)
            wait = next_wait_s(decision, attempt, *self._backoff, self._random.random())
            if decision.wait_s is not None:
                wait = min(wait, self._max_hinted_wait_s)
                self._gate.pause(wait)  # a 429 holds every lane, not just this one (_await_budget waits)
            attempt += 1
            _log.warning("batch_retry lane=%d events=%d reason=%s attempt=%d wait_s=%.3f asked_s=%s",
                         self.index, len(items), decision.reason, attempt, wait, decision.wait_s)  # fmt: skip
            if decision.wait_s is None:
                self._wait(wait, deadline, items, decision, generation)

    def _wait(
        self, wait: float, deadline: float | None, items: Sequence[Item], last: Decision, generation: int
    ) -> None:
        """Sleep `wait` seconds; one that would end past the batch's retry deadline sleeps to the deadline
        and raises RetryDeadlineExceeded there (no request goes out after the deadline)."""
        cut = wait_within(wait, time.monotonic(), deadline)
        if cut is not None and cut >= wait:
            self._sleep(cut, generation)
            return
        self._sleep(cut or 0.0, generation)
        raise RetryDeadlineExceeded(
            f"a batch of {len(items)} events kept failing for RDC_RETRY_MAX_ELAPSED_S={self._max_elapsed_s:g} s "
            f"(waits included); last answer: {last.reason}; nothing of it is committed"
        )

    def _refresh_after_401(self, rejected: Secret, refreshed: bool) -> bool:
        if refreshed:
            raise AuthFatal(
                "RD answered 401 again right after a token refresh: the new token is refused too. "
                "Check that RDC_RD_CLIENT_ID/SECRET belong to the RD Station Marketing account"
            )
        try:
            if not self._client.tokens.refresh(rejected):
                raise AuthFatal(
                    "RD refused the access token (401) and a static token cannot be refreshed: set a valid "
                    "RDC_RD_ACCESS_TOKEN, or configure the refresh flow (RDC_RD_CLIENT_ID, _SECRET, _REFRESH_TOKEN)"
                )
        except AuthUnavailable as exc:
            _log.warning("token_refresh_failed lane=%d error=%s", self.index, exc)
            return False
        return True

    def _note_retry(self, decision: Decision, events: int, answer: Answer | None) -> None:
        self._metrics.retry(decision.reason)
        if decision.not_rd:
            _log.warning(
                "rd_answer_not_recognised lane=%d events=%d answer=%r: not in RD's error format, so something in "
                "front of RD (a proxy, a load balancer) answered; treated as an outage: the batch is retried, "
                "nothing is dead-lettered, /readyz fails if it lasts",
                self.index, events, _excerpt(answer)[:300],
            )  # fmt: skip
        if decision.possibly_sent:
            self._metrics.possible_duplicates.inc(events)
            _log.warning(
                "possible_duplicate lane=%d events=%d reason=%s: RD may have accepted the batch before the "
                "connection failed; it is sent again",
                self.index, events, decision.reason,
            )  # fmt: skip

    def _await_budget(self, generation: int, deadline: float | None, items: Sequence[Item], last: Decision) -> None:
        """Wait for the request budget (and a 429 pause); a batch past its retry deadline gives up."""
        while True:
            if generation != self._generation:
                raise _Abandoned
            wait = self._gate.reserve()
            if wait <= 0:
                return
            self._wait(wait, deadline, items, last, generation)

    def _sleep(self, seconds: float, generation: int) -> None:
        """Wait, waking early only to abandon the batch."""
        if seconds > 0:
            self._wake.wait(seconds)
        if generation != self._generation:
            raise _Abandoned

    def _post(self, body: bytes, events: int) -> tuple[Decision, Answer | None, Secret | None]:
        try:
            token = self._client.tokens.token()
        except AuthUnavailable as exc:
            _log.warning("token_unavailable lane=%d error=%s", self.index, exc)
            return Decision(Action.RETRY, "auth_unavailable"), None, None
        began = time.monotonic()
        self.requests += 1
        self._metrics.in_flight_bytes.inc(len(body))
        try:
            answer = self._client.post_batch(body, token)
        except httpx.HTTPError as exc:  # anything else is a bug: it reaches `_run`, which exits 1
            decision = classify_exception(exc)
            self._metrics.observe_request(None, time.monotonic() - began, len(body), events, self._max_bytes)
            self._health.record_request_failed()
            _log.info("batch lane=%d events=%d bytes=%d status=%s", self.index, events, len(body), decision.reason)
            return decision, None, token
        finally:
            self._metrics.in_flight_bytes.dec(len(body))
        status = answer.status_code
        self._metrics.observe_request(status, time.monotonic() - began, len(body), events, self._max_bytes)
        # An answer longer than the cap is not read to its end: no 4xx verdict is taken from its first bytes.
        decision = classify_response(status, answer.headers, answer.body if answer.complete else b"")
        if decision.action is Action.RETRY:  # 408, 429, 5xx, a 4xx not from RD: the path to RD is failing
            self._health.record_request_failed(not_rd=decision.not_rd)
        else:
            self._health.record_request_ok()
        _log.info(
            "batch lane=%d events=%d bytes=%d fill=%.3f status=%d latency_ms=%.1f",
            self.index, events, len(body), len(body) / self._max_bytes, status,
            (time.monotonic() - began) * 1000,
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
        self._metrics.events_delivered.inc(len(items))
        self._metrics.batch_done("delivered")

    def _split(self, items: Sequence[Item], generation: int, decision: Decision, answer: Answer | None) -> None:
        self._metrics.batch_done("split")
        if len(items) == 1:
            item = items[0]
            self._reporter.dead_letter(
                DeadLetter.of(
                    item,
                    stage="send",
                    reason="rejected_by_rd",
                    detail=_excerpt(answer),
                    log_detail=rd_answer_summary(answer.status_code, answer.body) if answer else "",
                    rd_event=item.event,
                    weight=item_weight(item),
                )
            )
            return
        middle = len(items) // 2
        self._deliver(items[:middle], generation)
        self._deliver(items[middle:], generation)


def _excerpt(answer: Answer | None) -> str:
    return "" if answer is None else answer.excerpt()

"""A lane: one thread that sends closed batches to RD, in order, one at a time.

Partitions map to lanes by a stable hash, so each partition's events reach RD in offset order. For each
batch the lane retries transient failures with capped exponential backoff (full jitter), bisects
rejected batches (400/422/413) until the rejected events are isolated and dead-lettered, and on a 200
with one UUID per event publishes the results. It never commits: settlement flows back through the
`Reporter`'s acknowledgements to the pipeline thread.

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
import orjson

from connector.auth import AuthFatal, AuthUnavailable
from connector.batch import Batch, Item, item_weight
from connector.config import Secret
from connector.dead_letter import rd_answer_summary
from connector.errors import ConnectorError
from connector.http_probe import Health
from connector.metrics import Metrics
from connector.rate import RateGate
from connector.rd_client import RdClient
from connector.reporter import DeadLetter, Reporter
from connector.retry import Action, Decision, backoff_s, classify_exception, classify_response

__all__ = ["AmbiguousAnswer", "Lane", "LaneFatal", "RetryDeadlineExceeded"]

_log = logging.getLogger("connector.sender")


class LaneFatal(ConnectorError):
    """RD answered in a way retrying cannot fix (auth refused, forbidden, not found)."""

    exit_code = 3


class AmbiguousAnswer(ConnectorError):
    """RD answered 200 but not with one UUID per event: we cannot tell which events it accepted."""

    exit_code = 4


class RetryDeadlineExceeded(ConnectorError):
    """A batch kept failing for longer than `RDC_RETRY_MAX_ELAPSED_S`."""

    exit_code = 5


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
    ) -> None:
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
            except Exception as exc:  # a bug: stop the connector rather than guess
                self.fatal = LaneFatal(f"unexpected error in lane {self.index}: {exc!r}")
                _log.exception("lane_crashed lane=%d", self.index)

    def _deliver(self, items: Sequence[Item], generation: int) -> None:
        body = b"[" + b",".join([item.event for item in items]) + b"]"
        attempt = 0
        first_failure: float | None = None
        refreshed = False  # a token was refreshed after a 401 and not yet used successfully
        while True:
            self._await_budget(generation)
            decision, response, token = self._post(body, len(items))
            if decision.action is Action.DELIVERED and response is not None:
                self._accept(items, response)
                return
            if decision.action is Action.SPLIT:
                self._split(items, generation, decision, response)
                return
            if decision.action is Action.REFRESH_AUTH and token is not None:
                refreshed = self._refresh_after_401(token, refreshed)
                continue  # a refresh is not a delivery retry
            refreshed = False
            if decision.action is Action.FATAL:
                raise LaneFatal(f"RD answered {decision.reason}; retrying cannot help: {_excerpt(response)}")
            now = time.monotonic()
            first_failure = first_failure if first_failure is not None else now
            if self._max_elapsed_s and now - first_failure > self._max_elapsed_s:
                raise RetryDeadlineExceeded(
                    f"a batch of {len(items)} events was retried for {now - first_failure:.0f} s "
                    f"(RDC_RETRY_MAX_ELAPSED_S={self._max_elapsed_s:g}); last answer: {decision.reason}; "
                    "nothing of it is committed"
                )
            self._note_retry(decision, len(items))
            if decision.wait_s is not None:
                self._gate.pause(decision.wait_s)  # a 429 holds every lane, not just this one
                wait = 0.0
            else:
                wait = backoff_s(attempt, *self._backoff, self._random.random())
            attempt += 1
            _log.warning("batch_retry lane=%d events=%d reason=%s attempt=%d wait_s=%.3f",
                         self.index, len(items), decision.reason, attempt, decision.wait_s or wait)  # fmt: skip
            self._sleep(wait, generation)

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

    def _note_retry(self, decision: Decision, events: int) -> None:
        self._metrics.retry(decision.reason)
        if decision.possibly_sent:
            self._metrics.possible_duplicates.inc(events)
            _log.warning(
                "possible_duplicate lane=%d events=%d reason=%s: RD may have accepted the batch before the "
                "connection failed; it is sent again",
                self.index, events, decision.reason,
            )  # fmt: skip

    def _await_budget(self, generation: int) -> None:
        while True:
            if generation != self._generation:
                raise _Abandoned
            wait = self._gate.reserve()
            if wait <= 0:
                return
            self._sleep(wait, generation)

    def _sleep(self, seconds: float, generation: int) -> None:
        """Wait, waking early only to abandon the batch."""
        if seconds > 0:
            self._wake.wait(seconds)
        if generation != self._generation:
            raise _Abandoned

    def _post(self, body: bytes, events: int) -> tuple[Decision, httpx.Response | None, Secret | None]:
        try:
            token = self._client.tokens.token()
        except AuthUnavailable as exc:
            _log.warning("token_unavailable lane=%d error=%s", self.index, exc)
            return Decision(Action.RETRY, "auth_unavailable"), None, None
        began = time.monotonic()
        self.requests += 1
        self._metrics.in_flight_bytes.inc(len(body))
        try:
            response = self._client.post_batch(body, token)
        except Exception as exc:
            decision = classify_exception(exc)
            self._metrics.observe_request(None, time.monotonic() - began, len(body), events, self._max_bytes)
            self._health.record_request_failed()
            _log.info("batch lane=%d events=%d bytes=%d status=%s", self.index, events, len(body), decision.reason)
            return decision, None, token
        finally:
            self._metrics.in_flight_bytes.dec(len(body))
        status = response.status_code
        self._metrics.observe_request(status, time.monotonic() - began, len(body), events, self._max_bytes)
        if status == 429 or status >= 500:
            self._health.record_request_failed()
        else:
            self._health.record_request_ok()
        _log.info(
            "batch lane=%d events=%d bytes=%d fill=%.3f status=%d latency_ms=%.1f",
            self.index, events, len(body), len(body) / self._max_bytes, response.status_code,
            (time.monotonic() - began) * 1000,
        )  # fmt: skip
        return classify_response(response.status_code, response.headers, response.content), response, token

    def _accept(self, items: Sequence[Item], response: httpx.Response) -> None:
        try:
            answer = orjson.loads(response.content)
            uuids = [event["event_uuid"] for event in answer["events"]]
            batch_uuid = str(answer["event_batch_uuid"])
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            raise AmbiguousAnswer(f"RD answered 200 without a readable result: {_excerpt(response)}") from exc
        if len(uuids) != len(items):
            first, last = items[0], items[-1]
            raise AmbiguousAnswer(
                f"RD answered 200 with {len(uuids)} event UUIDs for a batch of {len(items)} events "
                f"(from {first.topic}/{first.partition}@{first.offset} "
                f"to {last.topic}/{last.partition}@{last.offset}); "
                "nothing of this batch is committed"
            )
        self._reporter.publish_results(items, uuids, batch_uuid)
        self._metrics.events_delivered.inc(len(items))
        self._metrics.batch_done("delivered")

    def _split(
        self, items: Sequence[Item], generation: int, decision: Decision, response: httpx.Response | None
    ) -> None:
        if decision.reason == "status_413":
            _log.warning(
                "batch_too_large lane=%d events=%d: RDC_BATCH_MAX_BYTES is above RD's limit", self.index, len(items)
            )
        self._metrics.batch_done("split")
        if len(items) == 1:
            item = items[0]
            self._reporter.dead_letter(
                DeadLetter.of(
                    item,
                    stage="send",
                    reason="rejected_by_rd" if decision.reason != "status_413" else "event_too_large",
                    detail=_excerpt(response),
                    log_detail=rd_answer_summary(response.status_code, response.content) if response else "",
                    rd_event=item.event,
                    weight=item_weight(item),
                )
            )
            return
        middle = len(items) // 2
        self._deliver(items[:middle], generation)
        self._deliver(items[middle:], generation)


def _excerpt(response: httpx.Response | None) -> str:
    if response is None:
        return ""
    return f"{response.status_code} {response.content[:2000].decode('utf-8', 'replace')}"

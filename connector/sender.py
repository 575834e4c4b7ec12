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

from connector.batch import Batch, Item
from connector.errors import ConnectorError
from connector.rd_client import RdClient
from connector.reporter import DeadLetter, Reporter
from connector.retry import Action, Decision, backoff_s, classify_exception, classify_response

__all__ = ["AmbiguousAnswer", "Lane", "LaneFatal"]

_log = logging.getLogger("connector.sender")


class LaneFatal(ConnectorError):
    """RD answered in a way retrying cannot fix (auth refused, forbidden, not found)."""

    exit_code = 3


class AmbiguousAnswer(ConnectorError):
    """RD answered 200 but not with one UUID per event: we cannot tell which events it accepted."""

    exit_code = 4


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
        self.fatal: ConnectorError | None = None
        self.requests = 0
        self.batches = 0
        self.body_bytes = 0
        self._thread = threading.Thread(target=self._run, name=f"rdc-lane-{index}", daemon=True)
        self._thread.start()

    def submit(self, batch: Batch) -> None:
        self._queue.put((self._generation, batch))

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
            except _Abandoned:
                _log.info("batch_abandoned lane=%d events=%d", self.index, len(batch))
            except ConnectorError as exc:
                self.fatal = exc
                _log.error("lane_stopped lane=%d error=%s", self.index, exc)
            except Exception as exc:  # a bug: stop the connector rather than guess
                self.fatal = LaneFatal(f"unexpected error in lane {self.index}: {exc!r}")
                _log.exception("lane_crashed lane=%d", self.index)

    def _deliver(self, items: Sequence[Item], generation: int) -> None:
        body = b"[" + b",".join([item.event for item in items]) + b"]"
        attempt = 0
        while True:
            if generation != self._generation:
                raise _Abandoned
            decision, response = self._post(body, len(items))
            if decision.action is Action.DELIVERED and response is not None:
                self._accept(items, response)
                return
            if decision.action is Action.SPLIT:
                self._split(items, generation, decision, response)
                return
            if decision.action is Action.REFRESH_AUTH:
                rejected = self._client.tokens.token()
                if self._client.tokens.refresh(rejected):
                    continue
                raise LaneFatal("RD refused the access token (401) and it cannot be refreshed: set a valid token")
            if decision.action is Action.FATAL:
                raise LaneFatal(f"RD answered {decision.reason}; retrying cannot help: {_excerpt(response)}")
            wait = decision.wait_s
            if wait is None:
                wait = backoff_s(attempt, *self._backoff, self._random.random())
            attempt += 1
            _log.warning("batch_retry lane=%d events=%d reason=%s attempt=%d wait_s=%.3f",
                         self.index, len(items), decision.reason, attempt, wait)  # fmt: skip
            self._wake.wait(wait)
            self._wake.clear()

    def _post(self, body: bytes, events: int) -> tuple[Decision, httpx.Response | None]:
        began = time.monotonic()
        self.requests += 1
        try:
            response = self._client.post_batch(body, self._client.tokens.token())
        except Exception as exc:
            decision = classify_exception(exc)
            _log.info("batch lane=%d events=%d bytes=%d status=%s", self.index, events, len(body), decision.reason)
            return decision, None
        self.body_bytes += len(body)
        _log.info(
            "batch lane=%d events=%d bytes=%d fill=%.3f status=%d latency_ms=%.1f",
            self.index, events, len(body), len(body) / self._max_bytes, response.status_code,
            (time.monotonic() - began) * 1000,
        )  # fmt: skip
        return classify_response(response.status_code, response.headers, response.content), response

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

    def _split(
        self, items: Sequence[Item], generation: int, decision: Decision, response: httpx.Response | None
    ) -> None:
        if decision.reason == "status_413":
            _log.warning(
                "batch_too_large lane=%d events=%d: RDC_BATCH_MAX_BYTES is above RD's limit", self.index, len(items)
            )
        if len(items) == 1:
            item = items[0]
            self._reporter.dead_letter(
                DeadLetter(
                    topic=item.topic,
                    partition=item.partition,
                    offset=item.offset,
                    key=item.key,
                    value=item.value,
                    headers=[*(item.headers or []), ("rdc.rd_event", item.event)],
                    stage="send",
                    reason="rejected_by_rd" if decision.reason != "status_413" else "event_too_large",
                    detail=_excerpt(response),
                    weight=len(item.event),
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

"""A lane: one thread that sends closed batches to RD, in order, one at a time.

Partitions map to lanes by a stable hash, so each partition's events reach RD in offset order. Each batch
is one attempt (`deliver.attempt`: budget, retries, deadline, bisection, results). The lane never commits:
settlement flows back through the `Reporter`'s acknowledgements to the pipeline thread. The first error
that retrying cannot fix stops the lane (`fatal`); the batches after it are not sent.

Work is tagged with a generation: `abandon()` (rebalance or shutdown past its deadline) bumps it, and the
lane drops older batches, even mid-retry. Their records are not settled, so they are not committed.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from functools import partial

from connector.deliver.attempt import Sender, _Abandoned
from connector.deliver.batch import Batch
from connector.errors import AuthFatal, ConnectorError, LaneCrashed
from connector.ops.metrics import Metrics
from connector.ops.probe_server import Health
from connector.rd.client import RdClient
from connector.rd.rate import RateGate
from connector.rd.retry import MAX_HINTED_WAIT_S
from connector.settle.reporter import Reporter

__all__ = ["Lane"]

_log = logging.getLogger("connector.deliver.lane")  # the name operators know from the logs


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
        self._queue: queue.SimpleQueue[tuple[int, Batch] | None] = queue.SimpleQueue()
        self._generation = 0
        self._wake = threading.Event()
        self._metrics = metrics or Metrics()
        self._health = health or Health()
        self._sender = Sender(
            index,
            client,
            reporter,
            backoff_initial_s=backoff_initial_s,
            backoff_max_s=backoff_max_s,
            max_bytes=max_bytes,
            gate=gate or RateGate(0),
            max_elapsed_s=max_elapsed_s,
            metrics=self._metrics,
            health=self._health,
            max_hinted_wait_s=max_hinted_wait_s,
            sleep=self._wake.wait,  # wakes early on abandon() and close()
        )
        self.fatal: ConnectorError | None = None
        self.batches = 0
        self._thread = threading.Thread(target=self._run, name=f"rdc-lane-{index}", daemon=True)
        self._thread.start()

    @property
    def requests(self) -> int:
        """Requests sent to RD so far (bisection's included)."""
        return self._sender.requests

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
                self._sender.deliver(batch.items, partial(self._abandoned_since, generation))
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

    def _abandoned_since(self, generation: int) -> bool:
        """Whether `abandon()` was called after work of `generation` was submitted."""
        return generation != self._generation

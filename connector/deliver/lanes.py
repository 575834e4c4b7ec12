"""The lanes: which lane a partition uses (`LaneSet`), and each lane's thread (`Lane`), which sends the
batches closed for it to RD, in order, one at a time.

At assignment a partition goes to the least loaded lane (`LaneSet.assign`), and it changes lane only at a
revoke, when nothing of it is in flight (`respread`), so its events reach RD in offset order. Each lane has
one `Batcher`; a batch closed by it (full) or due by its linger goes to the lane's queue. Byte-exact packing
is the `Batcher`'s (deliver/batch.py); `LaneSet` only routes and times. Each batch is one attempt
(`deliver.attempt`: budget, retries, deadline, bisection, results). The lane never commits: settlement flows
back through the `Reporter`'s acknowledgements to the pipeline thread. The first error that retrying cannot
fix stops the lane (`fatal`); the batches after it are not sent.

Work is tagged with a generation: `abandon()` (rebalance or shutdown past its deadline) bumps it, and the
lane drops older batches, even mid-retry. Their records are not settled, so they are not committed.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from functools import partial
from typing import Protocol, cast

from connector.config.accounts import DEFAULT_ACCOUNT
from connector.deliver.attempt import Sender, _Abandoned
from connector.deliver.batch import Batch, Batcher
from connector.errors import AuthFatal, ConnectorError, LaneCrashed
from connector.in_flight import Item
from connector.ops.metrics import Metrics
from connector.ops.probe_server import Health
from connector.partition_keys import TopicPartitionKey, stable_slot
from connector.rd.client import RdClient
from connector.rd.rate import RateGate
from connector.rd.retry import MAX_HINTED_WAIT_S
from connector.settle.reporter import DeadLetter, Reporter

__all__ = ["HELD_RECHECK_S", "Lane", "LaneLike", "LaneSet", "place", "spread"]

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
        account: str = DEFAULT_ACCOUNT,
        blocked_retry_s: float | None = None,
    ) -> None:
        """`max_hinted_wait_s`: the longest wait on RD's word (tests shorten `MAX_HINTED_WAIT_S`). `account`:
        the RD account this lane sends to (`client` is that account's). `blocked_retry_s`: None, RD refusing
        the credentials (`AuthFatal`) stops the lane (exit 3); a number (several accounts), the account
        blocks instead: the batch is tried again every `blocked_retry_s`, nothing of it or after it is sent
        or settled meanwhile, and the other accounts' lanes go on (docs/decisions/0016-accounts.md)."""
        self.index = index
        self.account = account
        self._blocked_retry_s = blocked_retry_s
        self._closed = False
        self.blocked = False  # RD refuses the account's credentials: this lane waits (see `_deliver`)
        self._queue: queue.SimpleQueue[tuple[int, Batch] | None] = queue.SimpleQueue()
        self._generation = 0
        self._wake = threading.Event()
        self._metrics = metrics or Metrics()
        self._health = health or Health()
        # Only a lane that may block retries a batch after a refusal, so only it needs to know what of the batch
        # was settled meanwhile (the recording costs a set update per delivered event: not on the single-account
        # hot path).
        self._settled = _SettledRecorder(reporter) if blocked_retry_s is not None else None
        self._sender = Sender(
            index,
            client,
            cast(Reporter, self._settled) if self._settled is not None else reporter,
            backoff_initial_s=backoff_initial_s,
            backoff_max_s=backoff_max_s,
            max_bytes=max_bytes,
            gate=gate or RateGate(0),
            max_elapsed_s=max_elapsed_s,
            metrics=self._metrics,
            health=self._health,
            max_hinted_wait_s=max_hinted_wait_s,
            sleep=self._wake.wait,  # wakes early on abandon() and close()
            account=account,
        )
        self.fatal: ConnectorError | None = None
        self.batches = 0
        name = f"rdc-lane-{index}" if account == DEFAULT_ACCOUNT else f"rdc-lane-{index}-{account}"
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
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
        self._closed = True
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
                self._deliver(batch, partial(self._abandoned_since, generation))
                self.batches += 1
                self._metrics.observe_delivery_latency(time.monotonic() - batch.opened_at)
            except _Abandoned:
                self._metrics.batch_done("abandoned")
                _log.info("batch_abandoned lane=%d events=%d", self.index, len(batch))
            except ConnectorError as exc:
                self._metrics.batch_done("failed")
                if isinstance(exc, AuthFatal):
                    self._health.set_token_valid(False, self.account)
                self.fatal = exc
                _log.error("lane_stopped lane=%d error=%s", self.index, exc)
            except Exception as exc:  # a bug: stop the connector (exit 1) rather than guess
                _log.exception("lane_crashed lane=%d", self.index)  # before `fatal`: the stop follows it
                self.fatal = LaneCrashed(f"unexpected error in lane {self.index}: {exc!r}")

    def _deliver(self, batch: Batch, abandoned: Callable[[], bool]) -> None:
        """Deliver `batch`; while RD refuses the account's credentials and the lane may block, wait and try
        again what of it is not settled yet (a bisection may have delivered or dead-lettered part of it before
        the refusal); nothing after it goes first: each partition's order holds."""
        items = batch.items
        if self._settled is not None:
            self._settled.done.clear()
        while True:
            try:
                self._sender.deliver(items, abandoned)
            except AuthFatal as exc:
                if self._blocked_retry_s is None or self._settled is None:
                    raise
                if not self.blocked:
                    self._set_blocked(True)
                _log.error(
                    "account_blocked account=%s lane=%d events=%d retry_in_s=%g error=%s: RD refuses the account's "
                    "credentials; its events wait uncommitted, the other accounts keep flowing",
                    self.account, self.index, len(items), self._blocked_retry_s, exc,
                )  # fmt: skip
                self._wake.clear()
                if not (abandoned() or self._closed):
                    self._wake.wait(self._blocked_retry_s)
                if abandoned() or self._closed:
                    self._set_blocked(False)  # this lane waits no more (its work is dropped, not settled)
                    raise _Abandoned from None
                done = self._settled.done
                items = [i for i in items if (i.topic, i.partition, i.offset) not in done]
                if not items:
                    return
                continue
            if self.blocked:
                self._set_blocked(False)
                _log.warning("account_unblocked account=%s lane=%d: RD accepts the credentials again",
                             self.account, self.index)  # fmt: skip
            return

    def _set_blocked(self, blocked: bool) -> None:
        """This lane waits (or no longer waits) for the account's credentials; the account is blocked while any
        of its lanes is."""
        self.blocked = blocked
        self._health.set_account_blocked(self.account, blocked, self.index)
        account_blocked = self._health.account_blocked(self.account)
        self._metrics.account_blocked(self.account, account_blocked)
        self._health.set_token_valid(not account_blocked, self.account)

    def _abandoned_since(self, generation: int) -> bool:
        """Whether `abandon()` was called after work of `generation` was submitted."""
        return generation != self._generation


class _SettledRecorder:
    """The reporter as a blocking lane's `Sender` sees it: passes results and dead letters on, and remembers the
    records of the current batch they settle (topic, partition, offset)."""

    def __init__(self, reporter: Reporter) -> None:
        self._reporter = reporter
        self.done: set[tuple[str, int, int]] = set()

    def publish_results(self, items: Sequence[Item], uuids: Sequence[str], batch_uuid: str) -> None:
        self._reporter.publish_results(items, uuids, batch_uuid)
        self.done.update((item.topic, item.partition, item.offset) for item in items)

    def dead_letter(self, letter: DeadLetter) -> None:
        self._reporter.dead_letter(letter)
        self.done.add((letter.topic, letter.partition, letter.offset))


#: How soon a due batch held behind its lane's queue is looked at again (see `LaneSet.poll_timeout`).
HELD_RECHECK_S = 0.005


class LaneLike(Protocol):
    """What `LaneSet` needs of a lane (`deliver.lane.Lane`; tests pass fakes)."""

    fatal: ConnectorError | None
    blocked: bool  # RD refuses its account's credentials: it holds its batch and retries (see `Lane._deliver`)

    def submit(self, batch: Batch) -> None: ...
    def queued(self) -> int: ...
    def abandon(self) -> None: ...
    def close(self, timeout: float) -> None: ...


class LaneSet:
    """Lane slots: a partition is placed on a slot, and each slot has one lane and one batcher per RD account
    (`lanes[i]` a lane, or a mapping from account name to the slot's lane of that account). A batch holds one
    account's events; an account's lane sends only its batches, so one account's wait (a 429, refused
    credentials) never holds another's events. Used by the pipeline thread only."""

    def __init__(
        self,
        lanes: Sequence[LaneLike | Mapping[str, LaneLike]],
        batch_max_bytes: int,
        batch_max_events: int,
        linger_s: float,
    ) -> None:
        slots = [dict(lane) if isinstance(lane, Mapping) else {DEFAULT_ACCOUNT: lane} for lane in lanes]
        self._slots = slots
        self._batchers = [
            {account: Batcher(batch_max_bytes, batch_max_events, linger_s, account) for account in slot}
            for slot in slots
        ]
        # Every (slot, lane, batcher), flattened: the loops below run at every step of the pipeline.
        self._channels = [
            (index, slot[account], self._batchers[index][account])
            for index, slot in enumerate(slots)
            for account in slot
        ]
        self.lanes: list[LaneLike] = [lane for _, lane, _ in self._channels]  # every account's lanes
        self._lane_of: dict[TopicPartitionKey, int] = {}  # kept after a release: late acks still find their lane
        self._owned: dict[TopicPartitionKey, int] = {}  # the assigned partitions' lanes (what balancing counts)

    def __len__(self) -> int:
        """Lane slots (what partitions are placed on)."""
        return len(self._slots)

    @property
    def accounts(self) -> list[str]:
        """The RD accounts each slot has a lane for."""
        return list(self._slots[0]) if self._slots else []

    def batcher(self, slot: int, account: str = DEFAULT_ACCOUNT) -> Batcher:
        """The batcher of `account` in `slot` (KeyError for an account the slot has no lane for)."""
        return self._batchers[slot][account]

    def lane_of(self, tp: TopicPartitionKey) -> int:
        """The lane slot of a partition. It changes only while nothing of the partition is in a lane or a
        batcher (`respread` after a revoke's abandon), so each partition's events reach RD in offset order (for
        each account). A partition never assigned (a test's fake consumer) gets its stable hash."""
        lane = self._lane_of.get(tp)
        if lane is None:
            lane = self._lane_of[tp] = stable_slot(tp[0], tp[1], len(self._slots))
        return lane

    def assign(self, tps: Sequence[TopicPartitionKey]) -> None:
        """New partitions go to the least loaded lanes; the partitions already owned keep theirs (they may
        have events in flight). A hash let partitions collide: 4 lanes on a 3-partition topic used 2."""
        new = sorted(tp for tp in set(tps) if tp not in self._owned)
        placed = place(self._owned, new, len(self._slots))
        self._owned.update(placed)
        self._lane_of.update(placed)

    def release(self, tps: Sequence[TopicPartitionKey]) -> None:
        """No longer ours: not counted by the balancing (their lanes are kept for late acknowledgements)."""
        for tp in tps:
            self._owned.pop(tp, None)

    def respread(self) -> None:
        """Even out the owned partitions over the lanes (loads differ by at most one), moving as few as
        possible. Only when nothing of them is in flight: after an eager revoke abandoned every lane's work,
        or a cooperative one found every kept partition settled."""
        self._owned = spread(self._owned, len(self._slots))
        self._lane_of.update(self._owned)

    def loads(self) -> list[int]:
        """Owned partitions per lane slot."""
        counts = [0] * len(self._slots)
        for lane in self._owned.values():
            counts[lane] += 1
        return counts

    def submit(self, slot: int, batches: list[Batch]) -> None:
        lanes = self._slots[slot]
        for batch in batches:
            lanes[batch.account].submit(batch)

    def send_due(self, now: float, caught_up: Callable[[int], bool]) -> None:
        """Send each open batch that is due (`caught_up(slot)`: every partition of the slot read to its end)."""
        for index, lane, batcher in self._channels:
            if lane.queued():
                # The lane has batches waiting: the open batch would wait behind them anyway, so it keeps
                # filling until the lane takes up its last one, instead of going out partial now. Same
                # delivery time for its events, fuller requests (4 lanes at 50 ms: 758 -> 734 requests,
                # 17.0k -> 17.3k events/s).
                continue
            batch = batcher.due(now, caught_up=batcher.pending > 0 and caught_up(index))
            if batch is not None:
                lane.submit(batch)

    def poll_timeout(self, now: float) -> float:
        """Until the next batch's linger ends (at most 100 ms). A batch held behind its lane's queue (see
        `send_due`) is looked at again within `HELD_RECHECK_S`: its deadline has passed, and a zero timeout
        would spin this thread, taking the GIL from the lanes, until the lane takes up its last batch."""
        timeout = 0.1
        for _, lane, batcher in self._channels:
            deadline = batcher.deadline()
            if deadline is not None and not lane.blocked:  # a blocked lane's batch waits on it
                wait = deadline - now
                timeout = min(timeout, max(wait, HELD_RECHECK_S) if lane.queued() else wait)
        return max(0.0, timeout)

    def send_open(self) -> None:
        """Send every open batch now (drain, revoke)."""
        for _, lane, batcher in self._channels:
            batch = batcher.flush()
            if batch is not None:
                lane.submit(batch)

    def abandon(self, slots: Collection[int] | None = None) -> None:
        """The lanes of `slots` (None: every lane) drop what they were given (nothing of it is settled, so
        nothing of it is committed). A lane sends in order and its batches mix its partitions' events, so a
        lane is abandoned whole; the caller reads its kept partitions again (consume/rebalance.py)."""
        for index, lane, _ in self._channels:
            if slots is None or index in slots:
                lane.abandon()

    def fatal(self) -> ConnectorError | None:
        return next((lane.fatal for lane in self.lanes if lane.fatal is not None), None)

    def close(self, timeout: float) -> None:
        for lane in self.lanes:
            lane.close(timeout)


def place(
    owned: Mapping[TopicPartitionKey, int], new: Sequence[TopicPartitionKey], lanes: int
) -> dict[TopicPartitionKey, int]:
    """Lanes for `new` partitions, each on the least loaded lane (counting `owned`; ties: the lowest lane)."""
    counts = [0] * lanes
    for lane in owned.values():
        counts[lane] += 1
    placed: dict[TopicPartitionKey, int] = {}
    for tp in new:
        lane = min(range(lanes), key=counts.__getitem__)
        counts[lane] += 1
        placed[tp] = lane
    return placed


def spread(owned: Mapping[TopicPartitionKey, int], lanes: int) -> dict[TopicPartitionKey, int]:
    """`owned` re-spread so that lane loads differ by at most one, each partition kept on its lane where
    that lane has room (the fullest lanes get the one extra partition, so the fewest move)."""
    base, extra = divmod(len(owned), lanes)
    members: list[list[TopicPartitionKey]] = [[] for _ in range(lanes)]
    for tp in sorted(owned):
        members[owned[tp]].append(tp)
    by_load = sorted(range(lanes), key=lambda lane: (-len(members[lane]), lane))
    room = {lane: base + (1 if rank < extra else 0) for rank, lane in enumerate(by_load)}
    result: dict[TopicPartitionKey, int] = {}
    moving: list[TopicPartitionKey] = []
    for lane in range(lanes):
        kept, over = members[lane][: room[lane]], members[lane][room[lane] :]
        result.update((tp, lane) for tp in kept)
        room[lane] -= len(kept)
        moving += over
    free = [lane for lane in range(lanes) for _ in range(room[lane])]
    result.update(zip(sorted(moving), free, strict=True))
    return result

"""A real `Lane` against a scripted RD (httpx.MockTransport): delivery, retries, bisection, fatal answers,
abandon and close. The reporter is a fake that records what the lane asked it to publish."""

from __future__ import annotations

import itertools
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import httpx
import orjson
import pytest

from connector.config import Secret
from connector.deliver.batch import Batch
from connector.deliver.lanes import Lane
from connector.errors import EXIT_CRASH, AmbiguousAnswer, AuthFatal, LaneCrashed, LaneFatal
from connector.in_flight import Item, item_weight
from connector.ops.probe_server import Health
from connector.rd.client import BATCH_PATH, RdClient, StaticToken
from connector.settle.reporter import DeadLetter, Reporter

Handler = Callable[[httpx.Request], httpx.Response]
POISON = b'"poison":true'
_lane_index = itertools.count(100)


class FakeReporter:
    """Records the two calls a lane makes."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.results: list[tuple[list[Item], list[str], str]] = []
        self.letters: list[DeadLetter] = []

    def publish_results(self, items: Sequence[Item], uuids: Sequence[str], batch_uuid: str) -> None:
        with self.lock:
            self.results.append((list(items), list(uuids), batch_uuid))

    def dead_letter(self, letter: DeadLetter) -> None:
        with self.lock:
            self.letters.append(letter)

    def published(self) -> list[Item]:
        with self.lock:
            return [item for items, _, _ in self.results for item in items]


@dataclass
class Seen:
    """One request RD received."""

    at: float
    body: bytes
    headers: httpx.Headers
    url: str


@dataclass
class FakeRd:
    """Calls `script(n, request)` for the n-th request (0-based) and records every request."""

    script: Callable[[int, httpx.Request], httpx.Response]
    seen: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            n = len(self.seen)
            self.seen.append(Seen(time.monotonic(), request.read(), request.headers, str(request.url)))
        return self.script(n, request)

    @property
    def count(self) -> int:
        with self.lock:
            return len(self.seen)


def event(n: int, *, poison: bool = False) -> bytes:
    return orjson.dumps({"event_type": "ORDER_PLACED", "n": n, **({"poison": True} if poison else {})})


def make_items(count: int, poison: Sequence[int] = (), start: int = 0) -> list[Item]:
    return [
        Item(
            topic="orders",
            partition=3,
            offset=start + i,
            key=f"key-{start + i}".encode(),
            event_type="ORDER_PLACED",
            event_id=f"ev-{start + i}",
            event=event(start + i, poison=i in poison),
            value=f"value-{start + i}".encode(),
            headers=[("trace", f"t-{start + i}".encode())],
        )
        for i in range(count)
    ]


def batch_of(items: list[Item]) -> Batch:
    return Batch(opened_at=0.0, items=items, size=2 + sum(len(i.event) for i in items) + len(items) - 1)


def uuid_of(n: int) -> str:
    """The event UUID the fake RD gives the event whose `n` is `n` (canonical, version 4)."""
    return f"00000000-0000-4000-8000-{n:012d}"


def rd_error(status: int, error_type: str = "INVALID", message: str = "is not allowed") -> httpx.Response:
    """An answer in RD's error format (the list shape)."""
    body = {"errors": [{"error_type": error_type, "error_message": message}]}
    return httpx.Response(status, content=orjson.dumps(body))


def ok(request: httpx.Request, batch_uuid: str = "batch-1") -> httpx.Response:
    """RD's 200: one uuid per event, derived from the event's `n`."""
    events = orjson.loads(request.content)
    answer = {"event_batch_uuid": batch_uuid, "events": [{"event_uuid": uuid_of(e["n"])} for e in events]}
    return httpx.Response(200, content=orjson.dumps(answer), headers={"Content-Type": "application/json"})


def always_ok(_n: int, request: httpx.Request) -> httpx.Response:
    return ok(request)


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.002)


@dataclass
class Rig:
    lane: Lane
    rd: FakeRd
    reporter: FakeReporter
    thread_name: str


LaneFactory = Callable[..., Rig]


@pytest.fixture
def make_lane() -> Iterator[LaneFactory]:
    made: list[Rig] = []

    def make(
        script: Callable[[int, httpx.Request], httpx.Response],
        token: str = "tok",
        timeout_s: float = 30.0,
        **lane_options: Any,
    ) -> Rig:
        rd = FakeRd(script)
        client = RdClient(
            base_url="http://rd.test",
            tokens=StaticToken(Secret(token)),
            client=httpx.Client(transport=httpx.MockTransport(rd)),
            timeout_s=timeout_s,
        )
        reporter = FakeReporter()
        index = next(_lane_index)
        lane = Lane(
            index,
            client,
            cast(Reporter, reporter),
            backoff_initial_s=0.001,
            backoff_max_s=0.01,
            max_bytes=100_000,
            **lane_options,
        )
        rig = Rig(lane, rd, reporter, f"rdc-lane-{index}")
        made.append(rig)
        return rig

    yield make
    for rig in made:
        rig.lane.abandon()
        rig.lane.close(2.0)


def lane_thread_alive(name: str) -> bool:
    return any(t.name == name and t.is_alive() for t in threading.enumerate())


# --- success ---------------------------------------------------------------------------------------------


def test_success_publishes_results_in_request_order(make_lane: LaneFactory) -> None:
    rig = make_lane(always_ok)
    items = make_items(5)
    rig.lane.submit(batch_of(items))
    wait_until(lambda: rig.lane.batches == 1)

    assert rig.reporter.results == [(items, [uuid_of(i) for i in range(5)], "batch-1")]
    assert rig.reporter.letters == []
    assert rig.lane.fatal is None
    assert rig.lane.requests == 1


def test_posted_body_and_headers(make_lane: LaneFactory) -> None:
    rig = make_lane(always_ok)
    items = make_items(3)
    rig.lane.submit(batch_of(items))
    wait_until(lambda: rig.lane.batches == 1)

    [seen] = rig.rd.seen
    assert seen.body == b"[" + b",".join(item.event for item in items) + b"]"
    assert seen.body == batch_of(items).body()
    assert seen.url == "http://rd.test" + BATCH_PATH
    assert seen.headers["Authorization"] == "Bearer tok"
    assert seen.headers["Content-Type"] == "application/json"
    body_sum = next(
        line
        for line in rig.lane._metrics.render().decode().splitlines()
        if line.startswith("rdc_request_body_bytes_sum")
    )  # the body bytes are counted once, in the metrics
    assert float(body_sum.split()[-1]) == len(seen.body)


def test_batches_are_sent_one_at_a_time_in_submit_order(make_lane: LaneFactory) -> None:
    rig = make_lane(always_ok)
    first, second = make_items(2), make_items(3, start=2)
    rig.lane.submit(batch_of(first))
    rig.lane.submit(batch_of(second))
    wait_until(lambda: rig.lane.batches == 2)
    assert rig.reporter.published() == first + second
    assert [s.body for s in rig.rd.seen] == [batch_of(first).body(), batch_of(second).body()]


# --- transient failures ------------------------------------------------------------------------------------


def test_500_then_200_is_retried_and_delivered_once(make_lane: LaneFactory) -> None:
    def script(n: int, request: httpx.Request) -> httpx.Response:
        return httpx.Response(500, content=b"oops") if n == 0 else ok(request)

    rig = make_lane(script)
    items = make_items(4)
    rig.lane.submit(batch_of(items))
    wait_until(lambda: rig.lane.batches == 1)

    assert rig.rd.count == 2
    assert rig.rd.seen[0].body == rig.rd.seen[1].body
    assert rig.reporter.results == [(items, [uuid_of(i) for i in range(4)], "batch-1")]
    assert rig.lane.fatal is None


@pytest.mark.parametrize(
    "exc",
    [
        pytest.param(httpx.ConnectError("connection refused"), id="connect-error"),
        pytest.param(httpx.ReadTimeout("timed out"), id="read-timeout"),
        pytest.param(httpx.RemoteProtocolError("server disconnected"), id="remote-protocol-error"),
    ],
)
def test_transport_error_then_200(make_lane: LaneFactory, exc: Exception) -> None:
    def script(n: int, request: httpx.Request) -> httpx.Response:
        if n < 2:
            raise exc
        return ok(request)

    rig = make_lane(script)
    items = make_items(2)
    rig.lane.submit(batch_of(items))
    wait_until(lambda: rig.lane.batches == 1)

    assert rig.rd.count == 3
    assert rig.reporter.published() == items
    assert len(rig.reporter.results) == 1
    assert rig.lane.fatal is None


@pytest.mark.parametrize("status", [408, 502, 503, 504])
def test_retryable_statuses_are_retried(make_lane: LaneFactory, status: int) -> None:
    def script(n: int, request: httpx.Request) -> httpx.Response:
        return httpx.Response(status) if n < 3 else ok(request)

    rig = make_lane(script)
    rig.lane.submit(batch_of(make_items(2)))
    wait_until(lambda: rig.lane.batches == 1)
    assert rig.rd.count == 4
    assert len(rig.reporter.results) == 1


def test_429_with_retry_after_zero_is_retried(make_lane: LaneFactory) -> None:
    def script(n: int, request: httpx.Request) -> httpx.Response:
        if n == 0:
            return httpx.Response(429, headers={"Retry-After": "0"}, content=b'{"error": "too many"}')
        return ok(request)

    rig = make_lane(script)
    items = make_items(3)
    rig.lane.submit(batch_of(items))
    wait_until(lambda: rig.lane.batches == 1)
    assert rig.rd.count == 2
    assert rig.reporter.published() == items


def _429_once_then_ok(wait: str) -> Callable[[int, httpx.Request], httpx.Response]:
    def script(n: int, request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, headers={"Retry-After": wait}) if n == 0 else ok(request)

    return script


def test_429_retry_after_is_honoured(make_lane: LaneFactory) -> None:
    rig = make_lane(_429_once_then_ok("1"))
    rig.lane.submit(batch_of(make_items(1)))
    wait_until(lambda: rig.lane.batches == 1)
    gap = rig.rd.seen[1].at - rig.rd.seen[0].at
    assert gap >= 0.9  # RD's 1 s, not the tiny backoff


def test_429_retry_after_is_honoured_after_an_idle_abandon(make_lane: LaneFactory) -> None:
    rig = make_lane(_429_once_then_ok("1"))
    rig.lane.abandon()  # e.g. a rebalance while the lane had nothing in flight
    rig.lane.submit(batch_of(make_items(1)))
    wait_until(lambda: rig.lane.batches == 1)
    gap = rig.rd.seen[1].at - rig.rd.seen[0].at
    assert gap >= 0.9


# --- rejections: bisection ----------------------------------------------------------------------------------


POISON_ERRORS = b'{"errors": {"poison": [{"error_type": "INVALID", "error_message": "is not allowed"}]}}'


def rejecting_poison(n: int, request: httpx.Request) -> httpx.Response:
    if POISON in request.content:
        return httpx.Response(400, content=POISON_ERRORS)  # RD's map keyed by field name
    return ok(request, batch_uuid=f"batch-{n}")


@pytest.mark.parametrize(
    "poison",
    [
        pytest.param((0,), id="first"),
        pytest.param((15,), id="last"),
        pytest.param((7,), id="middle"),
        pytest.param((0, 15), id="first-and-last"),
        pytest.param((0, 1), id="adjacent-at-start"),
        pytest.param((3, 9, 12), id="three-scattered"),
        pytest.param((0, 5, 10, 15), id="four-incl-ends"),
        pytest.param(tuple(range(16)), id="all"),
    ],
)
def test_400_bisection_isolates_exactly_the_poison_items(make_lane: LaneFactory, poison: tuple[int, ...]) -> None:
    n = 16
    rig = make_lane(rejecting_poison)
    items = make_items(n, poison=poison)
    rig.lane.submit(batch_of(items))
    wait_until(lambda: rig.lane.batches == 1)
    assert rig.lane.fatal is None

    poisoned = [items[i] for i in poison]
    letters = rig.reporter.letters
    assert [(letter.topic, letter.partition, letter.offset) for letter in letters] == [
        (item.topic, item.partition, item.offset) for item in poisoned
    ]
    for letter, item in zip(letters, poisoned, strict=True):
        assert letter.reason == "rejected_by_rd"
        assert letter.stage == "send"
        assert letter.key == item.key
        assert letter.value == item.value
        assert letter.detail == "400 " + POISON_ERRORS.decode()
        assert letter.headers == [*(item.headers or []), ("rdc.rd_event", item.event)]
        assert letter.weight == item_weight(item)  # the memory it held is released on settle

    clean = [item for i, item in enumerate(items) if i not in poison]
    assert rig.reporter.published() == clean  # each exactly once, in offset order
    for published, uuids, _ in rig.reporter.results:
        assert uuids == [uuid_of(item.offset) for item in published]

    # Bound: every request that fails with more than one event costs two more requests, and at most k such
    # sub-batches exist per bisection level (ceil(log2 N) levels above the single events), so
    # requests <= 1 + 2 * k * ceil(log2 N).
    k = len(poison)
    assert rig.rd.count == rig.lane.requests
    assert rig.rd.count <= 1 + 2 * k * math.ceil(math.log2(n))
    if k == 1:
        assert rig.rd.count == 1 + 2 * math.ceil(math.log2(n))  # the bound is tight for one poison event


def test_422_is_bisected_like_400(make_lane: LaneFactory) -> None:
    def script(n: int, request: httpx.Request) -> httpx.Response:
        return rd_error(422, "INVALID", "Invalid Data type") if POISON in request.content else ok(request)

    rig = make_lane(script)
    items = make_items(4, poison=(2,))
    rig.lane.submit(batch_of(items))
    wait_until(lambda: rig.lane.batches == 1)
    assert [letter.offset for letter in rig.reporter.letters] == [2]
    assert rig.reporter.letters[0].reason == "rejected_by_rd"
    assert rig.reporter.published() == [items[0], items[1], items[3]]


@pytest.mark.parametrize(
    "refusal",
    [
        pytest.param(lambda: rd_error(413, "REQUEST_ENTITY_TOO_LARGE", "payload too large"), id="rd-shape"),
        pytest.param(lambda: httpx.Response(413, content=b"<html>413 Request Entity Too Large</html>"), id="proxy"),
    ],
)
def test_413_is_an_outage_never_a_split(make_lane: LaneFactory, refusal: Callable[[], httpx.Response]) -> None:
    """A 413 (RD documents none; the batcher stays under RDC_BATCH_MAX_BYTES) is retried whole: no bisection,
    no dead letter, /readyz fails at once; RD's next 200 delivers every event."""
    health = Health()
    health.set_assigned(True)
    seen_not_ready: list[bool] = []

    def script(n: int, request: httpx.Request) -> httpx.Response:
        if n < 3:
            return refusal()
        seen_not_ready.append(not health.readiness()[0])
        return ok(request)

    rig = make_lane(script, health=health)
    items = make_items(8)
    rig.lane.submit(batch_of(items))
    wait_until(lambda: rig.lane.batches == 1)
    assert rig.reporter.letters == []
    assert rig.reporter.published() == items
    assert [len(orjson.loads(s.body)) for s in rig.rd.seen] == [8, 8, 8, 8]  # never split
    assert seen_not_ready == [True]
    assert health.readiness()[0]  # the 200 proved the path again


# --- answers retrying cannot fix -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param({"event_batch_uuid": "b", "events": [{"event_uuid": "u-0"}, {"event_uuid": "u-1"}]}, id="fewer"),
        pytest.param({"event_batch_uuid": "b", "events": [{"event_uuid": f"u-{i}"} for i in range(4)]}, id="more"),
        pytest.param({"event_batch_uuid": "b", "events": []}, id="none"),
        pytest.param({"events": [{"event_uuid": f"u-{i}"} for i in range(3)]}, id="no-batch-uuid"),
        pytest.param({"event_batch_uuid": "b", "events": [{"id": "x"}] * 3}, id="no-event-uuid"),
        pytest.param({"event_batch_uuid": "b"}, id="no-events"),
        pytest.param([1, 2, 3], id="a-list"),
    ],
)
def test_200_without_one_uuid_per_event_is_ambiguous(make_lane: LaneFactory, answer: object) -> None:
    rig = make_lane(lambda n, request: httpx.Response(200, content=orjson.dumps(answer)))
    rig.lane.submit(batch_of(make_items(3)))
    wait_until(lambda: rig.lane.fatal is not None)
    assert isinstance(rig.lane.fatal, AmbiguousAnswer)
    assert rig.reporter.results == []
    assert rig.reporter.letters == []
    assert rig.rd.count == 1
    assert rig.lane.batches == 0


def test_200_fewer_uuids_message_names_the_batch(make_lane: LaneFactory) -> None:
    answer = {"event_batch_uuid": "b", "events": [{"event_uuid": "u-0"}]}
    rig = make_lane(lambda n, request: httpx.Response(200, content=orjson.dumps(answer)))
    rig.lane.submit(batch_of(make_items(3, start=40)))
    wait_until(lambda: rig.lane.fatal is not None)
    message = str(rig.lane.fatal)
    assert "1 event UUIDs for a batch of 3" in message
    assert "orders/3@40" in message
    assert "orders/3@42" in message


@pytest.mark.parametrize("content", [b"<html>ok</html>", b"", b'{"event_batch_uuid": '])
def test_200_with_unreadable_json_is_ambiguous(make_lane: LaneFactory, content: bytes) -> None:
    rig = make_lane(lambda n, request: httpx.Response(200, content=content))
    rig.lane.submit(batch_of(make_items(2)))
    wait_until(lambda: rig.lane.fatal is not None)
    assert isinstance(rig.lane.fatal, AmbiguousAnswer)
    assert rig.reporter.results == []
    assert rig.rd.count == 1


@pytest.mark.parametrize("status", [403, 404, 405, 415])
def test_fatal_status_stops_the_lane(make_lane: LaneFactory, status: int) -> None:
    rig = make_lane(lambda n, request: rd_error(status, "FORBIDDEN", "forbidden by policy"))
    rig.lane.submit(batch_of(make_items(2)))
    wait_until(lambda: rig.lane.fatal is not None)
    assert isinstance(rig.lane.fatal, LaneFatal)
    assert f"status_{status}" in str(rig.lane.fatal)
    assert "forbidden by policy" in str(rig.lane.fatal)
    assert rig.rd.count == 1
    assert rig.reporter.results == []
    assert rig.reporter.letters == []


def test_401_with_a_static_token_is_fatal(make_lane: LaneFactory) -> None:
    rig = make_lane(lambda n, request: httpx.Response(401, content=b"invalid token"), token="s3cr3t-value")
    rig.lane.submit(batch_of(make_items(2)))
    wait_until(lambda: rig.lane.fatal is not None)
    fatal = rig.lane.fatal
    assert isinstance(fatal, AuthFatal) and fatal.exit_code == 3
    assert "token" in str(fatal)
    assert "401" in str(fatal)
    assert "s3cr3t-value" not in str(fatal)  # the token is never shown
    assert rig.rd.count == 1
    assert rig.rd.seen[0].headers["Authorization"] == "Bearer s3cr3t-value"
    assert rig.reporter.results == []


def test_a_bug_in_the_lane_exits_1_with_its_traceback_not_as_rd_refusing_us(
    make_lane: LaneFactory, caplog: pytest.LogCaptureFixture
) -> None:
    def script(n: int, request: httpx.Request) -> httpx.Response:
        raise ValueError("bug in the transport")

    rig = make_lane(script)
    with caplog.at_level(logging.ERROR, logger="connector.deliver"):
        rig.lane.submit(batch_of(make_items(1)))
        wait_until(lambda: rig.lane.fatal is not None)
    assert isinstance(rig.lane.fatal, LaneCrashed)
    assert rig.lane.fatal.exit_code == EXIT_CRASH == 1
    assert rig.rd.count == 1
    crash = next(r for r in caplog.records if r.exc_info)
    assert "bug in the transport" in str(crash.exc_info[1])  # type: ignore[index]
    assert rig.reporter.results == []


def test_after_a_fatal_error_later_batches_are_not_sent(make_lane: LaneFactory) -> None:
    def script(n: int, request: httpx.Request) -> httpx.Response:
        return rd_error(403, "FORBIDDEN") if n == 0 else ok(request)

    rig = make_lane(script)
    rig.lane.submit(batch_of(make_items(2)))
    rig.lane.submit(batch_of(make_items(2, start=2)))  # queued behind the fatal one
    wait_until(lambda: rig.lane.fatal is not None)
    rig.lane.submit(batch_of(make_items(2, start=4)))  # submitted after the failure
    rig.lane.close(2.0)  # drains the queue, then the thread ends

    assert not lane_thread_alive(rig.thread_name)
    assert rig.rd.count == 1
    assert rig.reporter.results == []
    assert isinstance(rig.lane.fatal, LaneFatal)


# --- abandon and close ----------------------------------------------------------------------------------------


def test_abandon_during_a_retry_loop_stops_retrying(make_lane: LaneFactory) -> None:
    rig = make_lane(lambda n, request: httpx.Response(503))
    rig.lane.submit(batch_of(make_items(3)))
    wait_until(lambda: rig.rd.count >= 3)
    rig.lane.abandon()
    rig.lane.close(2.0)
    assert not lane_thread_alive(rig.thread_name)

    count = rig.rd.count
    time.sleep(0.05)
    assert rig.rd.count == count  # no more requests
    assert rig.reporter.results == []
    assert rig.reporter.letters == []
    assert rig.lane.fatal is None
    assert rig.lane.batches == 0


def test_abandon_drops_queued_batches_but_not_later_ones(make_lane: LaneFactory) -> None:
    gate = threading.Event()

    def script(n: int, request: httpx.Request) -> httpx.Response:
        if n == 0:
            gate.wait(5.0)
            return httpx.Response(503)
        return ok(request)

    rig = make_lane(script)
    dropped = make_items(2)
    queued = make_items(2, start=2)
    later = make_items(2, start=4)
    rig.lane.submit(batch_of(dropped))
    wait_until(lambda: rig.rd.count == 1)  # the first batch is in flight
    rig.lane.submit(batch_of(queued))
    rig.lane.abandon()
    rig.lane.submit(batch_of(later))
    gate.set()
    wait_until(lambda: rig.lane.batches == 1)

    assert rig.reporter.published() == later
    assert [s.body for s in rig.rd.seen] == [batch_of(dropped).body(), batch_of(later).body()]


def test_close_joins_the_thread(make_lane: LaneFactory) -> None:
    rig = make_lane(always_ok)
    items = make_items(2)
    rig.lane.submit(batch_of(items))
    assert lane_thread_alive(rig.thread_name)
    rig.lane.close(2.0)
    assert not lane_thread_alive(rig.thread_name)
    assert rig.reporter.published() == items  # work queued before close is finished first


def test_close_of_an_idle_lane_returns_promptly(make_lane: LaneFactory) -> None:
    rig = make_lane(always_ok)
    began = time.monotonic()
    rig.lane.close(2.0)
    assert time.monotonic() - began < 1.0
    assert not lane_thread_alive(rig.thread_name)
    assert rig.rd.count == 0


# --- several accounts: refused credentials block the account, not the connector ----------------------------


def test_a_refused_account_blocks_and_retries_instead_of_stopping_then_delivers_in_order(
    make_lane: LaneFactory,
) -> None:
    from connector.ops.metrics import Metrics

    refusing = threading.Event()
    refusing.set()

    def script(_n: int, request: httpx.Request) -> httpx.Response:
        return rd_error(401, "UNAUTHORIZED", "Invalid token.") if refusing.is_set() else ok(request)

    health, metrics = Health(), Metrics()
    health.set_assigned(True)
    rig = make_lane(script, account="brand-b", blocked_retry_s=0.05, health=health, metrics=metrics)
    first, second = make_items(2), make_items(2, start=2)
    rig.lane.submit(batch_of(first))
    rig.lane.submit(batch_of(second))
    wait_until(lambda: rig.rd.count >= 3)  # tried, waited, tried again: blocked, not stopped
    assert rig.lane.fatal is None and rig.lane.blocked
    assert rig.reporter.results == []  # nothing settled: nothing of it (or after it) can be committed
    ready, body = health.readiness()
    assert not ready and "account_blocked=brand-b" in cast(list[str], body["reasons"])
    assert metrics.registry.get_sample_value("rdc_account_blocked", {"account": "brand-b"}) == 1.0
    assert all(orjson.loads(seen.body)[0]["n"] == 0 for seen in rig.rd.seen)  # the second batch never went first
    refusing.clear()  # the operator fixed the credentials
    wait_until(lambda: rig.lane.batches == 2)
    assert [i.offset for i in rig.reporter.published()] == [0, 1, 2, 3]
    assert not rig.lane.blocked and health.readiness()[0]
    assert metrics.registry.get_sample_value("rdc_account_blocked", {"account": "brand-b"}) == 0.0


def test_a_blocked_lane_is_abandoned_and_closed_promptly(make_lane: LaneFactory) -> None:
    rig = make_lane(lambda _n, _r: rd_error(401, "UNAUTHORIZED"), account="b", blocked_retry_s=60.0)
    rig.lane.submit(batch_of(make_items(1)))
    wait_until(lambda: rig.lane.blocked)
    began = time.monotonic()
    rig.lane.abandon()
    rig.lane.close(2.0)
    assert time.monotonic() - began < 1.0 and not lane_thread_alive(rig.lane._thread.name)
    assert rig.reporter.results == [] and rig.lane.fatal is None


def test_one_account_alone_still_stops_on_refused_credentials(make_lane: LaneFactory) -> None:
    rig = make_lane(lambda _n, _r: rd_error(401, "UNAUTHORIZED"), account="solo")  # blocked_retry_s None
    rig.lane.submit(batch_of(make_items(1)))
    wait_until(lambda: rig.lane.fatal is not None)
    assert isinstance(rig.lane.fatal, AuthFatal) and "account 'solo'" in str(rig.lane.fatal)


def test_a_blocked_lane_retries_only_what_a_bisection_left_unsettled(make_lane: LaneFactory) -> None:
    """RD rejects the batch (400: bisected), takes the first half, then refuses the credentials for the second:
    after the block only the second half is sent again; nothing is published twice."""
    refusing = threading.Event()

    def script(n: int, request: httpx.Request) -> httpx.Response:
        if n == 0:
            return rd_error(400)  # the whole batch: split in halves
        if n == 1:
            refusing.set()
            return ok(request)  # the first half is delivered
        return rd_error(401, "UNAUTHORIZED") if refusing.is_set() else ok(request)

    rig = make_lane(script, account="b", blocked_retry_s=0.05)
    rig.lane.submit(batch_of(make_items(4)))
    wait_until(lambda: rig.lane.blocked)
    refusing.clear()
    wait_until(lambda: rig.lane.batches == 1)
    assert sorted(i.offset for i in rig.reporter.published()) == [0, 1, 2, 3]  # each once
    retried = [[e["n"] for e in orjson.loads(seen.body)] for seen in rig.rd.seen[2:]]
    assert retried[-1] == [2, 3] and all(batch == [2, 3] for batch in retried)


def test_an_account_stays_blocked_while_any_of_its_lanes_is_and_an_abandon_clears_that_lane() -> None:
    health = Health()
    health.set_account_blocked("b", True, 0)
    health.set_account_blocked("b", True, 1)
    health.set_account_blocked("b", False, 1)  # lane 1 delivered: lane 0 still waits
    assert health.account_blocked("b") and "account_blocked=b" in cast(list[str], health.readiness()[1]["reasons"])
    health.set_account_blocked("b", False, 0)
    assert not health.account_blocked("b")


def test_an_abandoned_blocked_lane_no_longer_counts_as_blocked(make_lane: LaneFactory) -> None:
    health = Health()
    rig = make_lane(lambda _n, _r: rd_error(401, "UNAUTHORIZED"), account="b", blocked_retry_s=60.0, health=health)
    rig.lane.submit(batch_of(make_items(1)))
    wait_until(lambda: health.account_blocked("b"))
    rig.lane.abandon()
    wait_until(lambda: not health.account_blocked("b"))
    assert rig.reporter.results == []

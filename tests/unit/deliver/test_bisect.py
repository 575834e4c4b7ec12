"""Bisection of a batch RD rejects in its format: `bisect` alone (RD simulated by a predicate), then through a
real `Sender` against a scripted RD. Whatever the rejected events, every event ends in exactly one accepted
sub-batch or one dead letter, in offset order, within the request bound. The same for a batch RD's per-contact
limiter refuses (a `lead_limiter` 429): those events are dead-lettered `contact_rate_limited` with when RD
takes them again, and the account is never paused."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import cast

import httpx
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.config import Secret
from connector.deliver.attempt import Sender
from connector.deliver.bisect import bisect, contact_rate_limited
from connector.in_flight import Item, item_weight
from connector.ops.metrics import Metrics
from connector.ops.probe_server import Health
from connector.rd.bounded_http import Answer
from connector.rd.client import RdClient, StaticToken
from connector.rd.rate import RateGate
from connector.settle.dead_letters import MIN_LIMIT, fit_letter
from connector.settle.reporter import DeadLetter, Reporter
from tests.unit.deliver.test_attempt import WALL
from tests.unit.deliver.test_lanes import (
    POISON,
    POISON_ERRORS,
    FakeReporter,
    make_items,
    ok,
    rejecting_poison,
    uuid_of,
)
from tests.unit.ops.test_metrics import samples, value

REJECTED = Answer(400, httpx.Headers(), POISON_ERRORS)

#: (size of a batch, indices of the events RD rejects in it)
batches_with_rejections = st.integers(1, 64).flatmap(
    lambda n: st.tuples(st.just(n), st.sets(st.integers(0, n - 1), max_size=n).map(sorted))
)


class SimulatedRd:
    """Stands for the attempt: a sub-batch with a rejected event is bisected again, any other is accepted."""

    def __init__(self, items: list[Item], rejected: set[int]) -> None:
        self.items = items
        self.rejected = rejected
        self.metrics = Metrics()
        self.requests = 0
        self.outcomes: list[tuple[str, list[Item]]] = []  # ("accepted", sub-batch) or ("dead_letter", [item])
        self.letters: list[DeadLetter] = []

    def deliver(self, items: Sequence[Item]) -> None:
        self.requests += 1
        if any(item.offset in self.rejected for item in items):
            bisect(items, REJECTED, self.deliver, self.dead_letter, self.metrics)
        else:
            self.outcomes.append(("accepted", list(items)))

    def dead_letter(self, letter: DeadLetter) -> None:
        self.letters.append(letter)
        self.outcomes.append(("dead_letter", [item for item in self.items if item.offset == letter.offset]))


@settings(max_examples=300, deadline=None)
@given(batches_with_rejections)
def test_every_event_ends_in_one_accepted_sub_batch_or_one_dead_letter_in_order(
    case: tuple[int, list[int]],
) -> None:
    n, rejected = case
    items = make_items(n)
    rd = SimulatedRd(items, set(rejected))
    rd.deliver(items)

    settled = [item for _, sub in rd.outcomes for item in sub]
    assert settled == items  # each exactly once, in offset order
    assert [item.offset for kind, sub in rd.outcomes if kind == "dead_letter" for item in sub] == rejected
    for kind, sub in rd.outcomes:
        assert kind == "accepted" or len(sub) == 1
        assert kind == "dead_letter" or all(item.offset not in rejected for item in sub)
    assert rd.requests <= 1 + 2 * len(rejected) * math.ceil(math.log2(n))
    rejections = rd.requests - sum(kind == "accepted" for kind, _ in rd.outcomes)  # each one bisected once
    assert samples(rd.metrics).get(("rdc_batches_total", (("outcome", "split"),)), 0) == rejections


def test_a_single_rejected_event_is_dead_lettered_with_rds_answer() -> None:
    [item] = make_items(1, start=7)
    letters: list[DeadLetter] = []
    metrics = Metrics()
    sent: list[Sequence[Item]] = []

    bisect([item], REJECTED, sent.append, letters.append, metrics)

    assert sent == []
    [letter] = letters
    assert (letter.topic, letter.partition, letter.offset) == (item.topic, item.partition, item.offset)
    assert (letter.stage, letter.reason) == ("send", "rejected_by_rd")
    assert letter.detail == "400 " + POISON_ERRORS.decode()
    assert letter.log_detail == "400 poison:INVALID"  # RD's field and type, not its message
    assert (letter.key, letter.value) == (item.key, item.value)
    assert letter.headers == [*(item.headers or []), ("rdc.rd_event", item.event)]
    assert letter.weight == item_weight(item)
    assert value(metrics, "rdc_batches_total", outcome="split") == 1


@settings(max_examples=20, deadline=None)
@given(st.integers(2, 64))
def test_halves_are_sent_in_order_first_half_first(n: int) -> None:
    items = make_items(n)
    sent: list[list[Item]] = []
    bisect(items, REJECTED, lambda half: sent.append(list(half)), fail_on_dead_letter, Metrics())
    assert sent == [items[: n // 2], items[n // 2 :]]


@settings(max_examples=40, deadline=None)
@given(batches_with_rejections)
def test_a_sender_bisects_against_rd(case: tuple[int, list[int]]) -> None:
    """The same invariant through the real attempt and RdClient (RD rejects any body holding a poison event)."""
    n, rejected = case
    items = make_items(n, poison=rejected)
    seen: list[bytes] = []

    def rd(request: httpx.Request) -> httpx.Response:
        seen.append(request.read())
        return rejecting_poison(len(seen) - 1, request)

    client = RdClient("http://rd.test", StaticToken(Secret("tok")), httpx.Client(transport=httpx.MockTransport(rd)))
    reporter = FakeReporter()
    sender = Sender(
        0,
        client,
        cast(Reporter, reporter),
        backoff_initial_s=1.0,
        backoff_max_s=1.0,
        max_bytes=100_000,
        gate=RateGate(0),
        max_elapsed_s=0.0,
        metrics=Metrics(),
        health=Health(),
        sleep=fail_on_sleep,
    )
    sender.deliver(items, lambda: False)

    assert [letter.offset for letter in reporter.letters] == rejected
    assert reporter.published() == [item for item in items if item.offset not in rejected]
    for published, uuids, _ in reporter.results:
        assert uuids == [uuid_of(item.offset) for item in published]
        assert all(POISON not in item.event for item in published)
    assert sender.requests == len(seen) <= 1 + 2 * len(rejected) * math.ceil(math.log2(n))


def fail_on_dead_letter(letter: DeadLetter) -> None:
    raise AssertionError(f"dead letter for offset {letter.offset}: a batch of several is never dead-lettered")


def fail_on_sleep(seconds: float) -> None:
    raise AssertionError(f"slept {seconds} s: a rejection is never waited on")


LEAD_LIMITED = (
    b'{"error":"\'lead_limiter\' rate limit exceeded for 86400 second(s) period","max":120,"usage":121,'
    b'"remaining_time":43067}'
)
RETRY_AFTER = "2026-12-03T18:37:47Z"  # WALL (06:40:00Z) + 43,067 s


def limiting_poison(n: int, request: httpx.Request) -> httpx.Response:
    """RD's per-contact limiter: any body holding an event of a contact over its limit is refused whole."""
    if POISON in request.content:
        return httpx.Response(429, content=LEAD_LIMITED)  # no Retry-After: RD's app says remaining_time only
    return ok(request, batch_uuid=f"batch-{n}")


@settings(max_examples=60, deadline=None)
@given(batches_with_rejections)
def test_a_sender_isolates_the_events_of_contacts_over_rds_limit_without_pausing_the_account(
    case: tuple[int, list[int]],
) -> None:
    n, limited = case
    items = make_items(n, poison=limited)
    seen: list[bytes] = []

    def rd(request: httpx.Request) -> httpx.Response:
        seen.append(request.read())
        return limiting_poison(len(seen) - 1, request)

    client = RdClient("http://rd.test", StaticToken(Secret("tok")), httpx.Client(transport=httpx.MockTransport(rd)))
    reporter = FakeReporter()
    gate = RateGate(0)
    metrics = Metrics()
    sender = Sender(
        0,
        client,
        cast(Reporter, reporter),
        backoff_initial_s=1.0,
        backoff_max_s=1.0,
        max_bytes=100_000,
        gate=gate,
        max_elapsed_s=0.0,
        metrics=metrics,
        health=Health(),
        sleep=fail_on_sleep,  # nothing waits for a contact's 24 h window
        wall=lambda: WALL,
    )
    sender.deliver(items, lambda: False)

    assert [letter.offset for letter in reporter.letters] == limited
    for letter in reporter.letters:
        assert (letter.stage, letter.reason, letter.retry_after) == ("send", "contact_rate_limited", RETRY_AFTER)
        assert letter.detail == "429 " + LEAD_LIMITED.decode()  # RD's body, as for rejected_by_rd
        assert ("rdc.retry.after", RETRY_AFTER.encode()) in letter.rdc_headers()
    assert reporter.published() == [item for item in items if item.offset not in limited]  # in order
    assert gate.paused_for == 0  # the account's gate is not held for a contact
    k = len(limited)
    bound = max(1, k * (2 * math.ceil(math.log2(n)) + 1))  # k * (2 log2 n + 1), log2 n rounded up
    assert sender.requests == len(seen) <= min(bound, 1 + 2 * k * math.ceil(math.log2(n)))
    refused = sum(POISON in body for body in seen)
    assert value(metrics, "rdc_rd_throttled_total", kind="contact", account="default") == refused
    assert value(metrics, "rdc_rd_throttled_total", kind="account", account="default") == 0
    assert value(metrics, "rdc_rd_quota_reset_timestamp_seconds") == 0


def test_rdc_retry_after_stays_when_a_letter_is_cut_to_fit() -> None:
    [item] = make_items(1)
    big = item._replace(value=b"x" * 100_000)
    letter = contact_rate_limited(RETRY_AFTER)(big, Answer(429, httpx.Headers(), LEAD_LIMITED))
    fitted = fit_letter(letter, MIN_LIMIT)
    assert "value" in fitted.truncated
    assert ("rdc.retry.after", RETRY_AFTER.encode()) in fitted.headers
    assert ("rdc.error.reason", b"contact_rate_limited") in fitted.headers

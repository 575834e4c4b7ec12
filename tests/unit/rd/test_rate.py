"""RateGate: the shared token bucket and the 429 pause, on a fake clock (no sleeping) and under threads."""

from __future__ import annotations

import logging
import math
import sys
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.rd.rate import CLIMB_PER_S, CUT_TO_OBSERVED, MIN_PER_S, RateGate


class FakeClock:
    """A monotonic clock that only moves when the test advances it."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def test_unlimited_always_passes() -> None:
    clock = FakeClock()
    gate = RateGate(0, clock=clock)
    for _ in range(10_000):
        assert gate.reserve() == 0.0
    clock.advance(0.001)
    assert gate.reserve() == 0.0
    assert gate.paused_for == 0.0


def test_default_is_spacing_no_burst() -> None:
    clock = FakeClock()
    gate = RateGate(120, clock=clock)  # 2/s, one request every 0.5 s
    assert gate.reserve() == 0.0
    assert gate.reserve() == pytest.approx(0.5)
    # Asking again without time passing neither grants nor changes the answer.
    assert gate.reserve() == pytest.approx(0.5)
    clock.advance(0.25)
    assert gate.reserve() == pytest.approx(0.25)
    clock.advance(0.25)
    assert gate.reserve() == 0.0
    assert gate.reserve() == pytest.approx(0.5)


def test_default_burst_is_at_least_one() -> None:
    clock = FakeClock()
    gate = RateGate(30, clock=clock)  # 0.5/s -> burst max(1, 0) = 1
    assert gate.reserve() == 0.0
    assert gate.reserve() == pytest.approx(2.0)


def test_explicit_burst() -> None:
    clock = FakeClock()
    gate = RateGate(60, burst=5, clock=clock)
    assert [gate.reserve() for _ in range(5)] == [0.0] * 5
    assert gate.reserve() == pytest.approx(1.0)


def test_long_idle_refills_only_up_to_burst() -> None:
    clock = FakeClock()
    gate = RateGate(120, burst=2, clock=clock)
    assert gate.reserve() == 0.0
    assert gate.reserve() == 0.0
    clock.advance(3600.0)  # an hour idle earns 7200 tokens at 2/s, but the bucket holds 2
    assert gate.reserve() == 0.0
    assert gate.reserve() == 0.0
    assert gate.reserve() == pytest.approx(0.5)


def test_pause_holds_and_ends_with_one_request_not_a_burst() -> None:
    clock = FakeClock()
    gate = RateGate(120, burst=2, clock=clock)  # an idle bank of 2
    gate.pause(3)
    assert gate.reserve() == pytest.approx(3.0)
    assert gate.paused_for == pytest.approx(3.0)
    clock.advance(1.0)
    assert gate.reserve() == pytest.approx(2.0)
    assert gate.paused_for == pytest.approx(2.0)
    clock.advance(2.0)
    assert gate.paused_for == 0.0
    # The bank of 2 is gone: one request goes, then the spacing.
    assert gate.reserve() == 0.0
    assert gate.reserve() == pytest.approx(0.5)


def test_pause_on_unlimited_gate_still_holds() -> None:
    clock = FakeClock()
    gate = RateGate(0, clock=clock)
    gate.pause(2)
    assert gate.reserve() == pytest.approx(2.0)
    clock.advance(2.0)
    assert gate.reserve() == 0.0


def test_shorter_pause_does_not_shorten_a_longer_one() -> None:
    clock = FakeClock()
    gate = RateGate(120, clock=clock)
    gate.pause(10)
    gate.pause(1)
    assert gate.paused_for == pytest.approx(10.0)
    clock.advance(4.0)
    gate.pause(2)  # ends at 6 from start, before the running pause (10)
    assert gate.paused_for == pytest.approx(6.0)
    assert gate.reserve() == pytest.approx(6.0)
    gate.pause(8)  # ends at 12: extends
    assert gate.paused_for == pytest.approx(8.0)
    clock.advance(8.0)
    assert gate.paused_for == 0.0
    assert gate.reserve() == 0.0


def test_paused_for_never_negative() -> None:
    clock = FakeClock()
    gate = RateGate(120, clock=clock)
    assert gate.paused_for == 0.0
    gate.pause(1)
    clock.advance(5.0)
    assert gate.paused_for == 0.0
    gate.pause(0)
    assert gate.paused_for == 0.0
    assert gate.reserve() == 0.0


@settings(max_examples=300, deadline=None)
@given(
    per_minute=st.floats(min_value=1.0, max_value=6000.0),
    burst=st.one_of(st.none(), st.integers(min_value=1, max_value=20)),
    steps=st.lists(
        st.tuples(st.floats(min_value=0.0, max_value=5.0), st.integers(min_value=0, max_value=5)),
        max_size=60,
    ),
)
def test_granted_never_exceeds_burst_plus_rate_times_elapsed(
    per_minute: float, burst: int | None, steps: list[tuple[float, int]]
) -> None:
    clock = FakeClock()
    start = clock.now
    gate = RateGate(per_minute, burst=burst, clock=clock)
    capacity = burst if burst is not None else 1
    granted = 0
    for dt, asks in steps:
        clock.advance(dt)
        for _ in range(asks):
            wait = gate.reserve()
            assert wait >= 0.0
            if wait == 0.0:
                granted += 1
            else:
                # A wait is never longer than one token's worth of refill.
                assert wait <= 60.0 / per_minute + 1e-9
        elapsed = clock.now - start
        assert granted <= capacity + per_minute / 60.0 * elapsed + 1e-6


@settings(max_examples=100, deadline=None)
@given(
    per_minute=st.floats(min_value=1.0, max_value=6000.0),
    dts=st.lists(st.floats(min_value=0.0, max_value=2.0), min_size=1, max_size=40),
)
def test_waiting_the_answer_then_asking_again_is_granted(per_minute: float, dts: list[float]) -> None:
    clock = FakeClock()
    gate = RateGate(per_minute, clock=clock)
    for dt in dts:
        clock.advance(dt)
        wait = gate.reserve()
        if wait > 0.0:
            clock.advance(wait + 1e-9)
            assert gate.reserve() == 0.0


def _hammer(gate: RateGate, threads: int, calls: int) -> tuple[int, int]:
    """`threads` threads each call reserve() `calls` times; returns (granted, total calls)."""
    barrier = threading.Barrier(threads)
    results: list[list[float]] = [[] for _ in range(threads)]

    def work(i: int) -> None:
        barrier.wait()
        results[i].extend(gate.reserve() for _ in range(calls))

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible to provoke races
    try:
        for w in workers:
            w.start()
        for w in workers:
            w.join(timeout=30)
    finally:
        sys.setswitchinterval(interval)
    waits = [w for r in results for w in r]
    assert len(waits) == threads * calls
    return sum(1 for w in waits if w == 0.0), len(waits)


def test_threads_tiny_rate_grant_exactly_the_burst() -> None:
    gate = RateGate(0.001, burst=100)  # real clock; refill is ~1.7e-5 tokens/s, negligible here
    granted, total = _hammer(gate, threads=8, calls=200)
    assert total == 1600
    assert granted == 100


def test_threads_frozen_clock_grant_exactly_the_burst() -> None:
    clock = FakeClock()
    gate = RateGate(1_000_000, burst=500, clock=clock)  # huge rate, but no time passes
    granted, _ = _hammer(gate, threads=8, calls=250)
    assert granted == 500


def test_threads_huge_rate_real_clock_never_over_grant() -> None:
    per_minute = 60.0 * 10_000  # 10,000/s, burst 10,000
    start = time.monotonic()
    gate = RateGate(per_minute, burst=50)
    granted, total = _hammer(gate, threads=8, calls=2000)
    elapsed = time.monotonic() - start
    assert 50 <= granted <= total
    assert granted <= 50 + per_minute / 60.0 * elapsed + 1e-6


# --- adaptation: throttled() cuts, succeeded() climbs, set_share() sets the ceiling --------------------------


def _send(gate: RateGate, clock: FakeClock, count: int) -> list[float]:
    """`count` requests as a lane sends them: wait what reserve() says, send, succeed. Returns grant times."""
    times = []
    for _ in range(count):
        while (wait := gate.reserve()) > 0:
            clock.advance(wait + 1e-9)
        times.append(clock.now)
        gate.succeeded()
    return times


def test_a_429_cuts_to_just_under_what_rd_took_in_the_last_second() -> None:
    clock = FakeClock()
    gate = RateGate(600, clock=clock)  # 10/s
    assert gate.rate_per_s == pytest.approx(10.0)
    _send(gate, clock, 5)  # 0.0 .. 0.4 s: RD took 5 in its 1 s window
    clock.advance(0.1)
    assert gate.reserve() == 0.0  # the 6th is answered 429
    gate.throttled()
    assert gate.rate_per_s == pytest.approx(CUT_TO_OBSERVED * 5.0)


def test_a_429_right_after_a_pause_halves_the_rate() -> None:
    clock = FakeClock()
    gate = RateGate(600, clock=clock)
    _send(gate, clock, 5)
    gate.pause(0.5)
    clock.advance(0.5)
    assert gate.reserve() == 0.0
    gate.throttled()  # the last second is no fair sample: a pause ended inside it
    assert gate.rate_per_s == pytest.approx(5.0)


def test_a_429_without_successes_halves_the_rate() -> None:
    clock = FakeClock()
    gate = RateGate(120, clock=clock)
    gate.throttled()
    assert gate.rate_per_s == pytest.approx(1.0)


def test_429s_of_requests_sent_before_the_cut_cut_once() -> None:
    clock = FakeClock()
    gate = RateGate(600, clock=clock)
    gate.throttled()
    gate.throttled()  # another lane's answer to a request granted before the cut
    gate.throttled()
    assert gate.rate_per_s == pytest.approx(5.0)
    assert gate.reserve() == 0.0  # a request granted after the cut...
    gate.throttled()  # ...answered 429: cut again
    assert gate.rate_per_s == pytest.approx(2.5)


def test_the_rate_never_goes_below_one_a_minute() -> None:
    clock = FakeClock()
    gate = RateGate(60, clock=clock)
    for _ in range(50):
        while (wait := gate.reserve()) > 0:  # a request granted after the previous cut...
            clock.advance(wait + 1e-9)
        gate.throttled()  # ...answered 429
    assert gate.rate_per_s == pytest.approx(MIN_PER_S)


def test_successes_climb_back_additively_to_the_ceiling_and_no_further() -> None:
    clock = FakeClock()
    gate = RateGate(600, clock=clock)
    gate.throttled()  # 5/s
    start = clock.now
    _send(gate, clock, 50)  # ~10 s at ~5/s
    elapsed = clock.now - start
    # CLIMB_PER_S of the ceiling (10/s) per second of successes: +0.05/s each second, so ~+0.5 in ~10 s.
    assert gate.rate_per_s == pytest.approx(5.0 + CLIMB_PER_S * 10.0 * elapsed, rel=0.05)
    _send(gate, clock, 3000)
    assert gate.rate_per_s == 10.0


def test_succeeded_at_the_ceiling_changes_nothing() -> None:
    clock = FakeClock()
    gate = RateGate(120, clock=clock)
    for _ in range(100):
        gate.succeeded()
    assert gate.rate_per_s == pytest.approx(2.0)


def test_after_a_pause_the_first_request_goes_then_the_cut_rate_spacing() -> None:
    clock = FakeClock()
    gate = RateGate(600, burst=10, clock=clock)
    assert [gate.reserve() for _ in range(10)] == [0.0] * 10
    gate.throttled()  # no success seen: halves, 5/s
    gate.pause(30)
    clock.advance(30)
    assert gate.reserve() == 0.0
    assert gate.reserve() == pytest.approx(0.2)


def test_a_short_pause_keeps_the_spacing() -> None:
    clock = FakeClock()
    gate = RateGate(120, clock=clock)  # 0.5 s apart
    assert gate.reserve() == 0.0
    gate.pause(0.1)
    clock.advance(0.1)
    assert gate.reserve() == pytest.approx(0.4)  # the pause does not hand out a token early


def test_pause_returns_the_seconds_it_adds() -> None:
    clock = FakeClock()
    gate = RateGate(120, clock=clock)
    assert gate.pause(10) == pytest.approx(10.0)
    assert gate.pause(4) == 0.0  # inside the running pause
    clock.advance(2)
    assert gate.pause(10) == pytest.approx(2.0)  # 12 from start, the running one ended at 10
    assert gate.pause(-5) == 0.0


def test_set_share_sets_the_ceiling() -> None:
    clock = FakeClock()
    gate = RateGate(600, clock=clock)
    gate.set_share(0.25)
    assert gate.ceiling_per_s == pytest.approx(2.5)
    assert gate.rate_per_s == pytest.approx(2.5)  # at the old ceiling: follows the new one
    assert gate.reserve() == 0.0
    assert gate.reserve() == pytest.approx(0.4)
    gate.set_share(1.0)
    assert gate.rate_per_s == pytest.approx(10.0)


def test_set_share_keeps_a_cut_rate_under_the_new_ceiling() -> None:
    clock = FakeClock()
    gate = RateGate(600, clock=clock)
    gate.throttled()  # 5/s
    gate.set_share(0.8)  # ceiling 8: the cut rate stays, and climbs to 8 at most
    assert gate.rate_per_s == pytest.approx(5.0)
    _send(gate, clock, 5000)
    assert gate.rate_per_s == pytest.approx(8.0)
    gate.set_share(0.2)  # ceiling 2: the rate comes down to it
    assert gate.rate_per_s == pytest.approx(2.0)


@pytest.mark.parametrize("fraction", [0.0, -0.5, 1.01, float("nan"), float("inf")])
def test_set_share_refuses_a_fraction_outside_0_1(fraction: float) -> None:
    gate = RateGate(600, clock=FakeClock())
    with pytest.raises(ValueError, match="share"):
        gate.set_share(fraction)
    assert gate.rate_per_s == pytest.approx(10.0)


def test_unlimited_learns_a_rate_from_a_429_then_climbs_past_it() -> None:
    clock = FakeClock()
    gate = RateGate(0, clock=clock)
    assert gate.rate_per_s == math.inf
    gate.set_share(0.5)  # no effect on an unlimited budget
    assert gate.rate_per_s == math.inf and gate.ceiling_per_s == math.inf
    for _ in range(40):  # 40 in 0.4 s, unhindered
        assert gate.reserve() == 0.0
        gate.succeeded()
        clock.advance(0.01)
    clock.advance(0.6)
    gate.throttled()
    assert gate.rate_per_s == pytest.approx(CUT_TO_OBSERVED * 40)
    _send(gate, clock, 2000)
    assert gate.rate_per_s > CUT_TO_OBSERVED * 40 * 1.1  # climbs, with no ceiling


def test_rate_changes_are_logged_cuts_each_recoveries_by_tenths(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    gate = RateGate(600, clock=clock)
    with caplog.at_level(logging.INFO, logger="connector.rd.rate"):
        gate.throttled()
        _send(gate, clock, 5000)
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == "rate_changed account=default from_per_s=10.000 to_per_s=5.000 reason=429"
    recovered = [line for line in lines if line.endswith("reason=recovered")]
    # 5/s to 10/s: crossing 6, 7, 8, 9 and reaching 10: five lines, not one per request.
    assert len(recovered) == 5
    assert recovered[-1].split()[3] == "to_per_s=10.000"


@settings(max_examples=300, deadline=None)
@given(
    per_minute=st.sampled_from([0.0, 6.0, 60.0, 120.0, 600.0, 6000.0]),
    ops=st.lists(
        st.tuples(
            st.sampled_from(["reserve", "reserve", "reserve", "pause", "throttled", "succeeded", "share"]),
            st.floats(min_value=0.0, max_value=3.0),
        ),
        max_size=120,
    ),
)
def test_no_window_ever_holds_more_than_rate_times_its_length_plus_one(
    per_minute: float, ops: list[tuple[str, float]]
) -> None:
    clock = FakeClock()
    gate = RateGate(per_minute, clock=clock)
    granted: list[float] = []
    rates: list[tuple[float, float]] = [(clock.now, gate.rate_per_s)]  # (time, rate in force from then)
    for op, x in ops:
        if op == "reserve":
            clock.advance(x)
            if gate.reserve() == 0.0:
                granted.append(clock.now)
        elif op == "pause":
            gate.pause(x)
        elif op == "throttled":
            gate.throttled()
        elif op == "succeeded":
            gate.succeeded()
        else:
            gate.set_share(max(0.05, x / 3.0))
        rates.append((clock.now, gate.rate_per_s))
    for i, start in enumerate(granted):
        since = max(t for t, _ in rates if t <= start)  # the rate in force at `start` was set then
        for j in range(i + 1, len(granted)):
            end = granted[j]
            in_force = max(r for t, r in rates if since <= t <= end)
            if math.isinf(in_force):
                continue
            assert j - i + 1 <= in_force * (end - start) + 1 + 1e-6

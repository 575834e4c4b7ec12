"""RateGate: the shared token bucket and the 429 pause, on a fake clock (no sleeping) and under threads."""

from __future__ import annotations

import sys
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.rd.rate import RateGate


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


def test_default_burst_then_wait_then_pass() -> None:
    clock = FakeClock()
    gate = RateGate(120, clock=clock)  # 2/s, default burst 2
    assert gate.reserve() == 0.0
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
    gate = RateGate(120, clock=clock)
    assert gate.reserve() == 0.0
    assert gate.reserve() == 0.0
    clock.advance(3600.0)  # an hour idle earns 7200 tokens at 2/s, but the bucket holds 2
    assert gate.reserve() == 0.0
    assert gate.reserve() == 0.0
    assert gate.reserve() == pytest.approx(0.5)


def test_pause_holds_without_consuming_a_token() -> None:
    clock = FakeClock()
    gate = RateGate(120, clock=clock)
    gate.pause(3)
    assert gate.reserve() == pytest.approx(3.0)
    assert gate.paused_for == pytest.approx(3.0)
    clock.advance(1.0)
    assert gate.reserve() == pytest.approx(2.0)
    assert gate.paused_for == pytest.approx(2.0)
    clock.advance(2.0)
    assert gate.paused_for == 0.0
    # The full burst is still there: the pause consumed nothing.
    assert gate.reserve() == 0.0
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
    capacity = burst if burst is not None else max(1, int(per_minute / 60.0))
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

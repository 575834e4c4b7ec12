"""Backpressure, registry holds and the one rule for whether a partition fetches (fake consumer, no broker)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.consume.backpressure import Backpressure
from connector.consume.holds import RegistryHolds
from connector.consume.partitions import Partitions
from connector.partition_keys import TopicPartitionKey
from tests.unit.consume.fake_consumer import FakeConsumer, no_wake

A0, A1, B0 = ("a", 0), ("a", 1), ("b", 0)
LANE = {A0: 0, A1: 1, B0: 0}


def _parts(consumer: FakeConsumer, owned: list[TopicPartitionKey]) -> Partitions:
    partitions = Partitions(consumer, LANE.__getitem__, wake=no_wake)
    partitions.add(owned)
    return partitions


def test_a_lane_over_its_share_pauses_its_partitions_and_resumes_them_below_half() -> None:
    consumer = FakeConsumer()
    partitions = _parts(consumer, [A0, A1, B0])
    pressure = Backpressure(2, 2000, partitions)  # a share of 1000 bytes per lane
    pressure.buffered[0] = 999
    pressure.apply()
    assert consumer.calls == []
    pressure.buffered[0] = 1000
    pressure.apply()
    assert consumer.calls == [("pause", [A0, B0])]  # lane 0's partitions only
    assert not partitions.fetchable(A0) and partitions.fetchable(A1)
    pressure.buffered[0] = 500  # not below half yet
    pressure.apply()
    assert consumer.paused == {A0, B0}
    pressure.buffered[0] = 499
    pressure.apply()
    assert consumer.paused == set() and consumer.calls[-1] == ("resume", [A0, B0])
    assert not pressure.all_paused()


def test_a_lane_that_resumes_leaves_a_held_and_a_scanning_partition_paused() -> None:
    consumer = FakeConsumer()
    partitions = _parts(consumer, [A0, B0])
    pressure = Backpressure(1, 1000, partitions)
    pressure.buffered[0] = 1000
    pressure.apply()
    assert pressure.all_paused()
    RegistryHolds(consumer, partitions).hold(A0, 7, now=0.0, error="down")
    partitions.owned[B0].scanning = True
    pressure.buffered[0] = 0
    pressure.apply()
    assert consumer.paused == {A0, B0}
    assert ("resume", []) not in consumer.calls  # nothing to resume: no empty call either


def test_a_hold_pauses_and_seeks_back_to_the_record_and_resumes_after_the_retry_interval() -> None:
    consumer = FakeConsumer()
    partitions = _parts(consumer, [A0])
    partitions.owned[A0].at_end = True
    holds = RegistryHolds(consumer, partitions, retry_s=2.0)
    holds.hold(A0, 41, now=10.0, error="registry down")
    assert consumer.paused == {A0} and consumer.seeks == [(A0, 41)]
    assert partitions.owned[A0].held_until == 12.0 and not partitions.owned[A0].at_end
    assert partitions.held() == [A0]
    holds.release_due(11.999)
    assert consumer.paused == {A0}
    holds.release_due(12.0)
    assert consumer.paused == set() and partitions.held() == []


def test_a_released_hold_in_a_paused_lane_waits_for_the_lane() -> None:
    consumer = FakeConsumer()
    partitions = _parts(consumer, [A0])
    pressure = Backpressure(1, 1000, partitions)
    holds = RegistryHolds(consumer, partitions, retry_s=1.0)
    holds.hold(A0, 3, now=0.0, error="down")
    pressure.buffered[0] = 1000
    pressure.apply()
    holds.release_due(5.0)
    assert consumer.paused == {A0}  # its lane still holds it
    pressure.buffered[0] = 0
    pressure.apply()
    assert consumer.paused == set()


def test_a_hold_for_a_partition_no_longer_owned_does_nothing() -> None:
    consumer = FakeConsumer()
    holds = RegistryHolds(consumer, _parts(consumer, []))
    holds.hold(A0, 3, now=0.0, error="down")
    assert consumer.calls == [] and consumer.seeks == []


def test_caught_up_means_every_partition_of_the_lane_read_to_its_end() -> None:
    partitions = _parts(FakeConsumer(), [A0, A1, B0])
    partitions.owned[A0].at_end = True
    assert not partitions.caught_up(0)  # B0 is on lane 0 too
    partitions.owned[B0].at_end = True
    assert partitions.caught_up(0) and not partitions.caught_up(1)
    partitions.forget([A1])
    assert partitions.caught_up(1)  # no partition left on it


_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("buffer"), st.integers(0, 1), st.integers(-600, 1200)),
        st.tuples(st.just("hold"), st.sampled_from([A0, A1, B0]), st.integers(0, 3)),
        st.tuples(st.just("scan"), st.sampled_from([A0, A1, B0]), st.booleans()),
        st.tuples(st.just("tick"), st.integers(1, 3), st.just(0)),
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(_OPS)
def test_a_partition_fetches_exactly_when_nothing_holds_it(ops: list[tuple[str, Any, Any]]) -> None:
    """Whatever the order of buffer changes, holds, scans and releases: after the loop's release steps, the
    consumer has paused exactly the owned partitions that something holds (never fetching a held one, never
    leaving a free one paused)."""
    consumer = FakeConsumer()
    partitions = _parts(consumer, [A0, A1, B0])
    pressure = Backpressure(2, 2000, partitions)
    holds = RegistryHolds(consumer, partitions, retry_s=2.0)
    now = 0.0
    for op, a, b in ops:
        if op == "buffer":
            pressure.buffered[a] = max(0, pressure.buffered[a] + b)
        elif op == "hold":
            holds.hold(a, 0, now, "down")
        elif op == "scan":
            state = partitions.owned[a]
            if b:
                state.scanning = True
                partitions.pause([a])
            elif state.scanning:
                state.scanning = False
                partitions.resume([a])
        else:
            now += float(a)
        holds.release_due(now)
        pressure.apply()
        for tp in partitions:
            lane_full = pressure.buffered[LANE[tp]] >= 1000
            lane_free = pressure.buffered[LANE[tp]] < 500
            assert (tp in consumer.paused) is not partitions.fetchable(tp), (tp, consumer.paused)
            if lane_full:
                assert tp in consumer.paused
            if not partitions.fetchable(tp):
                continue
            assert lane_free or LANE[tp] not in partitions.paused_lanes


@pytest.mark.parametrize("owned", [[], [A0], [A0, A1, B0]])
def test_resume_only_touches_what_is_owned(owned: list[TopicPartitionKey]) -> None:
    consumer = FakeConsumer()
    partitions = _parts(consumer, owned)
    partitions.resume([A0, A1, B0])
    assert consumer.calls == ([("resume", owned)] if owned else [])

"""Commit watermarks: examples for every rule, then a property against a naive reference model."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector.settle.offsets import OffsetTracker, TopicPartitionKey

PROPERTY_SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

TP: TopicPartitionKey = ("orders", 0)
TP1: TopicPartitionKey = ("orders", 1)
OTHER: TopicPartitionKey = ("carts", 0)


def tracker_with(tp: TopicPartitionKey, offsets: list[int]) -> OffsetTracker:
    tracker = OffsetTracker()
    for offset in offsets:
        tracker.track(tp, offset)
    return tracker


# --------------------------------------------------------------------------------------------- basics


def test_empty_tracker() -> None:
    tracker = OffsetTracker()
    assert tracker.committable() == {}
    assert tracker.unsettled() == 0
    assert tracker.unsettled(TP) == 0
    assert tracker.partitions() == []


def test_tracked_but_unsettled_is_not_committable() -> None:
    tracker = tracker_with(TP, [0, 1, 2])
    assert tracker.committable() == {}
    assert tracker.unsettled() == 3
    assert tracker.partitions() == [TP]


def test_contiguous_settle_moves_watermark_one_past() -> None:
    tracker = tracker_with(TP, [0, 1, 2, 3])
    tracker.settle(TP, [0])
    assert tracker.committable() == {TP: 1}
    tracker.settle(TP, [1, 2])
    assert tracker.committable() == {TP: 3}
    tracker.settle(TP, [3])
    assert tracker.committable() == {TP: 4}
    assert tracker.unsettled(TP) == 0


def test_watermark_starts_at_first_tracked_offset_not_zero() -> None:
    tracker = tracker_with(TP, [100, 101])
    tracker.settle(TP, [100])
    assert tracker.committable() == {TP: 101}


def test_out_of_order_settle_holds_watermark_until_gap_fills() -> None:
    tracker = tracker_with(TP, [0, 1, 2, 3, 4])
    tracker.settle(TP, [2, 3])
    assert tracker.committable() == {}
    assert tracker.unsettled(TP) == 5
    tracker.settle(TP, [4])
    assert tracker.committable() == {}
    tracker.settle(TP, [1])
    assert tracker.committable() == {}
    tracker.settle(TP, [0])  # the gap fills: everything above it is released at once
    assert tracker.committable() == {TP: 5}
    assert tracker.unsettled(TP) == 0


def test_out_of_order_settle_releases_only_contiguous_prefix() -> None:
    tracker = tracker_with(TP, [0, 1, 2, 3, 4])
    tracker.settle(TP, [1, 3])
    tracker.settle(TP, [0])
    assert tracker.committable() == {TP: 2}
    assert tracker.unsettled(TP) == 3  # 2, 3 (settled, above the hole), 4
    tracker.settle(TP, [2])
    assert tracker.committable() == {TP: 4}
    assert tracker.unsettled(TP) == 1


def test_settle_offsets_given_in_reverse_in_one_call() -> None:
    tracker = tracker_with(TP, [0, 1, 2])
    tracker.settle(TP, [2, 1, 0])
    assert tracker.committable() == {TP: 3}


def test_settle_accepts_any_iterable() -> None:
    tracker = tracker_with(TP, [0, 1, 2])
    tracker.settle(TP, (o for o in (1, 0)))
    tracker.settle(TP, {2})
    assert tracker.committable() == {TP: 3}


def test_empty_settle_changes_nothing() -> None:
    tracker = tracker_with(TP, [0, 1])
    tracker.settle(TP, [])
    assert tracker.committable() == {}
    assert tracker.unsettled() == 2


def test_gaps_in_offsets_commit_last_plus_one() -> None:
    tracker = tracker_with(TP, [0, 1, 5, 9])
    tracker.settle(TP, [0, 1])
    assert tracker.committable() == {TP: 2}
    tracker.settle(TP, [5])
    assert tracker.committable() == {TP: 6}
    tracker.settle(TP, [9])
    assert tracker.committable() == {TP: 10}
    assert tracker.unsettled() == 0


def test_gaps_out_of_order() -> None:
    tracker = tracker_with(TP, [0, 1, 5, 9])
    tracker.settle(TP, [9, 5])
    assert tracker.committable() == {}
    tracker.settle(TP, [1])
    assert tracker.committable() == {}
    tracker.settle(TP, [0])
    assert tracker.committable() == {TP: 10}


def test_tracking_after_drained_partition_continues_watermark() -> None:
    tracker = tracker_with(TP, [0, 1])
    tracker.settle(TP, [0, 1])
    assert tracker.committable() == {TP: 2}
    tracker.track(TP, 7)
    assert tracker.committable() == {TP: 2}  # unchanged until 7 settles
    tracker.settle(TP, [7])
    assert tracker.committable() == {TP: 8}


def test_resettling_an_offset_is_harmless() -> None:
    tracker = tracker_with(TP, [0, 1, 2])
    tracker.settle(TP, [1])
    tracker.settle(TP, [1])
    tracker.settle(TP, [0])
    tracker.settle(TP, [0, 1])  # already under the watermark
    assert tracker.committable() == {TP: 2}
    assert tracker.unsettled(TP) == 1
    tracker.settle(TP, [2])
    assert tracker.committable() == {TP: 3}


# --------------------------------------------------------------------------------------------- committable


def test_committable_returns_only_moved_partitions() -> None:
    tracker = OffsetTracker()
    for tp in (TP, TP1, OTHER):
        for offset in range(3):
            tracker.track(tp, offset)
    tracker.settle(TP, [0])
    tracker.settle(OTHER, [0, 1])
    assert tracker.committable() == {TP: 1, OTHER: 2}
    tracker.mark_committed({TP: 1, OTHER: 2})
    assert tracker.committable() == {}
    tracker.settle(TP1, [0])
    assert tracker.committable() == {TP1: 1}
    tracker.mark_committed({TP1: 1})
    tracker.settle(TP, [1])
    assert tracker.committable() == {TP: 2}


def test_committable_is_repeated_until_marked() -> None:
    tracker = tracker_with(TP, [0, 1])
    tracker.settle(TP, [0])
    assert tracker.committable() == {TP: 1}
    assert tracker.committable() == {TP: 1}  # calling does not consume it
    tracker.mark_committed({TP: 1})
    assert tracker.committable() == {}


def test_failed_commit_is_returned_again() -> None:
    tracker = tracker_with(TP, [0, 1, 2])
    tracker.settle(TP, [0])
    positions = tracker.committable()
    assert positions == {TP: 1}
    # the commit failed: not marked
    assert tracker.committable() == {TP: 1}
    tracker.settle(TP, [1])
    assert tracker.committable() == {TP: 2}  # and the retry carries the newer watermark
    tracker.mark_committed({TP: 2})
    assert tracker.committable() == {}


def test_stale_mark_after_watermark_moved_keeps_it_committable() -> None:
    tracker = tracker_with(TP, [0, 1, 2])
    tracker.settle(TP, [0])
    positions = tracker.committable()
    tracker.settle(TP, [1])  # moves while the commit is in flight
    tracker.mark_committed(positions)
    assert tracker.committable() == {TP: 2}


def test_partial_commit_success() -> None:
    tracker = OffsetTracker()
    for tp in (TP, TP1):
        tracker.track(tp, 0)
        tracker.settle(tp, [0])
    assert tracker.committable() == {TP: 1, TP1: 1}
    tracker.mark_committed({TP: 1})  # TP1's commit failed
    assert tracker.committable() == {TP1: 1}


def test_mark_committed_for_unknown_partition_is_ignored() -> None:
    tracker = tracker_with(TP, [0])
    tracker.mark_committed({OTHER: 5})
    assert tracker.partitions() == [TP]
    tracker.settle(TP, [0])
    assert tracker.committable() == {TP: 1}


# --------------------------------------------------------------------------------------------- forget


def test_forget_makes_later_settle_a_no_op() -> None:
    tracker = tracker_with(TP, [0, 1, 2])
    tracker.track(TP1, 0)
    tracker.forget([TP])
    assert tracker.partitions() == [TP1]
    tracker.settle(TP, [0, 1, 2])
    assert tracker.committable() == {}
    assert tracker.partitions() == [TP1]  # settle does not resurrect the partition
    assert tracker.unsettled(TP) == 0
    assert tracker.unsettled() == 1


def test_forget_drops_uncommitted_watermark() -> None:
    tracker = tracker_with(TP, [0, 1])
    tracker.settle(TP, [0])
    assert tracker.committable() == {TP: 1}
    tracker.forget([TP])
    assert tracker.committable() == {}


def test_forget_unknown_partition_is_harmless() -> None:
    tracker = tracker_with(TP, [0])
    tracker.forget([OTHER, OTHER])
    tracker.forget([])
    assert tracker.partitions() == [TP]


def test_partition_coming_back_starts_fresh() -> None:
    tracker = tracker_with(TP, [10, 11, 12])
    tracker.settle(TP, [10])
    tracker.mark_committed(tracker.committable())
    tracker.forget([TP])
    # Reassigned: consumption restarts at the committed position 11, so 11 may be tracked again.
    tracker.track(TP, 11)
    tracker.track(TP, 12)
    assert tracker.committable() == {}
    assert tracker.unsettled(TP) == 2
    tracker.settle(TP, [11])
    assert tracker.committable() == {TP: 12}  # reported again: the forgotten commit record is gone


def test_late_settlement_after_partition_came_back_counts() -> None:
    tracker = tracker_with(TP, [0, 1, 2])
    tracker.forget([TP])
    tracker.track(TP, 0)
    tracker.track(TP, 1)
    tracker.settle(TP, [1])  # late answer from before the rebalance: still true
    tracker.settle(TP, [0])
    assert tracker.committable() == {TP: 2}


# --------------------------------------------------------------------------------------------- track errors


@pytest.mark.parametrize("bad", [4, 3, 0, -1])
def test_track_non_increasing_offset_raises(bad: int) -> None:
    tracker = tracker_with(TP, [3, 4])
    with pytest.raises(ValueError):
        tracker.track(TP, bad)
    assert tracker.unsettled(TP) == 2
    tracker.settle(TP, [3, 4])
    assert tracker.committable() == {TP: 5}


def test_track_order_is_per_partition() -> None:
    tracker = tracker_with(TP, [10])
    tracker.track(TP1, 0)  # a lower offset on another partition is fine
    tracker.track(OTHER, 5)
    assert tracker.unsettled() == 3


def test_track_below_watermark_after_drain_is_not_rejected() -> None:
    """Documents current behaviour: the increase check covers pending offsets only."""
    tracker = tracker_with(TP, [5])
    tracker.settle(TP, [5])
    tracker.track(TP, 3)
    tracker.settle(TP, [3])
    assert tracker.committable() == {TP: 4}


# --------------------------------------------------------------------------------------------- partitions


def test_partitions_are_independent() -> None:
    tracker = OffsetTracker()
    for offset in (0, 1, 2):
        tracker.track(TP, offset)
    for offset in (100, 200):
        tracker.track(TP1, offset)
    tracker.track(OTHER, 7)
    tracker.settle(TP1, [100])
    tracker.settle(TP, [1, 2])
    assert tracker.committable() == {TP1: 101}
    tracker.settle(OTHER, [0, 1, 2])  # offsets of another partition do not settle TP's
    assert tracker.committable() == {TP1: 101}
    tracker.settle(TP, [0])
    assert tracker.committable() == {TP: 3, TP1: 101}
    assert tracker.unsettled(TP) == 0
    assert tracker.unsettled(TP1) == 1
    assert tracker.unsettled(OTHER) == 1
    assert tracker.unsettled() == 2
    assert sorted(tracker.partitions()) == sorted([TP, TP1, OTHER])


def test_unsettled_counts() -> None:
    tracker = OffsetTracker()
    assert tracker.unsettled() == 0
    for offset in range(5):
        tracker.track(TP, offset)
    tracker.track(TP1, 0)
    assert tracker.unsettled() == 6
    assert tracker.unsettled(TP) == 5
    assert tracker.unsettled(TP1) == 1
    assert tracker.unsettled(OTHER) == 0
    tracker.settle(TP, [4])  # settled but above the watermark: still counted
    assert tracker.unsettled(TP) == 5
    tracker.settle(TP, [0, 1])
    assert tracker.unsettled(TP) == 3
    assert tracker.unsettled() == 4
    tracker.forget([TP])
    assert tracker.unsettled() == 1


# --------------------------------------------------------------------------------------------- properties


def reference_watermark(tracked: list[int], settled: set[int]) -> int | None:
    """1 + the largest tracked offset o such that every tracked offset <= o is settled (None if none)."""
    best: int | None = None
    for offset in sorted(tracked):
        if offset not in settled:
            break
        best = offset + 1
    return best


@st.composite
def partition_offsets(draw: st.DrawFn) -> dict[TopicPartitionKey, list[int]]:
    """Several partitions, each with a strictly increasing offset sequence (with random gaps)."""
    count = draw(st.integers(min_value=1, max_value=3))
    result: dict[TopicPartitionKey, list[int]] = {}
    for index in range(count):
        tp: TopicPartitionKey = (draw(st.sampled_from(["orders", "carts"])), index)
        start = draw(st.integers(min_value=0, max_value=1000))
        steps = draw(st.lists(st.integers(min_value=1, max_value=4), max_size=10))
        offsets = [start]
        for step in steps:
            offsets.append(offsets[-1] + step)
        result[tp] = offsets
    return result


@PROPERTY_SETTINGS
@given(offsets=partition_offsets(), data=st.data())
def test_watermark_matches_reference_model(offsets: dict[TopicPartitionKey, list[int]], data: st.DataObject) -> None:
    tracker = OffsetTracker()
    tracked: dict[TopicPartitionKey, list[int]] = {tp: [] for tp in offsets}
    settled: dict[TopicPartitionKey, set[int]] = {tp: set() for tp in offsets}
    last_seen: dict[TopicPartitionKey, int] = {}  # last watermark observed, for monotonicity
    committed: dict[TopicPartitionKey, int] = {}  # what the model marked as committed

    def check() -> None:
        positions = tracker.committable()
        for tp in offsets:
            expected = reference_watermark(tracked[tp], settled[tp])
            pending = len(tracked[tp]) - (0 if expected is None else sum(1 for o in tracked[tp] if o < expected))
            assert tracker.unsettled(tp) == pending
            if expected is None:
                assert tp not in positions
                continue
            if committed.get(tp) == expected:
                assert tp not in positions  # not moved since it was marked
            else:
                assert positions.get(tp) == expected
            previous = last_seen.get(tp)
            assert previous is None or expected >= previous  # monotonic
            last_seen[tp] = expected
        assert set(positions) <= set(offsets)
        assert tracker.unsettled() == sum(tracker.unsettled(tp) for tp in offsets)
        # commit some of them; the rest "fail" and must be reported again
        if positions:
            for tp in data.draw(st.lists(st.sampled_from(sorted(positions)), unique=True)):
                tracker.mark_committed({tp: positions[tp]})
                committed[tp] = positions[tp]

    while True:
        trackable = [tp for tp in offsets if len(tracked[tp]) < len(offsets[tp])]
        settleable = {tp: [o for o in tracked[tp] if o not in settled[tp]] for tp in offsets}
        choices: list[str] = []
        if trackable:
            choices.append("track")
        if any(settleable.values()):
            choices.append("settle")
        if not choices:
            break
        action = data.draw(st.sampled_from(choices))
        if action == "track":
            tp = data.draw(st.sampled_from(trackable))
            offset = offsets[tp][len(tracked[tp])]
            tracker.track(tp, offset)
            tracked[tp].append(offset)
        else:
            tp = data.draw(st.sampled_from([tp for tp, open_ in settleable.items() if open_]))
            batch = data.draw(st.lists(st.sampled_from(settleable[tp]), min_size=1, max_size=4))
            # sometimes re-settle an offset that is already settled (a duplicated answer)
            resettle: bool = data.draw(st.booleans())
            if settled[tp] and resettle:
                batch.append(data.draw(st.sampled_from(sorted(settled[tp]))))
            tracker.settle(tp, data.draw(st.permutations(batch)))
            settled[tp].update(batch)
        check()

    for tp, sequence in offsets.items():
        assert reference_watermark(tracked[tp], settled[tp]) == sequence[-1] + 1
        assert last_seen[tp] == sequence[-1] + 1
        assert tracker.unsettled(tp) == 0
    assert tracker.unsettled() == 0
    expected_final = {tp: sequence[-1] + 1 for tp, sequence in offsets.items() if committed.get(tp) != sequence[-1] + 1}
    assert tracker.committable() == expected_final


@PROPERTY_SETTINGS
@given(
    offsets=st.lists(st.integers(min_value=0, max_value=10_000), min_size=1, max_size=30, unique=True).map(sorted),
    data=st.data(),
)
def test_any_settle_permutation_ends_at_last_plus_one(offsets: list[int], data: st.DataObject) -> None:
    tracker = tracker_with(TP, offsets)
    order = data.draw(st.permutations(offsets))
    settled: set[int] = set()
    previous: int | None = None
    for offset in order:
        tracker.settle(TP, [offset])
        settled.add(offset)
        got = tracker.committable().get(TP)
        expected = reference_watermark(offsets, settled)
        assert got == expected
        if previous is not None:
            assert got is not None and got >= previous
        previous = got
    assert tracker.committable() == {TP: offsets[-1] + 1}
    assert tracker.unsettled() == 0


@PROPERTY_SETTINGS
@given(
    offsets=st.lists(st.integers(min_value=0, max_value=100), min_size=1, max_size=20, unique=True).map(sorted),
    data=st.data(),
)
def test_settlements_after_forget_are_ignored(offsets: list[int], data: st.DataObject) -> None:
    tracker = tracker_with(TP, offsets)
    tracker.track(OTHER, 0)
    before = data.draw(st.lists(st.sampled_from(offsets), unique=True))
    tracker.settle(TP, before)
    tracker.forget([TP])
    tracker.settle(TP, data.draw(st.permutations(offsets)))
    assert tracker.partitions() == [OTHER]
    assert tracker.committable() == {}
    assert tracker.unsettled() == 1

"""Byte-exact batch packing: every closing rule by example, then properties over arbitrary add/due/flush runs."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector.deliver.batch import Batch, Batcher
from connector.in_flight import Item

PROPERTY_SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def make_item(length: int, offset: int = 0, *, fill: bytes = b"x") -> Item:
    """An item whose encoded event is exactly `length` bytes."""
    return Item(
        topic="orders",
        partition=0,
        offset=offset,
        key=None,
        event_type="ORDER_PLACED",
        event_id=None,
        event=(fill * length)[:length],
    )


def expected_size(items: list[Item]) -> int:
    return 2 + sum(len(item.event) for item in items) + max(len(items) - 1, 0)


# --------------------------------------------------------------------------------------------- construction


@pytest.mark.parametrize(
    ("max_bytes", "max_events", "linger_s"),
    [(2, 1, 0.0), (0, 1, 0.0), (3, 0, 0.0), (3, -1, 0.0), (3, 1, -0.001), (100, 10, -1.0)],
)
def test_constructor_rejects_bad_limits(max_bytes: int, max_events: int, linger_s: float) -> None:
    with pytest.raises(ValueError):
        Batcher(max_bytes, max_events, linger_s)


def test_constructor_accepts_minimum_limits() -> None:
    batcher = Batcher(3, 1, 0.0)
    assert (batcher.max_bytes, batcher.max_events, batcher.linger_s) == (3, 1, 0.0)
    assert batcher.pending == 0
    assert batcher.deadline() is None
    assert batcher.flush() is None
    assert batcher.due(0.0) is None


# --------------------------------------------------------------------------------------------- Batch


def test_empty_batch_body_is_empty_array() -> None:
    batch = Batch(opened_at=0.0)
    assert batch.body() == b"[]"
    assert batch.size == 2 == len(batch.body())
    assert len(batch) == 0


def test_body_is_bracketed_comma_join_and_matches_size() -> None:
    batcher = Batcher(max_bytes=1000, max_events=100, linger_s=1.0)
    events = [b'{"a":1}', b'{"b":[1,2]}', b"{}", b'"\xc3\xa9"']
    for i, event in enumerate(events):
        assert batcher.add(make_item(0, i)._replace(event=event), now=0.0) == []
    batch = batcher.flush()
    assert batch is not None
    assert batch.body() == b"[" + b",".join(events) + b"]"
    assert batch.body() == b'[{"a":1},{"b":[1,2]},{},"\xc3\xa9"]'
    assert len(batch.body()) == batch.size == expected_size(batch.items)
    assert len(batch) == 4
    assert [item.offset for item in batch.items] == [0, 1, 2, 3]


def test_single_event_body() -> None:
    batcher = Batcher(max_bytes=100, max_events=10, linger_s=1.0)
    batcher.add(make_item(5), now=0.0)
    batch = batcher.flush()
    assert batch is not None
    assert batch.body() == b"[xxxxx]"
    assert batch.size == 7 == len(batch.body())


def test_zero_length_events_still_count_commas() -> None:
    batcher = Batcher(max_bytes=100, max_events=10, linger_s=1.0)
    for i in range(3):
        batcher.add(make_item(0, i), now=0.0)
    batch = batcher.flush()
    assert batch is not None
    assert batch.body() == b"[,,]"
    assert batch.size == 4


# --------------------------------------------------------------------------------------------- size rule


def test_next_event_that_would_pass_max_bytes_opens_next_batch() -> None:
    # [xxxx,xxxx] = 11 bytes; a third 4-byte event would make 16 > 15.
    batcher = Batcher(max_bytes=15, max_events=100, linger_s=10.0)
    assert batcher.add(make_item(4, 0), now=0.0) == []
    assert batcher.add(make_item(4, 1), now=1.0) == []
    closed = batcher.add(make_item(4, 2), now=2.0)
    assert len(closed) == 1
    first = closed[0]
    assert [item.offset for item in first.items] == [0, 1]
    assert first.size == 11 == len(first.body())
    assert first.opened_at == 0.0
    # The overflowing event opened the next batch, at its own time.
    assert batcher.pending == 1
    assert batcher.deadline() == 12.0
    second = batcher.flush()
    assert second is not None
    assert [item.offset for item in second.items] == [2]
    assert second.opened_at == 2.0
    assert second.size == 6


def test_exact_fit_at_max_bytes_is_allowed() -> None:
    # [xxxx,xxxx,xxx] = 2 + 4 + 1 + 4 + 1 + 3 = 15 == max_bytes: fits, nothing closes.
    batcher = Batcher(max_bytes=15, max_events=100, linger_s=10.0)
    assert batcher.add(make_item(4, 0), now=0.0) == []
    assert batcher.add(make_item(4, 1), now=0.0) == []
    assert batcher.add(make_item(3, 2), now=0.0) == []
    assert batcher.pending == 3
    # Even a zero-length event no longer fits (needs a comma): 16 > 15.
    closed = batcher.add(make_item(0, 3), now=0.0)
    assert len(closed) == 1
    assert closed[0].size == 15 == len(closed[0].body())
    assert [item.offset for item in closed[0].items] == [0, 1, 2]
    assert batcher.pending == 1


def test_one_byte_over_closes_but_exact_does_not() -> None:
    exact = Batcher(max_bytes=12, max_events=100, linger_s=1.0)
    exact.add(make_item(4, 0), now=0.0)
    assert exact.add(make_item(5, 1), now=0.0) == []  # 2 + 4 + 1 + 5 = 12
    over = Batcher(max_bytes=12, max_events=100, linger_s=1.0)
    over.add(make_item(4, 0), now=0.0)
    closed = over.add(make_item(6, 1), now=0.0)  # 2 + 4 + 1 + 6 = 13
    assert [len(batch) for batch in closed] == [1]


def test_single_event_filling_max_bytes_exactly() -> None:
    batcher = Batcher(max_bytes=10, max_events=100, linger_s=1.0)
    assert batcher.add(make_item(8, 0), now=0.0) == []  # [8 bytes] = 10
    closed = batcher.add(make_item(0, 1), now=0.0)
    assert [[item.offset for item in batch.items] for batch in closed] == [[0]]
    assert closed[0].size == 10


# --------------------------------------------------------------------------------------------- count rule


def test_count_cap_closes_on_the_event_that_fills_it() -> None:
    batcher = Batcher(max_bytes=10_000, max_events=3, linger_s=10.0)
    assert batcher.add(make_item(1, 0), now=0.0) == []
    assert batcher.add(make_item(1, 1), now=0.0) == []
    closed = batcher.add(make_item(1, 2), now=0.0)
    assert len(closed) == 1
    assert [item.offset for item in closed[0].items] == [0, 1, 2]
    assert batcher.pending == 0
    assert batcher.deadline() is None
    assert batcher.flush() is None


def test_count_cap_of_one_closes_every_event() -> None:
    batcher = Batcher(max_bytes=100, max_events=1, linger_s=10.0)
    for i in range(5):
        closed = batcher.add(make_item(3, i), now=float(i))
        assert [[item.offset for item in batch.items] for batch in closed] == [[i]]
        assert closed[0].opened_at == float(i)
        assert batcher.pending == 0


def test_size_close_leaves_overflowing_event_open_below_count_cap() -> None:
    # Open batch [xxxx] (6 bytes) + a 6-byte event would be 13 > 12; with max_events=2 the new batch
    # holds one event, below the cap, so only the old batch closes.
    batcher = Batcher(max_bytes=12, max_events=2, linger_s=10.0)
    batcher.add(make_item(4, 0), now=0.0)
    closed = batcher.add(make_item(6, 1), now=0.0)
    assert [[item.offset for item in batch.items] for batch in closed] == [[0]]
    assert batcher.pending == 1


def test_two_batches_closed_by_one_add() -> None:
    # With a fixed max_events this cannot happen (a 1-event cap never leaves a batch open to overflow), so
    # build it by lowering the public cap mid-stream: the open batch closes for size, and the overflowing
    # event then fills the (new) count cap alone.
    batcher = Batcher(max_bytes=12, max_events=5, linger_s=10.0)
    batcher.add(make_item(4, 0), now=0.0)
    batcher.add(make_item(4, 1), now=0.0)  # [xxxx,xxxx] = 11
    batcher.max_events = 1
    closed = batcher.add(make_item(4, 2), now=1.0)
    assert [[item.offset for item in batch.items] for batch in closed] == [[0, 1], [2]]
    assert closed[1].opened_at == 1.0
    assert batcher.pending == 0


# --------------------------------------------------------------------------------------------- linger rule


def test_due_waits_for_linger_from_the_oldest_event() -> None:
    batcher = Batcher(max_bytes=1000, max_events=100, linger_s=0.5)
    assert batcher.due(100.0) is None  # nothing open
    batcher.add(make_item(3, 0), now=10.0)
    assert batcher.deadline() == 10.5
    assert batcher.due(10.0) is None
    assert batcher.due(10.25) is None
    batcher.add(make_item(3, 1), now=10.4)  # a younger event does not push the deadline
    assert batcher.deadline() == 10.5
    assert batcher.due(10.499) is None
    assert batcher.pending == 2
    batch = batcher.due(10.5)  # exactly linger: due
    assert batch is not None
    assert [item.offset for item in batch.items] == [0, 1]
    assert batch.opened_at == 10.0
    assert batcher.pending == 0
    assert batcher.deadline() is None
    assert batcher.due(11.0) is None  # nothing open any more


def test_due_long_after_deadline_returns_batch_once() -> None:
    batcher = Batcher(max_bytes=1000, max_events=100, linger_s=2.0)
    batcher.add(make_item(3, 0), now=0.0)
    batch = batcher.due(1_000_000.0)
    assert batch is not None and len(batch) == 1
    assert batcher.due(1_000_000.0) is None


def test_zero_linger_is_due_immediately() -> None:
    batcher = Batcher(max_bytes=1000, max_events=100, linger_s=0.0)
    batcher.add(make_item(3, 0), now=5.0)
    assert batcher.deadline() == 5.0
    batch = batcher.due(5.0)
    assert batch is not None and len(batch) == 1


def test_new_batch_after_due_gets_its_own_open_time() -> None:
    batcher = Batcher(max_bytes=1000, max_events=100, linger_s=1.0)
    batcher.add(make_item(3, 0), now=0.0)
    assert batcher.due(1.0) is not None
    batcher.add(make_item(3, 1), now=3.0)
    assert batcher.deadline() == 4.0
    assert batcher.due(3.5) is None
    batch = batcher.due(4.0)
    assert batch is not None and batch.opened_at == 3.0


def test_deadline_follows_batch_opened_by_size_overflow() -> None:
    batcher = Batcher(max_bytes=10, max_events=100, linger_s=1.0)
    batcher.add(make_item(6, 0), now=0.0)  # 8 bytes
    assert batcher.deadline() == 1.0
    closed = batcher.add(make_item(6, 1), now=0.7)  # 15 > 10: opens a new batch at 0.7
    assert len(closed) == 1
    assert batcher.deadline() == pytest.approx(1.7)
    assert batcher.due(1.0) is None


# --------------------------------------------------------------------------------------------- flush


def test_flush_returns_open_batch_whatever_its_age() -> None:
    batcher = Batcher(max_bytes=1000, max_events=100, linger_s=3600.0)
    batcher.add(make_item(3, 0), now=0.0)
    batcher.add(make_item(3, 1), now=0.0)
    batch = batcher.flush()
    assert batch is not None
    assert [item.offset for item in batch.items] == [0, 1]
    assert batcher.pending == 0
    assert batcher.deadline() is None
    assert batcher.flush() is None
    assert batcher.due(1e9) is None


def test_flush_then_add_opens_fresh_batch() -> None:
    batcher = Batcher(max_bytes=1000, max_events=100, linger_s=1.0)
    batcher.add(make_item(3, 0), now=0.0)
    batcher.flush()
    batcher.add(make_item(3, 1), now=7.0)
    batch = batcher.flush()
    assert batch is not None
    assert batch.opened_at == 7.0
    assert [item.offset for item in batch.items] == [1]
    assert batch.size == 5


def _full_then_open(arrived_at: float) -> Batcher:
    """A batcher whose first batch closed full (count cap 2) and whose open batch holds one event that
    was read at 10.0 and reached Kafka at `arrived_at`."""
    batcher = Batcher(max_bytes=1000, max_events=2, linger_s=1.0)
    batcher.add(make_item(3, offset=0), now=9.0)
    assert len(batcher.add(make_item(3, offset=1), now=9.1)) == 1
    batcher.add(make_item(3, offset=2), now=10.0, arrived_at=arrived_at)
    return batcher


def test_caught_up_sends_a_backlog_tail_whose_events_reached_kafka_a_linger_ago() -> None:
    batcher = _full_then_open(arrived_at=2.0)
    assert batcher.due(10.0) is None  # more may still come: the linger counts from 10.0
    batch = batcher.due(10.0, caught_up=True)  # nothing more to read, and it reached Kafka 8 s ago
    assert batch is not None
    assert [item.offset for item in batch.items] == [2]
    assert batch.arrived_at == 2.0


def test_caught_up_waits_for_events_younger_than_linger() -> None:
    batcher = _full_then_open(arrived_at=9.5)
    assert batcher.due(10.4, caught_up=True) is None  # reached Kafka 0.9 s ago
    assert batcher.due(10.5, caught_up=True) is not None


def test_caught_up_does_not_hurry_a_trickle() -> None:
    # The batch before closed on linger, not full: this is a slow stream, and its batches take their linger
    # (to fill), even when the events are old by their timestamps (a producer's clock or event time).
    batcher = Batcher(max_bytes=1000, max_events=2, linger_s=1.0)
    batcher.add(make_item(3, offset=0), now=0.0, arrived_at=-100.0)
    assert batcher.due(0.5, caught_up=True) is None
    assert batcher.due(1.0) is not None
    batcher.add(make_item(3, offset=1), now=5.0, arrived_at=-100.0)
    assert batcher.due(5.5, caught_up=True) is None
    batcher.add(make_item(3, offset=2), now=5.6)  # fills the count cap
    batcher.add(make_item(3, offset=3), now=6.0, arrived_at=-100.0)
    assert batcher.due(6.0, caught_up=True) is not None  # now after a full batch: a backlog's tail


def test_a_batch_opened_long_after_a_backlog_ended_full_takes_its_linger() -> None:
    # The backlog ended exactly on a full batch (nothing left open); the next batch, hours later, is a
    # trickle's, even if its event is old by its timestamp.
    batcher = Batcher(max_bytes=1000, max_events=2, linger_s=1.0)
    batcher.add(make_item(3, offset=0), now=0.0)
    assert len(batcher.add(make_item(3, offset=1), now=0.1)) == 1
    batcher.add(make_item(3, offset=2), now=7200.0, arrived_at=0.0)
    assert batcher.due(7200.0, caught_up=True) is None
    assert batcher.due(7201.0, caught_up=True) is not None


def test_flush_ends_the_backlog() -> None:
    batcher = _full_then_open(arrived_at=2.0)
    assert batcher.flush() is not None
    batcher.add(make_item(3, offset=3), now=20.0, arrived_at=2.0)
    assert batcher.due(20.0, caught_up=True) is None


def test_opens_batch_says_whether_the_event_starts_a_batch() -> None:
    batcher = Batcher(max_bytes=12, max_events=10, linger_s=1.0)
    assert batcher.opens_batch(3)  # nothing open
    batcher.add(make_item(3), now=0.0)  # "[xxx]": 5 bytes
    assert not batcher.opens_batch(6)  # "[xxx,yyyyyy]" is exactly 12
    assert batcher.opens_batch(7)  # one byte over: it would open the next batch
    batcher.add(make_item(7), now=1.0)
    assert batcher.flush() is not None  # the 7-byte event opened its own batch


def test_arrived_at_defaults_to_now_and_never_after_it() -> None:
    batcher = Batcher(max_bytes=1000, max_events=5, linger_s=1.0)
    batcher.add(make_item(3), now=4.0)
    batch = batcher.flush()
    assert batch is not None and batch.arrived_at == 4.0
    batcher.add(make_item(3), now=4.0, arrived_at=7.0)  # a producer clock ahead of ours
    batch = batcher.flush()
    assert batch is not None and batch.arrived_at == 4.0


# --------------------------------------------------------------------------------------------- oversize


@pytest.mark.parametrize("max_bytes", [3, 4, 10, 1000])
def test_fits_alone_boundary(max_bytes: int) -> None:
    batcher = Batcher(max_bytes=max_bytes, max_events=10, linger_s=1.0)
    assert batcher.fits_alone(max_bytes - 2)  # len + 2 == max_bytes
    assert not batcher.fits_alone(max_bytes - 1)
    assert not batcher.fits_alone(max_bytes)
    assert batcher.fits_alone(0)


def test_event_filling_max_bytes_alone_is_accepted() -> None:
    batcher = Batcher(max_bytes=10, max_events=10, linger_s=1.0)
    assert batcher.add(make_item(8), now=0.0) == []
    batch = batcher.flush()
    assert batch is not None
    assert len(batch.body()) == 10 == batch.size


def test_oversize_event_raises_and_leaves_state_untouched() -> None:
    batcher = Batcher(max_bytes=10, max_events=10, linger_s=1.0)
    batcher.add(make_item(3, 0), now=0.0)
    with pytest.raises(ValueError, match="9 bytes"):
        batcher.add(make_item(9, 1), now=0.5)
    with pytest.raises(ValueError):
        batcher.add(make_item(100, 2), now=0.5)
    assert batcher.pending == 1
    assert batcher.deadline() == 1.0
    batch = batcher.flush()
    assert batch is not None
    assert [item.offset for item in batch.items] == [0]
    assert batch.size == 5


def test_oversize_event_into_empty_batcher_raises() -> None:
    batcher = Batcher(max_bytes=3, max_events=1, linger_s=0.0)
    with pytest.raises(ValueError):
        batcher.add(make_item(2), now=0.0)
    assert batcher.pending == 0
    assert batcher.flush() is None
    closed = batcher.add(make_item(1), now=0.0)  # "[x]" is exactly 3 bytes
    assert [batch.body() for batch in closed] == [b"[x]"]


# --------------------------------------------------------------------------------------------- properties


@dataclass(frozen=True)
class Add:
    length: int
    dt: int
    age: int  # how long before `now` the event reached Kafka


@dataclass(frozen=True)
class Due:
    dt: int
    caught_up: bool


@dataclass(frozen=True)
class Flush:
    pass


Op = Add | Due | Flush


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[int, int, int, list[Op]]:
    max_bytes = draw(st.integers(min_value=3, max_value=60))
    max_events = draw(st.integers(min_value=1, max_value=8))
    linger = draw(st.integers(min_value=0, max_value=10))
    max_len = max_bytes - 2  # fits alone
    lengths = st.one_of(
        st.integers(min_value=0, max_value=max_len),
        st.sampled_from(sorted({0, max_len // 2, max_len - 1 if max_len else 0, max_len})),
    )
    dts = st.one_of(st.integers(min_value=0, max_value=2 * linger + 2), st.just(linger))
    op: st.SearchStrategy[Op] = st.one_of(
        st.builds(Add, length=lengths, dt=dts, age=dts),
        st.builds(Add, length=lengths, dt=dts, age=dts),
        st.builds(Add, length=lengths, dt=dts, age=dts),
        st.builds(Due, dt=dts, caught_up=st.booleans()),
        st.just(Flush()),
    )
    ops = draw(st.lists(op, max_size=60))
    return max_bytes, max_events, linger, ops


@PROPERTY_SETTINGS
@given(scenarios())
def test_packing_properties(scenario: tuple[int, int, int, list[Op]]) -> None:
    max_bytes, max_events, linger, ops = scenario
    batcher = Batcher(max_bytes=max_bytes, max_events=max_events, linger_s=float(linger))
    now = 0
    added: list[Item] = []
    emitted: list[Item] = []
    # Reference model of the open batch: its items, the time its first item arrived and when that one reached
    # Kafka; and when the last batch closed full (closed by add; None after a linger or a flush).
    open_items: list[Item] = []
    open_since: int | None = None
    open_arrived = 0
    full_at: int | None = None

    def check_batch(batch: Batch) -> None:
        body = batch.body()
        # (1) byte-exact and bounded
        assert body == b"[" + b",".join(item.event for item in batch.items) + b"]"
        assert len(body) == batch.size == expected_size(batch.items)
        assert batch.size <= max_bytes
        # (2) count cap
        assert 1 <= len(batch) <= max_events
        emitted.extend(batch.items)

    for index, op in enumerate(ops):
        if isinstance(op, Add):
            now += op.dt
            item = make_item(op.length, offset=index, fill=bytes([97 + index % 26]))
            added.append(item)
            opens = batcher.opens_batch(op.length)
            assert opens == (not open_items or expected_size(open_items) + 1 + op.length > max_bytes)
            closed = batcher.add(item, now=float(now), arrived_at=float(now - op.age))
            if closed:
                full_at = now
            # with a fixed cap, one add closes at most one batch (see test_two_batches_closed_by_one_add)
            assert len(closed) <= 1
            for batch in closed:
                check_batch(batch)
            if closed and item not in closed[0].items:
                # (4) closed by size: greedy, it really could not take the next event
                size_closed = closed[0]
                assert size_closed.items == open_items
                assert size_closed.opened_at == open_since
                assert size_closed.size + 1 + len(item.event) > max_bytes
                assert len(size_closed) < max_events
                open_items, open_since = [], None
                closed = closed[1:]
            # a batch that closed without overflow closed on the count cap, and holds the new item last
            assert len(closed) <= 1
            if not open_items:
                open_since, open_arrived = now, now - op.age
            open_items = [*open_items, item]
            if closed:
                assert closed[0].items == open_items
                assert len(closed[0]) == max_events
                assert closed[0].opened_at == open_since
                open_items, open_since = [], None
            else:
                # nothing closed: the item fit in the open batch and the count cap is not reached
                assert len(open_items) < max_events
                assert expected_size(open_items) <= max_bytes
        elif isinstance(op, Due):
            now += op.dt
            due = batcher.due(float(now), caught_up=op.caught_up)
            tail = (
                op.caught_up
                and full_at is not None
                and open_since is not None
                and open_since - full_at <= linger
                and now - open_arrived >= linger
            )
            if open_since is None:
                assert due is None
            elif now - open_since >= linger or tail:
                # (5) always returns a batch that is old enough: since it opened, or a backlog's tail (caught
                # up, after a full batch) whose first event reached Kafka a linger ago
                assert due is not None
                assert due.items == open_items
                assert due.opened_at == open_since
                assert due.arrived_at == open_arrived
                assert now - due.opened_at >= linger or now - due.arrived_at >= linger
                check_batch(due)
                open_items, open_since, full_at = [], None, None
            else:
                # (5) never returns a batch younger than linger, nor a trickle's batch early
                assert due is None
        else:
            flushed = batcher.flush()
            if open_since is None:
                assert flushed is None
            else:
                assert flushed is not None
                assert flushed.items == open_items
                assert flushed.opened_at == open_since
                check_batch(flushed)
                open_items, open_since, full_at = [], None, None
        assert batcher.pending == len(open_items)
        expected_deadline = None if open_since is None else open_since + float(linger)
        assert batcher.deadline() == expected_deadline
        # everything added so far is either emitted or in the open batch, in order
        assert emitted + open_items == added

    final = batcher.flush()
    if final is not None:
        check_batch(final)
    # (3) nothing lost, duplicated or reordered
    assert emitted == added
    assert [item.offset for item in emitted] == [item.offset for item in added]
    assert batcher.pending == 0
    assert batcher.flush() is None


@PROPERTY_SETTINGS
@given(
    max_bytes=st.integers(min_value=3, max_value=200),
    max_events=st.integers(min_value=1, max_value=20),
    lengths=st.lists(st.integers(min_value=0, max_value=198), max_size=80),
)
def test_greedy_packing_matches_first_fit_reference(max_bytes: int, max_events: int, lengths: list[int]) -> None:
    """Adds alone (no linger): the batches are exactly those of a naive greedy packer."""
    lengths = [min(length, max_bytes - 2) for length in lengths]
    batcher = Batcher(max_bytes=max_bytes, max_events=max_events, linger_s=1e9)
    got: list[list[int]] = []
    for offset, length in enumerate(lengths):
        for batch in batcher.add(make_item(length, offset), now=0.0):
            got.append([item.offset for item in batch.items])
    final = batcher.flush()
    if final is not None:
        got.append([item.offset for item in final.items])

    expected: list[list[int]] = []
    current: list[int] = []
    for offset in range(len(lengths)):
        candidate = [*current, offset]
        if current and 2 + sum(lengths[o] for o in candidate) + len(candidate) - 1 > max_bytes:
            expected.append(current)
            candidate = [offset]
        current = candidate
        if len(current) == max_events:
            expected.append(current)
            current = []
    if current:
        expected.append(current)
    assert got == expected


@PROPERTY_SETTINGS
@given(max_bytes=st.integers(min_value=3, max_value=10_000), length=st.integers(min_value=0, max_value=10_100))
def test_fits_alone_agrees_with_add(max_bytes: int, length: int) -> None:
    batcher = Batcher(max_bytes=max_bytes, max_events=5, linger_s=1.0)
    assert batcher.fits_alone(length) == (length + 2 <= max_bytes)
    if batcher.fits_alone(length):
        assert batcher.add(make_item(length), now=0.0) == []
        batch = batcher.flush()
        assert batch is not None and batch.size == length + 2 <= max_bytes
    else:
        with pytest.raises(ValueError):
            batcher.add(make_item(length), now=0.0)
        assert batcher.pending == 0

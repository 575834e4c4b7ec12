"""Which lane a partition uses and when a lane's open batch goes out (no threads: fake lanes)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from connector.deliver.lanes import HELD_RECHECK_S, LaneSet, place, spread
from connector.in_flight import Item
from connector.partition_keys import stable_slot
from tests.unit.consume.fake_consumer import FakeLane


def _item(offset: int) -> Item:
    return Item("t", 0, offset, None, "e", None, b"{}")


@given(st.text(min_size=1, max_size=20), st.integers(0, 10_000), st.integers(1, 16))
def test_a_partition_always_uses_the_same_lane(topic: str, partition: int, lanes: int) -> None:
    lane_set = LaneSet([FakeLane() for _ in range(lanes)], 1000, 10, 1.0)
    first = lane_set.lane_of((topic, partition))
    assert first == lane_set.lane_of((topic, partition)) == stable_slot(topic, partition, lanes)
    assert 0 <= first < lanes


def test_a_due_batch_waits_while_its_lane_has_batches_queued_and_is_rechecked_soon() -> None:
    lane = FakeLane()
    lane_set = LaneSet([lane], 1000, 10, linger_s=1.0)
    lane_set.batcher(0).add(_item(0), 0.0)
    assert abs(lane_set.poll_timeout(0.95) - 0.05) < 1e-9  # until the linger ends (at most 0.1 s)
    lane.waiting = 1
    lane_set.send_due(5.0, lambda lane: False)
    assert lane.batches == [] and lane_set.poll_timeout(5.0) == HELD_RECHECK_S
    lane.waiting = 0
    assert lane_set.poll_timeout(5.0) == 0.0
    lane_set.send_due(5.0, lambda lane: False)
    assert [[i.offset for i in b.items] for b in lane.batches] == [[0]]


def test_send_open_flushes_every_lane() -> None:
    lanes = [FakeLane(), FakeLane()]
    lane_set = LaneSet(lanes, 1000, 10, linger_s=60.0)
    lane_set.batcher(1).add(_item(3), 0.0)
    lane_set.send_open()
    assert lanes[0].batches == [] and len(lanes[1].batches) == 1
    assert lane_set.poll_timeout(0.0) == 0.1  # nothing open: the longest wait


_TPS = st.lists(st.tuples(st.sampled_from("abc"), st.integers(0, 20)), unique=True, max_size=40)


@given(st.lists(st.tuples(st.booleans(), _TPS), max_size=8), st.integers(1, 8))
def test_lane_loads_differ_by_at_most_one_and_owned_partitions_move_only_at_a_respread(
    steps: list[tuple[bool, list[tuple[str, int]]]], lanes: int
) -> None:
    lane_set = LaneSet([FakeLane() for _ in range(lanes)], 1000, 10, 1.0)
    owned: set[tuple[str, int]] = set()
    for revoke, tps in steps:
        if revoke:  # a revoke: the given partitions go, the rest are spread again (nothing is in flight)
            gone = [tp for tp in tps if tp in owned]
            lane_set.release(gone)
            owned -= set(gone)
            before = {tp: lane_set.lane_of(tp) for tp in owned}
            lane_set.respread()
            moved = sum(lane_set.lane_of(tp) != lane for tp, lane in before.items())
            assert moved == _fewest_moves(_counts(before, lanes), lanes)
        else:  # an assignment: the owned keep their lanes
            before = {tp: lane_set.lane_of(tp) for tp in owned}
            lane_set.assign(tps)
            owned |= set(tps)
            assert all(lane_set.lane_of(tp) == lane for tp, lane in before.items())
        loads = lane_set.loads()
        assert sum(loads) == len(owned) and all(0 <= lane_set.lane_of(tp) < lanes for tp in owned)
        assert max(loads) - min(loads) <= 1, loads


def _counts(lane_of: dict[tuple[str, int], int], lanes: int) -> list[int]:
    counts = [0] * lanes
    for lane in lane_of.values():
        counts[lane] += 1
    return counts


def _fewest_moves(loads: list[int], lanes: int) -> int:
    """Balancing `loads` (differences <= 1) moves at least this many: the fullest lanes keep the extra one."""
    base, extra = divmod(sum(loads), lanes)
    ordered = sorted(loads, reverse=True)
    return sum(max(0, n - (base + (1 if rank < extra else 0))) for rank, n in enumerate(ordered))


def test_place_and_spread_on_a_three_partition_topic() -> None:
    assert sorted(place({}, [("t", 0), ("t", 1), ("t", 2)], 4).values()) == [0, 1, 2]
    assert spread({("t", 0): 0, ("t", 1): 0, ("t", 2): 0}, 3) == {("t", 0): 0, ("t", 1): 1, ("t", 2): 2}


def _item_of(offset: int, account: str) -> Item:
    return Item("t", 0, offset, None, "e", None, b"{}", account=account)


def test_each_account_has_its_own_batcher_and_lane_in_a_slot() -> None:
    slots = [{"a": FakeLane(), "b": FakeLane()} for _ in range(2)]
    lane_set = LaneSet(slots, 1000, 2, linger_s=1.0)
    assert len(lane_set) == 2 and lane_set.accounts == ["a", "b"] and len(lane_set.lanes) == 4
    lane_set.submit(1, lane_set.batcher(1, "b").add(_item_of(0, "b"), 0.0))
    closed = lane_set.batcher(1, "b").add(_item_of(1, "b"), 0.0)  # the count cap closes it
    assert [b.account for b in closed] == ["b"]
    lane_set.submit(1, closed)
    lane_set.batcher(1, "a").add(_item_of(2, "a"), 0.0)
    assert [len(b) for b in slots[1]["b"].batches] == [2] and slots[1]["a"].batches == []
    slots[1]["b"].waiting = 1  # b's lane is busy: a's open batch is not held behind it
    lane_set.send_due(1.0, lambda slot: False)
    assert [[i.account for i in b.items] for b in slots[1]["a"].batches] == [["a"]]


@given(st.lists(st.tuples(st.integers(0, 3), st.sampled_from(["a", "b", "c"])), max_size=60))
def test_a_batch_never_mixes_accounts_and_each_accounts_order_holds(events: list[tuple[int, str]]) -> None:
    slots = [{name: FakeLane() for name in "abc"} for _ in range(2)]
    lane_set = LaneSet(slots, 1000, 3, linger_s=1.0)
    for offset, (partition, account) in enumerate(events):
        slot = lane_set.lane_of(("t", partition))
        item = Item("t", partition, offset, None, "e", None, b"{}", account=account)
        lane_set.submit(slot, lane_set.batcher(slot, account).add(item, 0.0))
    lane_set.send_open()
    for lanes_of in slots:
        for account, lane in lanes_of.items():
            assert all(item.account == account == batch.account for batch in lane.batches for item in batch.items)
            sent = [(item.partition, item.offset) for batch in lane.batches for item in batch.items]
            for partition in range(4):
                offsets = [offset for p, offset in sent if p == partition]
                assert offsets == sorted(offsets)
    delivered = sorted(i.offset for s in slots for lane in s.values() for b in lane.batches for i in b.items)
    assert delivered == list(range(len(events)))


def test_abandon_drops_the_work_of_the_given_slots_only_every_account_of_them() -> None:
    class Counting(FakeLane):
        def __init__(self) -> None:
            super().__init__()
            self.abandoned = 0

        def abandon(self) -> None:
            self.abandoned += 1

    slots = [{"north": Counting(), "south": Counting()} for _ in range(3)]
    lane_set = LaneSet(slots, 1000, 10, 1.0)
    lane_set.abandon({1})
    assert [[lane.abandoned for lane in slot.values()] for slot in slots] == [[0, 0], [1, 1], [0, 0]]
    lane_set.abandon()
    assert [[lane.abandoned for lane in slot.values()] for slot in slots] == [[1, 1], [2, 2], [1, 1]]


def test_a_blocked_lanes_overdue_batch_does_not_make_the_pipeline_poll_every_5_ms() -> None:
    lane = FakeLane()
    lane_set = LaneSet([lane], 1000, 10, linger_s=1.0)
    lane_set.batcher(0).add(_item(0), 0.0)
    lane.waiting = 1
    assert lane_set.poll_timeout(5.0) == HELD_RECHECK_S  # held behind a busy lane: looked at again soon
    lane.blocked = True  # RD refuses its account: it may wait for an hour
    assert lane_set.poll_timeout(5.0) == 0.1

"""Which lane a partition uses and when a lane's open batch goes out (no threads: fake lanes)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from connector.deliver.batch import Batch
from connector.deliver.lanes import HELD_RECHECK_S, LaneSet
from connector.errors import ConnectorError
from connector.in_flight import Item
from connector.partition_keys import stable_slot


class Lane:
    fatal: ConnectorError | None = None

    def __init__(self) -> None:
        self.batches: list[Batch] = []
        self.waiting = 0

    def submit(self, batch: Batch) -> None:
        self.batches.append(batch)

    def queued(self) -> int:
        return self.waiting

    def abandon(self) -> None:
        pass

    def close(self, timeout: float) -> None:
        pass


def _item(offset: int) -> Item:
    return Item("t", 0, offset, None, "e", None, b"{}")


@given(st.text(min_size=1, max_size=20), st.integers(0, 10_000), st.integers(1, 16))
def test_a_partition_always_uses_the_same_lane(topic: str, partition: int, lanes: int) -> None:
    lane_set = LaneSet([Lane() for _ in range(lanes)], 1000, 10, 1.0)
    first = lane_set.lane_of((topic, partition))
    assert first == lane_set.lane_of((topic, partition)) == stable_slot(topic, partition, lanes)
    assert 0 <= first < lanes


def test_a_due_batch_waits_while_its_lane_has_batches_queued_and_is_rechecked_soon() -> None:
    lane = Lane()
    lane_set = LaneSet([lane], 1000, 10, linger_s=1.0)
    lane_set.batchers[0].add(_item(0), 0.0)
    assert abs(lane_set.poll_timeout(0.95) - 0.05) < 1e-9  # until the linger ends (at most 0.1 s)
    lane.waiting = 1
    lane_set.send_due(5.0, lambda lane: False)
    assert lane.batches == [] and lane_set.poll_timeout(5.0) == HELD_RECHECK_S
    lane.waiting = 0
    assert lane_set.poll_timeout(5.0) == 0.0
    lane_set.send_due(5.0, lambda lane: False)
    assert [[i.offset for i in b.items] for b in lane.batches] == [[0]]


def test_send_open_flushes_every_lane() -> None:
    lanes = [Lane(), Lane()]
    lane_set = LaneSet(lanes, 1000, 10, linger_s=60.0)
    lane_set.batchers[1].add(_item(3), 0.0)
    lane_set.send_open()
    assert lanes[0].batches == [] and len(lanes[1].batches) == 1
    assert lane_set.poll_timeout(0.0) == 0.1  # nothing open: the longest wait

"""A member's share of the group's RD budget: its partitions of the source topics over all of them."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from hypothesis import given
from hypothesis import strategies as st

from connector.consume.budget_share import BudgetShare


class Metadata:
    def __init__(self, partitions: dict[str, int], fail: bool = False) -> None:
        self.partitions, self.fail, self.calls = partitions, fail, 0

    def list_topics(self, topic: str, timeout: float) -> Any:
        self.calls += 1
        if self.fail:
            raise KafkaException(KafkaError(KafkaError._TRANSPORT))
        count = self.partitions.get(topic)
        topics = {} if count is None else {topic: SimpleNamespace(error=None, partitions=dict.fromkeys(range(count)))}
        return SimpleNamespace(topics=topics)


def test_the_share_is_owned_over_all_source_partitions_and_applied_when_it_moves() -> None:
    applied: list[float] = []
    share = BudgetShare(Metadata({"orders": 6, "carts": 2}), ["orders", "carts"], applied.append)
    share.update([("orders", 0), ("orders", 1), ("carts", 0), ("other", 0)])  # "other" is not a source topic
    assert applied == [3 / 8]
    share.update([("orders", 3), ("orders", 4), ("carts", 1)])  # same count: nothing new to say
    assert applied == [3 / 8]
    share.update([("orders", 0)])
    assert applied == [3 / 8, 1 / 8]


def test_no_partitions_keeps_the_last_share_and_unknown_metadata_spends_the_whole_budget() -> None:
    applied: list[float] = []
    metadata = Metadata({}, fail=True)
    share = BudgetShare(metadata, ["orders"], applied.append)
    share.update([])
    assert applied == [] and metadata.calls == 0
    share.update([("orders", 0)])
    assert applied == [1.0]  # never stall for want of metadata


def test_a_topic_that_grew_is_read_again_at_the_next_rebalance() -> None:
    applied: list[float] = []
    metadata = Metadata({"orders": 2})
    share = BudgetShare(metadata, ["orders"], applied.append)
    share.update([("orders", 0)])
    metadata.partitions["orders"] = 4
    share.update([("orders", 0), ("orders", 1)])
    assert applied == [0.5]  # 1/2, then 2/4: the same share
    share.update([("orders", 0)])
    assert applied == [0.5, 0.25]


@given(st.integers(1, 12), st.integers(1, 6))
def test_the_members_shares_add_up_to_the_whole_budget(partitions: int, members: int) -> None:
    """However the group splits a topic, the members' shares sum to 1: the group spends one budget."""
    owners = [[("t", p) for p in range(partitions) if p % members == m] for m in range(members)]
    shares = []
    for owned in owners:
        applied: list[float] = []
        BudgetShare(Metadata({"t": partitions}), ["t"], applied.append).update(owned)
        shares += applied
    assert abs(sum(shares) - 1.0) < 1e-9

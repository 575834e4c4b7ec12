"""The weight of in-flight events: the bulk sum (a poll's acknowledgements) is the sum of the single ones."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from connector.in_flight import ITEM_OVERHEAD, Item, item_weight, items_weight

items = st.builds(
    Item,
    topic=st.just("orders"),
    partition=st.integers(min_value=0, max_value=3),
    offset=st.integers(min_value=0),
    key=st.none() | st.binary(max_size=20),
    event_type=st.just("ORDER_PLACED"),
    event_id=st.none(),
    event=st.binary(max_size=50),
    value=st.none() | st.binary(max_size=50),
)


@given(st.lists(items, max_size=20))
def test_items_weight_is_the_sum_of_item_weights(batch: list[Item]) -> None:
    assert items_weight(batch) == sum(item_weight(item) for item in batch)
    assert items_weight(iter(batch)) == items_weight(batch)  # any iterable, read once


def test_item_weight_counts_the_payloads_and_the_overhead() -> None:
    item = Item("orders", 0, 7, b"key", "ORDER_PLACED", None, b"{}", b"avro")
    assert item_weight(item) == 3 + 2 + 4 + ITEM_OVERHEAD
    assert items_weight([]) == 0

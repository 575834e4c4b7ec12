"""The hand-written batch encoder of DeliveryResult values writes exactly what fastavro writes, each result
with its account and that account's destination."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.avro import DELIVERY_RESULT, Decoder, Encoder, default_catalog, encode_delivery_results

_text = st.text(max_size=80)  # beyond 63 bytes too: a length that takes two varint bytes
_long = st.integers(min_value=-(2**63), max_value=2**63 - 1)
_ACCOUNTS = ["default", "shop-br", "conta-é"]
_row = st.tuples(
    st.sampled_from(["ECOMMERCE_ORDER_PAID", "CONVERSION", "é-type"]),
    st.sampled_from(["orders", "shop-events", "tópico"]),
    st.integers(min_value=-(2**31), max_value=2**31 - 1),
    _long,
    st.none() | _text,
    st.sampled_from(_ACCOUNTS),
)
# writer_base per source partition: a few partitions repeat within a batch; None (unknown) included
_bases = st.dictionaries(st.tuples(st.sampled_from(["orders", "shop-events", "tópico"]), st.integers()), _long)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(_row, _text), min_size=1, max_size=12),
    _text,
    _long,
    st.none() | st.integers(min_value=0, max_value=2**31 - 1),
    st.none() | st.tuples(_text, st.fixed_dictionaries({account: _text for account in _ACCOUNTS})),
    st.none() | _bases,
)
def test_batch_encoding_equals_fastavro(
    rows_and_uuids: list[tuple[tuple[str, str, int, int, str | None, str], str]],
    batch_uuid: str,
    delivered_at: int,
    schema_id: int | None,
    writer: tuple[str, dict[str, str]] | None,
    bases: dict[tuple[str, int], int] | None,
) -> None:
    rows = [row for row, _ in rows_and_uuids]
    uuids = [uuid for _, uuid in rows_and_uuids]
    if bases is not None:  # some partitions of the batch have a base, others not
        bases.update({(topic, partition): partition * 7 for _, topic, partition, _, _, _ in rows[::2]})
    group, destinations = writer if writer is not None else (None, None)
    ours = encode_delivery_results(
        rows,
        uuids,
        event_batch_uuid=batch_uuid,
        delivered_at_ms=delivered_at,
        schema_id=schema_id,
        writer_group=group,
        destinations=destinations,
        base_of=None if bases is None else lambda topic, partition: bases.get((topic, partition)),
    )
    encoder = Encoder()
    for value, row, event_uuid in zip(ours, rows, uuids, strict=True):
        event_type, topic, partition, offset, event_id, account = row
        record = {
            "event_uuid": event_uuid,
            "event_batch_uuid": batch_uuid,
            "event_type": event_type,
            "source_topic": topic,
            "source_partition": partition,
            "source_offset": offset,
            "source_event_id": event_id,
            "delivered_at": delivered_at,
            "writer_group": group,
            "writer_destination": None if destinations is None else destinations[account],
            "writer_base": None if bases is None else bases.get((topic, partition)),
            "rd_account": account,
        }
        expected = (
            encoder.single_object(DELIVERY_RESULT, record)
            if schema_id is None
            else encoder.confluent(schema_id, DELIVERY_RESULT, record)
        )
        assert value == expected


def test_values_decode_back() -> None:
    [value] = encode_delivery_results(
        [("CONVERSION", "orders", 3, 123_456_789_012, None, "shop-br")],
        ["u-1"],
        event_batch_uuid="b",
        delivered_at_ms=1,
        writer_group="g",
        destinations={"shop-br": "d", "shop-ar": "e"},
        base_of=lambda topic, partition: 99 if (topic, partition) == ("orders", 3) else None,
    )
    record = Decoder(default_catalog()).decode(value, "results").record
    assert (record["event_uuid"], record["source_offset"], record["source_event_id"]) == ("u-1", 123_456_789_012, None)
    assert (record["writer_group"], record["writer_destination"], record["writer_base"]) == ("g", "d", 99)
    assert record["rd_account"] == "shop-br"


def test_an_account_without_a_destination_is_a_key_error() -> None:
    with pytest.raises(KeyError, match="'shop-xx' has no RD destination"):
        encode_delivery_results(
            [("CONVERSION", "orders", 3, 1, None, "shop-xx")],
            ["u-1"],
            event_batch_uuid="b",
            delivered_at_ms=1,
            destinations={"shop-br": "d"},
        )

"""Mapping: golden JSON for each of the 17 RD event types, every refusal reason, trimming.

Golden files (tests/unit/mapping/golden/<EVENT_TYPE>.json) hold the exact bytes the connector sends (plus a
newline). Each record goes the whole way: single-object encoding -> decode (raw values) -> map -> encode.
Regenerate after an intended change with `RDC_UPDATE_GOLDEN=1 pytest tests/unit/mapping/test_mapping.py`.
"""

from __future__ import annotations

import copy
import os
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest

from connector.avro import NAMESPACE, Decoder, Encoder, default_catalog
from connector.errors import MappingError
from connector.mapping import RdEvent, decimal_to_float, encode_event, map_record
from connector.rd import contract

N = NAMESPACE + "."
GOLDEN = Path(__file__).parent / "golden"
EVENT_ID = "6f1c1d52-7c5b-4e0e-9a57-3c8a4e1d0b11"
AT = 1_767_225_600_000
ANA = {"email": "ana@x.com", "name": "Ana Silva", "mobile_phone": "+5541999990000", "personal_phone": None}
CONSENT = [{"category": "COMMUNICATIONS", "type": "CONSENT", "status": "GRANTED"}]


def item(pid: str = "P1", **over: Any) -> dict[str, Any]:
    base = {
        "product_id": pid,
        "title": "Tee",
        "sku": "TEE-M",
        "variant_id": None,
        "variant_title": None,
        "product_url": "https://shop.x/p/1",
        "image_url": None,
        "unit_price": Decimal("129.90"),
        "quantity": 2,
        "categories": ["apparel"],
    }
    return {**base, **over}


def common(**fields: Any) -> dict[str, Any]:
    return {"event_id": EVENT_ID, "occurred_at": AT, "customer": dict(ANA), "legal_bases": [], **fields}


def checkout(id_field: str = "checkout_id", ident: str = "chk-981", **over: Any) -> dict[str, Any]:
    fields = {
        id_field: ident,
        "checkout_url": f"https://shop.x/checkout/{ident}",
        "currency": "BRL",
        "total": Decimal("259.80"),
        "line_items": [item()],
    }
    return common(**{**fields, **over})


def order(**over: Any) -> dict[str, Any]:
    fields = {
        "order_id": "ord-1001",
        "currency": "BRL",
        "total": Decimal("274.80"),
        "line_items": [item(), item("P2", title="Cap", unit_price=Decimal("15.00"), quantity=1, categories=[])],
        "shipping": {"price": Decimal("15.00"), "city": "Curitiba", "state": "PR", "country": "BR"},
        "order_url": "https://shop.x/orders/1001",
        "payment_methods": ["pix"],
        "legal_bases": CONSENT,
    }
    return common(**{**fields, **over})


def rd_event(event_type: str, payload: dict[str, Any]) -> dict[str, Any]:
    return {
        "event_id": EVENT_ID,
        "occurred_at": AT,
        "event_type": event_type,
        "payload_json": orjson.dumps(payload).decode(),
    }


def _chat(**extra: Any) -> dict[str, Any]:
    return {"email": "ana@x.com", "chat_subject": "Pricing", "cf_chat_status": "open", **extra}


#: RD event type -> (record full name, record): one per type, 17 in all.
CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "ECOMMERCE_CHECKOUT_STARTED": (N + "CheckoutStarted", checkout(legal_bases=CONSENT)),
    "ECOMMERCE_CART_ABANDONED": (N + "CartAbandoned", checkout("cart_id", "cart-77")),
    "ECOMMERCE_ORDER_PLACED": (N + "OrderPlaced", order(order_url=None, payment_methods=[], legal_bases=[])),
    "ECOMMERCE_ORDER_PAID": (N + "OrderPaid", order()),
    "ECOMMERCE_ORDER_FULFILLED": (
        N + "OrderFulfilled",
        common(
            shipment_id="shp-55",
            order_id="ord-1001",
            tracking_company="Correios",
            tracking_code="AB123BR",
            tracking_url="https://track.x/AB123BR",
        ),
    ),
    "ECOMMERCE_SHIPMENT_DELIVERED": (N + "ShipmentDelivered", common(shipment_id="shp-55", order_id="ord-1001")),
    "ECOMMERCE_ORDER_CANCELLED": (N + "OrderCancelled", common(order_id="ord-1001", cancel_reason="CUSTOMER")),
    "ECOMMERCE_ORDER_REFUNDED": (
        N + "OrderRefunded",
        common(order_id="ord-1001", currency="BRL", total=Decimal("129.90")),
    ),
    "CONVERSION": (
        N + "RdEvent",
        rd_event(
            "CONVERSION",
            {
                "conversion_identifier": "newsletter",
                "email": "ana@x.com",
                "name": "Ana",
                "tags": ["kafka"],
                "cf_plan": "pro",
            },
        ),
    ),
    "OPPORTUNITY": (N + "RdEvent", rd_event("OPPORTUNITY", {"email": "ana@x.com", "funnel_name": "default"})),
    "SALE": (N + "RdEvent", rd_event("SALE", {"email": "ana@x.com", "funnel_name": "default", "value": 199.9})),
    "OPPORTUNITY_LOST": (
        N + "RdEvent",
        rd_event("OPPORTUNITY_LOST", {"email": "ana@x.com", "funnel_name": "default", "reason": "price"}),
    ),
    "CHAT_STARTED": (N + "RdEvent", rd_event("CHAT_STARTED", _chat(cf_chat_type="whatsapp"))),
    "CHAT_FINISHED": (
        N + "RdEvent",
        rd_event("CHAT_FINISHED", _chat(cf_chat_status="closed", cf_chat_transcript_message="Olá… Tchau")),
    ),
    "CALL_FINISHED": (
        N + "RdEvent",
        rd_event(
            "CALL_FINISHED",
            {
                "email": "ana@x.com",
                "call_from_number": "+551112341234",
                "call_status": "answered",
                "call_duration": "120",
            },
        ),
    ),
    "MEDIA_PLAYBACK_STARTED": (
        N + "RdEvent",
        rd_event(
            "MEDIA_PLAYBACK_STARTED",
            {"email": "ana@x.com", "media_type": "video", "media_identifier": "webinar-42", "media_duration": 3600},
        ),
    ),
    "MEDIA_PLAYBACK_STOPPED": (
        N + "RdEvent",
        rd_event(
            "MEDIA_PLAYBACK_STOPPED",
            {"email": "ana@x.com", "media_type": "video", "media_identifier": "webinar-42", "media_finished": False},
        ),
    ),
}


def through_the_wire(full_name: str, record: dict[str, Any]) -> RdEvent:
    value = Encoder().single_object(full_name, record)
    return map_record(*Decoder(default_catalog()).decode(value, "t"))


def refusal(full_name: str, record: dict[str, Any]) -> MappingError:
    with pytest.raises(MappingError) as info:
        through_the_wire(full_name, record)
    return info.value


def test_one_case_per_rd_event_type() -> None:
    assert set(CASES) == set(contract.EVENT_TYPES) and len(CASES) == 17


@pytest.mark.parametrize("event_type", sorted(CASES))
def test_golden(event_type: str) -> None:
    event = through_the_wire(*CASES[event_type])
    sent = encode_event(event) + b"\n"
    path = GOLDEN / f"{event_type}.json"
    if os.environ.get("RDC_UPDATE_GOLDEN"):
        path.write_bytes(sent)
    assert sent == path.read_bytes()
    assert event.event_type == event_type and event.trims == 0
    assert contract.payload_errors(event_type, event.payload) == {}


def test_golden_highlights() -> None:
    paid = orjson.loads((GOLDEN / "ECOMMERCE_ORDER_PAID.json").read_bytes())["payload"]
    assert paid["price"] == 274.8 and paid["total_items"] == 3 and paid["shipping_price"] == 15
    assert paid["legal_bases"] == [{"category": "communications", "type": "consent", "status": "granted"}]
    assert "personal_phone" not in paid and "categories" not in paid["line_items"][1]
    refunded = orjson.loads((GOLDEN / "ECOMMERCE_ORDER_REFUNDED.json").read_bytes())["payload"]
    assert set(refunded) == {"email", "name", "mobile_phone", "identifier"}  # no undocumented amount


def test_encode_event_is_compact_utf8() -> None:
    sent = encode_event(through_the_wire(*CASES["CHAT_FINISHED"]))
    assert b": " not in sent and b", " not in sent and "Olá… Tchau".encode() in sent


def test_decimal_to_float() -> None:
    assert decimal_to_float((25980).to_bytes(2, "big", signed=True), 2) == 259.8
    assert decimal_to_float((-1).to_bytes(1, "big", signed=True), 2) == -0.01
    assert decimal_to_float(b"", 2) == 0
    assert decimal_to_float((999_999_999_999).to_bytes(6, "big", signed=True), 2) == 9_999_999_999.99


def _with_customer(record: dict[str, Any], **customer: Any) -> dict[str, Any]:
    record = copy.deepcopy(record)
    record["customer"].update(customer)
    return record


REFUSALS = [
    pytest.param(
        N + "CheckoutStarted", _with_customer(checkout(), email="ana.x.com"), "invalid_email", "ana.x.com", id="email"
    ),
    pytest.param(
        N + "CheckoutStarted",
        _with_customer(checkout(), email="  "),
        "missing_required_field",
        "email",
        id="blank-email",
    ),
    pytest.param(
        N + "CheckoutStarted", checkout(checkout_url="ftp://x/1"), "invalid_url", "ftp://x/1", id="checkout-url"
    ),
    pytest.param(
        N + "CheckoutStarted",
        checkout(line_items=[item(image_url="nope")]),
        "invalid_url",
        "line_items[0].image_url",
        id="item-url",
    ),
    pytest.param(N + "OrderPaid", order(currency="real"), "invalid_currency", "real", id="currency"),
    pytest.param(N + "OrderPaid", order(total=Decimal("-1.00")), "negative_amount", "-1.0", id="negative-total"),
    pytest.param(
        N + "OrderPaid",
        order(line_items=[item(unit_price=Decimal("-0.01"))]),
        "negative_amount",
        "line_items[0].price",
        id="negative-unit",
    ),
    pytest.param(
        N + "OrderPaid", order(line_items=[item(quantity=0)]), "invalid_quantity", "quantity", id="zero-quantity"
    ),
    pytest.param(
        N + "CartAbandoned",
        checkout("cart_id", "c-1", line_items=[]),
        "invalid_quantity",
        "total_items",
        id="empty-cart",
    ),
    pytest.param(N + "OrderPaid", order(order_id=""), "missing_required_field", "identifier", id="blank-id"),
    pytest.param(
        N + "OrderPaid", order(line_items=[item("P" * 151)]), "value_too_long", "product_id", id="long-product-id"
    ),
    pytest.param(
        N + "RdEvent",
        rd_event("ORDER_PLACED", {"email": "a@b.co"}),
        "removed_event_type",
        "ECOMMERCE_ORDER_PLACED",
        id="removed",
    ),
    pytest.param(N + "RdEvent", rd_event("NOPE", {"email": "a@b.co"}), "unknown_event_type", "NOPE", id="unknown-type"),
    pytest.param(
        N + "RdEvent", {**rd_event("SALE", {}), "payload_json": "{bad"}, "invalid_payload_json", "{bad", id="bad-json"
    ),
    pytest.param(
        N + "RdEvent", {**rd_event("SALE", {}), "payload_json": "[1]"}, "invalid_payload_json", "[1]", id="json-array"
    ),
    pytest.param(
        N + "RdEvent",
        rd_event("CONVERSION", {"email": "a@b.co"}),
        "missing_required_field",
        "conversion_identifier",
        id="passthrough-missing",
    ),
    pytest.param(
        N + "RdEvent",
        rd_event("SALE", {"email": "a@b.co", "funnel_name": "d", "value": -5}),
        "negative_amount",
        "value",
        id="passthrough-negative",
    ),
    pytest.param(
        N + "RdEvent",
        rd_event("ECOMMERCE_ORDER_CANCELLED", {"email": "a@b.co", "identifier": "o", "cancel_reason": "bored"}),
        "invalid_option",
        "bored",
        id="passthrough-cancel-reason",
    ),
    pytest.param(
        N + "RdEvent",
        rd_event("CONVERSION", {"email": "a@b.co", "conversion_identifier": "x", "legal_bases": [{"type": "x"}]}),
        "invalid_legal_basis",
        "legal_bases[0]",
        id="passthrough-legal-basis",
    ),
]


@pytest.mark.parametrize(("full_name", "record", "reason", "in_message"), REFUSALS)
def test_refusals_have_a_stable_reason_and_name_field_and_value(
    full_name: str, record: dict[str, Any], reason: str, in_message: str
) -> None:
    error = refusal(full_name, record)
    assert (error.reason, error.stage) == (reason, "map")
    assert in_message in str(error)


@pytest.mark.parametrize("legacy", sorted(contract.REMOVED_EVENT_TYPES))
def test_every_legacy_type_is_refused_with_its_replacement(legacy: str) -> None:
    error = refusal(N + "RdEvent", rd_event(legacy, {"email": "a@b.co"}))
    assert error.reason == "removed_event_type"
    assert contract.REMOVED_EVENT_TYPES[legacy] in str(error)


def test_unknown_record_and_misshapen_records() -> None:
    with pytest.raises(MappingError) as info:
        map_record(N + "DeliveryResult", {})
    assert info.value.reason == "unknown_record"
    with pytest.raises(MappingError) as info:
        map_record(N + "OrderPaid", {"customer": {}})
    assert info.value.reason == "invalid_field"


def test_trims_to_rd_caps_and_counts() -> None:
    long_title = "T" * 300
    items = [
        item(f"P{i}", title=long_title if i == 0 else "Tee", categories=[f"c{j}" for j in range(12)]) for i in range(25)
    ]
    event = through_the_wire(N + "OrderPaid", order(line_items=items, payment_methods=[f"m{i}" for i in range(7)]))
    payload = event.payload
    assert len(payload["line_items"]) == 20
    assert all(len(i["categories"]) == 10 for i in payload["line_items"])
    assert len(payload["line_items"][0]["product_title"]) == 255
    assert len(payload["payment_methods"]) == 5
    assert payload["total_items"] == 50  # the real count, not the trimmed one
    assert event.trims == 1 + 20 + 1 + 1
    assert contract.payload_errors(event.event_type, payload) == {}


def test_passthrough_is_trimmed_too_and_drops_nulls() -> None:
    payload = {"email": "a@b.co", "identifier": "o", "currency": "BRL", "price": 1, "total_items": 1, "name": None}
    payload["line_items"] = [{"product_id": "p", "product_title": "t", "price": 1, "quantity": 1}] * 21
    event = through_the_wire(N + "RdEvent", rd_event("ECOMMERCE_ORDER_PAID", payload))
    assert event.trims == 1 and len(event.payload["line_items"]) == 20 and "name" not in event.payload


def test_absent_optionals_are_omitted_never_null() -> None:
    record = order(shipping={"price": Decimal("0.00"), "city": None, "state": None, "country": None}, order_url=None)
    record["customer"] = {"email": "ana@x.com", "name": None, "mobile_phone": None, "personal_phone": None}
    payload = through_the_wire(N + "OrderPlaced", record).payload
    assert None not in payload.values() and payload["shipping_price"] == 0
    assert {"name", "order_url", "shipping_city"}.isdisjoint(payload)


# Issue 14 item 2: each of these raised out of `map_record`/`encode_event` (TypeError, OverflowError) and
# killed the decode worker; now each is a refusal with its own reason.
def test_a_legal_basis_type_that_is_a_list_is_not_a_string() -> None:
    bases = [{"category": "communications", "type": [], "status": "granted"}]
    error = refusal(
        N + "RdEvent", rd_event("CONVERSION", {"conversion_identifier": "c", "email": "a@x.co", "legal_bases": bases})
    )
    assert error.reason == "not_a_string"
    assert str(error) == "mapping rd-event: CONVERSION: legal_bases[0].type=[]: legal_bases[0].type must be a string."
    assert (
        error.log_message == "mapping rd-event: CONVERSION: legal_bases[0].type: legal_bases[0].type must be a string."
    )


def test_a_cancel_reason_that_is_a_list_is_not_a_string() -> None:
    payload = {"email": "a@x.co", "identifier": "o-1", "cancel_reason": []}
    error = refusal(N + "RdEvent", rd_event("ECOMMERCE_ORDER_CANCELLED", payload))
    assert (error.reason, error.stage) == ("not_a_string", "map")
    assert "cancel_reason must be a string" in str(error)


@pytest.mark.parametrize(
    ("total", "field"),
    [
        (b"\x01" + b"\x00" * 400, "total"),  # 401 bytes: int / 100 overflowed a float
        ((10**12).to_bytes(6, "big", signed=True), "total"),  # 13 digits: over decimal(12, 2)
        ((-(10**12)).to_bytes(6, "big", signed=True), "total"),
    ],
)
def test_a_decimal_outside_its_precision_is_invalid(total: bytes, field: str) -> None:
    raw_order = {**order(), "total": total}
    raw_order["line_items"] = []
    with pytest.raises(MappingError) as info:
        map_record(N + "OrderPlaced", _raw(raw_order))
    assert info.value.reason == "invalid_decimal"
    # The value is not quoted: it may have thousands of digits (401 bytes made the division overflow).
    assert str(info.value) == f"mapping order-placed: price: a decimal(12, 2) at '{field}' has more than 12 digits"


def test_the_largest_decimal_of_its_precision_maps() -> None:
    unscaled = 10**12 - 1
    event = map_record(N + "OrderPlaced", _raw({**order(), "total": unscaled.to_bytes(6, "big", signed=True)}))
    assert event.payload["price"] == 9_999_999_999.99


@pytest.mark.parametrize("value", [Decimal("1e400"), Decimal("NaN"), Decimal("-Infinity"), Decimal("10000000000.00")])
def test_a_logical_decimal_outside_its_precision_is_invalid(value: Decimal) -> None:
    with pytest.raises(MappingError) as info:
        map_record(N + "OrderPlaced", {**order(), "total": value})
    assert info.value.reason == "invalid_decimal"
    assert str(info.value).startswith("mapping order-placed: price: a decimal") and "'total'" in str(info.value)


def _raw(record: Any) -> Any:
    """`record` with its Decimals as the raw unscaled bytes the decoder gives by default."""
    if isinstance(record, Decimal):
        unscaled = int(record.scaleb(2))
        return unscaled.to_bytes((unscaled.bit_length() + 8) // 8, "big", signed=True)
    if isinstance(record, dict):
        return {k: _raw(v) for k, v in record.items()}
    if isinstance(record, list):
        return [_raw(v) for v in record]
    return record


def _deep(levels: int) -> str:
    return '{"conversion_identifier": "c", "email": "a@x.co", "cf_x": ' + "[" * levels + "]" * levels + "}"


def test_a_payload_nested_deeper_than_json_can_be_encoded_is_refused() -> None:
    # body (1) + payload (2) + 252 lists = 254 levels: the deepest orjson writes.
    fits = through_the_wire(N + "RdEvent", {**rd_event("CONVERSION", {}), "payload_json": _deep(252)})
    assert len(encode_event(fits)) > 252
    for levels in (253, 300, 1000):
        event = through_the_wire(N + "RdEvent", {**rd_event("CONVERSION", {}), "payload_json": _deep(levels)})
        with pytest.raises(MappingError) as info:
            encode_event(event)
        assert info.value.reason == "payload_too_deep"
        assert str(info.value) == f"CONVERSION: the event nests {levels + 2} levels; at most 254 can be encoded"


def test_a_value_json_cannot_encode_is_refused() -> None:
    event = RdEvent("CONVERSION", {"event_type": "CONVERSION", "payload": {"n": 2**64}}, 0)
    with pytest.raises(MappingError) as info:
        encode_event(event)
    assert info.value.reason == "unencodable_payload" and "64-bit" in str(info.value)


def test_a_refused_value_nested_1000_levels_is_quoted_short() -> None:
    # orjson reads 1024 levels; a plain repr of the offending value raised RecursionError.
    text = '{"conversion_identifier": "c", "email": ' + "[" * 1000 + "]" * 1000 + "}"
    error = refusal(N + "RdEvent", {**rd_event("CONVERSION", {}), "payload_json": text})
    assert error.reason == "invalid_email" and "email=[[[[...]]]]" in str(error)

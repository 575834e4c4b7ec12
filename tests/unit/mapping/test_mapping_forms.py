"""Every form of the mapping syntax at run time: what a compiled mapping makes of a record (pure)."""

from __future__ import annotations

import copy
import logging
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connector.avro.catalog import schema_entry
from connector.errors import MappingError
from connector.mapping import Mappings, Skipped
from connector.mapping.convert import rfc3339
from connector.mapping.event import RdEvent
from connector.mapping.file_tests import diff, record_from_input
from connector.mapping.spec import MappingFileError
from tests.unit.mapping.mapping_support import (
    ENVELOPE,
    KIND_VALUES,
    KINDS,
    ORDER,
    ORDER_DEFINITION,
    PAID,
    compiled,
    event,
    mapping_text,
    order,
    refusal,
    run,
)

# -- paths, first present, modifiers -----------------------------------------------------------------------


def test_paths_through_records_and_nullable_unions() -> None:
    body = PAID + "  name: buyer.full_name\n  mobile_phone: buyer.phone\n"
    payload = event(body, order()).payload
    assert payload == {
        "email": "Ana@X.com",
        "name": "Ana",
        "identifier": "7",
        "currency": "BRL",
        "price": 129.9,
        "total_items": 1,
    }  # absent phone omitted, never null


def test_a_list_of_paths_takes_the_first_present() -> None:
    body = PAID + "  name: [buyer.full_name, buyer.nickname]\n"
    assert event(body, order(buyer={"email": "a@x.com", "nickname": "Bo"})).payload["name"] == "Bo"
    assert event(body, order(buyer={"email": "a@x.com", "full_name": "Al", "nickname": "Bo"})).payload["name"] == "Al"
    assert "name" not in event(body, order(buyer={"email": "a@x.com"})).payload


@pytest.mark.parametrize(
    ("spec", "value", "sent"),
    [
        ("{path: buyer.full_name, lower: true}", "Ana B", "ana b"),
        ("{path: buyer.full_name, upper: true}", "Ana B", "ANA B"),
        ("{path: buyer.full_name, trim: true}", "  Ana B ", "Ana B"),
        ("{path: buyer.full_name, trim: true, lower: true}", "  Ana B ", "ana b"),
        ("{path: buyer.full_name, default: Someone}", None, "Someone"),
        ("{path: buyer.full_name, default: Someone}", "Ana", "Ana"),
    ],
)
def test_string_modifiers_and_default(spec: str, value: str | None, sent: str) -> None:
    data = order(buyer={"email": "a@x.com", "full_name": value})
    assert event(PAID + f"  name: {spec}\n", data).payload["name"] == sent


def test_divide_and_multiply() -> None:
    assert event(PAID, order(total_cents=12990)).payload["price"] == 129.9
    body = PAID.replace("{path: total_cents, divide: 100}", "{path: total_cents, multiply: 2}")
    price = event(body, order(total_cents=3)).payload["price"]
    assert price == 6 and isinstance(price, int)


def test_constants_are_sent_as_written_and_never_shared_between_records() -> None:
    body = (
        PAID + "  payment_methods: {value: [pix, card]}\n  legal_bases:\n    value: [{category:"
        " communications, type: consent, status: granted}]\n"
    )
    function = compiled(body).function
    assert function is not None
    first, second = (function(record_from_input(ORDER, order())) for _ in range(2))
    assert isinstance(first, RdEvent) and isinstance(second, RdEvent)
    assert first.payload["payment_methods"] == ["pix", "card"]
    assert first.payload["legal_bases"] == [{"category": "communications", "type": "consent", "status": "granted"}]
    assert first.payload == second.payload
    assert first.payload["payment_methods"] is not second.payload["payment_methods"]  # trims cut lists in place
    assert first.payload["legal_bases"][0] is not second.payload["legal_bases"][0]


def test_a_constant_over_an_rd_cap_is_a_check_error() -> None:
    [message] = [str(p) for p in compiled(PAID + "  payment_methods: {value: [a, b, c, d, e, f]}\n").problems]
    assert (
        "payload.payment_methods: ['a', 'b', 'c', 'd', 'e', 'f']: payment_methods is too long (maximum is 5)."
        in message
    )


def test_sum_and_count() -> None:
    items = [
        {"sku": "a", "title": "A", "unit_cents": 100, "qty": 2},
        {"sku": "b", "title": "B", "unit_cents": 50, "qty": 3},
    ]
    assert event(PAID, order(items=items)).payload["total_items"] == 5
    assert event(PAID, order(items=[])).payload["total_items"] == 0
    body = PAID.replace("{sum: items, of: qty}", "{count: items}")
    assert event(body, order(items=items)).payload["total_items"] == 2
    body = PAID.replace("{path: total_cents, divide: 100}", "{sum: items, of: unit_cents, divide: 100}")
    assert event(body, order(items=items)).payload["price"] == 1.5


def test_each_maps_every_element_with_relative_paths() -> None:
    body = PAID + (
        "  line_items:\n    each: items\n    payload:\n      product_id: sku\n     "
        " product_title: {path: title, upper: true}\n"
        "      price: {path: unit_cents, divide: 100}\n      quantity: qty\n"
    )
    items = [{"sku": "a", "title": "Tee", "unit_cents": 12990, "qty": 2}]
    assert event(body, order(items=items)).payload["line_items"] == [
        {"product_id": "a", "product_title": "TEE", "price": 129.9, "quantity": 2}
    ]
    assert "line_items" not in event(body, order(items=[])).payload  # an empty list is absent


# -- event types ------------------------------------------------------------------------------------------


CASES = """
event_type:
  path: status
  cases: {PLACED: ECOMMERCE_ORDER_PLACED, PAID: ECOMMERCE_ORDER_PAID, CANCELLED: ECOMMERCE_ORDER_CANCELLED}
  otherwise: OTHERWISE
payload:
  email: buyer.email
  identifier: {path: order_number, to: string}
  currency: {value: BRL}
  price: {path: total_cents, divide: 100}
  total_items: {sum: items, of: qty}
  cancel_reason: {path: cancel_reason, lower: true, default: other}
"""


def test_cases_choose_the_event_type_and_fields_go_only_where_rd_takes_them() -> None:
    body = CASES.replace("OTHERWISE", "skip")
    paid = event(body, order(status="PAID", cancel_reason="FRAUD"))
    assert paid.event_type == "ECOMMERCE_ORDER_PAID" and "cancel_reason" not in paid.payload
    cancelled = event(body, order(status="CANCELLED", cancel_reason="FRAUD"))
    assert cancelled.event_type == "ECOMMERCE_ORDER_CANCELLED"
    assert cancelled.payload == {"email": "Ana@X.com", "identifier": "7", "cancel_reason": "fraud"}
    assert event(body, order(status="CANCELLED")).payload["cancel_reason"] == "other"


def test_otherwise_skip_dead_letter_or_an_event_type() -> None:
    assert run(CASES.replace("OTHERWISE", "skip"), order(status="DRAFT")) == Skipped("m")
    error = refusal(CASES.replace("OTHERWISE", "dead_letter"), order(status="DRAFT"))
    assert error.reason == "no_event_type"
    assert "status='DRAFT' matches no case (PLACED, PAID, CANCELLED) and otherwise is dead_letter" in error.message
    assert (
        event(CASES.replace("OTHERWISE", "ECOMMERCE_ORDER_PLACED"), order(status="DRAFT")).event_type
        == "ECOMMERCE_ORDER_PLACED"
    )


def test_a_case_may_skip_or_dead_letter_and_numbers_and_booleans_are_compared_as_text() -> None:
    body = CASES.replace("  cancel_reason: {path: cancel_reason, lower: true, default: other}\n", "")
    body = body.replace("PLACED: ECOMMERCE_ORDER_PLACED", "PLACED: skip").replace(
        "CANCELLED: ECOMMERCE_ORDER_CANCELLED", "CANCELLED: dead_letter"
    )
    assert run(body.replace("OTHERWISE", "skip"), order(status="PLACED")) == Skipped("m")
    assert refusal(body.replace("OTHERWISE", "skip"), order(status="CANCELLED")).reason == "no_event_type"
    number = body.replace("PLACED: skip", "PLACED: ECOMMERCE_ORDER_PLACED").replace(
        "CANCELLED: dead_letter", "CANCELLED: ECOMMERCE_ORDER_PLACED"
    )
    number = (
        number.replace("path: status", "path: order_number")
        .replace("PLACED:", "1:")
        .replace("PAID:", "7:")
        .replace("CANCELLED:", "9:")
    )
    assert event(number.replace("OTHERWISE", "skip"), order(order_number=7)).event_type == "ECOMMERCE_ORDER_PAID"


# -- refusals at run time ---------------------------------------------------------------------------------


def test_a_required_value_missing_names_the_field_and_the_paths_tried() -> None:
    body = PAID.replace("email: buyer.email", "email: [buyer.full_name, buyer.nickname]")
    error = refusal(body, order(buyer={"email": "a@x.com"}))
    assert error.reason == "missing_required_field" and error.stage == "map"
    assert error.message == (
        "mapping m: ECOMMERCE_ORDER_PAID requires email: the record has no value at"
        " 'buyer.full_name' or 'buyer.nickname'"
    )


def test_a_required_line_item_value_missing_names_its_index() -> None:
    definition = copy.deepcopy(ORDER_DEFINITION)
    item = definition["fields"][4]["type"]["items"]
    item["fields"][1] = {"name": "title", "type": ["null", "string"], "default": None}  # an optional title
    entry = schema_entry("com.acme.shop.Order", definition)
    body = PAID + (
        "  line_items: {each: items, payload: {product_id: sku, product_title: title, price: {value: 1},"
        " quantity: qty}}\n"
    )
    items = [
        {"sku": "a", "title": "A", "unit_cents": 1, "qty": 1},
        {"sku": "b", "title": None, "unit_cents": 1, "qty": 1},
    ]
    error = refusal(body, order(items=items), entry)
    assert (error.reason, error.message) == (
        "missing_required_field",
        "mapping m: ECOMMERCE_ORDER_PAID requires line_items[1].product_title: the"
        " record has no value at 'items[].title'",
    )


def test_every_rd_rule_still_applies() -> None:
    assert refusal(PAID, order(buyer={"email": "nobody"})).reason == "invalid_email"
    assert refusal(PAID, order(total_cents=-1)).reason == "negative_amount"
    error = refusal(PAID, order(buyer={"email": "nobody"}))
    assert error.message.startswith("mapping m: ECOMMERCE_ORDER_PAID: email='nobody'")


def test_to_number_of_something_not_a_number_is_invalid_field() -> None:
    body = (
        "event_type: SALE\npayload:\n  email: email\n  funnel_name: {value: default}\n "
        " value: {path: text_number, to: number}\n"
    )
    assert event(body, {**KIND_VALUES, "text_number": " 12.50 "}, KINDS).payload["value"] == 12.5
    assert event(body, {**KIND_VALUES, "text_number": "7"}, KINDS).payload["value"] == 7
    error = refusal(body, {**KIND_VALUES, "text_number": "twelve"}, KINDS)
    assert (error.reason, error.message) == (
        "invalid_field",
        "mapping m: value: 'twelve' at 'text_number' is not a number",
    )
    assert refusal(body, {**KIND_VALUES, "text_number": "nan"}, KINDS).reason == "invalid_field"


def test_a_record_that_does_not_fit_is_invalid_field() -> None:
    function = compiled(PAID).function
    assert function is not None
    with pytest.raises(MappingError) as info:
        function({"buyer": {}})
    assert info.value.reason == "invalid_field" and "mapping m: record does not fit its mapping" in info.value.message


# -- Avro values, converted without loss --------------------------------------------------------------------


CONVERSION = "event_type: CONVERSION\npayload:\n  email: email\n  conversion_identifier: {value: x}\n"
CALL = (
    "event_type: CALL_FINISHED\npayload:\n  email: email\n  call_from_number:"
    " {value: '1'}\n  call_status: {value: ok}\n"
)


@pytest.mark.parametrize(
    ("body", "field", "sent"),
    [
        (CONVERSION + "  name: level\n", "name", "HIGH"),  # enum -> its symbol
        (CONVERSION + "  name: id\n", "name", "6f1c1d52-7c5b-4e0e-9a57-3c8a4e1d0b11"),  # uuid -> string
        (CONVERSION + "  name: {path: amount, to: string}\n", "name", "129.90"),  # decimal -> its exact digits
        (CONVERSION + "  name: {path: big, to: string}\n", "name", "123456789012345678.90"),
        (CONVERSION + "  name: {path: count, to: string}\n", "name", "7"),
        (CONVERSION + "  name: {path: ratio, to: string}\n", "name", "2.5"),
        (CONVERSION + "  name: {path: flag, to: string}\n", "name", "true"),
        (CONVERSION + "  name: {path: at_ms, to: string}\n", "name", "2026-01-31T12:00:00.123Z"),
        (CONVERSION + "  available_for_mailing: flag\n", "available_for_mailing", True),
        (CONVERSION + "  tags: tags\n", "tags", ["a", "b"]),
        (CONVERSION + "  tags: maybe_tags\n", "tags", ["a"]),
        (CALL + "  call_started_at: at_ms\n", "call_started_at", "2026-01-31T12:00:00.123Z"),
        (CALL + "  call_started_at: at_us\n", "call_started_at", "2026-01-31T12:00:00.000001Z"),
        (CALL + "  call_started_at: day\n", "call_started_at", "2026-01-31T00:00:00Z"),
        (CALL + "  call_started_at: {path: count, to: timestamp}\n", "call_started_at", "1970-01-01T00:00:00.007Z"),
        (CALL + "  call_started_at: {path: text_time, to: timestamp}\n", "call_started_at", "2026-01-31T09:00:00Z"),
        (CALL + "  call_duration: {path: count, to: string}\n", "call_duration", "7"),
        ("event_type: SALE\npayload:\n  email: email\n  funnel_name: {value: d}\n  value: amount\n", "value", 129.9),
        ("event_type: SALE\npayload:\n  email: email\n  funnel_name: {value: d}\n  value: whole\n", "value", 42),
        (
            "event_type: SALE\npayload:\n  email: email\n  funnel_name: {value: d}\n "
            " value: {path: text_number, to: number}\n",
            "value",
            3,
        ),
    ],
)
def test_avro_values_convert_without_loss(body: str, field: str, sent: Any) -> None:
    data = {
        **KIND_VALUES,
        "tags": ["a", "b"],
        "maybe_tags": [None, "a"],
        "text_number": "3",
        "text_time": "2026-01-31T12:00:00+03:00",
    }
    value = event(body, data, KINDS).payload[field]
    assert value == sent and type(value) is type(sent)


def test_raw_and_logical_values_give_the_same_event() -> None:
    body = (
        CALL + "  call_started_at: at_ms\n  name: id\n  call_duration: {path: amount, to:"
        " string}\n  call_type: {path: day, to: string}\n"
    )
    function = compiled(body, KINDS).function
    assert function is not None
    raw = record_from_input(KINDS, KIND_VALUES)
    logical = {**raw, "id": UUID(raw["id"]), "amount": Decimal("129.90"), "at_ms": rfc3339_datetime(raw["at_ms"])}
    logical["day"] = __import__("datetime").date(2026, 1, 31)
    assert function(raw) == function(logical)


def rfc3339_datetime(ms: int) -> Any:
    from datetime import UTC, datetime, timedelta

    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)


@given(st.integers(min_value=-(10**11), max_value=10**11 - 1))
def test_decimals_become_numbers_with_exactly_their_digits(unscaled: int) -> None:
    from connector.mapping.convert import decimal_number, decimal_text

    raw = unscaled.to_bytes(6, "big", signed=True)
    assert repr(decimal_number(raw, 13, 2)) == repr(float(Decimal(unscaled).scaleb(-2)))
    assert Decimal(repr(decimal_number(raw, 13, 2))) == Decimal(decimal_text(raw, 2))


@given(st.integers(min_value=0, max_value=4_102_444_800_000_000))
def test_rfc3339_of_micros_round_trips(micros: int) -> None:
    from datetime import datetime

    text = rfc3339(micros, "us")
    parsed = datetime.fromisoformat(text)
    assert text.endswith("Z") and round(parsed.timestamp() * 1_000_000) == micros


# -- Debezium ------------------------------------------------------------------------------------------------


DEBEZIUM = """
unwrap: debezium
event_type: ECOMMERCE_CHECKOUT_STARTED
payload:
  email: email
  identifier: {path: id, to: string}
  checkout_url: cart_url
  currency: currency
  price: total
  total_items: item_count
"""
ROW = {"id": 1, "email": "a@x.com", "status": "open", "cart_url": "https://s.x/c/1", "currency": "BRL", "total": 10.5,
       "item_count": 1, "updated_at": 0}  # fmt: skip
SOURCE = {
    "version": "2",
    "connector": "postgresql",
    "name": "db",
    "ts_ms": 0,
    "db": "shop",
    "schema": "public",
    "table": "checkouts",
}


@pytest.mark.parametrize(
    ("op", "before", "after", "sent"),
    [
        ("c", None, ROW, True),
        ("r", None, ROW, True),
        ("u", ROW, ROW, True),
        ("d", ROW, None, False),
        ("u", ROW, None, False),
    ],
)
def test_debezium_maps_the_row_after_and_skips_deletes(op: str, before: Any, after: Any, sent: bool) -> None:
    result = run(DEBEZIUM, {"before": before, "after": after, "source": SOURCE, "op": op}, ENVELOPE)
    if sent:
        assert isinstance(result, RdEvent) and result.payload["price"] == 10.5 and result.payload["identifier"] == "1"
    else:
        assert result == Skipped("m")


# -- the set of mappings: precedence, topics, unknown records, schemas first seen at run time -------------------


USER = mapping_text(PAID.replace("ECOMMERCE_ORDER_PAID", "ECOMMERCE_ORDER_PLACED"))


def test_user_mappings_come_before_bundled_ones_and_topics_select() -> None:
    override = mapping_text(
        "event_type: ECOMMERCE_ORDER_REFUNDED\ntopics: [refunds]\npayload: {email:"
        " customer.email, identifier: order_id}",
        record="io.rdconnector.events.OrderPaid",
    )
    mappings = Mappings([("o.yaml", override)])
    assert mappings.select("io.rdconnector.events.OrderPaid", "refunds").name == "m"  # type: ignore[union-attr]
    assert mappings.select("io.rdconnector.events.OrderPaid", "orders").name == "order-paid"  # type: ignore[union-attr]
    assert mappings.select("com.acme.shop.Nope", "orders") is None


def test_one_record_and_topic_has_at_most_one_mapping() -> None:
    second = USER.replace("name: m", "name: n")
    with pytest.raises(
        MappingFileError, match=r"mapping .m. \(a.yaml:3\) already maps com.acme.shop.Order on every topic"
    ):
        Mappings([("a.yaml", USER), ("b.yaml", second)])
    apart_a = USER.replace("    record:", "    topics: [a, b]\n    record:")
    apart_b = second.replace("    record:", "    topics: [b, c]\n    record:")
    with pytest.raises(MappingFileError, match="on topic\\(s\\) b: one record"):
        Mappings([("a.yaml", apart_a), ("b.yaml", apart_b)])
    Mappings([("a.yaml", apart_a), ("b.yaml", apart_b.replace("[b, c]", "[c]"))])
    with pytest.raises(
        MappingFileError, match=r"b\.yaml:3: mapping .m.: name: the name is taken by the mapping at a\.yaml:3"
    ):
        Mappings([("a.yaml", USER), ("b.yaml", USER)])


def test_unknown_records_and_problems_of_several_files_at_once() -> None:
    mappings = Mappings([("a.yaml", USER)])
    with pytest.raises(MappingError) as info:
        mappings.map("com.acme.shop.Other", {}, None, "t")
    assert info.value.reason == "unknown_record"
    with pytest.raises(MappingFileError) as broken:
        Mappings([("a.yaml", "version: 3\nmappings: []\n"), ("b.yaml", "version: 1\nmappings: [x\n")])
    assert [p.file for p in broken.value.problems] == ["a.yaml", "b.yaml"]


def test_a_schema_first_seen_at_run_time_that_does_not_fit_is_refused_and_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    mappings = Mappings([("a.yaml", USER)])
    renamed = {
        **ORDER_DEFINITION,
        "fields": [f if f["name"] != "buyer" else {**f, "name": "customer"} for f in ORDER_DEFINITION["fields"]],
    }
    other = schema_entry("com.acme.shop.Order", renamed, "schema id 9")
    record = record_from_input(ORDER, order())
    assert isinstance(mappings.map("com.acme.shop.Order", record, ORDER, "t"), RdEvent)
    with caplog.at_level(logging.WARNING, logger="connector.mapping"):
        for topic in ("t", "u", "t"):  # one function per (schema, topic); one warning per schema
            with pytest.raises(MappingError) as info:
                mappings.map("com.acme.shop.Order", record, other, topic)
    assert info.value.reason == "schema_mismatch"
    assert (
        "mapping m does not fit this schema of com.acme.shop.Order (schema id 9): payload.email: path 'buyer.email'"
        in info.value.message
    )
    assert len(caplog.records) == 1 and "schema=schema id 9" in caplog.records[0].getMessage()
    assert isinstance(mappings.map("com.acme.shop.Order", record, ORDER, "t"), RdEvent)  # the others keep flowing


def test_diff_names_every_field_that_differs() -> None:
    assert diff(
        {"a": 1, "b": [{"c": 129.9}], "d": True}, {"a": 1.0, "b": [{"c": 129.90}], "d": 1, "e": "x"}, "payload"
    ) == [
        "payload.d: expected True, got 1",
        "payload.e: not expected, got 'x'",
    ]
    assert diff({"a": "7"}, {"a": 7}, "p") == ["p.a: expected '7', got 7"]
    assert diff({"a": [1]}, {"a": [1, 2]}, "p") == ["p.a: expected 1 element(s), got 2: [1, 2]"]
    assert diff({"a": 1}, {}, "p") == ["p.a: expected 1, but the payload has no a"]

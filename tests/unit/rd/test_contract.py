"""Every rule of `connector.rd.contract.payload_errors`, table-driven from the examples in rd-api.md."""

from __future__ import annotations

from typing import Any

import pytest

from connector.rd import contract
from connector.rd.contract import EVENT_TYPES, LIMITS, REMOVED_EVENT_TYPES, payload_errors

_ITEM: dict[str, Any] = {"product_id": "P1", "product_title": "Tee", "price": 129.9, "quantity": 2}
_TOTALS: dict[str, Any] = {
    "email": "ana@x.com",
    "identifier": "ord-1",
    "currency": "BRL",
    "price": 10,
    "total_items": 1,
}

#: One acceptable payload per event type (the rd-api.md examples).
VALID: dict[str, dict[str, Any]] = {
    "CONVERSION": {
        "conversion_identifier": "newsletter",
        "email": "ana@x.com",
        "tags": ["kafka"],
        "cf_plan": "pro",
        "legal_bases": [{"category": "communications", "type": "consent", "status": "granted"}],
    },
    "OPPORTUNITY": {"email": "ana@x.com", "funnel_name": "default"},
    "SALE": {"email": "ana@x.com", "funnel_name": "default", "value": 199.9},
    "OPPORTUNITY_LOST": {"email": "ana@x.com", "funnel_name": "default", "reason": "price"},
    "CHAT_STARTED": {"email": "ana@x.com", "chat_subject": "Pricing", "cf_chat_status": "open"},
    "CHAT_FINISHED": {
        "email": "ana@x.com",
        "chat_subject": "Pricing",
        "cf_chat_status": "closed",
        "cf_chat_transcript_message": "Hi… Bye",
    },
    "CALL_FINISHED": {"email": "ana@x.com", "call_from_number": "+551112341234", "call_status": "answered"},
    "MEDIA_PLAYBACK_STARTED": {"email": "ana@x.com", "media_type": "video", "media_identifier": "w-42"},
    "MEDIA_PLAYBACK_STOPPED": {"email": "ana@x.com", "media_type": "video", "media_identifier": "w-42"},
    "ECOMMERCE_CHECKOUT_STARTED": {**_TOTALS, "checkout_url": "https://shop.x/c/1", "line_items": [_ITEM]},
    "ECOMMERCE_CART_ABANDONED": {**_TOTALS, "checkout_url": "https://shop.x/c/1", "line_items": [_ITEM]},
    "ECOMMERCE_ORDER_PLACED": {**_TOTALS, "shipping_price": 15, "line_items": [_ITEM]},
    "ECOMMERCE_ORDER_PAID": {**_TOTALS, "order_url": "https://shop.x/o/1", "payment_methods": ["pix"]},
    "ECOMMERCE_ORDER_FULFILLED": {
        "email": "ana@x.com",
        "identifier": "shp-55",
        "tracking_url": "https://track.x/AB123BR",
    },
    "ECOMMERCE_SHIPMENT_DELIVERED": {"email": "ana@x.com", "identifier": "shp-55", "order_identifier": "ord-1"},
    "ECOMMERCE_ORDER_CANCELLED": {"email": "ana@x.com", "identifier": "ord-1", "cancel_reason": "customer"},
    "ECOMMERCE_ORDER_REFUNDED": {"email": "ana@x.com", "identifier": "ord-1"},
}


def _types(errors: dict[str, list[dict[str, str]]], field: str) -> list[str]:
    return [e["error_type"] for e in errors.get(field, [])]


def test_every_event_type_has_a_valid_example() -> None:
    assert set(VALID) == set(EVENT_TYPES)


@pytest.mark.parametrize("event_type", sorted(VALID))
def test_valid_payload_has_no_errors(event_type: str) -> None:
    assert payload_errors(event_type, VALID[event_type]) == {}


@pytest.mark.parametrize(
    ("event_type", "field"),
    [pytest.param(t, f, id=f"{t}-{f}") for t, fields in EVENT_TYPES.items() for f in fields],
)
def test_missing_or_null_required_field_cannot_be_null(event_type: str, field: str) -> None:
    missing = {k: v for k, v in VALID[event_type].items() if k != field}
    assert _types(payload_errors(event_type, missing), field) == ["CANNOT_BE_NULL"]
    nulled = {**VALID[event_type], field: None}
    errors = payload_errors(event_type, nulled)
    assert _types(errors, field) == ["CANNOT_BE_NULL"]
    assert errors[field][0]["error_message"] == f"{field} cannot be null."


@pytest.mark.parametrize("field", EVENT_TYPES["CHAT_STARTED"])
def test_blank_required_string_cannot_be_blank(field: str) -> None:
    errors = payload_errors("CHAT_STARTED", {**VALID["CHAT_STARTED"], field: "  "})
    assert "CANNOT_BE_BLANK" in _types(errors, field)


@pytest.mark.parametrize("email", ["ana", "ana@x", "a b@x.com", 42, ["ana@x.com"]])
def test_invalid_email_format(email: Any) -> None:
    errors = payload_errors("OPPORTUNITY", {"email": email, "funnel_name": "default"})
    assert _types(errors, "email") == ["INVALID_FORMAT"]


@pytest.mark.parametrize("url", ["ftp://x.com/a", "shop.x/c", "https://", "https://a b.com", 7])
@pytest.mark.parametrize("field", sorted(contract.URL_FIELDS - {"product_url", "image_url"}))
def test_top_level_url_fields_must_be_http(field: str, url: Any) -> None:
    payload = {**VALID["ECOMMERCE_CHECKOUT_STARTED"], field: url}
    assert _types(payload_errors("ECOMMERCE_CHECKOUT_STARTED", payload), field) == ["INVALID_FORMAT"]


@pytest.mark.parametrize("field", ["product_url", "image_url"])
def test_line_item_url_fields_must_be_http(field: str) -> None:
    payload = {**_TOTALS, "line_items": [{**_ITEM, field: "javascript:alert(1)"}]}
    errors = payload_errors("ECOMMERCE_ORDER_PAID", payload)
    assert _types(errors, f"line_items[0].{field}") == ["INVALID_FORMAT"]
    ok = {**_TOTALS, "line_items": [{**_ITEM, field: "HTTP://img.x/1.png"}]}
    assert payload_errors("ECOMMERCE_ORDER_PAID", ok) == {}


@pytest.mark.parametrize(
    ("event_type", "field"),
    [("ECOMMERCE_ORDER_PAID", "price"), ("ECOMMERCE_ORDER_PAID", "shipping_price"), ("SALE", "value")],
)
@pytest.mark.parametrize("value", [-0.01, "10", True])
def test_amounts_must_be_non_negative_numbers(event_type: str, field: str, value: Any) -> None:
    errors = payload_errors(event_type, {**VALID[event_type], field: value})
    assert _types(errors, field) == ["MUST_BE_GREATER_THAN_OR_EQUAL"]


def test_zero_amounts_are_fine() -> None:
    assert payload_errors("ECOMMERCE_ORDER_PAID", {**_TOTALS, "price": 0, "shipping_price": 0.0}) == {}


@pytest.mark.parametrize("currency", ["brl", "BR", "REAL", 986])
def test_currency_must_be_iso_4217_shaped(currency: Any) -> None:
    errors = payload_errors("ECOMMERCE_ORDER_PAID", {**_TOTALS, "currency": currency})
    assert _types(errors, "currency") == ["INVALID_OPTION"]


@pytest.mark.parametrize("reason", ["customer", "declined", "fraud", "inventory", "other"])
def test_cancel_reason_options_accepted(reason: str) -> None:
    payload = {**VALID["ECOMMERCE_ORDER_CANCELLED"], "cancel_reason": reason}
    assert payload_errors("ECOMMERCE_ORDER_CANCELLED", payload) == {}


def test_cancel_reason_outside_options() -> None:
    payload = {**VALID["ECOMMERCE_ORDER_CANCELLED"], "cancel_reason": "changed_mind"}
    errors = payload_errors("ECOMMERCE_ORDER_CANCELLED", payload)
    assert _types(errors, "cancel_reason") == ["MUST_BE_VALID_OPTION"]


def test_payment_methods_limit() -> None:
    at_limit = {**_TOTALS, "payment_methods": ["pix"] * LIMITS["payment_methods"]}
    assert payload_errors("ECOMMERCE_ORDER_PAID", at_limit) == {}
    over = {**_TOTALS, "payment_methods": ["pix"] * (LIMITS["payment_methods"] + 1)}
    assert _types(payload_errors("ECOMMERCE_ORDER_PAID", over), "payment_methods") == ["TOO_LONG"]


def test_line_items_limit() -> None:
    at_limit = {**_TOTALS, "line_items": [_ITEM] * LIMITS["line_items"]}
    assert payload_errors("ECOMMERCE_ORDER_PAID", at_limit) == {}
    over = {**_TOTALS, "line_items": [_ITEM] * (LIMITS["line_items"] + 1)}
    assert _types(payload_errors("ECOMMERCE_ORDER_PAID", over), "line_items") == ["TOO_LONG"]


@pytest.mark.parametrize(
    ("field", "value_at_limit", "value_over"),
    [
        ("categories", ["c"] * LIMITS["categories"], ["c"] * (LIMITS["categories"] + 1)),
        ("product_title", "t" * LIMITS["product_title"], "t" * (LIMITS["product_title"] + 1)),
        ("product_id", "p" * LIMITS["product_id"], "p" * (LIMITS["product_id"] + 1)),
    ],
)
def test_line_item_limits(field: str, value_at_limit: Any, value_over: Any) -> None:
    ok = {**_TOTALS, "line_items": [{**_ITEM, field: value_at_limit}]}
    assert payload_errors("ECOMMERCE_ORDER_PAID", ok) == {}
    over = {**_TOTALS, "line_items": [{**_ITEM, field: value_over}]}
    assert _types(payload_errors("ECOMMERCE_ORDER_PAID", over), f"line_items[0].{field}") == ["TOO_LONG"]


def test_line_items_must_be_a_list_of_objects() -> None:
    errors = payload_errors("ECOMMERCE_ORDER_PAID", {**_TOTALS, "line_items": {"a": 1}})
    assert _types(errors, "line_items") == ["MUST_BE_ARRAY"]
    errors = payload_errors("ECOMMERCE_ORDER_PAID", {**_TOTALS, "line_items": [_ITEM, "P2"]})
    assert _types(errors, "line_items[1]") == ["INVALID"]


@pytest.mark.parametrize("field", ["product_id", "product_title", "price", "quantity"])
def test_line_item_required_fields(field: str) -> None:
    item = {k: v for k, v in _ITEM.items() if k != field}
    errors = payload_errors("ECOMMERCE_ORDER_PAID", {**_TOTALS, "line_items": [item]})
    assert _types(errors, f"line_items[0].{field}") == ["CANNOT_BE_NULL"]


@pytest.mark.parametrize("quantity", [0, -1, 1.5, True, "2"])
def test_line_item_quantity_is_a_positive_integer(quantity: Any) -> None:
    errors = payload_errors("ECOMMERCE_ORDER_PAID", {**_TOTALS, "line_items": [{**_ITEM, "quantity": quantity}]})
    assert _types(errors, "line_items[0].quantity") == ["MUST_BE_GREATER_THAN_OR_EQUAL"]


def test_line_item_price_is_non_negative() -> None:
    errors = payload_errors("ECOMMERCE_ORDER_PAID", {**_TOTALS, "line_items": [{**_ITEM, "price": -1}]})
    assert _types(errors, "line_items[0].price") == ["MUST_BE_GREATER_THAN_OR_EQUAL"]


@pytest.mark.parametrize(
    "basis",
    [
        pytest.param({"category": "data_processing", "type": "consent", "status": "granted"}, id="category"),
        pytest.param({"category": "communications", "type": "contract", "status": "granted"}, id="type"),
        pytest.param({"category": "communications", "type": "consent", "status": "pending"}, id="status"),
        pytest.param({"category": "communications", "type": "consent"}, id="missing-status"),
        pytest.param("consent", id="not-object"),
    ],
)
def test_invalid_legal_basis(basis: Any) -> None:
    payload = {**VALID["OPPORTUNITY"], "legal_bases": [basis]}
    assert _types(payload_errors("OPPORTUNITY", payload), "legal_bases[0]") == ["INVALID"]


@pytest.mark.parametrize(
    "legal_type",
    [
        "pre_existent_contract",
        "consent",
        "legitimate_interest",
        "judicial_process",
        "vital_interest",
        "public_interest",
    ],
)
@pytest.mark.parametrize("status", ["granted", "declined"])
def test_valid_legal_bases(legal_type: str, status: str) -> None:
    basis = {"category": "communications", "type": legal_type, "status": status}
    assert payload_errors("OPPORTUNITY", {**VALID["OPPORTUNITY"], "legal_bases": [basis]}) == {}


def test_legal_bases_must_be_a_list() -> None:
    payload = {**VALID["OPPORTUNITY"], "legal_bases": {"category": "communications"}}
    assert _types(payload_errors("OPPORTUNITY", payload), "legal_bases") == ["MUST_BE_ARRAY"]


def test_errors_accumulate_per_field() -> None:
    errors = payload_errors("ECOMMERCE_ORDER_PAID", {"email": "nope", "price": -1, "currency": "x"})
    assert set(errors) == {"email", "identifier", "price", "currency", "total_items"}


def test_removed_types_are_not_event_types() -> None:
    assert set(REMOVED_EVENT_TYPES) == {"ORDER_PLACED", "ORDER_PLACED_ITEM", "CART_ABANDONED", "CART_ABANDONED_ITEM"}
    assert not set(REMOVED_EVENT_TYPES) & set(EVENT_TYPES)


def test_helpers() -> None:
    assert contract.is_valid_email("a.b+c@d.com.br")
    assert not contract.is_valid_email("a@b")
    assert contract.is_valid_url("https://x.com/a?b=1")
    assert not contract.is_valid_url("mailto:a@x.com")


# Issue 14 item 4: every check is linear and capped (no timing asserts: the patterns cannot backtrack
# quadratically, and lengths are capped before any pattern runs). These inputs took seconds before.
@pytest.mark.parametrize(
    "email",
    [
        "a@" + "." * 16_000,  # every label empty
        "a@" + "." * 16_000 + " ",
        "a@b" + "." * 16_000 + "c d",
        "a" * 200_000 + "@example.com",  # 200 KB
        "a@" + "b." * 100_000 + "com",  # 200 KB of valid labels: over the cap
        "a" * 243 + "@example.com",  # 255 characters
        "a" * 65 + "@example.com",  # local part over RFC 5321's 64
        "ana@x.com\n",  # `$` matched before a final newline
        "ana@.x.com",
        "ana@x..com",
        "ana@x.com.",
    ],
    ids=lambda e: f"{e[:12]!r}..{len(e)}",
)
def test_pathological_and_overlong_emails_are_invalid(email: str) -> None:
    assert not contract.is_valid_email(email)
    errors = payload_errors("OPPORTUNITY", {"email": email, "funnel_name": "default"})
    assert _types(errors, "email") == ["INVALID_FORMAT"]


def test_an_email_of_254_characters_is_valid() -> None:
    email = "a" * 64 + "@" + "b" * 63 + "." + "c" * 63 + "." + "d" * 61
    assert len(email) == contract.EMAIL_MAX == 254
    assert contract.is_valid_email(email)
    assert contract.is_valid_email("ana.maria+news@mail.example.com.br")


@pytest.mark.parametrize(
    "url",
    [
        "http://" + "a" * 16_000 + " ",  # the host and the rest overlapped: quadratic
        "https://shop.x/" + "p" * 200_000,
        "https://shop.x/" + "p" * (contract.URL_MAX - len("https://shop.x/") + 1),
        "https://shop.x/a b",
        "https://shop.x/a\n",
        "https://",
        "ftp://shop.x/",
    ],
    ids=lambda u: f"{u[:12]!r}..{len(u)}",
)
def test_pathological_and_overlong_urls_are_invalid(url: str) -> None:
    assert not contract.is_valid_url(url)
    assert _types(payload_errors("ECOMMERCE_ORDER_PAID", {**_TOTALS, "order_url": url}), "order_url") == [
        "INVALID_FORMAT"
    ]


def test_a_url_at_the_cap_is_valid() -> None:
    url = "https://shop.x/" + "p" * (contract.URL_MAX - len("https://shop.x/"))
    assert len(url) == contract.URL_MAX and contract.is_valid_url(url)
    assert contract.is_valid_url("HTTPS://shop.x?q=1#top") and contract.is_valid_url("http://shop.x")


def test_a_currency_with_a_final_newline_is_invalid() -> None:
    assert _types(payload_errors("ECOMMERCE_ORDER_PAID", {**_TOTALS, "currency": "BRL\n"}), "currency") == [
        "INVALID_OPTION"
    ]


# Issue 14 item 2: a list (or object) where RD wants a string is RD's MUST_BE_STRING at that field; the
# membership test of a frozenset raised TypeError (unhashable) out of the mapper before.
@pytest.mark.parametrize("value", [[], {}, ["customer"], 3])
def test_a_cancel_reason_that_is_not_a_string(value: Any) -> None:
    errors = payload_errors(
        "ECOMMERCE_ORDER_CANCELLED", {"email": "ana@x.com", "identifier": "o", "cancel_reason": value}
    )
    assert _types(errors, "cancel_reason") == ["MUST_BE_STRING"]


@pytest.mark.parametrize("key", ["category", "type", "status"])
@pytest.mark.parametrize("value", [[], {"a": 1}, 1])
def test_a_legal_basis_part_that_is_not_a_string(key: str, value: Any) -> None:
    base = {"category": "communications", "type": "consent", "status": "granted", key: value}
    errors = payload_errors("CONVERSION", {**VALID["CONVERSION"], "legal_bases": [base]})
    assert _types(errors, f"legal_bases[0].{key}") == ["MUST_BE_STRING"]
    assert errors[f"legal_bases[0].{key}"][0]["error_message"] == f"legal_bases[0].{key} must be a string."

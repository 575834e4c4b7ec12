"""The hand-written mappers the bundled mapping file (connector/mapping/ecommerce.yaml) replaced, kept as the
baseline of `decode_map_encode.py`: our eight e-commerce records -> (RD event_type, payload), then trimmed and
checked with `contract` exactly as the connector did (`map_handwritten`).

A mapper is `(record) -> (event_type, payload)`; absent optionals are omitted, never sent as null.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from connector.avro.catalog import NAMESPACE
from connector.mapping import RdEvent
from connector.mapping.trim_and_refuse import check_payload, trim_payload
from connector.mapping.values import copy_present, money
from connector.rd import contract

__all__ = ["ECOMMERCE_MAPPERS", "Mapper", "map_handwritten"]

Mapper = Callable[[Mapping[str, Any]], tuple[str, dict[str, Any]]]

_CUSTOMER = (
    ("email", "email"),
    ("name", "name"),
    ("mobile_phone", "mobile_phone"),
    ("personal_phone", "personal_phone"),
)
_ITEM_OPTIONALS = (
    ("sku", "sku"),
    ("variant_id", "variant_id"),
    ("variant_title", "variant_title"),
    ("product_url", "product_url"),
    ("image_url", "image_url"),
    ("categories", "categories"),
)
_TRACKING = (
    ("tracking_company", "tracking_company"),
    ("tracking_code", "tracking_code"),
    ("tracking_url", "tracking_url"),
)


def _common(record: Mapping[str, Any], identifier: str) -> dict[str, Any]:
    payload: dict[str, Any] = {}
    copy_present(payload, record["customer"], _CUSTOMER)
    payload["identifier"] = identifier
    return payload


def _legal_bases(payload: dict[str, Any], record: Mapping[str, Any]) -> dict[str, Any]:
    bases = record.get("legal_bases")
    if bases:
        payload["legal_bases"] = [
            {"category": b["category"].lower(), "type": b["type"].lower(), "status": b["status"].lower()} for b in bases
        ]
    return payload


def _line_item(item: Mapping[str, Any]) -> dict[str, Any]:
    out = {
        "product_id": item["product_id"],
        "product_title": item["title"],
        "price": money(item["unit_price"], "unit_price"),
        "quantity": item["quantity"],
    }
    copy_present(out, item, _ITEM_OPTIONALS)
    return out


def _totals(payload: dict[str, Any], record: Mapping[str, Any]) -> dict[str, Any]:
    items = record["line_items"]
    payload["currency"] = record["currency"]
    payload["price"] = money(record["total"], "total")
    payload["total_items"] = sum(item["quantity"] for item in items)
    if items:
        payload["line_items"] = [_line_item(item) for item in items]
    return payload


def _checkout(event_type: str, id_field: str) -> Mapper:
    def map_checkout(record: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        payload = _common(record, record[id_field])
        payload["checkout_url"] = record["checkout_url"]
        return event_type, _legal_bases(_totals(payload, record), record)

    return map_checkout


def _order(event_type: str) -> Mapper:
    def map_order(record: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        payload = _totals(_common(record, record["order_id"]), record)
        shipping = record.get("shipping")
        if shipping is not None:
            payload["shipping_price"] = money(shipping["price"], "shipping.price")
            copy_present(
                payload,
                shipping,
                (("city", "shipping_city"), ("state", "shipping_state"), ("country", "shipping_country")),
            )
        copy_present(payload, record, (("order_url", "order_url"), ("payment_methods", "payment_methods")))
        return event_type, _legal_bases(payload, record)

    return map_order


def _fulfilled(record: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    payload = _common(record, record["shipment_id"])
    payload["order_identifier"] = record["order_id"]
    copy_present(payload, record, _TRACKING)
    return "ECOMMERCE_ORDER_FULFILLED", _legal_bases(payload, record)


def _delivered(record: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    payload = _common(record, record["shipment_id"])
    payload["order_identifier"] = record["order_id"]
    return "ECOMMERCE_SHIPMENT_DELIVERED", _legal_bases(payload, record)


def _cancelled(record: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    payload = _common(record, record["order_id"])
    payload["cancel_reason"] = record["cancel_reason"].lower()
    return "ECOMMERCE_ORDER_CANCELLED", _legal_bases(payload, record)


def _refunded(record: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    # RD documents no refund amount/currency field: they are not sent (see rd-api.md, ORDER_REFUNDED).
    return "ECOMMERCE_ORDER_REFUNDED", _legal_bases(_common(record, record["order_id"]), record)


#: Avro record full name -> mapper.
ECOMMERCE_MAPPERS: Mapping[str, Mapper] = {
    f"{NAMESPACE}.CheckoutStarted": _checkout("ECOMMERCE_CHECKOUT_STARTED", "checkout_id"),
    f"{NAMESPACE}.CartAbandoned": _checkout("ECOMMERCE_CART_ABANDONED", "cart_id"),
    f"{NAMESPACE}.OrderPlaced": _order("ECOMMERCE_ORDER_PLACED"),
    f"{NAMESPACE}.OrderPaid": _order("ECOMMERCE_ORDER_PAID"),
    f"{NAMESPACE}.OrderFulfilled": _fulfilled,
    f"{NAMESPACE}.ShipmentDelivered": _delivered,
    f"{NAMESPACE}.OrderCancelled": _cancelled,
    f"{NAMESPACE}.OrderRefunded": _refunded,
}


def map_handwritten(full_name: str, record: Mapping[str, Any]) -> RdEvent:
    """What `connector.mapping.map_record` did before the mapping file (for the e-commerce records)."""
    event_type, payload = ECOMMERCE_MAPPERS[full_name](record)
    trims = trim_payload(payload)
    check_payload(event_type, payload)
    return RdEvent(
        event_type, {"event_type": event_type, "event_family": contract.EVENT_FAMILY, "payload": payload}, trims
    )

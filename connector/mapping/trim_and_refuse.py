"""Trim a payload to RD's caps, then refuse (with a stable reason) what RD would refuse. Pure.

Both use `connector.rd.contract` (the one table of RD's rules); this module only translates RD's
field-keyed error map into a `MappingError` reason and a message naming the field and its value.
"""

from __future__ import annotations

import re
import reprlib
from collections.abc import Mapping
from typing import Any

from connector.errors import MappingError
from connector.rd import contract

__all__ = ["NEEDS_ITEMS", "check_payload", "trim_payload"]

_LINE_ITEMS = contract.LIMITS["line_items"]
_CATEGORIES = contract.LIMITS["categories"]
_PAYMENT_METHODS = contract.LIMITS["payment_methods"]
_TITLE = contract.LIMITS["product_title"]
#: Event types whose total_items must not be 0 (checked here: contract does not).
NEEDS_ITEMS = frozenset({"ECOMMERCE_CHECKOUT_STARTED", "ECOMMERCE_CART_ABANDONED"})
_PATH_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")
# The value quoted in a message: bounded in depth and length (a plain repr of a list nested 1000 levels, as
# orjson parses, would raise RecursionError; of a 200 KB string, copy it whole before the cut).
_QUOTE = reprlib.Repr()
_QUOTE.maxlevel, _QUOTE.maxstring, _QUOTE.maxother, _QUOTE.maxlong = 3, 100, 100, 100


def trim_payload(payload: dict[str, Any]) -> int:
    """Trim, in place, what RD caps: line_items to 20, each item's categories to 10 and product_title to
    255 characters, payment_methods to 5. Returns how many lists or strings were trimmed."""
    trims = 0
    items = payload.get("line_items")
    if isinstance(items, list):
        if len(items) > _LINE_ITEMS:
            del items[_LINE_ITEMS:]
            trims += 1
        for item in items:
            if isinstance(item, dict):
                trims += _trim_item(item)
    methods = payload.get("payment_methods")
    if isinstance(methods, list) and len(methods) > _PAYMENT_METHODS:
        del methods[_PAYMENT_METHODS:]
        trims += 1
    return trims


def _trim_item(item: dict[str, Any]) -> int:
    trims = 0
    categories = item.get("categories")
    if isinstance(categories, list) and len(categories) > _CATEGORIES:
        item["categories"] = categories[:_CATEGORIES]
        trims += 1
    title = item.get("product_title")
    if isinstance(title, str) and len(title) > _TITLE:
        item["product_title"] = title[:_TITLE]
        trims += 1
    return trims


def check_payload(event_type: str, payload: Mapping[str, Any]) -> None:
    """Raise `MappingError` for the first thing RD would refuse in `payload` (after trimming)."""
    errors = contract.payload_errors(event_type, payload)
    if not errors:
        if event_type in NEEDS_ITEMS and payload.get("total_items") == 0:
            # RD: total_items >= 1 for checkout and cart (rd-api.md "Totals"); contract does not check it.
            raise MappingError("invalid_quantity", f"{event_type}: total_items=0: a checkout or cart needs an item")
        return
    path, problems = next(iter(errors.items()))
    error_type, text = problems[0]["error_type"], problems[0]["error_message"]
    value = _value_at(payload, path)
    # contract' texts name the field, never its value: the log line gets the message without the value.
    raise MappingError(
        _reason(path, error_type),
        f"{event_type}: {path}={_QUOTE.repr(value):.100}: {text}",
        f"{event_type}: {path}: {text}",
    )


def _reason(path: str, error_type: str) -> str:
    leaf = path.rsplit(".", 1)[-1].split("[", 1)[0]
    if error_type in ("CANNOT_BE_NULL", "CANNOT_BE_BLANK"):
        return "missing_required_field"
    if error_type == "MUST_BE_STRING":
        return "not_a_string"
    if leaf == "email":
        return "invalid_email"
    if leaf in contract.URL_FIELDS:
        return "invalid_url"
    if leaf == "currency":
        return "invalid_currency"
    if leaf == "quantity":
        return "invalid_quantity"
    if leaf == "legal_bases":
        return "invalid_legal_basis"
    return {
        "MUST_BE_GREATER_THAN_OR_EQUAL": "negative_amount",
        "TOO_LONG": "value_too_long",
        "MUST_BE_VALID_OPTION": "invalid_option",
    }.get(error_type, "invalid_field")


def _value_at(payload: Mapping[str, Any], path: str) -> Any:
    node: Any = payload
    for name, index in _PATH_PART.findall(path):
        try:
            node = node[int(index)] if index else node.get(name)
        except (IndexError, KeyError, TypeError, AttributeError):
            return None
    return node

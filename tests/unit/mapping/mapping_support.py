"""Helpers of the mapping-file unit tests: schemas of records the project never bundled, and one-call compiling."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

from connector.avro.catalog import SchemaEntry, schema_entry
from connector.errors import MappingError
from connector.mapping.compiler import Compiled, compile_mapping
from connector.mapping.event import RdEvent, Skipped
from connector.mapping.file_tests import record_from_input
from connector.mapping.spec import MappingSpec
from connector.mapping.spec_parser import parse_text

EXAMPLES = Path(__file__).parents[3] / "examples"
ORDER_DEFINITION: dict[str, Any] = json.loads((EXAMPLES / "order-service" / "Order.avsc").read_text())
ENVELOPE_DEFINITION: dict[str, Any] = json.loads((EXAMPLES / "debezium-checkouts" / "Envelope.avsc").read_text())
ORDER = schema_entry("com.acme.shop.Order", ORDER_DEFINITION, "Order.avsc")
ENVELOPE = schema_entry("dbserver1.public.checkouts.Envelope", ENVELOPE_DEFINITION, "Envelope.avsc")

#: A record with every kind of Avro value the mappings convert.
KINDS_DEFINITION: dict[str, Any] = {
    "type": "record",
    "name": "Kinds",
    "namespace": "com.example",
    "fields": [
        {"name": "email", "type": "string"},
        {"name": "count", "type": "long"},
        {"name": "ratio", "type": "double"},
        {"name": "flag", "type": "boolean"},
        {"name": "text_number", "type": ["null", "string"], "default": None},
        {"name": "text_flag", "type": ["null", "string"], "default": None},
        {"name": "text_time", "type": ["null", "string"], "default": None},
        {"name": "id", "type": {"type": "string", "logicalType": "uuid"}},
        {"name": "amount", "type": {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 2}},
        {"name": "whole", "type": {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 0}},
        {"name": "big", "type": {"type": "bytes", "logicalType": "decimal", "precision": 20, "scale": 2}},
        {"name": "at_ms", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "at_us", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        {"name": "day", "type": {"type": "int", "logicalType": "date"}},
        {"name": "level", "type": {"type": "enum", "name": "Level", "symbols": ["LOW", "HIGH"]}},
        {"name": "tags", "type": {"type": "array", "items": "string"}, "default": []},
        {"name": "maybe_tags", "type": {"type": "array", "items": ["null", "string"]}, "default": []},
        {"name": "attrs", "type": {"type": "map", "values": "string"}, "default": {}},
        {"name": "blob", "type": ["null", "bytes"], "default": None},
        {"name": "either", "type": ["null", "string", "long"], "default": None},
    ],
}
KINDS = schema_entry("com.example.Kinds", KINDS_DEFINITION, "Kinds.avsc")
KIND_VALUES: dict[str, Any] = {
    "email": "ana@x.com",
    "count": 7,
    "ratio": 2.5,
    "flag": True,
    "id": "6f1c1d52-7c5b-4e0e-9a57-3c8a4e1d0b11",
    "amount": 129.9,
    "whole": 42,
    "big": "123456789012345678.90",
    "at_ms": 1_769_860_800_123,
    "at_us": 1_769_860_800_000_001,
    "day": 20_484,
    "level": "HIGH",
}


def mapping_text(body: str, record: str = "com.acme.shop.Order", header: str = "") -> str:
    """A one-mapping file: `body` is the mapping's keys after name and record (YAML, indented freely)."""
    lines = textwrap.indent(textwrap.dedent(body).strip("\n"), "    ")
    return f"version: 1\nmappings:\n  - name: m\n    record: {record}\n{header}{lines}\n"


def spec_of(body: str, record: str = "com.acme.shop.Order") -> MappingSpec:
    return parse_text(mapping_text(body, record), "m.yaml").mappings[0]


def compiled(body: str, entry: SchemaEntry = ORDER) -> Compiled:
    return compile_mapping(spec_of(body, entry.full_name), entry.definition)


def problems(body: str, entry: SchemaEntry = ORDER) -> list[str]:
    """The check's messages for a mapping (empty: it compiles)."""
    return [str(p) for p in compiled(body, entry).problems]


def run(body: str, data: dict[str, Any], entry: SchemaEntry = ORDER) -> RdEvent | Skipped | MappingError:
    """Compile `body` for `entry`, make `data` a record of it (as decoded) and map it; a refusal is returned."""
    result = compiled(body, entry)
    assert result.function is not None, [str(p) for p in result.problems]
    try:
        return result.function(record_from_input(entry, data))
    except MappingError as exc:
        return exc


def event(body: str, data: dict[str, Any], entry: SchemaEntry = ORDER) -> RdEvent:
    """`run`, which must give an event."""
    result = run(body, data, entry)
    assert isinstance(result, RdEvent), result
    return result


def refusal(body: str, data: dict[str, Any], entry: SchemaEntry = ORDER) -> MappingError:
    """`run`, which must refuse the record."""
    result = run(body, data, entry)
    assert isinstance(result, MappingError), result
    return result


def order(**over: Any) -> dict[str, Any]:
    base = {
        "order_number": 7,
        "status": "PAID",
        "buyer": {"email": "Ana@X.com", "full_name": "Ana"},
        "total_cents": 12990,
        "items": [{"sku": "TEE-M", "title": "Tee", "unit_cents": 12990, "qty": 1}],
        "placed_at": 1_769_860_800_000,
    }
    return {**base, **over}


#: A minimal valid body for ECOMMERCE_ORDER_PAID from an Order.
PAID = """
event_type: ECOMMERCE_ORDER_PAID
payload:
  email: buyer.email
  identifier: {path: order_number, to: string}
  currency: {value: BRL}
  price: {path: total_cents, divide: 100}
  total_items: {sum: items, of: qty}
"""

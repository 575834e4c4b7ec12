"""The records of issue 14 item 2: each one, on the code before, raised out of the per-record handling,
killed the decode worker and stopped the connector (and every restart died on it again). Shared by the unit
tests and the broker test; each comes with the reason it is dead-lettered for now."""

from __future__ import annotations

import io
import uuid
from decimal import Decimal
from typing import Any

import orjson
from fastavro import schemaless_writer

from connector.avro import NAMESPACE, Encoder, default_catalog
from connector.commands.sample import generate_records

_N = NAMESPACE + "."


def rd_event(payload_json: str, event_type: str = "CONVERSION") -> bytes:
    """A single-object `RdEvent` value carrying `payload_json` as it is."""
    record = {"event_id": str(uuid.uuid4()), "occurred_at": 1_767_225_600_000, "event_type": event_type}
    return Encoder().single_object(_N + "RdEvent", {**record, "payload_json": payload_json})


def _raw(value: Any) -> Any:
    """A record of logical values as the raw values the decoder reads (a decimal's unscaled bytes)."""
    if isinstance(value, Decimal):
        unscaled = int(value.scaleb(2))
        return unscaled.to_bytes((unscaled.bit_length() + 8) // 8, "big", signed=True)
    if isinstance(value, dict):
        return {k: _raw(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_raw(v) for v in value]
    return value


def order_with_total(total: bytes, seed: int = 0) -> bytes:
    """A single-object `OrderPlaced` whose `total` holds the raw decimal bytes `total` (Avro does not bound
    them, so any producer may write this)."""
    record = next(r for name, r in generate_records(50, seed=seed) if name == _N + "OrderPlaced")
    entry = default_catalog()[_N + "OrderPlaced"]
    out = io.BytesIO()
    schemaless_writer(out, entry.raw_schema, {**_raw(record), "total": total})
    return entry.header + out.getvalue()


def _conversion(**fields: Any) -> str:
    return orjson.dumps({"conversion_identifier": "c", "email": "ana@example.com", **fields}).decode()


def _deep(levels: int) -> str:
    return '{"conversion_identifier": "c", "email": "ana@example.com", "cf_deep": ' + "[" * levels + "]" * levels + "}"


#: (name, Kafka value, the reason it is dead-lettered for).
HOSTILE: list[tuple[str, bytes, str]] = [
    ("payload nested 300 levels", rd_event(_deep(300)), "payload_too_deep"),
    (
        "legal basis type []",
        rd_event(_conversion(legal_bases=[{"category": "communications", "type": [], "status": "granted"}])),
        "not_a_string",
    ),
    (
        "cancel_reason []",
        rd_event(
            orjson.dumps({"email": "ana@example.com", "identifier": "o-1", "cancel_reason": []}).decode(),
            "ECOMMERCE_ORDER_CANCELLED",
        ),
        "not_a_string",
    ),
    ("decimal of 401 bytes", order_with_total(b"\x01" + b"\x00" * 400), "invalid_decimal"),
]

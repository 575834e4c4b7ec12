"""Small value converters the mappers share. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

__all__ = ["copy_present", "decimal_to_float", "money"]

_MONEY_SCALE = 100  # our schemas' money: decimal(12, 2)


def decimal_to_float(raw: bytes, scale: int) -> float:
    """An Avro decimal's raw bytes (big-endian two's-complement unscaled int) as a float.

    Exact shortest repr for precision <= 15: `decimal_to_float(b"\\x65\\x7c", 2)` is 259.8."""
    divisor: int = 10**scale
    return int.from_bytes(raw, "big", signed=True) / divisor


def money(value: bytes | Decimal) -> float:
    """A money value of our schemas (decimal scale 2), raw bytes or `Decimal`, as a JSON number."""
    if isinstance(value, bytes):
        return int.from_bytes(value, "big", signed=True) / _MONEY_SCALE
    return float(value)


def copy_present(out: dict[str, Any], record: Mapping[str, Any], fields: tuple[tuple[str, str], ...]) -> None:
    """Copy `record[src]` to `out[dst]` for each (src, dst) whose value is neither None nor empty."""
    for src, dst in fields:
        value = record.get(src)
        if value is not None and value != []:
            out[dst] = value

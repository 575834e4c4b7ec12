"""Small value converters the mappers share. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from connector.errors import MappingError

__all__ = ["copy_present", "decimal_to_float", "money"]

_MONEY_SCALE = 100  # our schemas' money: decimal(12, 2)
_MONEY_LIMIT = 10**12  # unscaled values of decimal(12, 2) lie strictly between -_MONEY_LIMIT and _MONEY_LIMIT
_MONEY_MAX = Decimal(_MONEY_LIMIT) / _MONEY_SCALE


def decimal_to_float(raw: bytes, scale: int) -> float:
    """An Avro decimal's raw bytes (big-endian two's-complement unscaled int) as a float.

    Exact shortest repr for precision <= 15: `decimal_to_float(b"\\x65\\x7c", 2)` is 259.8."""
    divisor: int = 10**scale
    return int.from_bytes(raw, "big", signed=True) / divisor


def money(value: bytes | Decimal, field: str = "money") -> float:
    """A money value of our schemas (decimal(12, 2)), raw bytes or `Decimal`, as a JSON number.

    Raises `MappingError("invalid_decimal")` for a value outside decimal(12, 2) (Avro does not bound the
    bytes: 401 of them made `int / 100` raise OverflowError, and a few more digits lose cents in a float)."""
    if isinstance(value, bytes):
        unscaled = int.from_bytes(value, "big", signed=True)
        if -_MONEY_LIMIT < unscaled < _MONEY_LIMIT:
            return unscaled / _MONEY_SCALE
        raise _out_of_range(field, f"a decimal of {len(value)} bytes")
    if value.is_finite() and -_MONEY_MAX < value < _MONEY_MAX:
        return float(value)
    raise _out_of_range(field, "a decimal")


def _out_of_range(field: str, what: str) -> MappingError:
    # The value itself is not quoted: it is a number of up to thousands of digits, and a personal datum.
    return MappingError("invalid_decimal", f"{field}: {what} is outside decimal(12, 2) (at most 12 digits)")


def copy_present(out: dict[str, Any], record: Mapping[str, Any], fields: tuple[tuple[str, str], ...]) -> None:
    """Copy `record[src]` to `out[dst]` for each (src, dst) whose value is neither None nor empty."""
    for src, dst in fields:
        value = record.get(src)
        if value is not None and value != []:
            out[dst] = value

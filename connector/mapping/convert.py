"""Value conversions the compiled mappings call (`to:`, decimals, timestamps), and their refusals. Pure.

Each converter takes the value and a `Where` (mapping, RD field, path) for its message, and raises
`MappingError("invalid_field")` for a value it cannot convert without loss. Values come raw (fastavro
without logical types: decimals as bytes, timestamps as int, uuids as str) or logical (`Decimal`,
`datetime`, `date`, `UUID`); both give the same result.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Final, NamedTuple, NoReturn

from connector.errors import MappingError

__all__ = [
    "Where",
    "decimal_number",
    "decimal_text",
    "exact_integer",
    "missing",
    "rfc3339",
    "to_boolean",
    "to_integer",
    "to_number",
    "to_text",
    "to_timestamp",
    "too_many_digits",
    "unscaled",
]

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_DAY: Final = date(1970, 1, 1)
_DIVISORS: Final = {"ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}
_TRUE: Final = frozenset({"true", "yes", "1", "on"})
_FALSE: Final = frozenset({"false", "no", "0", "off"})


class Where(NamedTuple):
    """Where a value goes and comes from, for messages: the RD field (`line_items[].price` inside an `each`)
    and the path(s) read. (The compiled mapping prefixes every message with its name.)"""

    field: str
    paths: tuple[str, ...]

    def refuse(self, value: Any, why: str) -> MappingError:
        at = " or ".join(self.paths)
        # The log message names the field, not the value (a personal datum, unless RDC_LOG_RECORD_VALUES).
        return MappingError(
            "invalid_field", f"{self.field}: {value!r:.80} at '{at}' {why}", f"{self.field} at '{at}' {why}"
        )


def missing(where: Where, event_type: str, index: int | None = None) -> MappingError:
    """The refusal of a record that lacks a value RD requires (`index`: of the array element, in an `each`)."""
    field = where.field if index is None else where.field.replace("[]", f"[{index}]", 1)
    tried = " or ".join(f"'{p}'" for p in where.paths)
    return MappingError("missing_required_field", f"{event_type} requires {field}: the record has no value at {tried}")


#: The most digits a decimal of unspecified precision may have (a JSON number keeps 15 exactly).
MAX_DECIMAL_DIGITS = 15


def decimal_number(value: bytes | Decimal, precision: int, scale: int, where: Where | None = None) -> int | float:
    """A decimal (raw big-endian bytes or `Decimal`) as a JSON number: an int for scale 0, else the float
    whose shortest repr has exactly the decimal's digits (exact for precision <= 15, which the compiler
    requires). Raises `MappingError("invalid_decimal")` for more digits than `precision`."""
    unscaled = int.from_bytes(value, "big", signed=True) if value.__class__ is bytes else _unscaled(scale, value, where)
    limit = 10 ** (precision or MAX_DECIMAL_DIGITS)
    if not -limit < unscaled < limit:
        too_many_digits(precision, scale, where)
    return unscaled if scale == 0 else unscaled / 10**scale


def unscaled(scale: int, value: Any, where: Where | None = None) -> int:
    """A `Decimal`'s unscaled integer at `scale` (logical decoding); `invalid_decimal` when not finite."""
    return _unscaled(scale, value, where)


def _unscaled(scale: int, value: Any, where: Where | None) -> int:
    if isinstance(value, Decimal) and value.is_finite():
        return int(value.scaleb(scale).to_integral_value())
    raise MappingError("invalid_decimal", f"{_field(where)}a decimal{_at(where)} that is not a finite number")


def too_many_digits(precision: int, scale: int, where: Where | None = None) -> NoReturn:
    """Refuse a decimal with more digits than its schema's precision (its value is not quoted: it may have
    thousands of digits, and it is a personal datum)."""
    raise MappingError(
        "invalid_decimal",
        f"{_field(where)}a decimal({precision}, {scale}){_at(where) or ' value'} has more than "
        f"{precision or MAX_DECIMAL_DIGITS} digits",
    )


def _field(where: Where | None) -> str:
    return "" if where is None else f"{where.field}: "


def _at(where: Where | None) -> str:
    return "" if where is None else " at " + " or ".join(f"'{p}'" for p in where.paths)


def decimal_text(value: bytes | Decimal, scale: int) -> str:
    """A decimal's exact text, with its scale: b'\\x32\\xbe' at scale 2 is '129.90'."""
    if value.__class__ is bytes:
        value = Decimal(int.from_bytes(value, "big", signed=True)).scaleb(-scale)
    return str(value)


def rfc3339(value: Any, unit: str | None) -> str:
    """A timestamp (epoch number in `unit` ms/us/ns, or a datetime) or a date (epoch days, or a date) as
    RFC 3339 UTC text: '2026-01-01T00:00:00Z', '2026-01-01T00:00:00.123Z' (fraction only when there is one)."""
    if isinstance(value, datetime):  # a logical value: as precise as its unit, like the raw one
        moment = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        if unit == "ms":
            return _text(moment.astimezone(UTC), moment.microsecond // 1000, 3)
        return _text(moment.astimezone(UTC), moment.microsecond, 6)
    if isinstance(value, date):
        return value.isoformat() + "T00:00:00Z"
    if unit is None:  # a date, as epoch days
        return (_EPOCH_DAY + timedelta(days=value)).isoformat() + "T00:00:00Z"
    divisor = _DIVISORS[unit]
    seconds, fraction = divmod(value, divisor)
    moment = _EPOCH + timedelta(seconds=seconds)
    return _text(moment, fraction, len(str(divisor)) - 1)


def _text(moment: datetime, fraction: int, digits: int) -> str:
    base = moment.strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{fraction:0{digits}d}Z" if fraction else base + "Z"


def to_text(value: Any) -> str:
    """`to: string` of a number or boolean: 7 -> '7', 129.9 -> '129.9', True -> 'true'."""
    if value is True or value is False:
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else str(value)


def to_number(value: Any, where: Where) -> int | float:
    """`to: number`: a string or number as a JSON number ('7' -> 7, '129.90' -> 129.9)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        number: int | float = value
    elif isinstance(value, str):
        text = value.strip()
        try:
            number = int(text)
        except ValueError:
            try:
                number = float(text)
            except ValueError:
                raise where.refuse(value, "is not a number") from None
    else:
        raise where.refuse(value, "is not a number")
    if isinstance(number, float) and not math.isfinite(number):
        raise where.refuse(value, "is not a finite number")
    return number


def to_integer(value: Any, where: Where) -> int:
    """`to: integer`: a string, float or decimal holding a whole number, as an int ('7' -> 7; 7.5 refused)."""
    number = to_number(value, where)
    if isinstance(number, float):
        if not number.is_integer():
            raise where.refuse(value, "is not a whole number")
        return int(number)
    return number


def to_boolean(value: Any, where: Where) -> bool:
    """`to: boolean`: true/false, yes/no, on/off, 1/0 (any case), or the numbers 1 and 0."""
    if value is True or value is False:
        return bool(value)
    if isinstance(value, int) and value in (0, 1):
        return value == 1
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    raise where.refuse(value, "is not a boolean (true/false, yes/no, on/off, 1/0)")


def to_timestamp(value: Any, where: Where) -> str:
    """`to: timestamp` of a string (ISO 8601 / RFC 3339; without an offset it is taken as UTC) or of a plain
    number (epoch milliseconds), as RFC 3339 UTC text."""
    if isinstance(value, int) and not isinstance(value, bool):
        return rfc3339(value, "ms")
    if isinstance(value, str):
        try:
            return rfc3339(datetime.fromisoformat(value.strip()), "us")
        except ValueError:
            raise where.refuse(value, "is not an ISO 8601 / RFC 3339 timestamp") from None
    raise where.refuse(value, "is not a timestamp")


def exact_integer(value: Decimal | bytes, scale: int, where: Where) -> int:
    """A decimal as an int, refused unless it is a whole number."""
    number = decimal_text(value, scale)
    try:
        whole = Decimal(number)
    except InvalidOperation:
        raise where.refuse(value, "is not a number") from None
    if whole != whole.to_integral_value():
        raise where.refuse(number, "is not a whole number")
    return int(whole)

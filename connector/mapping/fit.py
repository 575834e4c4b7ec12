"""How a value read from a record fits an RD field: the statements that convert it (`to:`, decimals, timestamps,
modifiers), or `Misfit` saying what to write instead; and constants checked against RD's kinds. Pure; used by
`connector.mapping.compile_payload`, whose generated code runs these statements with `v` holding the value."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Final

from connector.mapping import convert
from connector.mapping.avro_view import AvroType
from connector.mapping.convert import Where
from connector.mapping.spec import PathValue, SumValue
from connector.rd import contract

__all__ = [
    "MAX_EXACT_DIGITS",
    "Misfit",
    "conversion",
    "decimal_line",
    "fit_constant",
    "kind_words",
    "number_expr",
    "scale_steps",
    "type_key",
]

S, N, INT, B, T = contract.STRING, contract.NUMBER, contract.INTEGER, contract.BOOLEAN, contract.TIMESTAMP
MAX_EXACT_DIGITS: Final = 15  # a float's shortest repr is a decimal's own digits up to 15 of them


class Misfit(Exception):
    """A value spec that does not fit its RD field (the message of its `Problem`)."""


def type_key(t: AvroType) -> tuple[Any, ...]:
    return (t.kind, t.unit, t.precision, t.scale, t.name)


def number_expr(t: AvroType, var: str) -> str | None:
    if t.kind in ("int", "float"):
        return var
    if t.kind == "decimal" and t.precision <= MAX_EXACT_DIGITS:
        return f"_c.decimal_number({var}, {t.precision}, {t.scale})"
    return None


def decimal_line(precision: int, scale: int, where: str) -> str:
    """`v` (a decimal: raw big-endian bytes, or a `Decimal`) as a JSON number, inline: `convert.decimal_number`
    costs a call per value, this one test (money fields are the commonest conversion). Avro does not bound a
    decimal's bytes: a value with more digits than its `precision` is refused (`invalid_decimal`), never
    divided (401 bytes made the division raise OverflowError)."""
    limit = 10 ** (precision or convert.MAX_DECIMAL_DIGITS)
    unscaled = f"v = _ifb(v, 'big', signed=True) if v.__class__ is bytes else _c.unscaled({scale}, v, {where})"
    fits = f"-{limit} < v < {limit}"
    bad = f"_c.too_many_digits({precision}, {scale}, {where})"
    if scale == 0:
        return f"{unscaled}; v = v if {fits} else {bad}"
    return f"{unscaled}; v = v / {10**scale} if {fits} else {bad}"


def scale_steps(value: SumValue | PathValue, kind: str) -> tuple[list[str], str]:
    lines = []
    if value.multiply is not None:
        lines.append(f"s = s * {value.multiply!r}")
        kind = "int" if kind == "int" and isinstance(value.multiply, int) else "float"
    if value.divide is not None:
        lines.append(f"s = s / {value.divide!r}")
        kind = "float"
    return lines, kind


def conversion(
    source: AvroType, element: AvroType | None, value: PathValue, kind: str, field_name: str, path: str, where: str
) -> tuple[list[str], str]:
    """Statements that turn `v` (not None) of type `source` into what RD's field of `kind` takes, with `to:`
    and the modifiers; raises `Misfit` with what to write instead."""
    described = f"path '{path}' is {source.describe()}"
    lines, have = convert_to(source, element, value.to, described, where)
    if value.lower or value.upper or value.trim:
        if have not in ("str", "ts"):
            modifier = "lower" if value.lower else "upper" if value.upper else "trim"
            raise Misfit(f"'{modifier}' needs a string; {described}: add 'to: string' first")
        lines += ["v = v.lower()"] if value.lower else ["v = v.upper()"] if value.upper else []
        lines += ["v = v.strip()"] if value.trim else []
        have = "str" if have != "ts" or value.trim else have
    if value.divide is not None or value.multiply is not None:
        if have not in ("int", "float"):
            raise Misfit(f"'divide' and 'multiply' need a number; {described}")
        steps, have = scale_steps(value, have)
        lines += [line.replace("s = s", "v = v") for line in steps]
    return lines + fit(have, source, kind, field_name, described, value), have


def convert_to(
    source: AvroType, element: AvroType | None, to: str | None, described: str, where: str
) -> tuple[list[str], str]:
    """(statements, what `v` then is: str, ts, int, float, bool, time, strs, bigdec) for `to:` (or none)."""
    k = source.kind
    unit = repr(source.unit) if k == "timestamp" else "None"
    exact = k != "decimal" or source.precision <= MAX_EXACT_DIGITS
    if to is None:
        if k in ("string", "enum"):
            return [], "str"
        if k == "uuid":
            return ["if v.__class__ is not str: v = str(v)"], "str"
        if k in ("int", "float", "boolean"):
            return [], {"int": "int", "float": "float", "boolean": "bool"}[k]
        if k == "decimal":
            if not exact:
                return [], "bigdec"
            return [decimal_line(source.precision, source.scale, where)], "int" if source.scale == 0 else "float"
        if k in ("timestamp", "date"):
            return [], "time"
        if k == "array" and element is not None and element.kind in ("string", "enum", "uuid"):
            texts = "str(x)" if element.kind == "uuid" else "x"
            if element.nullable or element.kind == "uuid":
                return [f"v = [{texts} for x in v if x is not None]"], "strs"
            return [], "strs"
        if k == "array":
            return [], "array"
        raise Misfit(f"{described}; a mapping sends strings, numbers, booleans, timestamps and lists")
    if to == "string":
        convert = {
            "string": [],
            "enum": [],
            "uuid": ["v = str(v)"],
            "int": ["v = str(v)"],
            "float": ["v = _c.to_text(v)"],
            "boolean": ["v = 'true' if v else 'false'"],
            "decimal": [f"v = _c.decimal_text(v, {source.scale})"],
            "timestamp": [f"v = _c.rfc3339(v, {unit})"],
            "date": ["v = _c.rfc3339(v, None)"],
        }.get(k)
        if convert is None:
            raise Misfit(f"'to: string' cannot convert it: {described}")
        return convert, "ts" if k in ("timestamp", "date") else "str"
    if to in ("number", "integer"):
        if k in ("string", "enum"):
            fn = "to_number" if to == "number" else "to_integer"
            return [f"v = _c.{fn}(v, {where})"], "float" if to == "number" else "int"
        if k == "int":
            return [], "int"
        if k == "float":
            return ([], "float") if to == "number" else ([f"v = _c.to_integer(v, {where})"], "int")
        if k == "decimal":
            if to == "integer":
                return [f"v = _c.exact_integer(v, {source.scale}, {where})"], "int"
            if exact:
                return [decimal_line(source.precision, source.scale, where)], "int" if source.scale == 0 else "float"
            raise Misfit(f"{described}: more digits than a JSON number keeps exactly ({MAX_EXACT_DIGITS})")
        raise Misfit(f"'to: {to}' cannot convert it: {described}")
    if to == "boolean":
        if k == "boolean":
            return [], "bool"
        if k in ("string", "enum", "int"):
            return [f"v = _c.to_boolean(v, {where})"], "bool"
        raise Misfit(f"'to: boolean' cannot convert it: {described}")
    # to == "timestamp"
    if k in ("timestamp", "date"):
        return [f"v = _c.rfc3339(v, {unit})"], "ts"
    if k in ("string", "int"):
        return [f"v = _c.to_timestamp(v, {where})"], "ts"
    raise Misfit(f"'to: timestamp' cannot convert it: {described}")


def fit(have: str, source: AvroType, kind: str, field_name: str, described: str, value: PathValue) -> list[str]:
    """Statements that finish the conversion into RD's `kind` (a timestamp's text), or `Misfit`."""
    wants = f"RD's '{field_name}' is {kind_words(kind)}"
    if kind == S and have in ("str", "ts"):
        return []
    if kind in (N,) and have in ("int", "float"):
        return []
    if kind == INT and have == "int":
        return []
    if kind == B and have == "bool":
        return []
    if kind == T:
        if have == "ts":
            return []
        if have == "time":
            unit = repr(source.unit) if source.kind == "timestamp" else "None"
            return [f"v = _c.rfc3339(v, {unit})"]
    if kind == contract.STRINGS and have == "strs":
        return []
    raise Misfit(f"{described}; {wants}{hint(have, kind, value)}")


KIND_WORDS: Final = {
    contract.STRINGS: "a list of strings",
    contract.LINE_ITEMS: "a list of line items",
    contract.LEGAL_BASES: "a list of legal bases",
    T: "a timestamp (RFC 3339 text)",
    INT: "an integer",
}


def kind_words(kind: str) -> str:
    """An RD field kind with its article: 'a string', 'an integer', 'a list of strings'."""
    return KIND_WORDS.get(kind, f"a {kind}")


def hint(have: str, kind: str, value: PathValue) -> str:
    if kind in (contract.LINE_ITEMS, contract.LEGAL_BASES):
        return ": map it with {each: ARRAY, payload: {...}} (or a constant {value: [...]})"
    if value.divide is not None and kind == INT:
        return ": 'divide' makes a number that need not be whole"
    if have == "bigdec":
        return f": it has more digits than a JSON number keeps exactly ({MAX_EXACT_DIGITS}); send it with 'to: string'"
    if kind == S and have in ("int", "float", "bool"):
        return ": add 'to: string'"
    if kind == S and have == "time":
        return ": add 'to: timestamp' (RFC 3339 text) or 'to: string'"
    if kind in (N, INT) and have == "str":
        return f": add 'to: {kind}' (a value that is not a number is then dead-lettered invalid_field)"
    if kind == INT and have == "float":
        return ": add 'to: integer' (a value that is not a whole number is then dead-lettered invalid_field)"
    if kind == B and have in ("str", "int"):
        return ": add 'to: boolean'"
    if kind == T and have in ("str", "int"):
        return ": add 'to: timestamp'" + (" (epoch milliseconds)" if have == "int" else "")
    return ""


def fit_constant(value: Any, kind: str, field_name: str) -> Any:
    """A YAML constant checked against RD's `kind` (dates as RFC 3339 text), or `Misfit`."""
    if kind in (S, T) and isinstance(value, datetime | date):
        return convert.rfc3339(value, None)
    ok = {
        S: isinstance(value, str),
        T: isinstance(value, str),
        N: isinstance(value, int | float) and not isinstance(value, bool),
        INT: isinstance(value, int) and not isinstance(value, bool),
        B: isinstance(value, bool),
        contract.STRINGS: isinstance(value, list) and all(isinstance(v, str) for v in value),
        contract.LINE_ITEMS: isinstance(value, list) and all(isinstance(v, dict) for v in value),
        contract.LEGAL_BASES: isinstance(value, list) and all(isinstance(v, dict) for v in value),
    }.get(kind, False)
    if not ok:
        raise Misfit(f"the constant {value!r:.60} does not fit RD's '{field_name}', {kind_words(kind)}")
    if kind == T:
        convert.to_timestamp(value, Where(field_name, ("(constant)",)))
    return value

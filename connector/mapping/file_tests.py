"""The `tests:` of mapping files: each input is made a record of its schema (validated, encoded and decoded as
the connector would read it), mapped by its mapping, and compared with what the test expects. Pure (no I/O).

A test's input is the record as YAML: unions as plain values, enums as symbols, timestamps as epoch numbers or
RFC 3339 strings, dates as `YYYY-MM-DD` or epoch days, decimals as numbers, optional fields may be left out
(their defaults apply). `expect.payload` must equal the payload produced, numbers compared by value (129.9
equals 129.90) and booleans only with booleans; a failure lists every field that differs.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import fastavro
from fastavro.validation import ValidationError, validate

from connector.avro.catalog import SchemaCatalog, SchemaEntry
from connector.errors import MappingError
from connector.mapping.avro_view import AvroType, RecordView
from connector.mapping.compiler import compile_mapping
from connector.mapping.event import Skipped
from connector.mapping.mappings import Mappings
from connector.mapping.spec import TestSpec
from connector.mapping.suggest import suggest

__all__ = ["TestResult", "record_from_input", "run_test", "run_tests"]

_UNITS = {"ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}


@dataclass(frozen=True, slots=True)
class TestResult:
    """`status`: pass, fail (the mapping did something else) or error (the test itself is broken)."""

    test: TestSpec
    status: str
    lines: tuple[str, ...] = ()

    def report(self) -> str:
        head = (
            f"{self.status.upper()} {self.test.name} ({self.test.file}:{self.test.line}, mapping {self.test.mapping})"
        )
        return "\n".join([head, *(f"    {line}" for line in self.lines)])


class InputError(ValueError):
    """A test input that is not a record of its schema."""


def run_tests(mappings: Mappings, catalog: SchemaCatalog) -> list[TestResult]:
    """Every test of every file (user files first)."""
    return [run_test(mappings, test, catalog) for test in mappings.tests]


def run_test(mappings: Mappings, test: TestSpec, catalog: SchemaCatalog) -> TestResult:
    spec = mappings.named(test.mapping)
    if spec is None:
        names = [m.name for m in mappings.specs()]
        return TestResult(test, "error", (f"no mapping is named '{test.mapping}'{suggest(test.mapping, names)}",))
    entry = catalog.get(spec.record)
    if entry is None:
        return TestResult(test, "error", (f"no schema is known for {spec.record} (RDC_SCHEMA_DIR?)",))
    compiled = compile_mapping(spec, entry.definition)
    if compiled.function is None:
        return TestResult(test, "error", tuple(str(p) for p in compiled.problems))
    try:
        record = record_from_input(entry, test.input)
    except InputError as exc:
        return TestResult(test, "error", (f"input is not a {spec.record}: {exc}",))
    try:
        outcome: Any = compiled.function(record)
    except MappingError as exc:
        outcome = exc
    failures = _compare(test, outcome)
    return TestResult(test, "fail" if failures else "pass", tuple(failures))


def _compare(test: TestSpec, outcome: Any) -> list[str]:
    expect = test.expect
    got = _describe(outcome)
    if expect.skip:
        return [] if isinstance(outcome, Skipped) else [f"expected skip, got {got}"]
    if expect.dead_letter is not None:
        if isinstance(outcome, MappingError) and outcome.reason == expect.dead_letter:
            return []
        return [f"expected dead_letter {expect.dead_letter}, got {got}"]
    if isinstance(outcome, Skipped | MappingError):
        return [f"expected event {expect.event_type}, got {got}"]
    lines = []
    if outcome.event_type != expect.event_type:
        lines.append(f"event_type: expected {expect.event_type}, got {outcome.event_type}")
    return lines + diff(expect.payload or {}, outcome.payload, "payload")


def _describe(outcome: Any) -> str:
    if isinstance(outcome, Skipped):
        return "skip"
    if isinstance(outcome, MappingError):
        return f"dead_letter {outcome.reason} ({outcome.message})"
    return f"event {outcome.event_type}"


def diff(expected: Any, got: Any, path: str) -> list[str]:
    """Field-level differences: 'payload.price: expected 129.9, got 12990' (numbers compared by value)."""
    if isinstance(expected, dict) and isinstance(got, dict):
        lines = []
        for key in expected.keys() | got.keys():
            if key not in got:
                lines.append(f"{path}.{key}: expected {expected[key]!r}, but the payload has no {key}")
            elif key not in expected:
                lines.append(f"{path}.{key}: not expected, got {got[key]!r}")
            else:
                lines += diff(expected[key], got[key], f"{path}.{key}")
        return sorted(lines)
    if isinstance(expected, list) and isinstance(got, list):
        if len(expected) != len(got):
            return [f"{path}: expected {len(expected)} element(s), got {len(got)}: {got!r:.200}"]
        return [line for i, (e, g) in enumerate(zip(expected, got, strict=True)) for line in diff(e, g, f"{path}[{i}]")]
    return [] if _same(expected, got) else [f"{path}: expected {expected!r}, got {got!r}"]


def _same(expected: Any, got: Any) -> bool:
    if isinstance(expected, bool) or isinstance(got, bool):
        return type(expected) is type(got) and expected == got
    if isinstance(expected, int | float) and isinstance(got, int | float):
        return float(expected) == float(got)
    if isinstance(expected, datetime | date) and isinstance(got, str):
        return _iso(expected) == got
    return type(expected) is type(got) and expected == got


def _iso(value: datetime | date) -> str:
    if isinstance(value, datetime):
        moment = value.astimezone(UTC) if value.tzinfo else value
        text = moment.strftime("%Y-%m-%dT%H:%M:%S")
        return text + (f".{moment.microsecond:06d}".rstrip("0") if moment.microsecond else "") + "Z"
    return value.isoformat() + "T00:00:00Z"


def record_from_input(entry: SchemaEntry, data: Mapping[str, Any]) -> dict[str, Any]:
    """The record the connector would decode (raw values) from a test's input. Raises `InputError`."""
    view = RecordView(entry.definition)
    prepared = _prepare(view, view.root, data, view.full_name)
    try:
        validate(prepared, entry.schema, raise_errors=True)
        buffer = io.BytesIO()
        fastavro.schemaless_writer(buffer, entry.schema, prepared)
    except ValidationError as exc:
        problems = [str(e) for e in exc.args[0]] if exc.args and isinstance(exc.args[0], list) else [str(exc)]
        raise InputError("; ".join(problems)) from None
    except (ValueError, TypeError, AttributeError) as exc:
        raise InputError(str(exc)) from None
    buffer.seek(0)
    record: Any = fastavro.schemaless_reader(buffer, entry.raw_schema)  # raw values, as the connector reads them
    return dict(record)


def _prepare(view: RecordView, kind: AvroType, value: Any, where: str) -> Any:
    """`value` (YAML) as fastavro writes a value of `kind` (Decimal, datetime...), checking record keys."""
    if value is None:
        return None
    if kind.kind == "record":
        if not isinstance(value, dict):
            raise InputError(f"{where} is {value!r:.60}, expected a mapping ({kind.name})")
        fields = view.fields(kind)
        for key in value:
            if key not in fields:
                raise InputError(f"{where} has no field '{key}'{suggest(str(key), fields)}")
        return {k: _prepare(view, view.type_of(fields[k]), v, f"{where}.{k}") for k, v in value.items()}
    if kind.kind == "array" and isinstance(value, list):
        item = view.items(kind)
        return [_prepare(view, item, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if kind.kind == "map" and isinstance(value, dict):
        item = view.items(kind)
        return {k: _prepare(view, item, v, f"{where}.{k}") for k, v in value.items()}
    if kind.kind == "decimal" and isinstance(value, int | float | str) and not isinstance(value, bool):
        try:
            return Decimal(str(value)).quantize(Decimal(1).scaleb(-kind.scale))
        except InvalidOperation:
            raise InputError(f"{where} is {value!r}, expected a decimal number") from None
    if kind.kind in ("timestamp", "date"):
        return _time(kind, value, where)
    if kind.kind == "bytes" and isinstance(value, str):
        return value.encode()
    return value


def _time(kind: AvroType, value: Any, where: str) -> Any:
    logical = isinstance(kind.node, dict) and "logicalType" in kind.node
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value) if kind.kind == "timestamp" else date.fromisoformat(value)
        except ValueError:
            raise InputError(f"{where} is {value!r}, expected RFC 3339 text or an epoch number") from None
    if kind.kind == "timestamp" and isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        if logical and kind.unit != "ns":
            return moment
        micros = (moment - datetime(1970, 1, 1, tzinfo=UTC)) // _ONE_MICRO
        return micros * _UNITS[kind.unit or "us"] // 1_000_000
    if kind.kind == "date" and isinstance(value, date) and not logical:
        return (value - date(1970, 1, 1)).days
    return value


_ONE_MICRO = datetime(1970, 1, 1, 0, 0, 0, 1, tzinfo=UTC) - datetime(1970, 1, 1, tzinfo=UTC)

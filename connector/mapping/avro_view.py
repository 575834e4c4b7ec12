"""Avro record schemas as the mapping compiler sees them: dotted paths through records, types with their
logical meaning (decimal, timestamp, date, uuid), `["null", T]` unions looked through. Pure.

Works on fastavro's parsed form of a standalone schema (named types by full name, each defined once and
referenced by name after). Debezium's and Kafka Connect's time types (`connect.name`
`io.debezium.time.Timestamp`, `MicroTimestamp`, `NanoTimestamp`, `Date`, and Connect's `Timestamp` and `Date`)
count as the logical types they are.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Final

from connector.avro.catalog import parse_standalone
from connector.mapping.suggest import suggest

__all__ = ["AvroType", "PathError", "RecordView", "Step"]

#: Source kinds: what a value of an Avro type is, for the mapping.
_PRIMITIVE_KINDS: Final = {
    "null": "null",
    "boolean": "boolean",
    "int": "int",
    "long": "int",
    "float": "float",
    "double": "float",
    "bytes": "bytes",
    "string": "string",
}
_TIME_UNITS: Final = {
    "timestamp-millis": "ms",
    "timestamp-micros": "us",
    "timestamp-nanos": "ns",
    "local-timestamp-millis": "ms",
    "local-timestamp-micros": "us",
    "io.debezium.time.Timestamp": "ms",
    "io.debezium.time.MicroTimestamp": "us",
    "io.debezium.time.NanoTimestamp": "ns",
    "org.apache.kafka.connect.data.Timestamp": "ms",
}
_DATES: Final = frozenset({"date", "io.debezium.time.Date", "org.apache.kafka.connect.data.Date"})


@dataclass(frozen=True, slots=True)
class AvroType:
    """One Avro type, nulls of a union set aside (`nullable`). `kind` is a source kind: null, boolean, int,
    float, string, uuid, enum, decimal, timestamp (`unit` ms, us or ns), date, bytes, record, array, map, union."""

    kind: str
    node: Any
    nullable: bool = False
    name: str | None = None
    unit: str | None = None
    precision: int = 0
    scale: int = 0
    symbols: tuple[str, ...] = ()
    branches: tuple[AvroType, ...] = ()

    def describe(self) -> str:
        """What it is, with its article: 'an integer (int/long)', 'a decimal(12, 2)', 'an enum com.x.Status'."""
        if self.kind == "decimal":
            return f"a decimal({self.precision}, {self.scale})"
        if self.kind == "timestamp":
            return f"a timestamp ({self.unit})"
        if self.kind in ("record", "enum"):
            return f"{'an' if self.kind == 'enum' else 'a'} {self.kind} {self.name}"
        if self.kind == "union":
            return "a union of " + " | ".join(b.describe().split(" ", 1)[1] for b in self.branches)
        words = {"int": "integer (int/long)", "float": "float/double"}.get(self.kind, self.kind)
        return ("an " if words[0] in "aeiou" else "a ") + words


@dataclass(frozen=True, slots=True)
class Step:
    """One hop of a resolved path: the field name and whether its value may be null."""

    field: str
    nullable: bool


class PathError(ValueError):
    """A path that does not resolve; the message names the path, the record and a suggestion."""


class RecordView:
    """A record schema to resolve paths in. `definition` is a standalone schema JSON (logical types kept)."""

    def __init__(self, definition: dict[str, Any]) -> None:
        parsed = parse_standalone(definition)
        self._names: dict[str, Any] = {}
        self._collect(parsed)
        self.root = self.type_of(parsed)
        self.full_name = str(self.root.name)

    def _collect(self, node: Any) -> None:
        if isinstance(node, list):
            for branch in node:
                self._collect(branch)
        elif isinstance(node, dict):
            if node.get("type") in ("record", "error", "enum", "fixed") and "name" in node:
                self._names.setdefault(node["name"], node)
            for value in (node.get("fields"), node.get("items"), node.get("values")):
                if value is not None:
                    self._collect(value)
            for field in node.get("fields") or ():
                self._collect(field["type"])
            if isinstance(node.get("type"), dict | list):
                self._collect(node["type"])

    def type_of(self, node: Any, nullable: bool = False) -> AvroType:
        """The `AvroType` of a schema node (a name, a union list or a type dict)."""
        if isinstance(node, str):
            if node in _PRIMITIVE_KINDS:
                return AvroType(_PRIMITIVE_KINDS[node], node, nullable)
            return self.type_of(self._names[node], nullable)
        if isinstance(node, list):
            branches = [b for b in node if b != "null"]
            has_null = len(branches) < len(node)
            if len(branches) == 1:
                return self.type_of(branches[0], nullable or has_null)
            if not branches:
                return AvroType("null", node, True)
            kinds = tuple(self.type_of(b) for b in branches)
            return AvroType("union", node, nullable or has_null, branches=kinds)
        kind = node.get("type")
        logical = node.get("logicalType") or node.get("connect.name")
        if isinstance(kind, dict | list):
            return self.type_of(kind, nullable)
        if kind in ("record", "error"):
            return AvroType("record", node, nullable, name=node["name"])
        if kind == "enum":
            return AvroType("enum", node, nullable, name=node["name"], symbols=tuple(node["symbols"]))
        if kind in ("array", "map"):
            return AvroType(kind, node, nullable)
        if logical == "decimal" and kind in ("bytes", "fixed"):
            precision, scale = int(node.get("precision", 0)), int(node.get("scale", 0))
            return AvroType("decimal", node, nullable, precision=precision, scale=scale)
        if kind in ("int", "long") and logical in _TIME_UNITS:
            return AvroType("timestamp", node, nullable, unit=_TIME_UNITS[logical])
        if kind == "int" and logical in _DATES:
            return AvroType("date", node, nullable)
        if kind == "string" and logical == "uuid":
            return AvroType("uuid", node, nullable)
        if kind == "fixed":
            return AvroType("bytes", node, nullable, name=node.get("name"))
        return AvroType(_PRIMITIVE_KINDS.get(str(kind), str(kind)), node, nullable)

    def fields(self, record: AvroType) -> dict[str, Any]:
        """Field name -> schema node of a record type."""
        return {f["name"]: f["type"] for f in record.node["fields"]}

    def items(self, array: AvroType) -> AvroType:
        return self.type_of(array.node["items"] if array.kind == "array" else array.node["values"])

    def resolve(
        self, start: AvroType, path: str, prefix: str = "", of: str | None = None
    ) -> tuple[AvroType, list[Step]]:
        """The type at `path` from the record `start`, and its hops. `prefix` is prepended to paths in messages
        (for paths relative to an array's element) and `of` names the record (default: its full name).

        Raises `PathError`: 'path 'buyer.emial' is not a field of com.acme.shop.Order; did you mean 'buyer.email'?'"""
        current, steps, seen = start, list[Step](), list[str]()
        nullable = False
        for part in path.split("."):
            if current.kind != "record":
                shown = ".".join(seen)
                raise PathError(
                    f"path '{prefix}{path}': '{prefix}{shown}' is {current.describe()}, not a record with fields"
                )
            fields = self.fields(current)
            if part not in fields:
                guess = suggest(part, fields)
                if guess:
                    fixed = ".".join([*seen, guess.split("'")[1]])
                    guess = f"; did you mean '{prefix}{fixed}'?"
                owner = of or start.name
                raise PathError(f"path '{prefix}{path}' is not a field of {owner}{guess}")
            current = self.type_of(fields[part])
            nullable = nullable or current.nullable
            steps.append(Step(part, current.nullable))
            seen.append(part)
        return replace(current, nullable=nullable), steps

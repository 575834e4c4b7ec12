"""The schema catalog: every known Avro record schema, parsed once, by full name and by fingerprint.

Schemas come from the bundled `connector.schemas` package (the public input contract) and, optionally,
from one extra directory of `.avsc` files the user configures. One file holds one named type; a file may
reference a type of another file by its full name (e.g. `io.rdconnector.events.Customer`). Each type is
expanded into a standalone schema (referenced types inlined at first use, as the Avro spec requires), so
its parsing canonical form, its CRC-64-AVRO fingerprint and what we register in a Schema Registry are
the same everywhere.

**Earlier versions.** A bundled file named `<Record>.v<N>.avsc` (e.g. `DeliveryResult.v2.avsc`) is not a
record type of its own: it is an earlier writer version of the bundled record `<Record>` (version N of its
history; `<Record>.avsc` is always the current one), kept so that values written with it (single-object
encoding names the writer by fingerprint) still decode. Such a version is found by its header only
(`by_header`); `get`, `[]` and `names` never return it, so it is never an input schema, a mapping's record
or what a writer uses. The decoder resolves its values to the current schema (fastavro's reader-schema
resolution: fields added since come out as their defaults). An earlier version that is not a record of the
same full name as a bundled record, or equals the current schema, is a `ConfigError` (a packaging mistake).

Each entry keeps two parsed forms: `schema` (with logical types: what writers use) and `raw_schema`
(logical types stripped: what the decoder reads with, see `connector.avro.decoder`).
"""

from __future__ import annotations

import importlib.resources
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, cast

import fastavro
from fastavro.schema import fingerprint, to_parsing_canonical_form

from connector.errors import ConfigError

__all__ = [
    "NAMESPACE",
    "SchemaCatalog",
    "SchemaEntry",
    "default_catalog",
    "earlier_version_of",
    "parse_standalone",
    "schema_entry",
    "single_object_header",
    "strip_logical_types",
]

NAMESPACE = "io.rdconnector.events"

_PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
_NAMED = frozenset({"record", "enum", "fixed", "error"})
_ORIGIN = "__rdc_origin"  # where a schema file came from: kept beside its JSON until its entry is made
_EARLIER = re.compile(r"^(?P<record>[A-Za-z_][A-Za-z0-9_]*)\.v(?P<version>[0-9]+)\.avsc$")


@dataclass(frozen=True, slots=True, eq=False)
class SchemaEntry:
    """One record schema: `full_name`, the standalone JSON (`definition`), both parsed forms and the
    single-object header (`C3 01` + little-endian CRC-64-AVRO fingerprint of the canonical form). `origin`
    says where it came from, for messages (a file name, `schema id 7`). Equal only to itself (it keys the
    compiled mappings: one per schema)."""

    full_name: str
    definition: dict[str, Any]
    schema: dict[str, Any]
    raw_schema: dict[str, Any]
    canonical: str
    header: bytes
    origin: str = ""


def _full_name(node: Mapping[str, Any], namespace: str | None) -> str:
    name = str(node["name"])
    if "." in name:
        return name
    space = node.get("namespace", namespace)
    return f"{space}.{name}" if space else name


def _expand(node: Any, types: Mapping[str, Any], seen: set[str], namespace: str | None) -> Any:
    """`node` with every reference to a type of `types` not yet defined (in `seen`) inlined."""
    if isinstance(node, str):
        if node in _PRIMITIVES:
            return node
        full = node if "." in node or not namespace else f"{namespace}.{node}"
        if full in seen or full not in types:
            return full
        return _expand(types[full], types, seen, namespace)
    if isinstance(node, list):
        return [_expand(branch, types, seen, namespace) for branch in node]
    if not isinstance(node, dict):
        return node
    out = {k: v for k, v in node.items() if k != _ORIGIN}
    kind = node.get("type")
    if kind in _NAMED:
        full = _full_name(node, namespace)
        seen.add(full)
        namespace = full.rpartition(".")[0] or None
    if kind in ("record", "error"):
        out["fields"] = [{**f, "type": _expand(f["type"], types, seen, namespace)} for f in node["fields"]]
    elif kind == "array":
        out["items"] = _expand(node["items"], types, seen, namespace)
    elif kind == "map":
        out["values"] = _expand(node["values"], types, seen, namespace)
    elif isinstance(kind, list | dict) or (isinstance(kind, str) and kind not in _PRIMITIVES | _NAMED):
        out["type"] = _expand(kind, types, seen, namespace)
    return out


def strip_logical_types(node: Any) -> Any:
    """A copy of a schema JSON without `logicalType` (same binary layout; values stay raw: decimals as
    big-endian two's-complement bytes, timestamps as int, uuids as str)."""
    if isinstance(node, list):
        return [strip_logical_types(n) for n in node]
    if isinstance(node, dict):
        return {k: strip_logical_types(v) for k, v in node.items() if k != "logicalType"}
    return node


def single_object_header(canonical: str) -> bytes:
    """The Avro single-object encoding header for a schema of parsing canonical form `canonical`."""
    return b"\xc3\x01" + bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO"))


def parse_standalone(definition: Any) -> dict[str, Any]:
    """Parse a standalone schema JSON with fastavro (each call has its own named-type scope)."""
    parsed: Any = fastavro.parse_schema(definition, named_schemas={})
    return cast(dict[str, Any], parsed)


def schema_entry(full_name: str, definition: dict[str, Any], origin: str = "") -> SchemaEntry:
    """The `SchemaEntry` of a standalone record schema (raises what fastavro raises for a bad one)."""
    schema = parse_standalone(definition)
    canonical = to_parsing_canonical_form(schema)
    raw = parse_standalone(strip_logical_types(definition))
    return SchemaEntry(full_name, definition, schema, raw, canonical, single_object_header(canonical), origin)


def earlier_version_of(file_name: str) -> str | None:
    """The record name (`DeliveryResult`) of which a bundled file `<Record>.v<N>.avsc` is an earlier writer
    version; None for any other file name (a current schema: `DeliveryResult.avsc`)."""
    match = _EARLIER.match(file_name)
    return match["record"] if match else None


def _read_files(files: Iterable[tuple[str, str]]) -> list[tuple[str, dict[str, Any]]]:
    nodes: list[tuple[str, dict[str, Any]]] = []
    for label, text in files:
        try:
            node = json.loads(text)
            nodes.append((_full_name(node, None), {**node, _ORIGIN: label}))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ConfigError(f"schema file {label} is not a named Avro schema: {exc}") from exc
    return nodes


def _entries(nodes: list[tuple[str, dict[str, Any]]], types: Mapping[str, Any]) -> list[SchemaEntry]:
    entries = []
    for full_name, node in nodes:
        if node.get("type") not in ("record", "error"):
            continue
        try:
            entries.append(schema_entry(full_name, _expand(node, types, set(), None), node.get(_ORIGIN, "")))
        except Exception as exc:  # fastavro raises several types for a bad schema
            raise ConfigError(f"schema {full_name} is invalid: {exc}") from exc
    return entries


class SchemaCatalog:
    """Known record schemas by full name (reader schemas) and by single-object header (writer schemas).

    `bundled` types are the reader schemas. `earlier` are bundled earlier versions of bundled records (the
    `<Record>.v<N>.avsc` files): known writer schemas only, resolved against the bundled reader of their
    name. `extra` types (a user directory) add new records, and may also hold other versions of a bundled
    record (same full name, other fingerprint): those are known writer schemas too. Built once at start;
    read-only. Raises `ConfigError` when a file is not a valid Avro schema (naming the file), or an earlier
    version is not one of a bundled record."""

    def __init__(
        self,
        bundled: list[tuple[str, dict[str, Any]]],
        extra: Sequence[tuple[str, dict[str, Any]]] = (),
        earlier: Sequence[tuple[str, dict[str, Any]]] = (),
    ) -> None:
        bundled_types = dict(bundled)
        readers = _entries(bundled, bundled_types)
        writers = _entries(list(extra), {**bundled_types, **dict(extra)})
        self._by_name = {e.full_name: e for e in readers}
        versions = _entries(list(earlier), bundled_types)
        for entry in versions:
            _check_earlier(entry, self._by_name.get(entry.full_name))
        for entry in writers:
            self._by_name.setdefault(entry.full_name, entry)
        self._by_header = {e.header: e for e in writers}
        self._by_header.update({e.header: e for e in versions})
        self._by_header.update({e.header: e for e in readers})

    @classmethod
    def load(cls, extra_dir: str | Path | None = None) -> SchemaCatalog:
        """The bundled schemas (current ones and earlier versions, told apart by file name) plus every
        `*.avsc` of `extra_dir` (which may reference bundled types)."""
        bundled = importlib.resources.files("connector.schemas")
        files = [(p.name, p.read_text("utf-8")) for p in bundled.iterdir() if p.name.endswith(".avsc")]
        current = [(name, text) for name, text in files if earlier_version_of(name) is None]
        earlier = [(name, text) for name, text in files if earlier_version_of(name) is not None]
        extra: list[tuple[str, str]] = []
        if extra_dir is not None:
            directory = Path(extra_dir)
            if not directory.is_dir():
                raise ConfigError(f"extra schema directory {str(directory)!r} does not exist")
            extra = [(str(p), p.read_text("utf-8")) for p in sorted(directory.glob("*.avsc"))]
        return cls(_read_files(current), _read_files(extra), _read_files(earlier))

    def get(self, full_name: str) -> SchemaEntry | None:
        """The reader schema of `full_name` (bundled first), if known."""
        return self._by_name.get(full_name)

    def __getitem__(self, full_name: str) -> SchemaEntry:
        return self._by_name[full_name]

    def by_header(self, header: bytes) -> SchemaEntry | None:
        """The writer schema whose single-object header (10 bytes) is `header`, if any."""
        return self._by_header.get(header)

    def names(self) -> list[str]:
        """The full names of the reader schemas (never an earlier version's file)."""
        return sorted(self._by_name)


def _check_earlier(entry: SchemaEntry, current: SchemaEntry | None) -> None:
    """Raise `ConfigError` unless `entry` (from a `<Record>.v<N>.avsc` file) is another version of the bundled
    record `current` of its name."""
    record = earlier_version_of(Path(entry.origin).name)
    if record != entry.full_name.rpartition(".")[2]:
        raise ConfigError(f"schema file {entry.origin} is named as an earlier version of {record} but holds "
                          f"{entry.full_name}")  # fmt: skip
    if current is None:
        raise ConfigError(f"schema file {entry.origin} is an earlier version of {entry.full_name}, no bundled record")
    if entry.canonical == current.canonical:
        raise ConfigError(f"schema file {entry.origin} is the same schema as the current {current.origin}")


@lru_cache(maxsize=1)
def default_catalog() -> SchemaCatalog:
    """The bundled schemas only (parsed once per process)."""
    return SchemaCatalog.load()

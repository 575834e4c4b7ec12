"""Kafka value bytes -> (record full name, record dict). The pipeline calls `Decoder.decode` in its hot loop.

Framings (chosen per value, except on topics configured as plain):
- Confluent wire format: `00` + 4-byte big-endian schema id + body. The writer schema comes from the
  Schema Registry (once per id) and is resolved against our reader schema of the same full name.
- Avro single-object encoding: `C3 01` + 8-byte little-endian CRC-64-AVRO fingerprint + body. The writer
  schema is a catalog schema (bundled or the extra directory), resolved against the reader of its name.
- Plain Avro body: for topics listed in `plain_topics` (topic -> record full name), the whole value is
  the body; no magic byte is looked at.

Record values are *raw* by default (`logical_types=False`): decimals stay big-endian two's-complement
bytes (use `connector.mapping.decimal_to_float`), timestamp-millis stay int, uuids stay str. Skipping
fastavro's conversions is measurably faster and the RD payload needs none of them.

The body is read by a `BodyReader` (`body_readers.py`) chosen once per (writer, reader) pair when its plan is
made: fastavro by default, cavro with `avro_decoder="cavro"` (or `"auto"` when it is installed) for the pairs
cavro compiles; either gives the same records and the same `DecodeError`s.

Tombstones (value None) are not this module's business: the pipeline skips and counts them before
calling `decode`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple, Protocol

from fastavro.schema import to_parsing_canonical_form

from connector.avro.body_readers import BodyReader, make_body_reader, resolve_backend
from connector.avro.catalog import SchemaCatalog, SchemaEntry, parse_standalone, schema_entry, strip_logical_types
from connector.errors import ConfigError, DecodeError

__all__ = ["DecodedRecord", "Decoder", "SchemaSource", "TypedRecord"]

_CONFLUENT_MAGIC = 0
_SINGLE_OBJECT_MAGIC = b"\xc3\x01"


class DecodedRecord(NamedTuple):
    """A decoded value: the writer record's full name (picks the mapper) and the record."""

    full_name: str
    record: dict[str, Any]


class TypedRecord(NamedTuple):
    """A decoded value with the schema the record has (`schema`: the reader it was resolved to, or its writer):
    what a mapping is compiled against."""

    full_name: str
    record: dict[str, Any]
    schema: SchemaEntry


class SchemaSource(Protocol):
    """Where Confluent schema ids are looked up (`SchemaRegistryClient` or a test fake)."""

    def get_schema(self, schema_id: int) -> dict[str, Any]:
        """The writer schema JSON of `schema_id`; raises `DecodeError` or `SchemaRegistryUnavailable`."""
        ...


class _Plan(NamedTuple):
    full_name: str
    body: BodyReader  # reads the body (resolving the writer to the reader, if they differ)
    shape: SchemaEntry  # the schema of the records read (the reader, or the writer when there is none)


class Decoder:
    """Decodes values of the three framings. Build once at start; `decode` is thread-compatible
    (the plan caches only grow) and blocks on HTTP only for a Confluent schema id not seen before."""

    def __init__(
        self,
        catalog: SchemaCatalog,
        *,
        registry: SchemaSource | None = None,
        plain_topics: Mapping[str, str] | None = None,
        logical_types: bool = False,
        avro_decoder: str = "fastavro",
    ) -> None:
        """`plain_topics` maps a topic to the full name of its writer schema (must be in `catalog`:
        `ConfigError` otherwise). `logical_types=True` returns fastavro's Decimal/datetime/UUID values.
        `avro_decoder` is `RDC_AVRO_DECODER` (`fastavro`, `cavro` or `auto`; `ConfigError` for `cavro` when
        it is not installed); with `logical_types=True` fastavro always reads."""
        self._catalog = catalog
        self._registry = registry
        self._logical = logical_types
        self.backend = "fastavro" if logical_types else resolve_backend(avro_decoder)
        self._by_id: dict[int, _Plan] = {}
        self._by_header: dict[bytes, _Plan] = {}
        self._plain: dict[str, _Plan] = {}
        for topic, full_name in (plain_topics or {}).items():
            entry = catalog.get(full_name)
            if entry is None:
                raise ConfigError(f"plain Avro topic {topic!r}: writer schema {full_name!r} is not a known schema")
            self._plain[topic] = self._plan_for(entry)

    def decode(self, value: bytes, topic: str) -> DecodedRecord:
        """Decode one Kafka value read from `topic`.

        Raises `DecodeError` (reasons: `bad_magic_byte`, `truncated_body`, `unknown_fingerprint`,
        `unknown_schema_id`, `unsupported_schema`, `incompatible_schema`, `corrupt_body`) and
        `SchemaRegistryUnavailable` when a new Confluent schema id cannot be fetched."""
        plan, offset = self._locate(value, topic)
        return DecodedRecord(plan.full_name, plan.body.read(value, offset))

    def decode_typed(self, value: bytes, topic: str) -> TypedRecord:
        """`decode`, with the schema the record has (raises the same)."""
        plan, offset = self._locate(value, topic)
        return TypedRecord(plan.full_name, plan.body.read(value, offset), plan.shape)

    def _locate(self, value: bytes, topic: str) -> tuple[_Plan, int]:
        """The plan for `value` and where its body starts."""
        plan = self._plain.get(topic)
        if plan is not None:
            return plan, 0
        if len(value) >= 10 and value[0] == 0xC3 and value[1] == 0x01:
            return self._single_object_plan(value[:10]), 10
        if len(value) >= 5 and value[0] == _CONFLUENT_MAGIC:
            return self._confluent_plan(int.from_bytes(value[1:5], "big")), 5
        raise _framing_error(value)

    def _single_object_plan(self, header: bytes) -> _Plan:
        plan = self._by_header.get(header)
        if plan is None:
            entry = self._catalog.by_header(header)
            if entry is None:
                raise DecodeError(
                    "unknown_fingerprint",
                    f"single-object fingerprint {header[2:].hex()} matches no known schema"
                    " (bundled or extra schema directory)",
                )
            plan = self._by_header[header] = self._plan_for(entry)
        return plan

    def _confluent_plan(self, schema_id: int) -> _Plan:
        plan = self._by_id.get(schema_id)
        if plan is None:
            if self._registry is None:
                raise DecodeError(
                    "unknown_schema_id",
                    f"Confluent-framed value (schema id {schema_id}) but no Schema Registry is configured",
                )
            plan = self._by_id[schema_id] = self._plan_for_writer(schema_id, self._registry.get_schema(schema_id))
        return plan

    def _plan_for(self, writer: SchemaEntry) -> _Plan:
        reader = self._catalog.get(writer.full_name)
        if reader is None or reader.canonical == writer.canonical:
            return self._plan(writer.full_name, (self._pick(writer), writer.definition), None, reader or writer)
        resolved = (self._pick(reader), reader.definition)
        return self._plan(writer.full_name, (self._pick(writer), writer.definition), resolved, reader)

    def _plan(
        self,
        full_name: str,
        writer: tuple[dict[str, Any], Any],
        reader: tuple[dict[str, Any], Any] | None,
        shape: SchemaEntry,
    ) -> _Plan:
        """The plan of a pair: each of `writer` and `reader` is (fastavro's parsed schema, its JSON)."""
        return _Plan(full_name, make_body_reader(self.backend, full_name, writer, reader), shape)

    def _pick(self, entry: SchemaEntry) -> dict[str, Any]:
        return entry.schema if self._logical else entry.raw_schema

    def _plan_for_writer(self, schema_id: int, definition: dict[str, Any]) -> _Plan:
        try:
            full_name = _full_name(definition)
            writer = parse_standalone(definition if self._logical else strip_logical_types(definition))
            canonical = to_parsing_canonical_form(writer)
            reader = self._catalog.get(full_name)
            if reader is None:  # the records have the writer's shape: the mappings need its logical types
                shape = schema_entry(full_name, definition, f"schema id {schema_id}")
                return self._plan(full_name, (writer, definition), None, shape)
        except Exception as exc:  # fastavro raises several types for a bad schema
            raise DecodeError("unsupported_schema", f"schema id {schema_id} does not parse: {exc}") from exc
        if reader.canonical == canonical:
            return self._plan(full_name, (writer, definition), None, reader)
        return self._plan(full_name, (writer, definition), (self._pick(reader), reader.definition), reader)


def _full_name(definition: Mapping[str, Any]) -> str:
    name = str(definition["name"])
    if "." in name or not definition.get("namespace"):
        return name
    return f"{definition['namespace']}.{name}"


def _framing_error(value: bytes) -> DecodeError:
    if not value:
        return DecodeError("truncated_body", "value is empty (a tombstone is None, not b'')")
    if value[0] == _CONFLUENT_MAGIC or value[:2] == _SINGLE_OBJECT_MAGIC or value == b"\xc3":
        return DecodeError("truncated_body", f"value of {len(value)} bytes is shorter than its framing header")
    return DecodeError(
        "bad_magic_byte",
        f"first bytes {value[:2].hex()} are neither Confluent (00) nor single-object (c301) framing",
    )

"""Record -> framed Avro bytes: single-object, Confluent wire format, or plain body.

Used by the sample producer and for the results topic (`encode_delivery_result`). Records are written
with the schemas' logical types (decimals as `decimal.Decimal`, timestamps as int millis or aware
`datetime`, uuids as str or `uuid.UUID`). Raises `ValueError`/`TypeError` from fastavro when a record
does not fit its schema: that is a programming error, not a data error.
"""

from __future__ import annotations

import io
from typing import Any

from fastavro import schemaless_writer

from connector.avro.catalog import NAMESPACE, SchemaCatalog, default_catalog

__all__ = [
    "DELIVERY_RESULT",
    "Encoder",
    "confluent_header",
    "encode_delivery_result",
]

DELIVERY_RESULT = f"{NAMESPACE}.DeliveryResult"


def confluent_header(schema_id: int) -> bytes:
    """`00` + the 4-byte big-endian schema id."""
    return b"\x00" + schema_id.to_bytes(4, "big")


class Encoder:
    """Writes records of `catalog` schemas (looked up by full name; `KeyError` if unknown)."""

    def __init__(self, catalog: SchemaCatalog | None = None) -> None:
        self._catalog = catalog or default_catalog()

    def plain(self, full_name: str, record: dict[str, Any]) -> bytes:
        """The Avro binary body alone."""
        out = io.BytesIO()
        schemaless_writer(out, self._catalog[full_name].schema, record)
        return out.getvalue()

    def single_object(self, full_name: str, record: dict[str, Any]) -> bytes:
        """`C3 01` + fingerprint + body (our default framing for producers without a registry)."""
        return self._catalog[full_name].header + self.plain(full_name, record)

    def confluent(self, schema_id: int, full_name: str, record: dict[str, Any]) -> bytes:
        """Confluent wire format; `schema_id` must be the registry id of `full_name`'s schema."""
        return confluent_header(schema_id) + self.plain(full_name, record)


def encode_delivery_result(
    *,
    event_uuid: str,
    event_batch_uuid: str,
    event_type: str,
    source_topic: str,
    source_partition: int,
    source_offset: int,
    source_event_id: str | None,
    delivered_at_ms: int,
    schema_id: int | None = None,
) -> bytes:
    """A results-topic value (`DeliveryResult`): single-object framing, or Confluent framing when
    `schema_id` (the registry id of DeliveryResult) is given."""
    record = {
        "event_uuid": event_uuid,
        "event_batch_uuid": event_batch_uuid,
        "event_type": event_type,
        "source_topic": source_topic,
        "source_partition": source_partition,
        "source_offset": source_offset,
        "source_event_id": source_event_id,
        "delivered_at": delivered_at_ms,
    }
    encoder = _default_encoder()
    if schema_id is None:
        return encoder.single_object(DELIVERY_RESULT, record)
    return encoder.confluent(schema_id, DELIVERY_RESULT, record)


_ENCODER: list[Encoder] = []


def _default_encoder() -> Encoder:
    if not _ENCODER:
        _ENCODER.append(Encoder())
    return _ENCODER[0]

"""Record -> framed Avro bytes: single-object, Confluent wire format, or plain body.

Used by the sample producer and for the results topic (`encode_delivery_result`). Records are written
with the schemas' logical types (decimals as `decimal.Decimal`, timestamps as int millis or aware
`datetime`, uuids as str or `uuid.UUID`). Raises `ValueError`/`TypeError` from fastavro when a record
does not fit its schema: that is a programming error, not a data error.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from fastavro import schemaless_writer

from connector.avro.catalog import NAMESPACE, SchemaCatalog, default_catalog

__all__ = [
    "DELIVERY_RESULT",
    "Encoder",
    "confluent_header",
    "encode_delivery_result",
    "encode_delivery_results",
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
    writer_group: str | None = None,
    writer_destination: str | None = None,
    writer_base: int | None = None,
    rd_account: str | None = None,
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
        "writer_group": writer_group,
        "writer_destination": writer_destination,
        "writer_base": writer_base,
        "rd_account": rd_account,
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


def encode_delivery_results(
    rows: Sequence[tuple[str, str, int, int, str | None, str]],
    uuids: Sequence[str],
    *,
    event_batch_uuid: str,
    delivered_at_ms: int,
    schema_id: int | None = None,
    writer_group: str | None = None,
    destinations: Mapping[str, str] | None = None,
    base_of: Callable[[str, int], int | None] | None = None,
) -> list[bytes]:
    """The DeliveryResult values of one accepted batch: `rows[i]` is (event_type, source_topic,
    source_partition, source_offset, source_event_id, rd_account) of the event that got `uuids[i]`;
    `destinations[rd_account]` is its `writer_destination` (None: null for every row; an account missing
    from it is a programming error: `KeyError`); `base_of(topic, partition)` is the `writer_base` of that
    partition's results (None without it). The same bytes as `encode_delivery_result` (a test checks it
    against fastavro).

    Written by hand because it runs for every delivered event on the lane thread: the schema is flat
    (strings, an int, longs, nullable strings and a nullable long) and most fields repeat within a batch,
    so the shared pieces are encoded once: measured 1.4 us per event against 4.4 us through fastavro.
    That is CPU saved per event; the benchmark's events/s did not move (18.5k -> 18.6k), the lane is not
    what binds there. The fields after `source_event_id` (delivered_at, writer_*, rd_account) depend only
    on the batch, the source partition and the account, so they are one piece, encoded once per partition
    and account of the batch."""
    header = _result_header() if schema_id is None else confluent_header(schema_id)
    batch_uuid = _string(event_batch_uuid)  # the field after event_uuid: one piece with those after it
    stamp = _long(delivered_at_ms) + _optional_string(writer_group)
    shared: dict[tuple[str, str, int, str], tuple[bytes, bytes]] = {}
    values: list[bytes] = []
    for (event_type, topic, partition, offset, event_id, account), event_uuid in zip(rows, uuids, strict=True):
        pieces = shared.get((event_type, topic, partition, account))
        if pieces is None:
            base = base_of(topic, partition) if base_of is not None else None
            pieces = shared[(event_type, topic, partition, account)] = (
                batch_uuid + _string(event_type) + _string(topic) + _long(partition),
                stamp
                + _optional_string(_destination(destinations, account))
                + (b"\x00" if base is None else b"\x02" + _long(base))
                + b"\x02"
                + _string(account),
            )
        middle, tail = pieces
        optional = b"\x00" if event_id is None else b"\x02" + _string(event_id)
        values.append(b"".join((header, _string(event_uuid), middle, _long(offset), optional, tail)))
    return values


def _destination(destinations: Mapping[str, str] | None, account: str) -> str | None:
    if destinations is None:
        return None
    try:
        return destinations[account]
    except KeyError:
        raise KeyError(
            f"account {account!r} has no RD destination (known: {', '.join(sorted(destinations))})"
        ) from None


def _long(value: int) -> bytes:
    """Avro int/long: zig-zag, then a base-128 varint."""
    n = (value << 1) ^ (value >> 63)
    if n < 0x80:
        return bytes((n,))
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


#: `_long(n)` of the lengths a short string has (UUIDs, event ids, names): a lookup, not a call per string.
_SHORT_LENGTHS = [bytes((n << 1,)) for n in range(64)]


def _string(value: str) -> bytes:
    data = value.encode()
    n = len(data)
    return (_SHORT_LENGTHS[n] if n < 64 else _long(n)) + data


def _optional_string(value: str | None) -> bytes:
    """A ["null", "string"] union: branch 0 (null) or branch 1 and the string."""
    return b"\x00" if value is None else b"\x02" + _string(value)


def _result_header() -> bytes:
    return default_catalog()[DELIVERY_RESULT].header

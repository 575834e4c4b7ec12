"""`map_record`: a decoded record -> the RD event to send, by the bundled mappings; `encode_event`: that event
-> JSON bytes. Pure.

The bundled mappings (`connector/mapping/ecommerce.yaml`: our eight e-commerce records and the `RdEvent`
passthrough) are chosen by the record's Avro full name; the pipeline uses a `Mappings` that puts the user's
`RDC_MAPPINGS` before them. Every payload is trimmed to RD's caps and checked with `rd.contract`, so anything RD
would refuse is a `MappingError` here.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from connector.avro.catalog import SchemaEntry
from connector.errors import MappingError
from connector.mapping.event import ENCODE_MAX_DEPTH, RdEvent, Skipped, encode_event
from connector.mapping.mappings import Mappings

__all__ = ["ENCODE_MAX_DEPTH", "RdEvent", "bundled_mappings", "encode_event", "map_record"]


@lru_cache(maxsize=1)
def bundled_mappings() -> Mappings:
    """The bundled mappings alone (parsed once per process; compiled per schema on first use)."""
    return Mappings()


def map_record(full_name: str, record: Mapping[str, Any], schema: SchemaEntry | None = None) -> RdEvent:
    """The RD event for `record` (an Avro record of type `full_name`, raw or logical values) by the bundled
    mappings; `schema` is the record's schema (default: the bundled one of that name).

    Raises only `MappingError`: `unknown_record`, the passthrough's reasons, or a field reason
    (`missing_required_field`, `invalid_email`, `invalid_url`, `invalid_currency`, `negative_amount`,
    `invalid_quantity`, `value_too_long`, `invalid_option`, `invalid_legal_basis`, `not_a_string`,
    `invalid_decimal`, `invalid_field`)."""
    event = bundled_mappings().map(full_name, record, schema, "")
    if isinstance(event, Skipped):  # the bundled mappings never skip
        raise MappingError("invalid_field", f"{full_name}: mapping {event.mapping} skipped the record")
    return event

"""Decoded Avro records -> RD events (pure, compiled from mapping files), and their JSON encoding."""

from connector.mapping.core import RdEvent, bundled_mappings, encode_event, map_record
from connector.mapping.event import Skipped
from connector.mapping.mappings import Mappings, read_mapping_texts
from connector.mapping.trim_and_refuse import check_payload, trim_payload
from connector.mapping.values import decimal_to_float, money

__all__ = [
    "Mappings",
    "RdEvent",
    "Skipped",
    "bundled_mappings",
    "check_payload",
    "decimal_to_float",
    "encode_event",
    "map_record",
    "money",
    "read_mapping_texts",
    "trim_payload",
]

"""Decoded Avro records -> RD events (pure), and their JSON encoding."""

from connector.mapping.core import BUILTIN_MAPPERS, RdEvent, encode_event, map_record
from connector.mapping.ecommerce import Mapper
from connector.mapping.rules import check_payload, trim_payload
from connector.mapping.values import decimal_to_float, money

__all__ = [
    "BUILTIN_MAPPERS",
    "Mapper",
    "RdEvent",
    "check_payload",
    "decimal_to_float",
    "encode_event",
    "map_record",
    "money",
    "trim_payload",
]

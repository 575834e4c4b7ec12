"""The `RdEvent` passthrough: a record that already carries an RD event type and its payload as JSON."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from connector.errors import MappingError
from connector.rd import contract

__all__ = ["map_passthrough"]


def map_passthrough(record: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """(event_type, payload) of an `RdEvent` record; top-level nulls are dropped.

    Raises `MappingError`: `removed_event_type` (with the replacement), `unknown_event_type`,
    `invalid_payload_json`. Field rules are checked afterwards, like every payload."""
    event_type = record["event_type"]
    hint = contract.REMOVED_EVENT_TYPES.get(event_type)
    if hint is not None:
        raise MappingError(
            "removed_event_type", f"event_type {event_type!r} was removed from RD's API on 2025-12-31: {hint}"
        )
    if event_type not in contract.EVENT_TYPES:
        raise MappingError(
            "unknown_event_type",
            f"event_type {event_type!r} is not an RD event type; one of {sorted(contract.EVENT_TYPES)}",
            f"event_type ({len(event_type)} characters) is not an RD event type",
        )
    text = record["payload_json"]
    try:
        payload = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise MappingError(
            "invalid_payload_json",
            f"payload_json {text[:80]!r} is not JSON: {exc}",
            f"payload_json ({len(text)} characters) is not JSON: {exc}",  # orjson's message has no content
        ) from exc
    if not isinstance(payload, dict):
        raise MappingError(
            "invalid_payload_json",
            f"payload_json {text[:80]!r} is not a JSON object",
            f"payload_json is a JSON {type(payload).__name__}, not an object",
        )
    return event_type, {k: v for k, v in payload.items() if v is not None}

"""What a mapping produces: `RdEvent` (an event to send) or `Skipped` (commit the record, send nothing), and
the JSON encoding of an event. Pure."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import orjson

from connector.errors import MappingError
from connector.mapping.trim_and_refuse import check_payload, trim_payload
from connector.rd import contract

__all__ = ["ENCODE_MAX_DEPTH", "RdEvent", "Skipped", "encode_event", "finish"]

#: The deepest nesting orjson encodes (its `dumps` refuses more; the event's body is one of the levels).
ENCODE_MAX_DEPTH = 254


class RdEvent(NamedTuple):
    """An event ready to send: `body` is `{"event_type", "event_family": "CDP", "payload"}`;
    `trims` counts the lists and strings cut to RD's caps (0 normally); `account` is the RD account it goes
    to (None: the mapping names none, so the only or the `default` account)."""

    event_type: str
    body: dict[str, Any]
    trims: int
    account: str | None = None

    @property
    def payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = self.body["payload"]
        return payload


class Skipped(NamedTuple):
    """The record maps to no event (a mapping's `skip`): it is committed, nothing is sent or dead-lettered."""

    mapping: str


def finish(
    event_type: str, payload: dict[str, Any], acceptable: Callable[[dict[str, Any]], bool] | None = None
) -> RdEvent:
    """Trim `payload` to RD's caps and check it with `contract` (raises `MappingError`): the event to send.
    `acceptable` (a compiled mapping's, `compile_check`) answers True only for a payload that needs no trim
    and that the check accepts: then neither runs."""
    if acceptable is not None and acceptable(payload):
        trims = 0
    else:
        trims = trim_payload(payload)
        check_payload(event_type, payload)
    return RdEvent(
        event_type, {"event_type": event_type, "event_family": contract.EVENT_FAMILY, "payload": payload}, trims
    )


def encode_event(event: RdEvent) -> bytes:
    """The compact UTF-8 JSON of `event.body` (the exact bytes the batcher counts and sends).

    Raises `MappingError`: `payload_too_deep` (over `ENCODE_MAX_DEPTH` levels), `unencodable_payload`."""
    # orjson's result keeps its whole output buffer (measured: ~8 KiB for a 0.7 KB event), and buffered
    # events live until RD accepts them; an exact-size copy costs ~0.1 us and cut the memory of buffered
    # events ~7x (tracemalloc), so that RDC_MAX_BUFFERED_BYTES bounds what the process really holds.
    try:
        return memoryview(orjson.dumps(event.body)).tobytes()
    except orjson.JSONEncodeError as exc:
        raise _unencodable(event, exc) from exc


def _unencodable(event: RdEvent, exc: orjson.JSONEncodeError) -> MappingError:
    """Why `event` cannot be JSON: nested deeper than orjson writes (254 levels; it reads up to 1024, so a
    `payload_json` can hold it), or a value JSON has no place for (orjson's message names no value)."""
    depth = _depth(event.body)
    if depth > ENCODE_MAX_DEPTH:
        return MappingError(
            "payload_too_deep",
            f"{event.event_type}: the event nests {depth} levels; at most {ENCODE_MAX_DEPTH} can be encoded",
        )
    return MappingError("unencodable_payload", f"{event.event_type}: the event cannot be encoded as JSON: {exc}")


def _depth(value: Any) -> int:
    """The nesting depth of a JSON-like value (a scalar: 0); iterative, so any depth is measured."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, level = stack.pop()
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else None
        if children is not None:
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in children)
    return deepest

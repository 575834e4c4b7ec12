"""RD's answer formats, read defensively. Pure: bytes in, values out, no I/O.

- `parse_batch_answer(body, events)`: a 200 from `POST /platform/events/batch` counts only when it is
  `{"event_batch_uuid": "<string>", "events": [{"event_uuid": "<uuid>"}, ...]}` with exactly one object per
  event sent, every `event_uuid` a distinct UUID in canonical form. Anything else raises `BadAnswer`: we
  cannot tell which events RD accepted, so the lane stops (exit 4) and commits nothing of the batch.
- `rd_error_types(body)`: the `error_type`s when the body is in RD's error format (`errors` as a list of
  error objects, one error object, or a map from field name to lists of error objects; rd-api.md §4), else
  None. Only an answer in that format is RD's verdict on the records; a 4xx page from a proxy is not.
- `max_answer_bytes(events)`: how much of an answer is read at all.

UUID case: RD's UUIDs are lower-case; an upper-case (or mixed) one is accepted as the same UUID and
published lower-case, the canonical text form (RFC 9562), so that one UUID has one spelling downstream.
Distinctness is checked after that normalisation.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from connector.errors import BadAnswer

__all__ = ["ANSWER_BYTES_PER_EVENT", "max_answer_bytes", "parse_batch_answer", "rd_error_types"]

# The longest valid 200 for one event is `{"event_uuid":"<36 characters>"},` = 52 bytes compact. Allow 400
# bytes an event (pretty-printed JSON, fields RD may add, an error entry of a 400 with its path and index)
# plus 64 KiB for the envelope: for RDC_BATCH_MAX_EVENTS=10000 (the default) that is 4.06 MB, 4x above the
# 1 MB a valid answer for 10,000 events stays under. A longer answer is not read to its end.
ANSWER_BYTES_PER_EVENT = 400
_ANSWER_ENVELOPE_BYTES = 64 * 1024

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_NIL_UUID = "00000000-0000-0000-0000-000000000000"


def max_answer_bytes(events: int) -> int:
    """The most bytes of an answer read for a batch of up to `events` events (see the arithmetic above)."""
    return _ANSWER_ENVELOPE_BYTES + ANSWER_BYTES_PER_EVENT * max(1, events)


def parse_batch_answer(body: bytes, events: int) -> tuple[list[str], str]:
    """(event UUIDs in request order, lower-case; the batch UUID) from a 200 body for `events` events.
    Raises `BadAnswer` unless the body is exactly one distinct UUID per event (see the module docstring)."""
    try:
        answer = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadAnswer(f"not JSON ({exc})") from exc
    if not isinstance(answer, dict):
        raise BadAnswer(f"a JSON {type(answer).__name__}, not an object")
    batch_uuid = answer.get("event_batch_uuid")
    if not isinstance(batch_uuid, str) or not batch_uuid:
        raise BadAnswer(f"event_batch_uuid is {_shown(batch_uuid)}, not a non-empty string")
    listed = answer.get("events")
    if not isinstance(listed, list):
        raise BadAnswer(f"events is {_shown(listed)}, not a list")
    if len(listed) != events:
        raise BadAnswer(f"{len(listed)} event UUIDs for a batch of {events} events")
    uuids = [_event_uuid(entry, index) for index, entry in enumerate(listed)]
    seen: set[str] = set()
    for index, uuid in enumerate(uuids):
        if uuid in seen:
            raise BadAnswer(f"events[{index}].event_uuid {uuid} repeats an earlier one ({len(set(uuids))} distinct)")
        seen.add(uuid)
    return uuids, batch_uuid


def _event_uuid(entry: Any, index: int) -> str:
    if not isinstance(entry, dict):
        raise BadAnswer(f"events[{index}] is {_shown(entry)}, not an object")
    value = entry.get("event_uuid")
    if not isinstance(value, str):
        raise BadAnswer(f"events[{index}].event_uuid is {_shown(value)}, not a string")
    lowered = value.lower()
    if not _UUID.fullmatch(lowered) or lowered == _NIL_UUID:
        raise BadAnswer(f"events[{index}].event_uuid {value[:60]!r} is not a UUID (8-4-4-4-12 hex digits)")
    return lowered


def rd_error_types(body: bytes) -> list[str] | None:
    """The `error_type` of every error when `body` is in RD's error format, else None (not JSON, no
    `errors`, an empty or malformed `errors`, an entry without a string `error_type`)."""
    try:
        answer = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    errors = answer.get("errors") if isinstance(answer, dict) else None
    if isinstance(errors, list):
        return _types_of(errors)
    if not isinstance(errors, dict) or not errors:
        return None
    if "error_type" in errors:
        return _types_of([errors])
    found: list[str] = []
    for entries in errors.values():  # keyed by field name: each value a list of error objects
        types = _types_of(entries) if isinstance(entries, list) else None
        if types is None:
            return None
        found.extend(types)
    return found


def _types_of(entries: list[Any]) -> list[str] | None:
    types = [e.get("error_type") if isinstance(e, dict) else None for e in entries]
    if not types or not all(isinstance(t, str) and t for t in types):
        return None
    return [str(t) for t in types]


def _shown(value: Any) -> str:
    if value is None:
        return "missing or null"
    text = orjson.dumps(value).decode() if isinstance(value, int | float | bool | str) else type(value).__name__
    return text[:60]

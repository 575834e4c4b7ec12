"""How the mock RD API judges an events request body (already JSON-decoded). Pure: no I/O.

The rules themselves live in `connector.rd.contract`; this module only shapes RD's answers.
Two stages, as RD appears to validate (schema first, then the payload):

1. Envelope errors, answered as a list with a JSON path (RD's shape for schema errors)::

       {"errors": [{"error_type": "INVALID_OPTION", "error_message": "Must be one of the valid options.",
                    "validation_rules": {"valid_options": [...]}, "path": "$.body[3].event_type"}]}

   Paths: `$.body` (whole body), `$.body[i].<field>` for a batch item, `$.body.<field>` for the single
   endpoint. Removed legacy types (`contract.REMOVED_EVENT_TYPES`) are unknown options, as on RD.
2. Payload errors (only when the envelope is clean), RD's field-keyed map from `contract.payload_errors`::

       {"errors": {"email": [{"error_type": "CANNOT_BE_NULL", "error_message": "email cannot be null.",
                              "path": "$.body[3].payload.email", "index": 3}]}}

   Each error entry gains `path` (the full JSON path) and, for a batch, `index` (the item's position in
   the request array). When several items fail on the same field their entries share the field's list.

A batch is judged as a whole: one failing item rejects it all.
"""

from __future__ import annotations

from typing import Any

from connector.rd import contract

__all__ = ["VALID_EVENT_TYPES", "batch_errors", "event_errors"]

#: What RD lists as valid options (removed legacy types are not among them).
VALID_EVENT_TYPES: tuple[str, ...] = tuple(sorted(contract.EVENT_TYPES))

ErrorList = list[dict[str, Any]]
FieldMap = dict[str, list[dict[str, Any]]]


def batch_errors(body: Any, *, payloads: bool = True) -> dict[str, Any] | None:
    """RD's 400 body for a `/platform/events/batch` JSON body, or None when every event is acceptable.
    `payloads=False` checks the envelopes only (benchmarks: the payload rules cost ~10 ms of the mock's
    one thread per full 200 kB batch)."""
    if not isinstance(body, list):
        return {"errors": [_error("MUST_BE_ARRAY", "Must be an array of events.", "$.body")]}
    if not body:
        return {"errors": [_error("TOO_SHORT", "Must have at least one event.", "$.body")]}
    envelope: ErrorList = []
    for i, event in enumerate(body):
        envelope.extend(_envelope_errors(event, f"$.body[{i}]"))
    if envelope:
        return {"errors": envelope}
    if not payloads:
        return None
    fields: FieldMap = {}
    for i, event in enumerate(body):
        _merge_payload_errors(fields, event, f"$.body[{i}]", i)
    return {"errors": fields} if fields else None


def event_errors(body: Any) -> dict[str, Any] | None:
    """RD's 400 body for a `/platform/events` JSON body, or None when the event is acceptable."""
    envelope = _envelope_errors(body, "$.body")
    if envelope:
        return {"errors": envelope}
    fields: FieldMap = {}
    _merge_payload_errors(fields, body, "$.body", None)
    return {"errors": fields} if fields else None


def _error(error_type: str, message: str, path: str, **extra: Any) -> dict[str, Any]:
    return {"error_type": error_type, "error_message": message, **extra, "path": path}


def _envelope_errors(event: Any, prefix: str) -> ErrorList:
    if not isinstance(event, dict):
        return [_error("MUST_BE_OBJECT", "Must be an object.", prefix)]
    errors: ErrorList = []
    _check_option(errors, event, "event_type", VALID_EVENT_TYPES, prefix)
    _check_option(errors, event, "event_family", (contract.EVENT_FAMILY,), prefix)
    payload = event.get("payload")
    if payload is None:
        errors.append(_error("CANNOT_BE_NULL", "Cannot be null.", f"{prefix}.payload"))
    elif not isinstance(payload, dict):
        errors.append(_error("MUST_BE_OBJECT", "Must be an object.", f"{prefix}.payload"))
    return errors


def _check_option(errors: ErrorList, event: dict[str, Any], key: str, valid: tuple[str, ...], prefix: str) -> None:
    value = event.get(key)
    path = f"{prefix}.{key}"
    if value is None:
        errors.append(_error("CANNOT_BE_NULL", "Cannot be null.", path))
    elif value not in valid:
        rules = {"valid_options": list(valid)}
        errors.append(_error("INVALID_OPTION", "Must be one of the valid options.", path, validation_rules=rules))


def _merge_payload_errors(fields: FieldMap, event: dict[str, Any], prefix: str, index: int | None) -> None:
    for field, entries in contract.payload_errors(event["event_type"], event["payload"]).items():
        for entry in entries:
            located: dict[str, Any] = {**entry, "path": f"{prefix}.payload.{field}"}
            if index is not None:
                located["index"] = index
            fields.setdefault(field, []).append(located)

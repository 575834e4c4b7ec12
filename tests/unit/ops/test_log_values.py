"""Refusals keep the record's values out of their log message (`RecordError.log_message`), not out of the
message that goes to the dead-letter topic."""

from __future__ import annotations

from typing import Any

import pytest

from connector.avro import Decoder, Encoder, default_catalog
from connector.avro.catalog import NAMESPACE
from connector.errors import DecodeError, MappingError
from connector.mapping import map_record
from connector.transform.outcomes import Refused
from connector.transform.process import InProcess
from tests.unit.mapping.test_mapping import REFUSALS, refusal

N_ORDER_PAID = f"{NAMESPACE}.OrderPaid"

#: REFUSALS whose message quotes a value of the record: (id, the value, a word the log message keeps).
QUOTING = {
    "email": ("ana.x.com", "email"),
    "checkout-url": ("ftp://x/1", "checkout_url"),
    "currency": ("real", "currency"),
    "negative-total": ("-1.0", "price"),
    "unknown-type": ("NOPE", "event_type"),
    "bad-json": ("{bad", "payload_json"),
    "json-array": ("[1]", "payload_json"),
    "passthrough-cancel-reason": ("bored", "cancel_reason"),
}


@pytest.mark.parametrize(
    ("full_name", "record", "value", "field"),
    [pytest.param(*case.values[:2], *QUOTING[str(case.id)], id=case.id) for case in REFUSALS if case.id in QUOTING],
)
def test_a_refusals_log_message_names_the_field_not_the_value(
    full_name: str, record: dict[str, Any], value: str, field: str
) -> None:
    error = refusal(full_name, record)
    assert value in error.message  # the dead letter's detail keeps it
    assert value not in error.log_message
    assert field in error.log_message


def test_a_misshapen_record_logs_the_exception_type_only() -> None:
    with pytest.raises(MappingError) as info:
        map_record(N_ORDER_PAID, {"customer": {"email": "ana@example.com"}, "order_id": 7})
    assert info.value.reason == "invalid_field"
    assert info.value.log_message == "mapping order-paid: record does not fit its mapping: KeyError"


def test_a_corrupt_body_logs_the_exception_type_only() -> None:
    value = Encoder().single_object(
        f"{NAMESPACE}.RdEvent",
        {"event_id": "e", "occurred_at": 1, "event_type": "CONVERSION", "payload_json": "ana@example.com"},
    )
    # Cut inside the last string: its length prefix promises more bytes than there are.
    with pytest.raises(DecodeError) as info:
        Decoder(default_catalog()).decode(value[:-3] + b"\xff\xff\xff", "t")
    assert info.value.reason == "corrupt_body"
    assert "ana@example" in info.value.message  # fastavro's error quotes the bytes
    assert "ana@example" not in info.value.log_message


def test_the_transform_hands_the_log_message_to_the_pipeline() -> None:
    value = Encoder().single_object(
        f"{NAMESPACE}.RdEvent",
        {"event_id": "e", "occurred_at": 1, "event_type": "ana@example.com", "payload_json": "{}"},
    )
    [outcome] = InProcess(Decoder(default_catalog())).many([("t", value)])
    assert type(outcome) is Refused
    assert (outcome.stage, outcome.reason) == ("map", "unknown_event_type")
    assert "ana@example.com" in outcome.message and "ana@example.com" not in outcome.log_message

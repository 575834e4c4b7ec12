"""Fitting a dead letter under a size limit (pure): what is kept, what is cut, and the invariants."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.errors import ConfigError
from connector.in_flight import Item
from connector.settle.dead_letters import MIN_LIMIT, RD_EVENT, DeadLetter, fit_letter, rd_answer_summary, record_size
from connector.settle.letter_limit import LetterLimit, choose_limit, producer_config_for

COORDINATES = ("rdc.source.topic", "rdc.source.partition", "rdc.source.offset")
ERRORS = ("rdc.error.stage", "rdc.error.reason", "rdc.error.detail")


def letter(**overrides: Any) -> DeadLetter:
    fields: dict[str, Any] = {
        "topic": "orders",
        "partition": 1,
        "offset": 42,
        "key": b"customer-7",
        "value": b"v" * 1000,
        "headers": [("trace", b"abc")],
        "stage": "decode",
        "reason": "bad_magic_byte",
        "detail": "first bytes ffff",
    }
    fields.update(overrides)
    return DeadLetter(**fields)


def names(headers: list[tuple[str, Any]]) -> list[str]:
    return [name for name, _ in headers]


def test_a_letter_that_fits_goes_as_it_is() -> None:
    dead = letter()
    fitted = fit_letter(dead, 1_000_000)
    assert fitted.truncated == ()
    assert (fitted.key, fitted.value, fitted.headers) == (dead.key, dead.value, dead.report_headers())
    assert "rdc.truncated" not in names(fitted.headers)


def test_a_large_value_keeps_its_longest_prefix_and_says_so() -> None:
    original = bytes(range(256)) * 4000  # 1,024,000 bytes
    fitted = fit_letter(letter(value=original), 100_000)
    assert fitted.truncated == ("value",)
    assert fitted.size <= 100_000 and fitted.size > 100_000 - 500  # only the markers' reserve is left over
    assert fitted.value is not None and original.startswith(fitted.value)
    headers = dict(fitted.headers)
    assert headers["rdc.truncated"] == b"value"
    assert headers["rdc.original.size"] == b"1024000"
    assert headers["rdc.original.sha256"] == hashlib.sha256(original).hexdigest().encode()
    assert headers["trace"] == b"abc" and fitted.key == b"customer-7"  # small things stay
    assert all(name in headers for name in COORDINATES + ERRORS)


def test_the_rd_event_is_dropped_first() -> None:
    dead = letter(value=b"v" * 50_000, headers=[("trace", b"abc"), (RD_EVENT, b"{" + b"x" * 60_000 + b"}")])
    fitted = fit_letter(dead, 100_000)
    assert fitted.truncated == ("rd_event",)
    assert fitted.value == dead.value  # the value is whole
    assert RD_EVENT not in names(fitted.headers) and "trace" in names(fitted.headers)


def test_original_headers_are_dropped_largest_first_before_the_value_is_cut() -> None:
    headers: list[tuple[str, Any]] = [("small", b"s"), ("huge", b"h" * 90_000), ("medium", b"m" * 5_000)]
    fitted = fit_letter(letter(value=b"v" * 20_000, headers=headers), 100_000)
    assert fitted.truncated == ("headers",)
    assert fitted.value == b"v" * 20_000
    assert names(fitted.headers)[:2] == ["small", "medium"]  # the rest, in their order


def test_with_a_large_value_only_an_eighth_of_the_room_stays_for_headers() -> None:
    headers: list[tuple[str, Any]] = [("a", b"a" * 30_000), ("b", b"b" * 30_000), ("c", b"c" * 100)]
    fitted = fit_letter(letter(value=b"v" * 500_000, headers=headers), 100_000)
    assert fitted.truncated == ("headers", "value")
    assert names(fitted.headers)[0] == "c"
    assert fitted.value is not None and len(fitted.value) > 80_000


def test_a_huge_key_is_cut() -> None:
    fitted = fit_letter(letter(key=b"k" * 200_000, value=b"v" * 10), 100_000)
    assert fitted.truncated == ("key",)
    assert fitted.key is not None and len(fitted.key) < 100_000 // 8
    assert fitted.value == b"v" * 10


def test_a_limit_below_the_minimum_counts_as_the_minimum() -> None:
    fitted = fit_letter(letter(value=b"v" * 100_000), 100)
    assert MIN_LIMIT - 500 < fitted.size <= MIN_LIMIT


def test_of_builds_from_an_item_with_its_rd_event() -> None:
    item = Item("orders", 2, 9, b"k", "CONVERSION", None, b'{"e":1}', b"avro", [("trace", b"t")])
    dead = DeadLetter.of(item, stage="send", reason="rejected_by_rd", detail="400 x", rd_event=item.event, weight=5)
    assert (dead.topic, dead.partition, dead.offset, dead.key, dead.value) == ("orders", 2, 9, b"k", b"avro")
    assert dead.headers == [("trace", b"t"), (RD_EVENT, b'{"e":1}')]
    assert (dead.log_detail, dead.weight) == ("400 x", 5)


class FakeMessage:
    def topic(self) -> str:
        return "src"

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return 3

    def key(self) -> bytes:
        return b"k"

    def value(self) -> bytes:
        return b"v"

    def headers(self) -> None:
        return None


def test_of_builds_from_a_consumed_message() -> None:
    dead = DeadLetter.of(FakeMessage(), stage="map", reason="invalid_email", detail="email='a'", log_detail="email")
    assert (dead.topic, dead.partition, dead.offset, dead.key, dead.value, dead.headers) == (
        "src",
        0,
        3,
        b"k",
        b"v",
        None,
    )
    assert (dead.detail, dead.log_detail) == ("email='a'", "email")


_bytes = st.one_of(st.none(), st.binary(max_size=3000).map(lambda b: b * 40))
_header = st.tuples(
    st.sampled_from(["trace", "big", RD_EVENT, "x" * 200, "ünï"]),
    st.one_of(st.none(), st.binary(max_size=2000).map(lambda b: b * 30), st.text(max_size=500)),
)


@settings(max_examples=300, deadline=None)
@given(
    topic=st.text(min_size=1, max_size=249),
    key=_bytes,
    value=_bytes,
    headers=st.one_of(st.none(), st.lists(_header, max_size=12)),
    detail=st.text(max_size=6000),
    limit=st.integers(min_value=0, max_value=300_000),
)
def test_property_a_fitted_letter_always_fits_and_keeps_what_must_stay(
    topic: str, key: bytes | None, value: bytes | None, headers: Any, detail: str, limit: int
) -> None:
    dead = letter(topic=topic, key=key, value=value, headers=headers, detail=detail)
    fitted = fit_letter(dead, limit)
    assert fitted.size == record_size(fitted.key, fitted.value, fitted.headers)
    assert fitted.size <= max(limit, MIN_LIMIT)
    found = dict(fitted.headers)
    assert found["rdc.source.topic"] == topic.encode()
    assert found["rdc.source.partition"] == b"1" and found["rdc.source.offset"] == b"42"
    assert all(name in found for name in ERRORS)
    if fitted.truncated:
        assert found["rdc.original.sha256"] == hashlib.sha256(value or b"").hexdigest().encode()
        assert found["rdc.original.size"] == str(len(value or b"")).encode()
        assert found["rdc.truncated"] == ",".join(fitted.truncated).encode()
    else:  # only what does not fit is ever cut
        assert record_size(key, value, dead.report_headers()) <= max(limit, MIN_LIMIT)
        assert (fitted.key, fitted.value) == (key, value)
    assert (value or b"").startswith(fitted.value or b"")
    assert (key or b"").startswith(fitted.key or b"")


# --- RD's answer, without values ------------------------------------------------------------------------------


def test_rd_answer_summary_names_fields_and_types_not_messages() -> None:
    body = b'{"errors":{"email":[{"error_type":"INVALID_FORMAT","error_message":"ana@x is not valid"}]}}'
    assert rd_answer_summary(422, body) == "422 email:INVALID_FORMAT"
    listed = b'{"errors":[{"error_type":"INVALID_OPTION","error_message":"m","path":"$.body.event_type"}]}'
    assert rd_answer_summary(400, listed) == "400 $.body.event_type:INVALID_OPTION"
    single = b'{"errors":{"error_type":"BAD_REQUEST","error_message":"Could not parse"}}'
    assert rd_answer_summary(400, single) == "400 BAD_REQUEST"
    assert rd_answer_summary(413, b"payload too large ana@x") == "413 (23 bytes, not RD's error JSON)"
    assert rd_answer_summary(400, b"[1, 2]") == "400 (6 bytes, not RD's error JSON)"


# --- the limit (pure parts) -----------------------------------------------------------------------------------


def test_choose_limit_takes_the_smaller_and_assumes_kafkas_default_when_unknown() -> None:
    assert choose_limit(1_000_000, 300_000) == 300_000
    assert choose_limit(5_000_000, None) == 1_048_588
    assert choose_limit(500_000, None) == 500_000


def test_choose_limit_refuses_a_limit_no_dead_letter_fits() -> None:
    with pytest.raises(ConfigError, match="RDC_KAFKA__MESSAGE_MAX_BYTES=1000"):
        choose_limit(1000, None)
    with pytest.raises(ConfigError, match="RDC_DLQ_TOPIC"):
        choose_limit(1_000_000, 2000)


def test_producer_batches_are_capped_at_the_brokers_limit() -> None:
    assert producer_config_for({"acks": "all"}, LetterLimit(300_000, 300_000, "topic"))["batch.size"] == 300_000
    assert "batch.size" not in producer_config_for({}, LetterLimit(1_000_000, None, "unknown"))
    assert producer_config_for({"batch.size": 1000}, LetterLimit(300_000, 300_000, "topic"))["batch.size"] == 1000

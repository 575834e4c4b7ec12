"""`dlq replay`'s pure parts: what each letter gets under the filters, the replayed headers, times, groups."""

from __future__ import annotations

from typing import Any

import pytest

from connector.commands.dlq_plan import Decision, Filters, Letter, decide, default_group, parse_time, replay_headers
from connector.settle.connect_headers import connect_headers
from connector.settle.dead_letters import DeadLetter, fit_letter

NOON = parse_time("2026-01-31T12:00:00Z")


def letter(reason: str = "invalid_email", stamp: int | None = NOON, offset: int = 5, **headers: str) -> Letter:
    found: list[tuple[str, Any]] = [("trace", b"t"), ("rdc.error.reason", reason.encode())]
    found += [("rdc.source.topic", b"orders"), ("rdc.source.partition", b"2")]
    found += [(name.replace("_", "."), value.encode()) for name, value in headers.items()]
    return Letter(0, offset, stamp, b"k", b"v", found)


@pytest.mark.parametrize(
    ("subject", "filters", "expected"),
    [
        pytest.param(letter(), Filters(), Decision("replay", topic="orders", partition=2), id="source-partition"),
        pytest.param(letter(), Filters(to="other"), Decision("replay", topic="other"), id="to-goes-by-key"),
        pytest.param(letter(), Filters(reasons=frozenset({"x"})), Decision("pass", "reason"), id="other-reason"),
        pytest.param(letter(), Filters(since_ms=NOON + 1), Decision("pass", "before_since"), id="before-since"),
        pytest.param(letter(), Filters(since_ms=NOON), Decision("replay", "", "orders", 2), id="since-inclusive"),
        pytest.param(letter(), Filters(until_ms=NOON), Decision("hold", "after_until"), id="until-exclusive-holds"),
        pytest.param(letter(stamp=None), Filters(until_ms=NOON), Decision("pass", "after_until"), id="no-stamp"),
        pytest.param(
            letter(rdc_retry_after="2026-01-31T12:00:01Z"),
            Filters(ready=True, now_ms=NOON),
            Decision("hold", "not_ready"),
            id="not-ready-holds",
        ),
        pytest.param(
            letter(rdc_retry_after="2026-01-31T12:00:00Z"),
            Filters(ready=True, now_ms=NOON),
            Decision("replay", "", "orders", 2),
            id="ready-at-its-time",
        ),
        pytest.param(letter(), Filters(ready=True, now_ms=0), Decision("replay", "", "orders", 2), id="no-retry-ready"),
        pytest.param(
            letter(rdc_retry_after="soon"),
            Filters(ready=True),
            Decision("replay", "", "orders", 2),
            id="unreadable-retry-ready",
        ),
        pytest.param(
            letter(rdc_truncated="rd_event"), Filters(), Decision("replay", "", "orders", 2), id="rd-event-cut"
        ),
        pytest.param(letter(rdc_truncated="headers,value"), Filters(), Decision("pass", "truncated"), id="value-cut"),
        pytest.param(Letter(0, 1, NOON, None, b"v", []), Filters(), Decision("pass", "no_source"), id="no-source"),
        pytest.param(
            Letter(0, 1, NOON, None, b"v", []), Filters(to="t"), Decision("replay", topic="t"), id="no-src-to"
        ),
    ],
)
def test_decide(subject: Letter, filters: Filters, expected: Decision) -> None:
    assert decide(subject, filters) == expected


def test_another_reason_passes_before_a_hold_is_considered() -> None:
    future = letter(rdc_retry_after="2999-01-01T00:00:00Z")
    assert decide(future, Filters(reasons=frozenset({"x"}), ready=True)).action == "pass"


def test_kafka_connects_source_headers_are_read_when_ours_are_absent() -> None:
    headers: list[tuple[str, Any]] = [("__connect.errors.topic", b"orders"), ("__connect.errors.partition", b"1")]
    assert decide(Letter(0, 1, NOON, None, b"v", headers), Filters()) == Decision("replay", "", "orders", 1)


def test_replay_headers_keep_the_originals_and_mark_the_letter() -> None:
    earlier: list[tuple[str, Any]] = [("trace", b"t"), ("rdc.replay.of", b"dlq/0/1")]
    dead = DeadLetter(topic="orders", partition=2, offset=9, key=b"k", value=b"v", stage="map",
                      reason="invalid_email", detail="d", headers=earlier)  # fmt: skip
    fitted = fit_letter(dead, 1_000_000, connect_headers(dead, connector_name="g"))
    subject = Letter(3, 41, NOON, fitted.key, fitted.value, fitted.headers)
    assert replay_headers(subject.headers, "rd.dlq", subject) == [("trace", b"t"), ("rdc.replay.of", b"rd.dlq/3/41")]


def test_connect_headers_are_never_cut() -> None:
    dead = DeadLetter(topic="orders", partition=2, offset=9, key=b"k", value=b"v" * 50_000, stage="decode",
                      reason="corrupt_body", detail="d", headers=[("h", b"x" * 30_000)])  # fmt: skip
    context = connect_headers(dead)
    fitted = fit_letter(dead, 20_000, context)
    assert fitted.truncated and fitted.headers[-len(context) :] == context
    assert fitted.size <= 20_000


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1769860800000", NOON), ("2026-01-31T12:00:00Z", NOON), ("2026-01-31T09:00:00-03:00", NOON),
     ("2026-01-31T12:00:00", NOON)],
)  # fmt: skip
def test_parse_time(text: str, expected: int) -> None:
    assert parse_time(text) == expected


def test_parse_time_refuses_what_is_not_a_time() -> None:
    with pytest.raises(ValueError, match="RFC 3339"):
        parse_time("yesterday")


def test_default_group_is_one_per_set_of_reasons() -> None:
    assert default_group([]) == "rd-connector.dlq-replay"
    assert default_group(["b", "a", "b"]) == "rd-connector.dlq-replay.a+b"

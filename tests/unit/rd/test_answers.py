"""rd_answers: a 200 counts only as one distinct UUID per event; RD's error format read defensively."""

from __future__ import annotations

import json
import uuid
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.errors import BadAnswer
from connector.rd.answers import max_answer_bytes, parse_batch_answer, rd_error_types

U = [str(uuid.UUID(int=i + 1, version=4)) for i in range(5)]


def body(events: Any, batch: Any = "b-1") -> bytes:
    return orjson.dumps({"event_batch_uuid": batch, "events": events})


def test_a_valid_answer_gives_the_uuids_in_order() -> None:
    assert parse_batch_answer(body([{"event_uuid": u} for u in U]), 5) == (U, "b-1")


def test_upper_case_uuids_are_the_same_uuids_published_lower_case() -> None:
    uuids, _ = parse_batch_answer(body([{"event_uuid": u.upper()} for u in U]), 5)
    assert uuids == U


@pytest.mark.parametrize(
    ("answer", "events"),
    [
        pytest.param(body([{"event_uuid": None}, {"event_uuid": U[1]}]), 2, id="null-uuid"),
        pytest.param(body([{"event_uuid": 1}, {"event_uuid": 2}]), 2, id="integer-uuids"),
        pytest.param(body([{"event_uuid": U[0]}, {"event_uuid": U[0]}]), 2, id="duplicate"),
        pytest.param(body([{"event_uuid": U[0]}, {"event_uuid": U[0].upper()}]), 2, id="duplicate-by-case"),
        pytest.param(body([{"event_uuid": "uuid-1"}]), 1, id="not-a-uuid"),
        pytest.param(body([{"event_uuid": "{" + U[0] + "}"}]), 1, id="braced"),
        pytest.param(body([{"event_uuid": U[0].replace("-", "")}]), 1, id="no-hyphens"),
        pytest.param(body([{"event_uuid": "00000000-0000-0000-0000-000000000000"}]), 1, id="nil"),
        pytest.param(body([{"event_uuid": U[0]}]), 2, id="fewer"),
        pytest.param(body([{"event_uuid": u} for u in U[:3]]), 2, id="more"),
        pytest.param(body([U[0]]), 1, id="entry-not-object"),
        pytest.param(body(None), 1, id="events-null"),
        pytest.param(body({"event_uuid": U[0]}), 1, id="events-object"),
        pytest.param(body([{"event_uuid": U[0]}], batch=None), 1, id="batch-null"),
        pytest.param(body([{"event_uuid": U[0]}], batch=7), 1, id="batch-integer"),
        pytest.param(body([{"event_uuid": U[0]}], batch=""), 1, id="batch-empty"),
        pytest.param(b"[]", 0, id="array"),
        pytest.param(b"<html>ok</html>", 1, id="html"),
        pytest.param(b"", 1, id="empty"),
    ],
)
def test_an_answer_that_does_not_name_each_event_is_bad(answer: bytes, events: int) -> None:
    with pytest.raises(BadAnswer):
        parse_batch_answer(answer, events)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None)
@given(answer=json_values, events=st.integers(min_value=0, max_value=5))
def test_any_json_either_parses_to_distinct_uuids_or_is_bad(answer: Any, events: int) -> None:
    """Never another exception; an accepted answer has one distinct canonical UUID per event."""
    try:
        uuids, batch = parse_batch_answer(json.dumps(answer).encode(), events)
    except BadAnswer:
        return
    assert len(uuids) == events == len(set(uuids))
    assert all(str(uuid.UUID(u)) == u for u in uuids)
    assert isinstance(batch, str) and batch


@settings(max_examples=200, deadline=None)
@given(uuids=st.lists(st.uuids(), min_size=1, max_size=20), upper=st.booleans())
def test_distinct_uuids_parse_and_a_repeat_is_bad(uuids: list[uuid.UUID], upper: bool) -> None:
    texts = [str(u).upper() if upper else str(u) for u in uuids]
    events = [{"event_uuid": t} for t in texts]
    if len(set(uuids)) < len(uuids) or uuid.UUID(int=0) in uuids:
        with pytest.raises(BadAnswer):
            parse_batch_answer(body(events), len(events))
        return
    assert parse_batch_answer(body(events), len(events))[0] == [str(u) for u in uuids]
    with pytest.raises(BadAnswer):
        parse_batch_answer(body([*events, events[0]]), len(events) + 1)


def test_the_answer_cap_holds_the_longest_valid_answer_with_headroom() -> None:
    longest = body([{"event_uuid": str(uuid.uuid4())} for _ in range(10_000)], batch=str(uuid.uuid4()))
    assert len(longest) < 1_000_000 < max_answer_bytes(10_000) <= 5_000_000
    assert max_answer_bytes(1) > 2 * len(body([{"event_uuid": U[0]}]))


# --- RD's error format (rd-api.md §4) --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "types"),
    [
        pytest.param(
            b'{"errors":[{"error_type":"INVALID_OPTION","error_message":"x","path":"$.body.event_type"}]}',
            ["INVALID_OPTION"],
            id="array",
        ),
        pytest.param(b'{"errors":{"error_type":"BAD_REQUEST","error_message":"x"}}', ["BAD_REQUEST"], id="object"),
        pytest.param(
            b'{"errors":{"email":[{"error_type":"CANNOT_BE_NULL"}],"linkedin":[{"error_type":"INVALID_FORMAT"}]}}',
            ["CANNOT_BE_NULL", "INVALID_FORMAT"],
            id="map-by-field",
        ),
    ],
)
def test_rd_error_shapes_are_recognised(answer: bytes, types: list[str]) -> None:
    assert rd_error_types(answer) == types


@pytest.mark.parametrize(
    "answer",
    [
        b"<html><body><h1>400 Bad Request</h1>nginx</body></html>",
        b"",
        b'{"message": "Request Entity Too Large"}',
        b'{"errors": []}',
        b'{"errors": {}}',
        b'{"errors": "bad"}',
        b'{"errors": [{"error_message": "no type"}]}',
        b'{"errors": [{"error_type": ""}]}',
        b'{"errors": {"email": "is not allowed"}}',
        b'{"errors": {"email": [{"error_type": "INVALID"}], "x": "y"}}',
        b'[{"error_type": "INVALID"}]',
    ],
)
def test_anything_else_is_not_rd_error_format(answer: bytes) -> None:
    assert rd_error_types(answer) is None


@settings(max_examples=400, deadline=None)
@given(answer=json_values)
def test_rd_error_types_never_raises(answer: Any) -> None:
    found = rd_error_types(json.dumps(answer).encode())
    assert found is None or (found and all(isinstance(t, str) and t for t in found))

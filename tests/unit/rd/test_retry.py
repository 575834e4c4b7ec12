"""Retry decisions: every class of RD answer and transport error, the 429 wait hints, and the backoff."""

from __future__ import annotations

import email.utils
import time

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.rd.retry import (
    CONTACT_LIMIT_PERIOD_S,
    MAX_HINTED_WAIT_S,
    Action,
    Decision,
    backoff_s,
    classify_exception,
    classify_response,
    is_contact_limit,
    next_wait_s,
    wait_from_429,
    wait_within,
)

NOW = 1_700_000_000.0  # a fixed wall clock (epoch seconds)
RD_ERROR = b'{"errors": [{"error_type": "INVALID", "error_message": "Invalid."}]}'  # RD's error format


@pytest.mark.parametrize(
    ("status", "action"),
    [
        pytest.param(200, Action.DELIVERED, id="200-delivered"),
        pytest.param(400, Action.SPLIT, id="400-split"),
        pytest.param(422, Action.SPLIT, id="422-split"),
        pytest.param(401, Action.REFRESH_AUTH, id="401-refresh-auth"),
        pytest.param(408, Action.RETRY, id="408-retry"),
        pytest.param(429, Action.RETRY, id="429-retry"),
        pytest.param(500, Action.RETRY, id="500-retry"),
        pytest.param(502, Action.RETRY, id="502-retry"),
        pytest.param(503, Action.RETRY, id="503-retry"),
        pytest.param(504, Action.RETRY, id="504-retry"),
        pytest.param(403, Action.FATAL, id="403-fatal"),
        pytest.param(404, Action.FATAL, id="404-fatal"),
        pytest.param(405, Action.FATAL, id="405-fatal"),
        pytest.param(415, Action.FATAL, id="415-fatal"),
    ],
)
def test_classify_response_action(status: int, action: Action) -> None:
    decision = classify_response(status, {}, RD_ERROR, NOW)
    assert decision.action is action
    assert decision.reason == ("ok" if status == 200 else f"status_{status}")
    assert not decision.not_rd


PROXY_PAGE = b"<html><head><title>400 Bad Request</title></head><body><center>nginx</center></body></html>"


@pytest.mark.parametrize("status", [400, 403, 404, 405, 407, 413, 415, 422, 451])
@pytest.mark.parametrize(
    "body",
    [
        pytest.param(PROXY_PAGE, id="html"),
        pytest.param(b"", id="empty"),
        pytest.param(b'{"message": "Request Entity Too Large"}', id="gateway-json"),
        pytest.param(b'{"errors": {"poison": "is not allowed"}}', id="field-map-of-strings"),
        pytest.param(b'{"errors": []}', id="empty-list"),
    ],
)
def test_a_4xx_not_in_rd_error_format_is_an_outage(status: int, body: bytes) -> None:
    decision = classify_response(status, {"Content-Type": "text/html"}, body, NOW)
    assert decision == Decision(Action.RETRY, f"status_{status}_not_rd", not_rd=True)


def test_a_413_is_an_outage_even_in_rd_error_format() -> None:
    """RD documents no 413, and no body is over RDC_BATCH_MAX_BYTES: bisecting could only dead-letter."""
    assert classify_response(413, {}, RD_ERROR, NOW) == Decision(Action.RETRY, "status_413_not_rd", not_rd=True)


@pytest.mark.parametrize("status", [401, 408, 429, 500, 503])
def test_statuses_that_need_no_rd_body_keep_their_action(status: int) -> None:
    assert classify_response(status, {}, PROXY_PAGE, NOW).action is classify_response(status, {}, RD_ERROR, NOW).action
    assert not classify_response(status, {}, PROXY_PAGE, NOW).not_rd


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408])
def test_non_429_retries_carry_no_wait(status: int) -> None:
    assert classify_response(status, {"Retry-After": "7"}, b'{"remaining_time": 3}', NOW).wait_s is None


def test_classify_429_carries_the_wait_hint() -> None:
    assert classify_response(429, {"Retry-After": "7"}, b"", NOW) == Decision(Action.RETRY, "status_429", 7.0)


def test_classify_429_without_now_uses_the_wall_clock() -> None:
    when = email.utils.formatdate(time.time() + 60, usegmt=True)
    wait = classify_response(429, {"Retry-After": when}, b"").wait_s
    assert wait is not None
    assert 55 <= wait <= 61


LEAD_LIMITER = (
    b'{"error":"\'lead_limiter\' rate limit exceeded for 86400 second(s) period","max":120,"usage":121,'
    b'"remaining_time":43067}'
)


@pytest.mark.parametrize(
    ("headers", "body", "expected"),
    [
        # RD's per-contact limiter: about contacts in the batch, whatever the headers say
        pytest.param({}, LEAD_LIMITER, Decision(Action.CONTACT_LIMITED, "status_429_contact", 43067.0), id="lead"),
        pytest.param(
            {"Retry-After": "30"},
            LEAD_LIMITER,
            Decision(Action.CONTACT_LIMITED, "status_429_contact", 30.0),
            id="lead-limiter-with-retry-after",
        ),
        pytest.param(
            {},
            b'{"error":"\'lead_limiter\' rate limit exceeded for 86400 second(s) period for key x@y.z"}',
            Decision(Action.CONTACT_LIMITED, "status_429_contact", CONTACT_LIMIT_PERIOD_S),
            id="lead-limiter-without-remaining-time-waits-its-period",
        ),
        # the account's limits: RD's gateway, a Retry-After, another limiter's remaining_time, no JSON at all
        pytest.param(
            {"retry-after-quotas": "40000", "ratelimit-limit-quotas": "120"},
            b'{"message":"API rate limit exceeded"}',
            Decision(Action.RETRY, "status_429", 40000.0),
            id="gateway-quotas",
        ),
        pytest.param({"Retry-After": "12"}, b"", Decision(Action.RETRY, "status_429", 12.0), id="retry-after"),
        pytest.param(
            {},
            b'{"error":"\'account_limiter\' rate limit exceeded for 60 second(s) period","remaining_time":20}',
            Decision(Action.RETRY, "status_429", 20.0),
            id="remaining-time-without-lead-limiter",
        ),
        pytest.param({}, b"<html>lead_limiter</html>", Decision(Action.RETRY, "status_429"), id="not-json"),
        pytest.param({}, b'["lead_limiter"]', Decision(Action.RETRY, "status_429"), id="json-not-an-object"),
        pytest.param({}, b'{"error": ["lead_limiter"]}', Decision(Action.RETRY, "status_429"), id="error-not-text"),
    ],
)
def test_a_429_is_the_contacts_only_when_rds_lead_limiter_says_so(
    headers: dict[str, str], body: bytes, expected: Decision
) -> None:
    assert classify_response(429, headers, body, NOW) == expected
    assert is_contact_limit(body) is (expected.action is Action.CONTACT_LIMITED)


@pytest.mark.parametrize(
    ("headers", "body", "expected"),
    [
        pytest.param({"Retry-After": "7"}, b"", 7.0, id="retry-after-seconds"),
        pytest.param({"Retry-After": " 7 "}, b"", 7.0, id="retry-after-seconds-padded"),
        pytest.param({"retry-after": "0"}, b"", 0.0, id="retry-after-zero"),
        pytest.param({"RETRY-AFTER": "5"}, b"", 5.0, id="retry-after-case-insensitive"),
        pytest.param(
            {"Retry-After": email.utils.formatdate(NOW + 30, usegmt=True)}, b"", 30.0, id="retry-after-http-date"
        ),
        pytest.param(
            {"Retry-After": email.utils.formatdate(NOW - 30, usegmt=True)}, b"", 0.0, id="retry-after-date-in-past"
        ),
        pytest.param({"retry-after-quotas": "12"}, b"", 12.0, id="quotas-header"),
        pytest.param({"Retry-After-Quotas": "12.5"}, b"", 12.5, id="quotas-header-decimal"),
        pytest.param({}, b'{"remaining_time": 20745}', 20745.0, id="body-remaining-time"),
        pytest.param({}, b'{"remaining_time": 1.5}', 1.5, id="body-remaining-time-float"),
        # precedence: Retry-After, then retry-after-quotas, then the body
        pytest.param(
            {"Retry-After": "3", "retry-after-quotas": "12"}, b'{"remaining_time": 20745}', 3.0, id="retry-after-first"
        ),
        pytest.param({"retry-after-quotas": "12"}, b'{"remaining_time": 20745}', 12.0, id="quotas-beat-body"),
        pytest.param({"Retry-After": "soon", "retry-after-quotas": "12"}, b"", 12.0, id="garbage-retry-after-falls-on"),
        pytest.param({"retry-after-quotas": "lots"}, b'{"remaining_time": 9}', 9.0, id="garbage-quotas-falls-on"),
        # no hint, or nothing readable
        pytest.param({}, b"", None, id="no-hint"),
        pytest.param({"Content-Type": "application/json"}, b"{}", None, id="no-hint-empty-object"),
        pytest.param({"Retry-After": "soon"}, b"", None, id="garbage-retry-after"),
        pytest.param({"Retry-After": "-5"}, b"", None, id="negative-retry-after"),
        pytest.param({"Retry-After": ""}, b"", None, id="empty-retry-after"),
        pytest.param({"retry-after-quotas": "1.2.3"}, b"", None, id="garbage-quotas"),
        pytest.param({}, b"not json", None, id="garbage-body"),
        pytest.param({}, b"\xff\xfe", None, id="binary-body"),
        pytest.param({}, b"[1, 2]", None, id="body-not-an-object"),
        pytest.param({}, b"null", None, id="body-null"),
        pytest.param({}, b'{"remaining_time": "20745"}', None, id="body-remaining-time-string"),
        pytest.param({}, b'{"remaining_time": -1}', None, id="body-remaining-time-negative"),
        pytest.param({}, b'{"remaining_time": null}', None, id="body-remaining-time-null"),
        pytest.param(
            {},
            b'{"remaining_time": true}',
            None,
            id="body-remaining-time-bool",
        ),
    ],
)
def test_wait_from_429(headers: dict[str, str], body: bytes, expected: float | None) -> None:
    assert wait_from_429(headers, body, NOW) == expected


def test_wait_from_429_accepts_httpx_headers() -> None:
    headers = httpx.Headers({"Retry-After": "4", "retry-after-quotas": "12"})
    assert wait_from_429(headers, b"", NOW) == 4.0


@pytest.mark.parametrize(
    ("exc", "possibly_sent"),
    [
        pytest.param(httpx.ReadTimeout("read timed out"), True, id="read-timeout-after-send"),
        pytest.param(httpx.RemoteProtocolError("server disconnected"), True, id="dropped-after-send"),
        pytest.param(httpx.ReadError("reset by peer"), True, id="reset-after-send"),
        pytest.param(httpx.ConnectTimeout("connect timed out"), False, id="never-connected"),
        pytest.param(httpx.ConnectError("refused"), False, id="refused"),
        pytest.param(httpx.WriteTimeout("write timed out"), False, id="not-fully-sent"),
    ],
)
def test_lost_answers_after_sending_are_possible_duplicates(exc: httpx.HTTPError, possibly_sent: bool) -> None:
    assert classify_exception(exc).possibly_sent is possibly_sent


@pytest.mark.parametrize(
    ("exc", "action", "reason"),
    [
        pytest.param(httpx.ConnectTimeout("connect timed out"), Action.RETRY, "timeout", id="connect-timeout"),
        pytest.param(httpx.ReadTimeout("read timed out"), Action.RETRY, "timeout", id="read-timeout"),
        pytest.param(httpx.WriteTimeout("write timed out"), Action.RETRY, "timeout", id="write-timeout"),
        pytest.param(httpx.PoolTimeout("pool timed out"), Action.RETRY, "timeout", id="pool-timeout"),
        pytest.param(httpx.ConnectError("refused"), Action.RETRY, "connection_error", id="connect-error"),
        pytest.param(
            httpx.RemoteProtocolError("server disconnected"), Action.RETRY, "connection_error", id="remote-protocol"
        ),
        pytest.param(httpx.ReadError("reset by peer"), Action.RETRY, "connection_error", id="read-error"),
        pytest.param(httpx.WriteError("broken pipe"), Action.RETRY, "connection_error", id="write-error"),
        pytest.param(httpx.TooManyRedirects("loop"), Action.FATAL, "unexpected_TooManyRedirects", id="redirects"),
        pytest.param(httpx.DecodingError("bad gzip"), Action.FATAL, "unexpected_DecodingError", id="decoding"),
    ],
)
def test_classify_exception(exc: httpx.HTTPError, action: Action, reason: str) -> None:
    decision = classify_exception(exc)
    assert decision.action is action
    assert decision.reason == reason
    assert decision.wait_s is None


@pytest.mark.parametrize("attempt", [0, 1, 5, 40])
def test_backoff_zero_jitter_is_zero(attempt: int) -> None:
    assert backoff_s(attempt, 0.5, 30.0, 0.0) == 0.0


@pytest.mark.parametrize(
    ("attempt", "expected"),
    [
        pytest.param(0, 0.5, id="attempt-0"),
        pytest.param(1, 1.0, id="attempt-1"),
        pytest.param(3, 4.0, id="attempt-3"),
        pytest.param(5, 16.0, id="attempt-5"),
        pytest.param(6, 30.0, id="attempt-6-capped"),
        pytest.param(1000, 30.0, id="attempt-1000-capped"),
    ],
)
def test_backoff_full_jitter_reaches_the_capped_exponential(attempt: int, expected: float) -> None:
    jitter = 1.0 - 1e-12  # the largest jitter the lane's random.random() can draw, give or take
    assert backoff_s(attempt, 0.5, 30.0, jitter) == pytest.approx(expected)
    assert backoff_s(attempt, 0.5, 30.0, jitter) == pytest.approx(min(30.0, 0.5 * 2**attempt))


@settings(max_examples=300, deadline=None)
@given(
    attempt=st.integers(min_value=0, max_value=10_000),
    initial=st.floats(min_value=1e-6, max_value=60.0),
    maximum=st.floats(min_value=1e-6, max_value=3600.0),
    jitter=st.floats(min_value=0.0, max_value=1.0, exclude_max=True),
)
def test_backoff_never_exceeds_max_and_grows_with_attempts(
    attempt: int, initial: float, maximum: float, jitter: float
) -> None:
    wait = backoff_s(attempt, initial, maximum, jitter)
    assert 0.0 <= wait <= maximum
    assert wait <= backoff_s(attempt + 1, initial, maximum, jitter)


# --- waits: RD's hint capped, every wait cut at the retry deadline -------------------------------------------


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        pytest.param({"Retry-After": "999999"}, b"", id="retry-after"),
        pytest.param({"Retry-After": email.utils.formatdate(NOW + 86_400 * 30, usegmt=True)}, b"", id="date"),
        pytest.param({"retry-after-quotas": "86400"}, b"", id="quotas"),
        pytest.param({}, b'{"remaining_time": 20745}', id="remaining-time"),
    ],
)
def test_a_long_hint_is_waited_at_most_max_hinted_wait(headers: dict[str, str], body: bytes) -> None:
    decision = classify_response(429, headers, body, NOW)
    assert decision.wait_s is not None and decision.wait_s > MAX_HINTED_WAIT_S  # what RD asked, for the logs
    assert next_wait_s(decision, 0, 0.5, 30.0, 0.9) == MAX_HINTED_WAIT_S == 60.0


def test_a_short_hint_is_waited_in_full_and_no_hint_is_the_backoff() -> None:
    assert next_wait_s(Decision(Action.RETRY, "status_429", 7.0), 3, 0.5, 30.0, 0.5) == 7.0
    assert next_wait_s(Decision(Action.RETRY, "status_503"), 3, 0.5, 30.0, 0.5) == backoff_s(3, 0.5, 30.0, 0.5)


def test_the_backoff_is_the_operators_cap_not_the_hint_cap() -> None:
    assert next_wait_s(Decision(Action.RETRY, "timeout"), 20, 1.0, 600.0, 0.999) == pytest.approx(599.4)


@pytest.mark.parametrize(
    ("wait", "now", "deadline", "expected"),
    [
        pytest.param(5.0, 100.0, None, 5.0, id="no-deadline"),
        pytest.param(5.0, 100.0, 110.0, 5.0, id="ends-before"),
        pytest.param(60.0, 100.0, 102.0, 2.0, id="cut-at-the-deadline"),
        pytest.param(999_999.0, 100.0, 100.5, 0.5, id="eleven-days-cut"),
        pytest.param(1.0, 102.0, 102.0, None, id="at-the-deadline-give-up"),
        pytest.param(0.0, 103.0, 102.0, None, id="past-the-deadline-give-up"),
        pytest.param(-1.0, 100.0, 102.0, 0.0, id="never-negative"),
    ],
)
def test_wait_within(wait: float, now: float, deadline: float | None, expected: float | None) -> None:
    assert wait_within(wait, now, deadline) == expected


@settings(max_examples=300, deadline=None)
@given(
    waits=st.lists(st.floats(min_value=0.0, max_value=1e7), min_size=1, max_size=50),
    max_elapsed=st.floats(min_value=0.001, max_value=1e5),
    request_s=st.floats(min_value=0.0, max_value=100.0),
)
def test_a_retry_loop_never_waits_past_its_deadline(waits: list[float], max_elapsed: float, request_s: float) -> None:
    """Simulate the lane: fail (each attempt takes `request_s`), wait as told; it gives up by the deadline
    plus at most one request, whatever RD asks."""
    now = 0.0
    deadline = now + max_elapsed
    for asked in waits:
        now += request_s
        wait = wait_within(next_wait_s(Decision(Action.RETRY, "status_429", asked), 0, 0.5, 30.0, 0.5), now, deadline)
        if wait is None:
            break
        assert 0.0 <= wait <= MAX_HINTED_WAIT_S
        now += wait
        assert now <= deadline * (1 + 1e-12)  # now + (deadline - now) may round one ulp past it
    assert now <= deadline * (1 + 1e-12) + request_s

"""Structured logs: formats, and redaction of secrets everywhere (message, args, exceptions, tracebacks)."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator

import pytest

from connector.logs import Redactor, configure_logging, redact_also

TOKEN = "at-5ecret-Token-42"
CLIENT_SECRET = "cs/with+special&chars"
SECRETS = (TOKEN, CLIENT_SECRET)


@pytest.fixture
def logged() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger whose lines go through `configure_logging`'s handler into a StringIO (kv format)."""
    yield from _configured("kv")


@pytest.fixture
def logged_json() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    yield from _configured("json")


def _configured(fmt: str) -> Iterator[tuple[logging.Logger, io.StringIO]]:
    root = logging.getLogger()
    before, level = list(root.handlers), root.level
    stream = io.StringIO()
    handler = configure_logging("DEBUG", fmt, SECRETS)
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(stream)
    try:
        yield logging.getLogger("connector.test"), stream
    finally:
        root.removeHandler(handler)
        for old in before:
            if old not in root.handlers:
                root.addHandler(old)
        root.setLevel(level)
        logging.captureWarnings(False)


def assert_clean(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(f"token={TOKEN}", "token=***", id="literal"),
        pytest.param("Authorization: Bearer abc.def-ghi_jkl", "Authorization: Bearer ***", id="bearer"),
        pytest.param("authorization: bearer abc", "authorization: bearer ***", id="bearer-lowercase"),
        pytest.param("Basic dXNlcjpwYXNz", "Basic ***", id="basic"),
        pytest.param(
            '{"access_token": "eyJx.y.z", "expires_in": 86400}',
            '{"access_token": "***", "expires_in": 86400}',
            id="json-access",
        ),
        pytest.param("{'refresh_token': 'r-1'}", "{'refresh_token': '***'}", id="python-dict"),
        pytest.param('{"client_secret":"abc"}', '{"client_secret":"***"}', id="json-compact"),
        pytest.param("sasl.password=hunter2 sasl.username=u", "sasl.password=*** sasl.username=u", id="sasl"),
        pytest.param("https://u:hunter2@registry:8081/x", "https://u:***@registry:8081/x", id="url-userinfo"),
        pytest.param("POST /auth/token?password=p4ss&x=1", "POST /auth/token?password=***&x=1", id="query"),
        pytest.param("cs%2Fwith%2Bspecial%26chars", "***", id="url-encoded-secret"),
        pytest.param("event_type=CONVERSION events=3", "event_type=CONVERSION events=3", id="untouched"),
    ],
)
def test_redactor(text: str, expected: str) -> None:
    assert Redactor(SECRETS).redact(text) == expected


def test_json_escaped_secret() -> None:
    secret = 'quote"and\\slash'
    assert Redactor([secret]).redact(json.dumps({"x": secret})) == '{"x": "***"}'


def test_longer_secret_replaced_whole() -> None:
    assert Redactor(["abcd", "abcdefgh"]).redact("v=abcdefgh") == "v=***"


def test_kv_line(logged: tuple[logging.Logger, io.StringIO]) -> None:
    log, stream = logged
    log.info("batch lane=%d events=%d status=%d", 0, 12, 200)
    line = stream.getvalue()
    assert re.fullmatch(
        r"ts=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z level=INFO logger=connector.test"
        r" batch lane=0 events=12 status=200\n",
        line,
    )


def test_secret_in_message_and_args(logged: tuple[logging.Logger, io.StringIO]) -> None:
    log, stream = logged
    log.warning(f"literal {TOKEN}")
    log.warning("arg %s and %r", TOKEN, {"client_secret": CLIENT_SECRET})
    log.warning("headers %s", {"Authorization": "Bearer xyz-123"})
    text = stream.getvalue()
    assert_clean(text)
    assert "xyz-123" not in text
    assert text.count("***") >= 4


def test_secret_in_exception_and_traceback(logged: tuple[logging.Logger, io.StringIO]) -> None:
    log, stream = logged
    try:
        token = TOKEN  # the traceback shows this source line too
        raise RuntimeError(f"refused {token} with client_secret={CLIENT_SECRET}")
    except RuntimeError:
        log.exception("rd_failed")
    text = stream.getvalue()
    assert_clean(text)
    assert text.count("\n") == 1  # one line per event, traceback folded in
    assert "Traceback (most recent call last)" in text and "RuntimeError: refused ***" in text


def test_secret_in_chained_exception(logged: tuple[logging.Logger, io.StringIO]) -> None:
    log, stream = logged
    try:
        try:
            raise ValueError(f"Bearer {TOKEN}")
        except ValueError as inner:
            raise ConnectionError("outer") from inner
    except ConnectionError as exc:
        log.error("failed", exc_info=exc)
    assert_clean(stream.getvalue())
    assert "ValueError: Bearer ***" in stream.getvalue()


def test_secret_in_stack_info(logged: tuple[logging.Logger, io.StringIO]) -> None:
    log, stream = logged
    log.info("where %s", TOKEN, stack_info=True)
    assert_clean(stream.getvalue())
    assert "Stack (most recent call last)" in stream.getvalue()


def test_bad_format_string_still_redacted(logged: tuple[logging.Logger, io.StringIO]) -> None:
    log, stream = logged
    log.info("two %s %s", TOKEN)  # one arg missing
    assert_clean(stream.getvalue())
    assert "args=" in stream.getvalue()


def test_warnings_are_logged_and_redacted(logged: tuple[logging.Logger, io.StringIO]) -> None:
    import warnings

    _, stream = logged
    warnings.warn(f"deprecated use of {TOKEN}", UserWarning, stacklevel=1)
    assert "deprecated use of ***" in stream.getvalue()


def test_json_format(logged_json: tuple[logging.Logger, io.StringIO]) -> None:
    log, stream = logged_json
    log.info("started topics=%s", "a,b")
    try:
        raise KeyError(TOKEN)
    except KeyError:
        log.exception("crash refresh_token=%s", "rt-1")
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert set(first) == {"ts", "level", "logger", "msg"}
    assert first["msg"] == "started topics=a,b" and first["level"] == "INFO" and first["logger"] == "connector.test"
    assert first["ts"].endswith("Z") and "T" in first["ts"]
    assert second["msg"] == "crash refresh_token=***"
    assert "KeyError: '***'" in second["exc"]
    assert_clean(stream.getvalue())


def test_other_handlers_see_redacted_exception_text(logged: tuple[logging.Logger, io.StringIO]) -> None:
    """The filter rewrites the record itself, so a handler that formats after ours prints redacted text."""
    log, _ = logged
    late = io.StringIO()
    extra = logging.StreamHandler(late)
    logging.getLogger().addHandler(extra)
    try:
        try:
            raise RuntimeError(TOKEN)
        except RuntimeError:
            log.exception("x")
    finally:
        logging.getLogger().removeHandler(extra)
    assert_clean(late.getvalue())


def test_secrets_added_later_are_redacted(logged: tuple[logging.Logger, io.StringIO]) -> None:
    log, stream = logged
    refreshed = "at-Refreshed-Later-77"
    redact_also(refreshed)
    log.info("token is %s", refreshed)
    assert refreshed not in stream.getvalue() and "token is ***" in stream.getvalue()


def test_unknown_format_rejected() -> None:
    with pytest.raises(ValueError, match="unknown log format"):
        configure_logging("INFO", "xml")


def test_reconfigure_replaces_own_handler() -> None:
    root = logging.getLogger()
    before = list(root.handlers)
    try:
        first = configure_logging("INFO")
        second = configure_logging("INFO", "json")
        assert second in root.handlers and first not in root.handlers
    finally:
        for handler in list(root.handlers):
            if handler not in before:
                root.removeHandler(handler)
        for handler in before:
            if handler not in root.handlers:
                root.addHandler(handler)
        logging.captureWarnings(False)

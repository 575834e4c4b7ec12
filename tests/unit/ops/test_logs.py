"""Structured logs: formats, and redaction of secrets everywhere (message, args, exceptions, tracebacks)."""

from __future__ import annotations

import io
import json
import logging
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from connector.ops.logs import KeyValueFormatter, RedactingFilter, Redactor, configure_logging, redact_also
from connector.settle.reporter import DeadLetter, Reporter

TOKEN = "at-5ecret-Token-42"
CLIENT_SECRET = "cs/with+special&chars"
SECRETS = (TOKEN, CLIENT_SECRET)


@pytest.fixture(autouse=True)
def _restore_excepthooks() -> Iterator[None]:
    """configure_logging installs process-wide exception hooks: put back whatever was there (pytest's)."""
    hooks = sys.excepthook, threading.excepthook
    yield
    sys.excepthook, threading.excepthook = hooks


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
    assert list(first) == ["ts", "level", "logger", "event", "topics"]
    assert (first["event"], first["topics"], first["level"], first["logger"]) == (
        "started", "a,b", "INFO", "connector.test"
    )  # fmt: skip
    assert first["ts"].endswith("Z") and "T" in first["ts"]
    assert (second["event"], second["refresh_token"]) == ("crash", "***")
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


# -- logfmt: values are quoted and escaped, control characters never reach the output raw ------------


def parse_logfmt(line: str) -> list[tuple[str, str | None]]:
    """A strict logfmt reader (go-logfmt's grammar): `key`, `key=bare` or `key="json string"`, space-separated.
    Raises ValueError on a quote in a key or a bare value, or on anything after a closing quote."""
    pairs: list[tuple[str, str | None]] = []
    i, n = 0, len(line)
    while i < n:
        if line[i] == " ":
            i += 1
            continue
        j = i
        while j < n and line[j] not in ' ="':
            j += 1
        key = line[i:j]
        if not key or (j < n and line[j] == '"'):
            raise ValueError(f"bad key at {i} in {line!r}")
        if j == n or line[j] == " ":
            pairs.append((key, None))
            i = j
            continue
        j += 1  # past '='
        if j < n and line[j] == '"':
            k = j + 1
            while k < n and line[k] != '"':
                k += 2 if line[k] == "\\" else 1
            if k >= n or (k + 1 < n and line[k + 1] != " "):
                raise ValueError(f"bad quoted value at {j} in {line!r}")
            pairs.append((key, json.loads(line[j : k + 1])))
            i = k + 1
        else:
            k = line.find(" ", j)
            k = n if k < 0 else k
            if '"' in line[j:k]:
                raise ValueError(f"quote in a bare value at {j} in {line!r}")
            pairs.append((key, line[j:k]))
            i = k
    return pairs


FORGED_EMAIL = 'a@b.c" reason=forged level=CRITICAL offset=0 "'


class _SilentProducer:
    def produce(self, *args: Any, **kwargs: Any) -> None:
        pass


def test_a_value_cannot_forge_keys(logged: tuple[logging.Logger, io.StringIO]) -> None:
    """The dead-letter line of a record whose detail holds a crafted email: exactly the intended keys."""
    _, stream = logged
    reporter = Reporter(_SilentProducer(), "rd.results", "rd.dlq", lambda *args: None)  # type: ignore[arg-type]
    reporter.dead_letter(
        DeadLetter(topic="orders", partition=3, offset=41, key=None, value=b"x", headers=None, stage="map",
                   reason="invalid_email", detail=f"email {FORGED_EMAIL} is not an email")
    )  # fmt: skip
    pairs = parse_logfmt(stream.getvalue().rstrip("\n"))
    assert [k for k, _ in pairs] == [
        "ts", "level", "logger", "dead_letter", "topic", "partition", "offset", "stage", "reason", "detail"
    ]  # fmt: skip
    values = dict(pairs)
    assert (values["level"], values["reason"], values["offset"]) == ("WARNING", "invalid_email", "41")
    assert values["detail"] == f"email {FORGED_EMAIL} is not an email"


RAW_CONTROLS = "\r\n\t\x1b\x00\x7f\x85\x9b\u2028\u202e"


@pytest.mark.parametrize("fmt", ["kv", "json"])
def test_control_characters_never_reach_the_output_raw(fmt: str, request: pytest.FixtureRequest) -> None:
    log, stream = request.getfixturevalue("logged" if fmt == "kv" else "logged_json")
    log.warning("rd_said body=%s status=%d", "ok\r\x1b[2J\x1b]0;pwned\x07 \x9b31m" + RAW_CONTROLS, 400)
    log.warning("free text \x1b[31m red \r over" + RAW_CONTROLS)
    try:
        raise ValueError("bad \x1b[1m\r value" + RAW_CONTROLS)
    except ValueError:
        log.exception("failed detail=%r", "\x1b[0m")
    lines = stream.getvalue().split("\n")
    assert lines[-1] == "" and len(lines) == 4
    for line in lines[:-1]:
        assert line.isprintable(), line  # no C0, DEL, C1 (ESC, CSI), line or bidi control, raw
        assert all(c not in line for c in RAW_CONTROLS)
    body = dict(parse_logfmt(lines[0]))["body"] if fmt == "kv" else json.loads(lines[0])["body"]
    assert body == "ok\r\x1b[2J\x1b]0;pwned\x07 \x9b31m" + RAW_CONTROLS
    if fmt == "json":
        assert "ValueError: bad \x1b[1m\r value" in json.loads(lines[2])["exc"]


@given(st.text(), st.text(alphabet=st.characters(codec="utf-8"), max_size=5))
def test_any_value_reads_back_exactly(value: str, other: str) -> None:
    redactor = Redactor()
    assume(redactor.redact(value) == value and redactor.redact(other) == other)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter(redactor))
    handler.setFormatter(KeyValueFormatter())
    args = (value, 7, other)
    handler.handle(logging.LogRecord("connector.t", logging.INFO, __file__, 1, "event detail=%s n=%d o=%r", args, None))
    line = stream.getvalue().removesuffix("\n")
    assert line.isprintable()
    assert parse_logfmt(line)[3:] == [("event", None), ("detail", value), ("n", "7"), ("o", other)]


@pytest.mark.parametrize(
    ("value", "written"),
    [
        pytest.param("orders", "orders", id="token"),
        pytest.param("http://127.0.0.1:8765/x?y", "http://127.0.0.1:8765/x?y", id="url"),
        pytest.param("não", "não", id="printable-non-ascii"),
        pytest.param("", '""', id="empty"),
        pytest.param("a b", '"a b"', id="space"),
        pytest.param("k=v", '"k=v"', id="equals"),
        pytest.param('say "hi"', '"say \\"hi\\""', id="quote"),
        pytest.param("C:\\x", '"C:\\\\x"', id="backslash"),
        pytest.param("\x1b[31m", '"\\u001b[31m"', id="esc"),
        pytest.param("a\r\nb\t", '"a\\r\\nb\\t"', id="cr-lf-tab"),
        pytest.param("\x9b\x7f", '"\\u009b\\u007f"', id="c1-del"),
    ],
)
def test_logfmt_value(value: str, written: str) -> None:
    from connector.ops.logs import logfmt_value

    assert logfmt_value(value) == written


def test_secret_in_a_quoted_value_and_in_a_secret_position(logged: tuple[logging.Logger, io.StringIO]) -> None:
    log, stream = logged
    log.warning("rd_refused body=%s", f'{{"error": "bad", "client_secret": "x-1", "token": "{TOKEN}"}}')
    log.warning("auth header=%s retry=%s", "Bearer abc def", "no")
    log.warning("Authorization: Bearer %s", "opaque value")
    text = stream.getvalue()
    assert_clean(text)
    assert "x-1" not in text and "abc" not in text and "opaque" not in text
    first, second, third = (parse_logfmt(line) for line in text.splitlines())
    assert dict(first)["body"] == '{"error": "bad", "client_secret": "***", "token": "***"}'
    assert dict(second)["header"] == "Bearer *** def" and dict(second)["retry"] == "no"
    assert third[-1] == ("***", None)


# -- uncaught exceptions go through logging ----------------------------------------------------------


def test_uncaught_exception_in_a_thread_is_one_redacted_json_line(
    logged_json: tuple[logging.Logger, io.StringIO],
) -> None:
    _, stream = logged_json

    def crash() -> None:
        raise RuntimeError(f"refused {TOKEN} with client_secret={CLIENT_SECRET}")

    thread = threading.Thread(target=crash, name="rdc-lane-0")
    thread.start()
    thread.join()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    entry = json.loads(lines[0])
    assert (entry["level"], entry["logger"]) == ("CRITICAL", "connector.crash")
    assert (entry["event"], entry["thread"], entry["error"]) == ("uncaught_exception", "rdc-lane-0", "RuntimeError")
    assert "RuntimeError: refused *** with client_secret=***" in entry["exc"]
    assert_clean(lines[0])


def test_uncaught_exception_in_the_main_thread_is_one_redacted_json_line() -> None:
    """A real interpreter: the exception that ends the program is logged, not printed raw by Python."""
    script = (
        "from connector.ops.logs import configure_logging\n"
        f"configure_logging('INFO', 'json', [{TOKEN!r}])\n"
        f"raise ConnectionError('RD refused ' + {TOKEN!r} + ' \\x1b[2J')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    entry = json.loads(lines[0])
    assert (entry["level"], entry["event"], entry["thread"], entry["error"]) == (
        "CRITICAL", "uncaught_exception", "MainThread", "ConnectionError"
    )  # fmt: skip
    assert "ConnectionError: RD refused *** \x1b[2J" in entry["exc"]
    assert TOKEN not in done.stderr and "\x1b" not in done.stderr

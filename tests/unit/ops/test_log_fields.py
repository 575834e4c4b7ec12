"""JSON log fields from the connector's `event key=%d ...` calls (typed, redacted), the key=value format
unchanged, and the redactor's minimum length: no configured secret of 4+ characters is ever written."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.ops.log_fields import log_fields
from connector.ops.logs import JsonFormatter, KeyValueFormatter, RedactingFilter, Redactor

SECRETS = ("sup3r-secret", "rt-Refresh-9", "4242", "x")  # "x": one character, masked only as a whole value


@pytest.mark.parametrize(
    ("template", "args", "fields"),
    [
        pytest.param(
            "batch lane=%d events=%d bytes=%d fill=%.3f status=%d latency_ms=%.1f",
            (0, 278, 199870, 0.99871, 200, 84.23),
            {
                "event": "batch",
                "lane": 0,
                "events": 278,
                "bytes": 199870,
                "fill": 0.999,
                "status": 200,
                "latency_ms": 84.2,
            },
            id="batch",
        ),
        pytest.param(
            "dead_letter topic=%s partition=%d offset=%d stage=%s reason=%s detail=%s",
            ("orders", 3, 41, "map", "invalid_email", 'a@b.c" reason=forged'),
            {
                "event": "dead_letter",
                "topic": "orders",
                "partition": 3,
                "offset": 41,
                "stage": "map",
                "reason": "invalid_email",
                "detail": 'a@b.c" reason=forged',
            },
            id="dead-letter",
        ),
        pytest.param(
            "dead_letter_limit bytes=%d broker_max=%s source=%s retry=%s ok=%s",
            (1000, None, "unknown", 2.5, True),
            {
                "event": "dead_letter_limit",
                "bytes": 1000,
                "broker_max": None,
                "source": "unknown",
                "retry": 2.5,
                "ok": True,
            },
            id="none-float-bool-through-%s",
        ),
        pytest.param("expires expires_in_s=%.0f", (3599.6,), {"event": "expires", "expires_in_s": 3600}, id="%.0f"),
        pytest.param(
            "assigned partitions=%s", (["a/0", "b/1"],), {"event": "assigned", "partitions": ["a/0", "b/1"]}, id="list"
        ),
        pytest.param(
            "commit_failed error=%s (will retry; at worst records are redelivered)",
            (RuntimeError("boom"),),
            {"event": "commit_failed", "error": "boom", "msg": "will retry; at worst records are redelivered"},
            id="parenthesised-free-text",
        ),
        pytest.param(
            "rd_quota_exhausted lane=%d asked_s=%.0f: RD's quota is spent; asked again every %.0f s",
            (1, 60.0, 30.0),
            {
                "event": "rd_quota_exhausted",
                "lane": 1,
                "asked_s": 60,
                "msg": "RD's quota is spent; asked again every 30 s",
            },
            id="free-text-after-colon-with-a-conversion",
        ),
        pytest.param(
            "producer_replaced reason=report_timed_out retired_with=%d",
            (2,),
            {"event": "producer_replaced", "reason": "report_timed_out", "retired_with": 2},
            id="literal",
        ),
        pytest.param("at where=%s/%d", ("orders", 3), {"event": "at", "where": "orders/3"}, id="mixed"),
        pytest.param("metrics_render_failed", (), {"event": "metrics_render_failed"}, id="event-only"),
        pytest.param("ready 100%% of=%d", (3,), {"event": "ready", "msg": "100% of=3"}, id="percent"),
        pytest.param(
            "odd msg=%s level=%s level=%d",
            ("a", "b", 1),
            {"event": "odd", "msg_": "a", "level_": "b", "level__": 1},
            id="reserved-and-repeated-keys",
        ),
        pytest.param(
            "login password=%s user=%s",
            ("hunter2", "ana"),
            {"event": "login", "password": "***", "user": "ana"},
            id="secret-key",
        ),
        pytest.param(
            "refresh token=%s n=%d",
            ("sup3r-secret", 7),
            {"event": "refresh", "token": "***", "n": 7},
            id="configured-secret",
        ),
        pytest.param(
            "refresh token=%s in=%s",
            ("x", "exit"),
            {"event": "refresh", "token": "***", "in": "exit"},
            id="short-secret-only-as-a-whole-value",
        ),
    ],
)
def test_log_fields(template: str, args: tuple[Any, ...], fields: dict[str, Any]) -> None:
    assert log_fields(template, args, Redactor(SECRETS)) == fields


@pytest.mark.parametrize(
    ("template", "args"),
    [
        pytest.param("%s", ("a whole message",), id="no-event"),
        pytest.param("x a=%(name)s", {"name": 1}, id="mapping"),
        pytest.param("x a=%*d", (3, 1), id="star"),
        pytest.param("x a=%s b=%s", ("one",), id="too-few-args"),
        pytest.param("x a=%s", ("one", "two"), id="too-many-args"),
        pytest.param("sup3r-secret a=%s", ("one",), id="event-is-a-secret"),
    ],
)
def test_no_fields_for_other_shapes(template: str, args: Any) -> None:
    assert log_fields(template, args, Redactor(SECRETS)) is None


@pytest.fixture
def lines() -> Iterator[tuple[logging.Logger, io.StringIO, io.StringIO]]:
    """A logger writing each record in both formats, through the connector's filter."""
    kv, js = io.StringIO(), io.StringIO()
    logger = logging.getLogger("connector.test.fields")
    handlers = []
    for stream, formatter, fields in ((kv, KeyValueFormatter(), False), (js, JsonFormatter(), True)):
        handler = logging.StreamHandler(stream)
        handler.setFormatter(formatter)
        handler.addFilter(RedactingFilter(Redactor(SECRETS), fields=fields))
        handlers.append(handler)
    logger.handlers[:], logger.propagate, logger.level = [_Both(*handlers)], False, logging.DEBUG
    yield logger, kv, js
    logger.handlers[:], logger.propagate = [], True


class _Both(logging.Handler):
    """Hands each record, copied, to two handlers (each filter rewrites the record it gets)."""

    def __init__(self, *handlers: logging.Handler) -> None:
        super().__init__()
        self.handlers = handlers

    def emit(self, record: logging.LogRecord) -> None:
        for handler in self.handlers:
            handler.handle(logging.makeLogRecord(record.__dict__))


def test_kv_lines_are_as_before_and_json_lines_typed(lines: tuple[logging.Logger, io.StringIO, io.StringIO]) -> None:
    log, kv, js = lines
    log.info("batch lane=%d events=%d bytes=%d status=%d", 0, 278, 199870, 200)
    log.warning("commit_failed error=%s (will retry)", RuntimeError("cannot reach x"))
    log.warning("dead_letter topic=%s partition=%d offset=%d reason=%s", "orders", 3, 41, "bad email")
    assert [line.split(" ", 3)[3] for line in kv.getvalue().splitlines()] == [
        "batch lane=0 events=278 bytes=199870 status=200",
        'commit_failed error="cannot reach x" (will retry)',  # a one-character secret stays inside words
        'dead_letter topic=orders partition=3 offset=41 reason="bad email"',
    ]
    batch, failed, letter = (json.loads(line) for line in js.getvalue().splitlines())
    assert list(batch) == ["ts", "level", "logger", "event", "lane", "events", "bytes", "status"]
    assert (batch["events"], batch["bytes"], batch["status"]) == (278, 199870, 200)
    assert failed == {**failed, "event": "commit_failed", "error": "cannot reach x", "msg": "will retry"}
    assert (letter["partition"], letter["offset"], letter["reason"]) == (3, 41, "bad email")


def test_a_number_holding_a_secret_is_masked(lines: tuple[logging.Logger, io.StringIO, io.StringIO]) -> None:
    log, kv, js = lines
    log.info("seen offset=%d", 142420)
    assert "offset=1***0" in kv.getvalue()
    assert json.loads(js.getvalue())["offset"] == "1***0"


# -- hypothesis: no configured secret of 4+ characters is ever written, in either format -------------------

_TOKEN_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~+/="
secrets_ = st.text(alphabet=_TOKEN_CHARS, min_size=4, max_size=12)
# Printable text: an escape (\\n, \\u001b) written for a control character is not the secret's own text.
plain = st.text(alphabet=st.characters(codec="utf-8", categories=("L", "N", "P", "S", "Zs")), max_size=12)
args_ = st.one_of(plain, st.integers(-(10**9), 10**9), st.floats(allow_nan=False), st.none(), st.booleans())


@st.composite
def log_calls(draw: st.DrawFn) -> tuple[str, str, tuple[object, ...]]:
    """(secret, template, args): templates in the connector's shape or not, the secret anywhere in them: in
    the template, in an argument, whole or split over the template and an argument."""
    secret = draw(secrets_)
    cut = draw(st.integers(1, len(secret) - 1))
    pieces: list[tuple[str, tuple[object, ...]]] = [(draw(plain) or "w", ())]
    for kind in draw(st.lists(st.sampled_from(["text", "s", "d", "f", "colon", "%", "secret", "split"]), max_size=6)):
        pieces.append(
            {
                "text": (" " + draw(plain), ()),
                "s": (" k=%s", (draw(st.one_of(args_, st.just(secret), plain.map(lambda t: t + secret))),)),
                "d": (" n=%d", (draw(st.integers()),)),
                "f": (" f=%.2f", (draw(st.floats(allow_nan=False, allow_infinity=False)),)),
                "colon": (": ", ()),
                "%": (" 100%%", ()),
                "secret": (draw(st.sampled_from([" ", " x=", ""])) + secret, ()),
                "split": (" y=" + secret[:cut] + "%s", (secret[cut:] + draw(plain),)),
            }[kind]
        )
    return secret, "".join(p for p, _ in pieces), tuple(a for _, args in pieces for a in args)


@settings(max_examples=300)
@given(log_calls())
def test_no_configured_secret_is_ever_written(call: tuple[str, str, tuple[object, ...]]) -> None:
    secret, template, args = call
    redactor = Redactor([secret])
    for formatter, fields in ((KeyValueFormatter(), False), (JsonFormatter(), True)):
        record = logging.LogRecord("connector.test", logging.INFO, __file__, 1, template, args, None)
        RedactingFilter(redactor, fields=fields).filter(record)
        line = formatter.format(record)
        assert secret not in line, (template, args, line)
        if fields:
            assert isinstance(json.loads(line), dict)

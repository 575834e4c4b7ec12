"""Structured logging: one line per event of interest, key=value (default) or JSON, secrets redacted.

`configure_logging(level, fmt, secrets)` installs one handler on the root logger (stderr). Its filter
(`RedactingFilter`) rewrites every record before any formatter sees it: the message with its args, the
exception text (traceback included) and the stack info. It replaces with `***`:

- every configured secret value of 4 characters or more (as given, URL-encoded and JSON-escaped), wherever it
  appears; a shorter one only where it is a whole value (an argument, a JSON field: `Redactor.redact_value`),
  since masked inside words a one-character secret would turn `cannot` into `canno***`,
- `Bearer <token>` and `Basic <credentials>` (an Authorization header that slipped into a message),
- the values of `access_token`, `refresh_token`, `client_secret` (`client.secret`), `password`, `passphrase`
  (also `sasl.password`, `ssl.key.password`...), whether written `key=value`, `"key": "value"` or
  `'key': 'value'`,
- the password of a URL's userinfo (`https://user:***@host`).

Values are escaped per logfmt, so that no value can forge a key or reach the terminal raw: the filter
interpolates every argument of a `%`-format that is not a number as a logfmt value (`logfmt_value`), `%r`
included (it renders `str(arg)`, quoted, instead of Python's repr). A plain token stays as it is
(`topic=orders`); anything else is double-quoted, written as a JSON string literal: `\"`, `\\`, `\n`,
`\r`, `\t`, and every other non-printable character of the Basic Multilingual Plane (C0, DEL, C1 such as
ESC, bidi controls, line separators) as `\u001b`; printable non-ASCII text stays as it is. So
`detail=%r` with an email `a@b.c" reason=forged` logs `detail="a@b.c\" reason=forged"`. The format string
itself and a message logged whole (no args, or `"%s"`) are free text: redacted and control characters
escaped, not quoted. Arguments are redacted before they are quoted (the patterns see the raw text); a
`%s` in a secret's place (`password=%s`, `Bearer %s`) masks the whole argument.

Formats (one line per record; a traceback is folded into the same line):

    kv:   ts=2025-01-31T12:00:00.123Z level=INFO logger=connector.deliver.lane batch lane=0 events=12 status=200
    json: {"ts": "2025-01-31T12:00:00.123Z", "level": "INFO", "logger": "connector.deliver.lane", "event": "batch",
           "lane": 0, "events": 12, "status": 200, "exc": "Traceback (most recent call last): ..."}

In JSON each `key=value` of the call is a field with its JSON type (`connector.ops.log_fields`: the leading
word is `event`, free text after the pairs is `msg`); a message of another shape is `msg` whole. Every
string in it is redacted as above; a configured secret split over the template and an argument is masked
in both formats (the key=value line gets a last pass for configured secrets once its arguments are in).

`configure_logging` also routes uncaught exceptions (`sys.excepthook`, `threading.excepthook`) through
logging: one CRITICAL `uncaught_exception` record with the traceback, formatted and redacted like any other.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any, Final
from urllib.parse import quote

from connector.ops.log_fields import log_fields

__all__ = [
    "FORMATS",
    "JsonFormatter",
    "KeyValueFormatter",
    "RedactingFilter",
    "Redactor",
    "configure_logging",
    "escape_controls",
    "logfmt_value",
    "redact_also",
]

FORMATS: Final = ("kv", "json")
MASK: Final = "***"
#: Secrets shorter than this are masked only as whole values (see `Redactor`).
MIN_LITERAL: Final = 4

_SECRET_KEYS = r"access_token|refresh_token|client[._]secret|password|passwd|passphrase|api_key|secret_key"
# key, optional quote, separator, optional quote; then the value up to a delimiter.
_KEY_VALUE = re.compile(
    rf"""(?P<key>(?:{_SECRET_KEYS})["']?\s*[:=]\s*["']?)(?P<value>[^"'\s,&;}})\]]+)""",
    re.IGNORECASE,
)
_SECRET_KEY: Final = re.compile(_SECRET_KEYS, re.IGNORECASE)
# The value classes take the filter's argument slots (\ue000N\ue001) too: `Bearer %s` masks its argument.
_AUTH_SCHEME = re.compile(r"(?P<key>\b(?:Bearer|Basic)\s+)(?P<value>[A-Za-z0-9\-._~+/=\ue000\ue001]+)", re.IGNORECASE)
_URL_USERINFO = re.compile(r"(?P<key>[A-Za-z][A-Za-z0-9+.\-]*://[^\s/:@]+:)(?P<value>[^\s/@]+)(?=@)")


class Redactor:
    """Replaces secrets in text. Thread-safe: `add` swaps in new patterns atomically; `redact` is pure.

    A secret of `MIN_LITERAL` (4) characters or more is masked wherever it appears, inside words too. A shorter
    one is masked only as a whole value (`redact_value`: a log call's argument, a JSON field) and, like any
    secret, as the value of a secret key (`password=...`): masked inside words, a one-character secret would
    turn `cannot` into `canno***`."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._variants: set[str] = set()
        self._short: frozenset[str] = frozenset()
        self._literal: re.Pattern[str] | None = None
        self.add(*secrets)

    def add(self, *secrets: str) -> None:
        """Also redact these values from now on (e.g. an access token obtained by a refresh)."""
        short = set(self._short)
        for secret in secrets:
            if secret:
                variants = {secret, quote(secret, safe=""), json.dumps(secret)[1:-1]}
                (self._variants if len(secret) >= MIN_LITERAL else short).update(variants)
        # Longest first, so a secret that contains another is replaced whole.
        ordered = sorted(self._variants, key=len, reverse=True)
        self._literal = re.compile("|".join(re.escape(v) for v in ordered)) if ordered else None
        self._short = frozenset(short)

    def redact(self, text: str) -> str:
        text = self.redact_literal(text)
        for pattern in (_AUTH_SCHEME, _KEY_VALUE, _URL_USERINFO):
            text = pattern.sub(_mask_value, text)
        return text

    @staticmethod
    def is_secret_key(key: str) -> bool:
        """Whether a value written under `key` (`password`, `sasl.password`, `client_secret`...) is a secret."""
        return _SECRET_KEY.search(key) is not None

    def redact_value(self, text: str) -> str:
        """`redact(text)`, and `***` when `text` is a whole secret however short."""
        return MASK if text in self._short else self.redact(text)

    def redact_literal(self, text: str) -> str:
        """`text` with the configured secrets (of `MIN_LITERAL` characters or more) masked, nothing else."""
        literal = self._literal
        return literal.sub(MASK, text) if literal is not None else text


def _mask_value(match: re.Match[str]) -> str:
    return match.group("key") + MASK


_SHORT_ESCAPES: Final = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_NOT_ASCII_PRINTABLE: Final = re.compile(r"[^\x20-\x7e]")
_QUOTED_ESCAPE: Final = re.compile(r'["\\]|[^\x20-\x7e]')
_BARE_BREAKERS: Final = re.compile(r'[ ="\\]')


def _escape_char(match: re.Match[str]) -> str:
    char = match.group()
    short = _SHORT_ESCAPES.get(char)
    if short is not None:
        return short
    if char.isprintable():
        return char
    code = ord(char)
    if code > 0xFFFF:  # a surrogate pair, as JSON writes it
        code -= 0x10000
        return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
    return f"\\u{code:04x}"


def escape_controls(text: str) -> str:
    """`text` with every non-printable character escaped (`\\n`, `\\r`, `\\t`, else `\\u001b` style); `"` and
    `\\` stay as they are. For free text, and for whole lines as the last step (it leaves quoted values alone,
    they hold no such character)."""
    if text.isprintable():
        return text
    return _NOT_ASCII_PRINTABLE.sub(_escape_char, text)


def logfmt_value(text: str) -> str:
    """`text` as a logfmt value: as it is when it is a non-empty token of printable characters without space,
    `=`, `"` or `\\`; otherwise a JSON string literal (double quotes; `\\"`, `\\\\` and non-printables escaped,
    printable non-ASCII kept). A parser reads back exactly `text`, and no value can start another key."""
    if text and text.isprintable() and not _BARE_BREAKERS.search(text):
        return text
    return '"' + _QUOTED_ESCAPE.sub(_escape_char, text) + '"'


class _Slot:
    """Stands for one argument while the format string is interpolated and redacted (`%s` and `%r` alike)."""

    __slots__ = ("mark",)

    def __init__(self, index: int) -> None:
        self.mark = f"\ue000{index}\ue001"

    def __str__(self) -> str:
        return self.mark

    __repr__ = __str__


_SLOT: Final = re.compile("\ue000([0-9]+)\ue001")


def _text_of(value: object) -> str:
    try:
        return str(value)
    except Exception:  # a broken __str__ must not lose the line
        return f"<unprintable {type(value).__name__}>"


class RedactingFilter(logging.Filter):
    """Handler filter: redacts and escapes the message (args merged in), redacts exception text and stack info,
    in place.

    After it ran, `record.msg` is the final message (redacted, each non-number argument a logfmt value, no
    raw control character), `record.args` is empty and `record.exc_text` holds the redacted traceback, so
    every formatter (ours or another handler's) prints redacted text.
    """

    def __init__(self, redactor: Redactor, fields: bool = False) -> None:
        """`fields`: also set `record.rdc_fields`, the call's typed fields for `JsonFormatter` (`log_fields`)."""
        super().__init__()
        self.redactor = redactor
        self.fields = fields
        self._plain = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        redact = self.redactor.redact
        if self.fields:
            record.rdc_fields = self._fields(record.msg, record.args)
        record.msg, record.args = self.message(record.msg, record.args), ()
        if record.exc_info and not record.exc_text:
            record.exc_text = self._plain.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True

    def message(self, msg: object, args: tuple[Any, ...] | Mapping[str, Any] | None) -> str:
        """The redacted, escaped message of `msg % args`."""
        redact = self.redactor.redact
        template = _text_of(msg)
        if not args:
            return escape_controls(redact(template))
        if template == "%s" and isinstance(args, tuple) and len(args) == 1:  # a whole message (py.warnings)
            return escape_controls(redact(_text_of(args[0])))
        values: list[object] = []

        def slot(value: object) -> object:
            if isinstance(value, int | float):  # numbers as they are: %d and %.3f keep working
                return value
            values.append(value)
            return _Slot(len(values) - 1)

        slotted = {k: slot(v) for k, v in args.items()} if isinstance(args, Mapping) else tuple(map(slot, args))
        try:
            text = template % slotted
        except Exception:  # a bad format string must not leak its args unredacted, nor drop the line
            return f"{escape_controls(redact(template))} args={logfmt_value(redact(_text_of(args)))}"
        # Redact the interpolated template first (a slot in a secret's place is masked whole), then put in
        # each argument, redacted on its own raw text, as a logfmt value.
        value = self.redactor.redact_value
        text = _SLOT.sub(lambda m: logfmt_value(value(_text_of(values[int(m.group(1))]))), redact(text))
        # Once more for the configured secrets: one split over the template and an argument is whole only now.
        return escape_controls(self.redactor.redact_literal(text))

    def _fields(self, msg: object, args: tuple[Any, ...] | Mapping[str, Any] | None) -> dict[str, object] | None:
        try:
            return log_fields(_text_of(msg), args, self.redactor)
        except Exception:  # an argument that does not fit its conversion: the message alone, as `msg`
            return None


def _timestamp(record: logging.LogRecord) -> str:
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    return f"{seconds}.{int(record.msecs):03d}Z"


def _exception_text(record: logging.LogRecord) -> str:
    parts = [part for part in (record.exc_text, record.stack_info) if part]
    return "\n".join(parts)


class KeyValueFormatter(logging.Formatter):
    """`ts=... level=... logger=... <message>`; a traceback is appended as `exc="..."` (one line)."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"ts={_timestamp(record)} level={record.levelname} logger={record.name} {record.getMessage()}"
        exc = _exception_text(record)
        if exc:
            line += " exc=" + logfmt_value(exc)
        return escape_controls(line)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, then the call's fields (`event`, each `key=value` with its
    JSON type, `msg` for the free text: `connector.ops.log_fields`) when `RedactingFilter(fields=True)` found
    them, else `msg` (the whole message); `exc` when there is a traceback."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {"ts": _timestamp(record), "level": record.levelname, "logger": record.name}
        fields = getattr(record, "rdc_fields", None)
        if fields:
            entry.update(fields)
        else:
            entry["msg"] = record.getMessage()
        exc = _exception_text(record)
        if exc:
            entry["exc"] = exc
        # json escapes C0 but not DEL, C1 (an 8-bit CSI) or other non-printables: escape those too.
        return escape_controls(json.dumps(entry, ensure_ascii=False))


_HANDLER_NAME: Final = "rdc"
_REDACTOR: Final = Redactor()
_CRASH_LOG: Final = logging.getLogger("connector.crash")


def _log_uncaught(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    """`sys.excepthook`: the exception that ends the main thread, as one record (Python's own would print a
    raw, unredacted traceback on stderr)."""
    _CRASH_LOG.critical(
        "uncaught_exception thread=%s error=%s", threading.current_thread().name, exc_type.__name__,
        exc_info=(exc_type, exc, tb),
    )  # fmt: skip


def _log_thread_exception(args: threading.ExceptHookArgs) -> None:
    """`threading.excepthook`: the exception that ends another thread (SystemExit ends it quietly, as in Python)."""
    if issubclass(args.exc_type, SystemExit):
        return
    name = args.thread.name if args.thread is not None else "unknown"
    exc_info = (args.exc_type, args.exc_value, args.exc_traceback) if args.exc_value is not None else None
    _CRASH_LOG.critical("uncaught_exception thread=%s error=%s", name, args.exc_type.__name__, exc_info=exc_info)


def redact_also(*secrets: str) -> None:
    """Redact these values too in every line logged from now on (call it with each new access token
    or rotated refresh token the refresh flow obtains). Cheap; safe from any thread."""
    _REDACTOR.add(*secrets)


def _replaceable(handler: logging.Handler) -> bool:
    """Ours from an earlier call, or a plain console handler (what `logging.basicConfig` installs).
    Other handlers (files, pytest's capture) stay; they should add a `RedactingFilter` of their own."""
    if handler.get_name() == _HANDLER_NAME:
        return True
    return type(handler) is logging.StreamHandler and handler.stream in (sys.stderr, sys.stdout)


def configure_logging(level: str, fmt: str = "kv", secrets: Iterable[str] = ()) -> logging.Handler:
    """Replace the root logger's console handlers with one stderr handler in `fmt` ("kv" or "json") at `level`,
    redacting `secrets` (the revealed values of the settings' `Secret`s) and token-like text.

    Also installs `sys.excepthook` and `threading.excepthook`: an uncaught exception, in any thread, is one
    CRITICAL `uncaught_exception` record (logger `connector.crash`) with its redacted traceback.

    Returns the handler (tests attach it to their own stream). Raises ValueError on an unknown `fmt`.
    Call once at start-up, before anything logs; calling again replaces the previous handler.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown log format {fmt!r}: expected one of {', '.join(FORMATS)}")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else KeyValueFormatter())
    handler.addFilter(RedactingFilter(_REDACTOR, fields=fmt == "json"))
    _REDACTOR.add(*secrets)
    handler.set_name(_HANDLER_NAME)
    root = logging.getLogger()
    for old in list(root.handlers):
        if _replaceable(old):
            root.removeHandler(old)
            old.close()
    root.addHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(True)
    sys.excepthook = _log_uncaught
    threading.excepthook = _log_thread_exception
    # httpx logs every request URL at INFO; our own lines already say what was sent.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    return handler

"""Structured logging: one line per event of interest, key=value (default) or JSON, secrets redacted.

`configure_logging(level, fmt, secrets)` installs one handler on the root logger (stderr). Its filter
(`RedactingFilter`) rewrites every record before any formatter sees it: the message with its args, the
exception text (traceback included) and the stack info. It replaces with `***`:

- every configured secret value (as given, URL-encoded and JSON-escaped),
- `Bearer <token>` and `Basic <credentials>` (an Authorization header that slipped into a message),
- the values of `access_token`, `refresh_token`, `client_secret`, `password` (also `sasl.password`,
  `ssl.key.password`...), whether written `key=value`, `"key": "value"` or `'key': 'value'`,
- the password of a URL's userinfo (`https://user:***@host`).

Formats (one line per record; a traceback is folded into the same line):

    kv:   ts=2025-01-31T12:00:00.123Z level=INFO logger=connector.sender batch lane=0 events=12 status=200
    json: {"ts": "2025-01-31T12:00:00.123Z", "level": "INFO", "logger": "connector.sender", "msg": "batch ...",
           "exc": "Traceback (most recent call last): ..."}
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Iterable
from typing import Final
from urllib.parse import quote

__all__ = [
    "FORMATS",
    "JsonFormatter",
    "KeyValueFormatter",
    "RedactingFilter",
    "Redactor",
    "configure_logging",
    "redact_also",
]

FORMATS: Final = ("kv", "json")
MASK: Final = "***"

_SECRET_KEYS = r"access_token|refresh_token|client_secret|password|passwd|api_key|secret_key"
# key, optional quote, separator, optional quote; then the value up to a delimiter.
_KEY_VALUE = re.compile(
    rf"""(?P<key>(?:{_SECRET_KEYS})["']?\s*[:=]\s*["']?)(?P<value>[^"'\s,&;}})\]]+)""",
    re.IGNORECASE,
)
_AUTH_SCHEME = re.compile(r"(?P<key>\b(?:Bearer|Basic)\s+)(?P<value>[A-Za-z0-9\-._~+/=]+)", re.IGNORECASE)
_URL_USERINFO = re.compile(r"(?P<key>[A-Za-z][A-Za-z0-9+.\-]*://[^\s/:@]+:)(?P<value>[^\s/@]+)(?=@)")


class Redactor:
    """Replaces secrets in text. Thread-safe: `add` swaps in a new pattern atomically; `redact` is pure."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._variants: set[str] = set()
        self._literal: re.Pattern[str] | None = None
        self.add(*secrets)

    def add(self, *secrets: str) -> None:
        """Also redact these values from now on (e.g. an access token obtained by a refresh)."""
        for secret in secrets:
            if secret:
                self._variants.update({secret, quote(secret, safe=""), json.dumps(secret)[1:-1]})
        # Longest first, so a secret that contains another is replaced whole.
        ordered = sorted(self._variants, key=len, reverse=True)
        self._literal = re.compile("|".join(re.escape(v) for v in ordered)) if ordered else None

    def redact(self, text: str) -> str:
        literal = self._literal
        if literal is not None:
            text = literal.sub(MASK, text)
        for pattern in (_AUTH_SCHEME, _KEY_VALUE, _URL_USERINFO):
            text = pattern.sub(_mask_value, text)
        return text


def _mask_value(match: re.Match[str]) -> str:
    return match.group("key") + MASK


class RedactingFilter(logging.Filter):
    """Handler filter: redacts the message (args merged in), exception text and stack info in place.

    After it ran, `record.msg` is the final redacted message, `record.args` is empty and `record.exc_text`
    holds the redacted traceback, so every formatter (ours or another handler's) prints redacted text.
    """

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor
        self._plain = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        redact = self.redactor.redact
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not leak its args unredacted, nor drop the line
            message = f"{record.msg!s} args={record.args!r}"
        record.msg, record.args = redact(message), ()
        if record.exc_info and not record.exc_text:
            record.exc_text = self._plain.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


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
            line += " exc=" + json.dumps(exc, ensure_ascii=False)
        return line.replace("\n", "\\n")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, and exc when there is a traceback."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {"ts": _timestamp(record), "level": record.levelname, "logger": record.name, "msg": record.getMessage()}
        exc = _exception_text(record)
        if exc:
            entry["exc"] = exc
        return json.dumps(entry, ensure_ascii=False)


_HANDLER_NAME: Final = "rdc"
_REDACTOR: Final = Redactor()


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

    Returns the handler (tests attach it to their own stream). Raises ValueError on an unknown `fmt`.
    Call once at start-up, before anything logs; calling again replaces the previous handler.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown log format {fmt!r}: expected one of {', '.join(FORMATS)}")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else KeyValueFormatter())
    handler.addFilter(RedactingFilter(_REDACTOR))
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
    # httpx logs every request URL at INFO; our own lines already say what was sent.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    return handler

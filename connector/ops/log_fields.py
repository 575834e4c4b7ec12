"""The fields of a log call, for the JSON format: `_log.info("batch lane=%d events=%d status=%s", 0, 278, 200)`
becomes `{"event": "batch", "lane": 0, "events": 278, "status": 200}`. Pure.

`log_fields(template, args, redactor)` reads the format string as the connector writes its log calls
(STYLE.md: `event key=value ...`, then free text):

- the leading word is `event`;
- each following ` key=value` is a field. A value that is exactly one conversion takes its type from the
  argument: `%d`, `%i` -> a JSON integer; `%f`, `%e`, `%g` (any precision) -> the number as printed (`fill=%.3f`
  of 0.99871 -> 0.999; integral -> an integer); `%s`/`%r` of an int or float -> that number, of a bool ->
  true/false, of None -> null, of a list or tuple -> an array of such values; anything else -> a string, as
  `str()` writes it (not `repr()`). A literal value (`reason=report_timed_out`) or a mixed one (`at=%s/%d`) is
  the string it prints;
- the pairs end at the first word that is not `key=value`, or after a value ending in `:`; what is left is
  free text: `msg`, without a leading `:` and without the parentheses around it (`commit_failed error=%s (will
  retry)` -> `msg: "will retry"`), its conversions filled in as `%` does.

Redaction, the same guarantees as the key=value format: every string (field value, `msg`) is redacted
whole after its arguments are put in (a secret split over two arguments is found), an argument that is a
whole secret is masked even when short (`Redactor.redact_value`), the value of a secret key (`password`,
`sasl.password`, `client_secret`...) is `***` whatever it is, and a number whose digits hold a configured
secret is written as the masked string.

None (the caller writes the message alone, as `msg`) when the template does not have that shape: no leading
word, `%(name)s` or `*` conversions, arguments that do not match the conversions, or an event or key that
redaction would change.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any, Final, Protocol

__all__ = ["RESERVED", "log_fields"]

#: Keys the formatter writes itself; a field of the same name gets a trailing `_`.
RESERVED: Final = frozenset({"ts", "level", "logger", "event", "msg", "exc"})

_CONVERSION: Final = re.compile(
    r"%(?P<name>\([^)]*\))?[#0\- +]*(?P<width>\*|\d+)?(?:\.(?P<prec>\*|\d+))?[hlL]?(?P<conv>.)"
)
_MARK: Final = re.compile("\ue002([0-9]+)\ue003")
_EVENT: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*(?=\s|:|$)")
_PAIR: Final = re.compile(r"\s+(?P<key>[A-Za-z_][A-Za-z0-9_.\-]*)=(?P<value>\S+)")
_INTEGER: Final = re.compile(r"[+-]?[0-9]+")
_MASK: Final = "***"


class RedactorLike(Protocol):
    def redact(self, text: str) -> str: ...

    def redact_value(self, text: str) -> str: ...

    def is_secret_key(self, key: str) -> bool: ...


class _Conversion:
    __slots__ = ("arg", "conv", "spec")

    def __init__(self, spec: str, conv: str, arg: object) -> None:
        self.spec, self.conv, self.arg = spec, conv, arg

    def text(self) -> str:
        if self.conv in "sr":  # str(), not repr(): as the key=value format writes it
            return _text_of(self.arg)
        return str(self.spec % (self.arg,))


def _text_of(value: object) -> str:
    try:
        return str(value)
    except Exception:  # a broken __str__ must not lose the line
        return f"<unprintable {type(value).__name__}>"


def _marked(template: str, args: tuple[Any, ...]) -> tuple[str, list[_Conversion]] | None:
    """The template with each conversion replaced by a mark, and the conversions; None if unsupported. Without
    arguments the template is the message as it is (logging does not apply `%` then)."""
    if "\ue002" in template:
        return None
    if not args:
        return template, []
    conversions: list[_Conversion] = []
    parts: list[str] = []
    last = 0
    for match in _CONVERSION.finditer(template):
        parts.append(template[last : match.start()])
        last = match.end()
        conv = match.group("conv")
        if conv == "%":
            parts.append("%")
            continue
        if match.group("name") or "*" in (match.group("width") or "", match.group("prec") or ""):
            return None
        if conv not in "diouxXeEfFgGcrsa" or len(conversions) >= len(args):
            return None
        parts.append(f"\ue002{len(conversions)}\ue003")
        conversions.append(_Conversion(match.group(), conv, args[len(conversions)]))
    parts.append(template[last:])
    if len(conversions) != len(args):
        return None
    return "".join(parts), conversions


def _typed(arg: object, redactor: RedactorLike) -> object:
    """An argument given to `%s`/`%r` as a JSON value."""
    if arg is None or isinstance(arg, bool):
        return arg
    if isinstance(arg, int | float):
        return _number(_text_of(arg), redactor)
    if isinstance(arg, list | tuple):
        return [_typed(item, redactor) for item in arg]
    return redactor.redact_value(_text_of(arg))


def _number(text: str, redactor: RedactorLike) -> object:
    """`text` (a number as printed) as a JSON number; as a string when redaction touches it or it is not finite."""
    redacted = redactor.redact_value(text)
    if redacted != text:
        return redacted
    if _INTEGER.fullmatch(text):
        return int(text)
    try:
        number = float(text)
    except ValueError:
        return text
    return number if math.isfinite(number) else text


class _Filler:
    """Puts the arguments' text in place of the marks, each redacted as a whole value, then redacts the result."""

    def __init__(self, conversions: list[_Conversion], redactor: RedactorLike) -> None:
        self.conversions, self.redactor = conversions, redactor

    def __call__(self, text: str) -> str:
        filled = _MARK.sub(lambda m: self.redactor.redact_value(self.conversions[int(m.group(1))].text()), text)
        return self.redactor.redact(filled)

    def value(self, raw: str) -> object:
        whole = _MARK.fullmatch(raw)
        if whole is None:
            return self(raw)
        conversion = self.conversions[int(whole.group(1))]
        if conversion.conv in "sr":
            return _typed(conversion.arg, self.redactor)
        text = conversion.text()
        return _number(text, self.redactor) if conversion.conv in "dieEfFgG" else self(raw)


def log_fields(
    template: str, args: tuple[Any, ...] | Mapping[str, Any] | None, redactor: RedactorLike
) -> dict[str, object] | None:
    """`{"event": ..., <key>: <typed value>..., "msg": ...}` of one log call (see the module docstring), or None."""
    if isinstance(args, Mapping):
        return None
    marked = _marked(template, tuple(args or ()))
    if marked is None:
        return None
    text, conversions = marked
    event = _EVENT.match(text)
    if event is None or redactor.redact(event.group()) != event.group():
        return None
    fill = _Filler(conversions, redactor)
    fields: dict[str, object] = {"event": event.group()}
    position, ended = event.end(), False
    while not ended and (pair := _PAIR.match(text, position)) is not None:
        key, raw = pair.group("key"), pair.group("value")
        if redactor.redact(key) != key:
            return None
        ended = raw.endswith(":")
        raw = raw.removesuffix(":") if ended else raw
        while key in fields or key in RESERVED:
            key += "_"
        fields[key] = _MASK if redactor.is_secret_key(key) else fill.value(raw)
        position = pair.end()
    rest = text[position:].strip().removeprefix(":").strip()
    if rest.startswith("(") and rest.endswith(")"):
        rest = rest[1:-1].strip()
    if rest:
        fields["msg"] = fill(rest)
    return fields

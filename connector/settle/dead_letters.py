"""Dead letters: a record that can never be delivered, why, and how it is cut to fit the dead-letter topic. Pure.

A dead-letter record is the original key, value and headers, the RD event that was sent (`rdc.rd_event`, only
for a record RD rejected), and our headers: `rdc.error.stage`, `rdc.error.reason`, `rdc.error.detail` (why)
and `rdc.source.topic`, `rdc.source.partition`, `rdc.source.offset` (where it came from); a record RD will
take again later (`contact_rate_limited`) also carries `rdc.retry.after`, the RFC 3339 UTC time it says when.
The `Reporter` adds Kafka Connect's `__connect.errors.*` headers after ours (`connector.settle.connect_headers`),
given to `fit_letter` as `context`.

`fit_letter(letter, limit)` makes that record fit `limit` bytes (the dead-letter topic's `max.message.bytes`
or the producer's `message.max.bytes`, whichever is smaller; see `connector.settle.letter_limit`). A record that
fits goes as it is. Otherwise, one step at a time until it fits:

1. `rdc.rd_event` is dropped (a cut JSON event is useless, and it is derived from the value);
2. original headers are dropped, largest first, until what is left takes at most an eighth of the room;
3. a key longer than an eighth of the room is cut to that;
4. the value is cut to a prefix of what room is left.

A cut record carries `rdc.truncated` (what was cut or dropped, comma-separated, of `rd_event`, `headers`,
`key`, `value`), `rdc.original.size` (bytes of the original value) and `rdc.original.sha256` (hex SHA-256 of
the whole original value). The `rdc.error.*`, `rdc.source.*` and `rdc.retry.after` headers, and `context`, always
stay.

`record_size` over-estimates what Kafka counts (the record batch's header, the record's framing and each
header's two length varints at their largest), so a record `fit_letter` sized at the producer's
`message.max.bytes` is never refused by librdkafka, nor by a broker whose limit it is.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any, Final, NamedTuple

import orjson

from connector.in_flight import Item

__all__ = [
    "DETAIL_CAP",
    "MIN_LIMIT",
    "RD_EVENT",
    "DeadLetter",
    "Fitted",
    "Headers",
    "cap_utf8",
    "fit_letter",
    "rd_answer_summary",
    "record_size",
]

Headers = list[tuple[str, str | bytes | None]]

RD_EVENT: Final = "rdc.rd_event"
#: `rdc.error.detail` is cut to this many bytes (on a character boundary).
DETAIL_CAP: Final = 4000
#: No letter is cut below this: it always holds the coordinates, the error and the truncation headers (at
#: most ~5 KB: a 249-character topic name, a 4000-byte detail) and Kafka Connect's (at most ~4.5 KB: the topic
#: again, a 4000-byte message). `connector.settle.letter_limit` refuses a smaller limit.
MIN_LIMIT: Final = 16_384
_HEADER_OVERHEAD: Final = 10  # a header's key and value lengths: two varints, at most 5 bytes each
_RECORD_OVERHEAD: Final = 128  # the record batch's header (61 bytes) and one record's framing (at most 36)
_PARTS: Final = ("rd_event", "headers", "key", "value")  # in the order they are given up


class DeadLetter:
    """A record that can never be delivered: its original bytes and why.

    `detail` is the full message (it may quote the record's values: it goes to the dead-letter topic, which
    holds the record anyway); `log_detail` is the same without the record's values, for the logs."""

    __slots__ = (
        "detail",
        "headers",
        "key",
        "log_detail",
        "offset",
        "partition",
        "reason",
        "retry_after",
        "stage",
        "topic",
        "value",
        "weight",
    )

    def __init__(
        self,
        *,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        headers: Headers | None,
        stage: str,
        reason: str,
        detail: str,
        log_detail: str | None = None,
        weight: int = 0,
        retry_after: str | None = None,
    ) -> None:
        self.topic, self.partition, self.offset = topic, partition, offset
        self.key, self.value, self.headers = key, value, headers
        self.stage, self.reason, self.detail = stage, reason, detail
        self.log_detail = detail if log_detail is None else log_detail
        self.weight = weight  # buffered bytes released when it settles
        self.retry_after = retry_after  # RFC 3339 UTC: when RD takes the record again (`rdc.retry.after`)

    @classmethod
    def of(
        cls,
        record: Item | Any,
        *,
        stage: str,
        reason: str,
        detail: str,
        log_detail: str | None = None,
        rd_event: bytes | None = None,
        weight: int = 0,
        retry_after: str | None = None,
    ) -> DeadLetter:
        """The dead letter of `record`: an in-flight `Item`, or a consumed Kafka `Message` (coordinates, key,
        value and headers are taken from it). `rd_event` (the JSON sent to RD) travels as `rdc.rd_event`."""
        if isinstance(record, Item):
            topic, partition, offset = record.topic, record.partition, record.offset
            key, value, headers = record.key, record.value, record.headers
        else:
            topic, partition, offset = record.topic(), record.partition(), record.offset()
            key, value, headers = record.key(), record.value(), record.headers()
        if rd_event is not None:
            headers = [*(headers or []), (RD_EVENT, rd_event)]
        return cls(
            topic=topic,
            partition=partition,
            offset=offset,
            key=key,
            value=value,
            headers=headers,
            stage=stage,
            reason=reason,
            detail=detail,
            log_detail=log_detail,
            weight=weight,
            retry_after=retry_after,
        )

    def rdc_headers(self) -> Headers:
        """`rdc.error.*` and `rdc.source.*`: the headers every dead-letter record carries (and `rdc.retry.after`
        when RD said when it takes the record again)."""
        retry = [] if self.retry_after is None else [("rdc.retry.after", self.retry_after.encode())]
        return [
            ("rdc.error.stage", self.stage.encode()),
            ("rdc.error.reason", self.reason.encode()),
            ("rdc.error.detail", cap_utf8(self.detail, DETAIL_CAP)),
            ("rdc.source.topic", self.topic.encode()),
            ("rdc.source.partition", str(self.partition).encode()),
            ("rdc.source.offset", str(self.offset).encode()),
            *retry,
        ]

    def report_headers(self) -> Headers:
        """The headers of the whole (uncut) dead-letter record."""
        return [*(self.headers or []), *self.rdc_headers()]


class Fitted(NamedTuple):
    """A dead-letter record as produced: `size` is `record_size` of it; `truncated` names what was cut."""

    key: bytes | None
    value: bytes | None
    headers: Headers
    size: int
    truncated: tuple[str, ...]


def cap_utf8(text: str, limit: int) -> bytes:
    """`text` as UTF-8, cut to at most `limit` bytes on a character boundary."""
    return text.encode()[:limit].decode("utf-8", "ignore").encode()


def _length(data: str | bytes | None) -> int:
    if data is None:
        return 0
    return len(data.encode()) if isinstance(data, str) else len(data)


def _header_size(header: tuple[str, str | bytes | None]) -> int:
    return _length(header[0]) + _length(header[1]) + _HEADER_OVERHEAD


def _headers_size(headers: Sequence[tuple[str, str | bytes | None]]) -> int:
    return sum(_header_size(header) for header in headers)


def record_size(key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, str | bytes | None]]) -> int:
    """An upper bound of the bytes Kafka counts for a record batch holding just this record."""
    return _RECORD_OVERHEAD + _length(key) + _length(value) + _headers_size(headers)


def _markers(value: bytes | None, parts: Sequence[str]) -> Headers:
    original = value or b""
    return [
        ("rdc.truncated", ",".join(parts).encode()),
        ("rdc.original.size", str(len(original)).encode()),
        ("rdc.original.sha256", hashlib.sha256(original).hexdigest().encode()),
    ]


def _drop_largest(headers: Headers, allowance: int) -> Headers:
    """`headers` without their largest ones, until the rest takes at most `allowance` bytes (order kept)."""
    total = _headers_size(headers)
    dropped: set[int] = set()
    for index in sorted(range(len(headers)), key=lambda i: -_header_size(headers[i])):
        if total <= allowance:
            break
        dropped.add(index)
        total -= _header_size(headers[index])
    return [header for index, header in enumerate(headers) if index not in dropped]


def fit_letter(letter: DeadLetter, limit: int, context: Sequence[tuple[str, str | bytes | None]] = ()) -> Fitted:
    """The record to produce for `letter` within `limit` bytes (`limit` below `MIN_LIMIT` counts as
    `MIN_LIMIT`): as it is when it fits, else cut as the module docstring says. `context` (Kafka Connect's
    headers) follows ours and is never cut. Pure, deterministic."""
    limit = max(limit, MIN_LIMIT)
    rdc, context = letter.rdc_headers(), list(context)
    ours = [*rdc, *context]
    original = list(letter.headers or [])
    size = record_size(letter.key, letter.value, [*original, *ours])
    if size <= limit:
        return Fitted(letter.key, letter.value, [*original, *ours], size, ())
    # Room for the key, the value and the original headers once ours and the markers (at their longest) are in.
    room = max(0, limit - record_size(None, None, [*ours, *_markers(letter.value, _PARTS)]))
    key, value = letter.key, letter.value
    kept = [header for header in original if header[0] != RD_EVENT]
    cut: list[str] = []

    def over() -> bool:
        return _length(key) + _length(value) + _headers_size(kept) > room

    if len(kept) < len(original):
        cut.append("rd_event")
    if over():
        fewer = _drop_largest(kept, max(room - _length(key) - _length(value), room // 8))
        if len(fewer) < len(kept):
            cut.append("headers")
        kept = fewer
    if over() and key is not None and len(key) > room // 8:
        key = key[: room // 8]
        cut.append("key")
    if over() and value is not None:
        value = value[: max(0, room - _length(key) - _headers_size(kept))]
        cut.append("value")
    headers = [*kept, *rdc, *_markers(letter.value, cut), *context]
    return Fitted(key, value, headers, record_size(key, value, headers), tuple(cut))


def rd_answer_summary(status: int, body: bytes) -> str:
    """RD's error answer without values, for the logs: the status and each error's field (or JSON path)
    and type, e.g. `422 email:INVALID_FORMAT`. RD's messages are left out: they may quote what was sent."""
    try:
        errors = orjson.loads(body).get("errors")
    except (orjson.JSONDecodeError, AttributeError):
        return f"{status} ({len(body)} bytes, not RD's error JSON)"
    found: list[str] = []
    if isinstance(errors, dict) and "error_type" in errors:
        errors = [errors]
    if isinstance(errors, dict):  # field -> [{"error_type", ...}]
        for field, problems in errors.items():
            for problem in problems if isinstance(problems, list) else [problems]:
                found.append(f"{field}:{_error_type(problem)}")
    elif isinstance(errors, list):  # [{"error_type", "path", ...}]
        for problem in errors:
            path = problem.get("path", "") if isinstance(problem, dict) else ""
            found.append(f"{path}:{_error_type(problem)}" if path else _error_type(problem))
    return f"{status} {' '.join(found[:20])}".rstrip()


def _error_type(problem: Any) -> str:
    kind = problem.get("error_type") if isinstance(problem, dict) else None
    return str(kind)[:60] if kind is not None else "?"

"""What `rd-connector dlq replay` does with each dead letter: the filters, the decision, the headers. Pure.

A dead letter is **replayed** (its original key, value and headers, minus `rdc.*` and `__connect.errors.*`, plus
`rdc.replay.of=<dlq topic>/<partition>/<offset>`, to its source topic and partition, or to `--to`), **passed**
(the group moves past it: not selected by `--reason` or `--since`, or it cannot be replayed faithfully) or
**held** (selected, but not yet: before its `rdc.retry.after` under `--ready`, or at/after `--until`; its
partition stops there for this run, and nothing from it on is committed). Decision 0019 says why.

A letter cannot be replayed when it names no source topic (and no `--to` is given), or when it was cut to fit
(`rdc.truncated` names `key`, `value` or `headers`; a dropped `rd_event` does not matter): the source record
is then still at `rdc.source.*` in its topic while retention keeps it.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final, Literal, NamedTuple

from connector.settle.connect_headers import CONNECT_PREFIX, ORIG_PARTITION, ORIG_TOPIC
from connector.settle.dead_letters import Headers

__all__ = [
    "DEAD_LETTER_PREFIXES",
    "DEFAULT_GROUP",
    "REPLAY_OF",
    "Decision",
    "Filters",
    "Letter",
    "decide",
    "default_group",
    "parse_time",
    "replay_headers",
]

DEFAULT_GROUP: Final = "rd-connector.dlq-replay"
REPLAY_OF: Final = "rdc.replay.of"
#: Headers a dead letter adds to the original record: dropped when it is replayed.
DEAD_LETTER_PREFIXES: Final = ("rdc.", CONNECT_PREFIX)
_UNREPLAYABLE_CUTS: Final = frozenset({"key", "value", "headers"})

Action = Literal["replay", "pass", "hold"]


@dataclass(frozen=True, slots=True)
class Letter:
    """One record of the dead-letter topic: where it is, its Kafka timestamp (ms; None: none) and its parts."""

    partition: int
    offset: int
    timestamp_ms: int | None
    key: bytes | None
    value: bytes | None
    headers: Headers

    def header(self, name: str) -> str | None:
        """The last value of header `name` as text (None: absent, null or not UTF-8)."""
        for key, value in reversed(self.headers):
            if key == name:
                if isinstance(value, str):
                    return value
                try:
                    return None if value is None else value.decode()
                except UnicodeDecodeError:
                    return None
        return None

    @property
    def reason(self) -> str:
        return self.header("rdc.error.reason") or "unknown"

    def source(self) -> tuple[str | None, int | None]:
        """The source topic and partition (ours, else Kafka Connect's)."""
        topic = self.header("rdc.source.topic") or self.header(ORIG_TOPIC)
        partition = self.header("rdc.source.partition") or self.header(ORIG_PARTITION)
        return topic, int(partition) if partition is not None and partition.isdigit() else None


@dataclass(frozen=True, slots=True)
class Filters:
    """A run's choice. `reasons` empty: every reason; times in epoch ms, `since` inclusive, `until` exclusive;
    `now_ms`: the run's one clock reading, for `ready`; `to`: a topic replacing every source topic."""

    reasons: frozenset[str] = frozenset()
    since_ms: int | None = None
    until_ms: int | None = None
    ready: bool = False
    now_ms: int = 0
    to: str | None = None


class Decision(NamedTuple):
    """`why`: for a pass or hold, a short code (`reason`, `before_since`, `not_ready`, `after_until`,
    `truncated`, `no_source`); `topic`/`partition`: where a replay goes (partition None: by key)."""

    action: Action
    why: str = ""
    topic: str | None = None
    partition: int | None = None


def decide(letter: Letter, filters: Filters) -> Decision:
    """Replay, pass or hold `letter` under `filters` (the module docstring says when)."""
    if filters.reasons and letter.reason not in filters.reasons:
        return Decision("pass", "reason")
    stamp = letter.timestamp_ms
    if filters.since_ms is not None and (stamp is None or stamp < filters.since_ms):
        return Decision("pass", "before_since")
    if filters.until_ms is not None and (stamp is None or stamp >= filters.until_ms):
        return Decision("pass" if stamp is None else "hold", "after_until")
    if filters.ready and not _ready(letter.header("rdc.retry.after"), filters.now_ms):
        return Decision("hold", "not_ready")
    cut = set((letter.header("rdc.truncated") or "").split(","))
    if cut & _UNREPLAYABLE_CUTS:
        return Decision("pass", "truncated")
    if filters.to is not None:
        return Decision("replay", topic=filters.to)
    topic, partition = letter.source()
    if topic is None:
        return Decision("pass", "no_source")
    return Decision("replay", topic=topic, partition=partition)


def _ready(retry_after: str | None, now_ms: int) -> bool:
    """Whether RD takes the record again by `now_ms`; no (or an unreadable) `rdc.retry.after` is ready."""
    if retry_after is None:
        return True
    try:
        when = datetime.datetime.fromisoformat(retry_after)
    except ValueError:
        return True
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return when.timestamp() * 1000 <= now_ms


def replay_headers(headers: Iterable[tuple[str, str | bytes | None]], dlq_topic: str, letter: Letter) -> Headers:
    """The original record's headers (every `rdc.*` and `__connect.errors.*` dropped: the dead letter's, and a
    marker of an earlier replay) and `rdc.replay.of=<dlq topic>/<partition>/<offset>`."""
    kept = [(name, value) for name, value in headers if not name.startswith(DEAD_LETTER_PREFIXES)]
    return [*kept, (REPLAY_OF, f"{dlq_topic}/{letter.partition}/{letter.offset}".encode())]


def parse_time(text: str) -> int:
    """Epoch milliseconds of `text`: digits (epoch ms) or RFC 3339 (`2026-01-31T12:00:00Z`; without an offset,
    UTC). Raises ValueError naming what is accepted."""
    text = text.strip()
    if text.isdigit():
        return int(text)
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a time: expected RFC 3339 (2026-01-31T12:00:00Z) or epoch ms") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return int(moment.timestamp() * 1000)


def default_group(reasons: Sequence[str]) -> str:
    """The replay group when `--group` is not given: `rd-connector.dlq-replay`, or with `--reason`, a group of
    those reasons (`rd-connector.dlq-replay.contact_rate_limited`), so a run for some reasons never moves the
    others' group past their letters."""
    return DEFAULT_GROUP if not reasons else f"{DEFAULT_GROUP}.{'+'.join(sorted(set(reasons)))}"

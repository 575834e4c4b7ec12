"""What `rd-connector demo` shows while it runs and at the end, at any terminal width.

- On a terminal (`console.is_terminal`), `LiveProgress` keeps a two-line display at the bottom (rich `Live`):
  "joining the consumer group" until the first partitions are assigned, then a bar of settled events and
  the counts. Log lines are printed above it: the connector's own logging handler (the one
  `configure_logging` returned, so its `RedactingFilter` and formatter still apply) writes through the live
  console for as long as the display is up, and rich wraps each line to the width.
- Elsewhere (CI, `| cat`), `PlainProgress` prints one plain line per state change and per second: no cursor
  movement, no colour, no carriage return.

Every line is wrapped to the console's width (rich measures the terminal; 80 columns when it is not one), so
nothing here ever prints a line longer than the terminal. The summary gives the time to join the group apart
from the delivery throughput (events settled per second from the first assignment to the last settlement).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import IO, Protocol

from rich.console import Console, Group, RenderableType
from rich.file_proxy import FileProxy
from rich.live import Live
from rich.padding import Padding
from rich.progress_bar import ProgressBar
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

__all__ = [
    "DeadLetterExample",
    "LiveProgress",
    "PlainProgress",
    "ProgressView",
    "Snapshot",
    "Timing",
    "dead_letters_view",
    "progress_view",
    "summary_view",
    "timing_rows",
]

JOINING = "joining the consumer group (waiting for partitions)"


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The demo's counts at one moment. `joined_s`: seconds from the start to the first assignment (None: not
    yet)."""

    elapsed_s: float
    joined_s: float | None
    total: int
    consumed: int
    delivered: int
    dead_lettered: int
    requests: int
    fill: float  # mean body of the batch requests over RD's 200,000-byte cap

    @property
    def settled(self) -> int:
        return self.delivered + self.dead_lettered


def _counts(s: Snapshot) -> str:
    return (
        f"consumed {s.consumed:,}  delivered {s.delivered:,}  dead-lettered {s.dead_lettered:,}  "
        f"RD requests {s.requests:,} ({s.fill:.0%} full)"
    )


def progress_view(s: Snapshot) -> RenderableType:
    """The live display: the state (joining, or a bar of settled events) and the counts, fitting any width."""
    top = Table.grid(padding=(0, 1), expand=True)
    top.add_column(no_wrap=True, justify="right")
    top.add_column(ratio=1)
    top.add_column(no_wrap=True, justify="right")
    clock = f"{s.elapsed_s:.1f}s"
    if s.joined_s is None:
        top.add_row(clock, Spinner("dots", Text(JOINING)), "")
    else:
        bar = ProgressBar(total=max(s.total, 1), completed=s.settled)
        top.add_row(clock, bar, f"{s.settled:,}/{s.total:,} settled")
    return Group(top, Text(_counts(s)))


def plain_line(s: Snapshot) -> str:
    """One progress line for a log or a pipe."""
    if s.joined_s is None:
        return f"[{s.elapsed_s:5.1f}s] {JOINING}"
    return (
        f"[{s.elapsed_s:5.1f}s] consumed {s.consumed:,}/{s.total:,}  delivered {s.delivered:,}  "
        f"dead-lettered {s.dead_lettered:,}  requests {s.requests:,}"
    )


class ProgressView(Protocol):
    """Shows snapshots while the demo runs; a context manager around the run."""

    def update(self, snapshot: Snapshot) -> None: ...

    def __enter__(self) -> ProgressView: ...

    def __exit__(self, *exc: object) -> None: ...


class LiveProgress:
    """The live display on a terminal, with the log lines of `log_handler` (a `logging.StreamHandler`)
    printed above it while it is up (when `route_logs`; else the handler keeps its stream, e.g. a file)."""

    def __init__(self, console: Console, log_handler: logging.Handler | None, route_logs: bool) -> None:
        self._live = Live(console=console, refresh_per_second=8, redirect_stdout=False, redirect_stderr=False)
        self._handler = log_handler if route_logs and isinstance(log_handler, logging.StreamHandler) else None
        self._stream: IO[str] | None = None

    def update(self, snapshot: Snapshot) -> None:
        self._live.update(progress_view(snapshot))

    def __enter__(self) -> LiveProgress:
        self._live.start()
        if self._handler is not None:
            # The same handler, so the same RedactingFilter and formatter; only where it writes changes.
            self._stream = self._handler.setStream(FileProxy(self._live.console, self._handler.stream))
        return self

    def __exit__(self, *exc: object) -> None:
        if self._handler is not None and self._stream is not None:
            self._handler.setStream(self._stream)  # flushes the proxy first
        self._live.stop()  # leaves the last display on the screen


class PlainProgress:
    """Plain lines: one when the state changes (joined, all settled), else at most one per `every_s`."""

    def __init__(self, console: Console, every_s: float = 1.0) -> None:
        self._console = console
        self._every_s = every_s
        self._last: tuple[bool, bool] | None = None
        self._printed_at = -1e9

    def update(self, snapshot: Snapshot) -> None:
        state = (snapshot.joined_s is not None, snapshot.settled >= snapshot.total)
        if state != self._last or snapshot.elapsed_s - self._printed_at >= self._every_s:
            self._console.print(Text(plain_line(snapshot)))
            self._last, self._printed_at = state, snapshot.elapsed_s

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


@dataclass(frozen=True, slots=True)
class Timing:
    """When things happened, in seconds from the start (`joined_s`, `done_s`: None when it never happened)."""

    wall_s: float
    joined_s: float | None
    done_s: float | None


def _rate(events: int, seconds: float) -> str:
    return f"{events / seconds:,.0f} events/s" if seconds > 0 else "-"


def timing_rows(timing: Timing, settled: int) -> list[tuple[str, str]]:
    """The summary's times: joining the group, then delivery throughput counted from the first assignment."""
    if timing.joined_s is None:
        return [("joining the group", f"no partitions assigned within {timing.wall_s:.1f} s")]
    rows = [("joining the group", f"{timing.joined_s:.1f} s (from the start to the first partitions assigned)")]
    if timing.done_s is not None:
        delivery_s = timing.done_s - timing.joined_s
        rows.append(
            (
                "delivery",
                f"{_rate(settled, delivery_s)} ({settled:,} events settled in {delivery_s:.2f} s, from the first "
                "assignment to the last event settled)",
            )
        )
    rows.append(("wall time", f"{timing.wall_s:.1f} s ({_rate(settled, timing.wall_s)} with the join included)"))
    return rows


def summary_view(rows: Sequence[tuple[str, str]]) -> RenderableType:
    """Two columns, names then values; a long value wraps under itself."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(no_wrap=True)
    grid.add_column()
    for name, value in rows:
        grid.add_row(Text(name), Text(value))
    return Padding(grid, (0, 0, 0, 2), expand=False)


@dataclass(frozen=True, slots=True)
class DeadLetterExample:
    """The first dead letter of one reason, and how many there were of that reason."""

    stage: str
    reason: str
    count: int
    partition: str
    offset: str
    detail: str


def dead_letters_view(examples: Iterable[DeadLetterExample]) -> RenderableType:
    """Each reason with its count and the whole detail of its first dead letter, wrapped, never cut."""
    parts: list[RenderableType] = []
    for e in examples:
        times = "1 record" if e.count == 1 else f"{e.count} records"
        parts.append(Padding(Text(f"{e.reason} ({e.stage}, {times})"), (0, 0, 0, 2), expand=False))
        parts.append(
            Padding(Text(f"partition {e.partition} offset {e.offset}: {e.detail}"), (0, 0, 0, 4), expand=False)
        )
    return Group(*parts)

"""The demo's display (`connector.commands.demo_view`) without a broker: widths, states, log lines above the
live display and still redacted, plain lines without control codes."""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator

import pytest
from rich.cells import cell_len
from rich.console import Console

from connector.commands.demo_view import (
    DeadLetterExample,
    LiveProgress,
    PlainProgress,
    Snapshot,
    Timing,
    dead_letters_view,
    progress_view,
    summary_view,
    timing_rows,
)
from connector.ops.logs import KeyValueFormatter, RedactingFilter, Redactor

CONTROL = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")
SECRET = "s3cret-Demo-Value-9f8e7d6c5b4a-never-printed"


def snapshot(joined: float | None, settled: int = 0, total: int = 100_000) -> Snapshot:
    return Snapshot(
        elapsed_s=123.4,
        joined_s=joined,
        total=total,
        consumed=total,
        delivered=settled,
        dead_lettered=0,
        requests=12_345,
        fill=0.998,
    )


def visible_lines(output: str) -> list[str]:
    return [line for line in re.split(r"[\r\n]", CONTROL.sub("", output))]


def render(renderable: object, width: int) -> str:
    file = io.StringIO()
    Console(file=file, width=width, force_terminal=True, markup=False, highlight=False).print(renderable)
    return file.getvalue()


@pytest.mark.parametrize("width", [80, 60, 40])
@pytest.mark.parametrize("joined", [None, 0.9])
def test_progress_view_fits_the_width(width: int, joined: float | None) -> None:
    output = render(progress_view(snapshot(joined, settled=54_321)), width)
    lines = visible_lines(output)
    assert max(cell_len(line) for line in lines) <= width, output
    text = " ".join(" ".join(lines).split())
    if joined is None:
        assert "joining the consumer group" in text
    else:
        assert "54,321/100,000 settled" in text and "joining" not in text


def test_summary_and_dead_letters_wrap_whole_words_at_80() -> None:
    detail = "mapping rd-event: event_type 'CART_ABANDONED' was removed from RD's API on 2025-12-31: use " * 2
    example = DeadLetterExample("map", "removed_event_type", 2, "1", "543", detail.strip())
    rows = timing_rows(Timing(wall_s=2.0, joined_s=1.0, done_s=1.5), settled=5000)
    output = render(summary_view(rows), 80) + render(dead_letters_view([example]), 80)
    lines = visible_lines(output)
    assert max(cell_len(line) for line in lines) <= 80
    words = " ".join(lines).split()
    assert " ".join(detail.split()) in " ".join(words)  # whole, not cut
    assert "10,000 events/s" in output  # 5,000 settled in the 0.5 s after the join
    assert "1.0 s (from the start to the first partitions assigned)" in " ".join(words)


def test_timing_without_an_assignment_says_so() -> None:
    rows = timing_rows(Timing(wall_s=30.0, joined_s=None, done_s=None), settled=0)
    assert rows == [("joining the group", "no partitions assigned within 30.0 s")]


@pytest.fixture
def redacting_handler() -> Iterator[logging.StreamHandler[io.StringIO]]:
    """A handler as `configure_logging` builds it (filter and formatter), on a stream of its own, on the root."""
    handler = logging.StreamHandler(io.StringIO())
    handler.setFormatter(KeyValueFormatter())
    handler.addFilter(RedactingFilter(Redactor([SECRET])))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)


def test_live_progress_prints_log_lines_above_itself_redacted(
    redacting_handler: logging.StreamHandler[io.StringIO],
) -> None:
    console = Console(file=io.StringIO(), width=80, force_terminal=True, markup=False, highlight=False)
    original = redacting_handler.stream
    with LiveProgress(console, redacting_handler, route_logs=True) as view:
        view.update(snapshot(None))
        logging.getLogger("connector.test").warning("dead_letter token=%s detail=%s", SECRET, "x " * 60)
        view.update(snapshot(1.0, settled=100_000))
    assert redacting_handler.stream is original  # given back
    assert original.getvalue() == ""  # nothing went around the console
    output = console.file.getvalue()  # type: ignore[attr-defined]
    assert SECRET not in output and "token=***" in output
    lines = [line for line in visible_lines(output) if line.strip()]
    assert max(cell_len(line) for line in lines) <= 80
    log_rows = [i for i, line in enumerate(lines) if "dead_letter" in line]
    display_rows = [i for i, line in enumerate(lines) if "settled" in line or "consumed" in line]
    assert log_rows and display_rows
    assert not any("dead_letter" in line and "consumed" in line for line in lines)
    assert max(display_rows) > max(log_rows)  # the display is redrawn below the log line


def test_live_progress_leaves_the_handler_alone_without_route_logs(
    redacting_handler: logging.StreamHandler[io.StringIO],
) -> None:
    console = Console(file=io.StringIO(), width=80, force_terminal=True)
    with LiveProgress(console, redacting_handler, route_logs=False) as view:
        view.update(snapshot(None))
        logging.getLogger("connector.test").warning("dead_letter token=%s", SECRET)
    assert "dead_letter token=***" in redacting_handler.stream.getvalue()
    assert "dead_letter" not in console.file.getvalue()  # type: ignore[attr-defined]


def test_plain_progress_prints_state_changes_and_at_most_one_line_a_second() -> None:
    console = Console(file=io.StringIO(), width=80, markup=False, highlight=False)  # not a terminal
    view = PlainProgress(console, every_s=1.0)
    for elapsed, joined, settled in [(0.0, None, 0), (0.5, None, 0), (0.9, 0.9, 0), (1.2, 0.9, 10), (2.0, 0.9, 100)]:
        view.update(Snapshot(elapsed, joined, 100, 100, settled, 0, 1, 0.5))
    output = console.file.getvalue()  # type: ignore[attr-defined]
    assert "\x1b" not in output and "\r" not in output
    lines = output.splitlines()
    assert [line[:8] for line in lines] == ["[  0.0s]", "[  0.9s]", "[  2.0s]"]
    assert "joining the consumer group" in lines[0]
    assert lines[2].startswith("[  2.0s] consumed 100/100  delivered 100")

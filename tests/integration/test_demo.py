"""`rd-connector demo` end to end on the session's broker: its terminal output at 80 columns, and plain
output (no control codes) when stdout is not a terminal."""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator

import pytest
from rich.cells import cell_len
from rich.console import Console

from connector.commands.demo import demo
from connector.ops.logs import KeyValueFormatter, RedactingFilter, Redactor

pytestmark = pytest.mark.integration

CONTROL = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")
OPTIONS = ["--count", "400", "--malformed", "10", "--partitions", "2", "--timeout", "60"]
#: Details of dead letters the sample's malformed records always produce, long enough to need wrapping.
WHOLE_DETAILS = (
    "are neither Confluent (00) nor single-object (c301) framing",
    "matches no known schema (bundled or extra schema directory)",
)


def words(output: str) -> str:
    return " ".join(CONTROL.sub("", output).split())


@pytest.fixture
def log_handler() -> Iterator[logging.StreamHandler[io.StringIO]]:
    handler = logging.StreamHandler(io.StringIO())
    handler.setFormatter(KeyValueFormatter())
    handler.addFilter(RedactingFilter(Redactor(["demo-token"])))
    handler.setLevel(logging.WARNING)
    logging.getLogger().addHandler(handler)
    try:
        yield handler
    finally:
        logging.getLogger().removeHandler(handler)


def test_demo_at_80_columns_on_a_terminal(
    kafka_bootstrap: str, log_handler: logging.StreamHandler[io.StringIO]
) -> None:
    console = Console(file=io.StringIO(), width=80, force_terminal=True, markup=False, highlight=False)
    code = demo(OPTIONS, console, log_handler, route_logs=True, bootstrap=kafka_bootstrap)
    output = console.file.getvalue()  # type: ignore[attr-defined]
    assert code == 0, output
    lines = re.split(r"[\r\n]", CONTROL.sub("", output))
    too_long = [line for line in lines if cell_len(line) > 80]
    assert not too_long, too_long
    text = words(output)
    assert "joining the consumer group" in text
    assert re.search(r"joining the group [0-9.]+ s \(from the start to the first partitions assigned\)", text)
    assert re.search(r"delivery [0-9,]+ events/s \(400 events settled in [0-9.]+ s, from the first assignment", text)
    assert "dead_letter topic=" in text  # the connector's log lines, through the console
    assert log_handler.stream.getvalue() == ""
    for detail in WHOLE_DETAILS:
        assert detail in text
    assert "committed 2x" not in text and re.search(r"offsets committed [0-9]+ times", text)
    assert "All events settled" in text


def test_demo_prints_plain_lines_when_not_a_terminal(kafka_bootstrap: str) -> None:
    console = Console(file=io.StringIO(), width=80, markup=False, highlight=False)
    code = demo(OPTIONS, console, None, bootstrap=kafka_bootstrap)
    output = console.file.getvalue()  # type: ignore[attr-defined]
    assert code == 0, output
    assert "\x1b" not in output and "\r" not in output
    assert max(cell_len(line) for line in output.splitlines()) <= 80
    progress = [line for line in output.splitlines() if re.match(r"\[ *[0-9.]+s\] ", line)]
    assert "joining the consumer group" in progress[0]
    assert progress[-1].split("] ", 1)[1].startswith("consumed 400/400  delivered 390  dead-lettered 10")
    assert re.search(r"^All events settled", output, re.MULTILINE)

"""`rd-connector demo`: the whole path on one machine, with nothing to install or configure.

Starts the embedded broker and the mock RD API on loopback, creates the topics, produces a mixed sample
of e-commerce events (a few of them malformed), runs the real pipeline until every event is settled
(delivered to the mock with its result acknowledged, or dead-lettered), shows live progress and ends with
a summary, a few result records and the dead letters. Everything it started is stopped before it exits.

What it prints, and how it fits the terminal's width, is `demo_view`'s: a live display on a terminal (log
lines above it, through the connector's own redacting handler), plain lines elsewhere. The end of the group
join is seen through the `Health` it hands to `build_pipeline` (`set_assigned`).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import gc
import logging
import os
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.text import Text

from connector.avro import Decoder, default_catalog
from connector.commands.demo_view import (
    DeadLetterExample,
    LiveProgress,
    PlainProgress,
    ProgressView,
    Snapshot,
    Timing,
    dead_letters_view,
    summary_view,
    timing_rows,
)
from connector.commands.run import build_pipeline
from connector.commands.sample import generate_messages
from connector.config import load_settings
from connector.ops.logs import configure_logging
from connector.ops.probe_server import Health
from connector.pipeline import Pipeline
from connector.testing.broker import FAST_JOIN_CONSUMER, EmbeddedBroker, create_topics
from connector.testing.kafka_tools import produce_acked, read_topic
from connector.testing.mock_rd import MockRdServer

__all__ = ["cli", "demo"]

Row = tuple[str, str]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rd-connector demo", description=__doc__)
    parser.add_argument("--count", type=int, default=5000, help="sample events to produce (default 5000)")
    parser.add_argument("--malformed", type=int, default=12, help="how many of them are malformed (default 12)")
    parser.add_argument("--rate", type=float, default=0.0, help="events/s to produce (default: all at once)")
    parser.add_argument("--partitions", type=int, default=3, help="source topic partitions (default 3)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--timeout", type=float, default=300.0, help="give up after this many seconds")
    return parser


class _JoinWatch(Health):
    """`Health` that also notes when the first partitions were assigned (the end of the group join)."""

    def __init__(self) -> None:
        super().__init__()
        self.assigned_at: float | None = None

    def set_assigned(self, assigned: bool) -> None:
        super().set_assigned(assigned)
        if assigned and self.assigned_at is None:
            self.assigned_at = time.monotonic()


def _snapshot(pipeline: Pipeline, rd: MockRdServer, watch: _JoinWatch, total: int, started: float) -> Snapshot:
    stats, rd_stats = pipeline.stats, rd.stats()
    return Snapshot(
        elapsed_s=time.monotonic() - started,
        joined_s=None if watch.assigned_at is None else watch.assigned_at - started,
        total=total,
        consumed=stats.consumed,
        delivered=stats.delivered,
        dead_lettered=stats.dead_lettered,
        requests=rd_stats["batches"],
        fill=rd_stats["body_bytes_mean"] / 200_000 if rd_stats["batches"] else 0.0,
    )


def _run(pipeline: Pipeline, exit_codes: list[int]) -> None:
    exit_codes.append(pipeline.run())


def _produce(bootstrap: str, topic: str, messages: list[Any], rate: float) -> None:
    if rate <= 0:
        produce_acked(bootstrap, topic, [(m.key, m.value) for m in messages])
        return
    step = max(1, int(rate // 10))
    for start in range(0, len(messages), step):
        began = time.monotonic()
        produce_acked(bootstrap, topic, [(m.key, m.value) for m in messages[start : start + step]])
        time.sleep(max(0.0, step / rate - (time.monotonic() - began)))


def _summary_rows(pipeline: Pipeline, rd: MockRdServer, args: argparse.Namespace, timing: Timing) -> list[Row]:
    stats, rd_stats = pipeline.stats, rd.stats()
    settled = stats.delivered + stats.dead_lettered
    rows = [
        ("events produced", f"{args.count:,} ({args.malformed:,} of them malformed)"),
        ("delivered to RD", f"{stats.delivered:,} (RD answered 200 and their result records were acknowledged)"),
        ("dead-lettered", f"{stats.dead_lettered:,}"),
        ("events RD accepted", f"{rd_stats['accepted_events']:,}"),
        (
            "RD batch requests",
            f"{rd_stats['batches']:,}: mean body {rd_stats['body_bytes_mean']:,.0f} B, largest "
            f"{rd_stats['body_bytes_max']:,} B (RD's cap: 200,000 B)",
        ),
        (
            "offsets committed",
            f"{stats.commits:,} times (each commit stores, per partition, the offset below which every event "
            "is settled)",
        ),
    ]
    return rows + timing_rows(timing, settled)


def _show_outputs(
    console: Console, bootstrap: str, results_topic: str, dlq_topic: str, delivered: int, dead: int
) -> None:
    decoder = Decoder(default_catalog())
    results = read_topic(bootstrap, results_topic, 1, delivered, timeout_s=10)
    console.print(Text(f"\nResults topic ({len(results):,} records), the first 3:"))
    for message in results[:3]:
        record = decoder.decode(message.value(), results_topic).record  # type: ignore[arg-type]
        source = f"{record['source_topic']}/{record['source_partition']}@{record['source_offset']}"
        console.print(Text(f"  {record['event_type']} from {source}"))
        console.print(Text(f"    event_uuid {record['event_uuid']}"))
    letters = read_topic(bootstrap, dlq_topic, 1, dead, timeout_s=10)
    console.print(Text(f"\nDead-letter topic ({len(letters):,} records), the first of each reason:"))
    first: dict[str, dict[str, str]] = {}
    reasons: collections.Counter[str] = collections.Counter()
    for message in letters:
        raw: list[tuple[str, str | bytes | None]] = list(message.headers() or [])  # type: ignore[arg-type]
        headers = {k: _text(v) for k, v in raw}
        reasons[headers["rdc.error.reason"]] += 1
        first.setdefault(headers["rdc.error.reason"], headers)
    examples = [
        DeadLetterExample(
            stage=h["rdc.error.stage"],
            reason=reason,
            count=reasons[reason],
            partition=h["rdc.source.partition"],
            offset=h["rdc.source.offset"],
            detail=h["rdc.error.detail"],
        )
        for reason, h in first.items()
    ]
    console.print(dead_letters_view(examples))


def _text(value: str | bytes | None) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else (value or "")


def _topics(bootstrap: str, partitions: int) -> tuple[str, str, str]:
    names = tuple(f"{prefix}-{uuid.uuid4().hex[:12]}" for prefix in ("shop-events", "rd-results", "rd-dlq"))
    create_topics(bootstrap, names[:1], partitions)
    create_topics(bootstrap, names[1:], 1)
    return names[0], names[1], names[2]


def cli(argv: list[str] | None = None) -> int:
    console = Console(markup=False, highlight=False)  # its width: the terminal's, or COLUMNS, or 80
    handler = configure_logging("WARNING")
    # Log lines go above the live display only when they would land on the same terminal.
    return demo(argv, console, handler, route_logs=console.is_terminal and sys.stderr.isatty())


def demo(
    argv: list[str] | None,
    console: Console,
    log_handler: logging.Handler | None = None,
    *,
    route_logs: bool = False,
    bootstrap: str | None = None,
) -> int:
    """Run the demo with the options `argv` (see `--help`), printing to `console` (a live display when it is a
    terminal, else plain lines); `log_handler`'s lines go above the live display when `route_logs`.
    `bootstrap`: a running broker to use (tests); None starts the embedded one. Returns the exit code: 0 when
    every event was settled and the connector stopped cleanly."""
    args = _parser().parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="rdc-demo-"))
    console.print(Text("rd-connector demo: embedded Kafka broker + mock RD Station API, all on 127.0.0.1"))
    with contextlib.ExitStack() as stack:
        if bootstrap is None:
            broker = stack.enter_context(EmbeddedBroker(log_path=work / "broker.log"))
            bootstrap, ready = broker.bootstrap_servers, f" (ready in {broker.started_in_s * 1000:.0f} ms)"
        else:
            ready = " (already running)"
        rd = stack.enter_context(MockRdServer())
        closing = stack.enter_context(contextlib.ExitStack())  # the connector's HTTP clients, before the mock
        console.print(Text(f"  broker {bootstrap}{ready}, mock RD API {rd.url}"))
        source, results, dlq = _topics(bootstrap, args.partitions)
        messages = generate_messages(args.count, seed=args.seed, malformed=args.malformed)
        env = {
            "RDC_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "RDC_TOPICS": source,
            "RDC_RESULTS_TOPIC": results,
            "RDC_DLQ_TOPIC": dlq,
            "RDC_GROUP_ID": f"demo-{os.getpid()}-{uuid.uuid4().hex[:6]}",
            "RDC_RD_BASE_URL": rd.url,
            "RDC_RD_ACCESS_TOKEN": "demo-token",
            "RDC_BATCH_LINGER_MS": "250",
            "RDC_RD_REQUESTS_PER_MINUTE": "0",  # the mock is local; RD's real budget is 120/min
            **{f"RDC_KAFKA__{k.upper().replace('.', '_')}": str(v) for k, v in FAST_JOIN_CONSUMER.items()},
        }
        watch = _JoinWatch()
        pipeline = build_pipeline(load_settings(env), health=watch, closing=closing)
        exit_codes: list[int] = []
        runner = threading.Thread(target=_run, args=(pipeline, exit_codes), daemon=True)
        producer = threading.Thread(target=_produce, args=(bootstrap, source, messages, args.rate), daemon=True)
        console.print(Text(f"  producing {args.count:,} events ({args.malformed:,} malformed) to {source}"))
        console.print(Text("  and running the connector; its warnings (each dead letter) are logged\n"))
        view: ProgressView = (
            LiveProgress(console, log_handler, route_logs) if console.is_terminal else PlainProgress(console)
        )
        started = time.monotonic()
        done_at: float | None = None
        with view:
            producer.start()
            runner.start()
            while time.monotonic() - started < args.timeout and runner.is_alive():
                snapshot = _snapshot(pipeline, rd, watch, args.count, started)
                view.update(snapshot)
                if snapshot.settled >= args.count:
                    done_at = time.monotonic()
                    break
                time.sleep(0.05)
        timing = Timing(
            wall_s=(done_at or time.monotonic()) - started,
            joined_s=None if watch.assigned_at is None else watch.assigned_at - started,
            done_s=None if done_at is None else done_at - started,
        )
        pipeline.stop()
        runner.join(60)
        rows, stats = _summary_rows(pipeline, rd, args, timing), pipeline.stats
        settled = stats.delivered + stats.dead_lettered
        del pipeline, runner  # release the connector's Kafka clients before the broker stops
        gc.collect()
        console.print(Text("\nSummary"))
        console.print(summary_view(rows))
        _show_outputs(console, bootstrap, results, dlq, stats.delivered, stats.dead_lettered)
    ok = settled == args.count and exit_codes == [0]
    console.print(Text(f"\n{'All events settled' if ok else 'NOT all events settled'}; broker and mock stopped."))
    console.print(Text(f"Logs: {work}"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(cli())

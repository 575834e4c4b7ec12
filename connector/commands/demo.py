"""`rd-connector demo`: the whole path on one machine, with nothing to install or configure.

Starts the embedded broker and the mock RD API on loopback, creates the topics, produces a mixed sample
of e-commerce events (a few of them malformed), runs the real pipeline until every event is settled
(delivered to the mock with its result acknowledged, or dead-lettered), shows live progress and ends with
a summary, a few result records and the dead letters. Everything it started is stopped before it exits.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import gc
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from connector.avro import Decoder, default_catalog
from connector.commands.run import build_pipeline
from connector.commands.sample import generate_messages
from connector.config import load_settings
from connector.ops.logs import configure_logging
from connector.pipeline import Pipeline
from connector.testing.broker import FAST_JOIN_CONSUMER, EmbeddedBroker
from connector.testing.kafka_tools import produce_acked, read_topic
from connector.testing.mock_rd import MockRdServer

__all__ = ["cli"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rd-connector demo", description=__doc__)
    parser.add_argument("--count", type=int, default=5000, help="sample events to produce (default 5000)")
    parser.add_argument("--malformed", type=int, default=12, help="how many of them are malformed (default 12)")
    parser.add_argument("--rate", type=float, default=0.0, help="events/s to produce (default: all at once)")
    parser.add_argument("--partitions", type=int, default=3, help="source topic partitions (default 3)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--timeout", type=float, default=300.0, help="give up after this many seconds")
    return parser


def _progress(pipeline: Pipeline, rd: MockRdServer, total: int, started: float) -> str:
    stats, rd_stats = pipeline.stats, rd.stats()
    fill = rd_stats["body_bytes_mean"] / 200_000 if rd_stats["batches"] else 0.0
    return (
        f"\r[{time.monotonic() - started:5.1f}s] consumed {stats.consumed:>6}/{total}  delivered {stats.delivered:>6}  "
        f"dead-lettered {stats.dead_lettered:>3}  batches {rd_stats['batches']:>4}  mean fill {fill:6.1%}  "
        f"committed {stats.commits:>4}x"
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


def _summary(pipeline: Pipeline, rd: MockRdServer, seconds: float, count: int) -> str:
    stats, rd_stats = pipeline.stats, rd.stats()
    rows = [
        ("events produced", f"{count}"),
        ("delivered to RD (results acknowledged)", f"{stats.delivered}"),
        ("dead-lettered", f"{stats.dead_lettered}"),
        ("events RD accepted", f"{rd_stats['accepted_events']}"),
        ("batch requests", f"{rd_stats['batches']}"),
        (
            "mean body / max body (cap 200,000 B)",
            f"{rd_stats['body_bytes_mean']:,.0f} B / {rd_stats['body_bytes_max']:,} B",
        ),
        ("offset commits", f"{stats.commits}"),
        ("wall time", f"{seconds:.1f} s ({count / seconds:,.0f} events/s)"),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"  {name:<{width}}  {value}" for name, value in rows)


def _show_outputs(bootstrap: str, results_topic: str, dlq_topic: str, delivered: int, dead: int) -> None:
    decoder = Decoder(default_catalog())
    results = read_topic(bootstrap, results_topic, 1, delivered, timeout_s=10)
    print(f"\nResults topic ({len(results)} records), the first 3:")
    for message in results[:3]:
        record = decoder.decode(message.value(), results_topic).record  # type: ignore[arg-type]
        print(
            f"  {record['event_type']:<30} event_uuid={record['event_uuid']} "
            f"source={record['source_topic']}/{record['source_partition']}@{record['source_offset']}"
        )
    letters = read_topic(bootstrap, dlq_topic, 1, dead, timeout_s=10)
    print(f"\nDead-letter topic ({len(letters)} records):")
    reasons: collections.Counter[str] = collections.Counter()
    for message in letters:
        raw: list[tuple[str, str | bytes | None]] = list(message.headers() or [])  # type: ignore[arg-type]
        headers = {k: _text(v) for k, v in raw}
        reasons[headers["rdc.error.reason"]] += 1
        if reasons[headers["rdc.error.reason"]] == 1:
            print(
                f"  {headers['rdc.error.stage']:<6} {headers['rdc.error.reason']:<20} "
                f"@{headers['rdc.source.partition']}/{headers['rdc.source.offset']}: {headers['rdc.error.detail'][:90]}"
            )
    print("  by reason: " + ", ".join(f"{reason}={n}" for reason, n in sorted(reasons.items())))


def _text(value: str | bytes | None) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else (value or "")


def cli(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="rdc-demo-"))
    configure_logging("WARNING")
    print("rd-connector demo: embedded Kafka broker + mock RD Station API, all on 127.0.0.1")
    with (
        EmbeddedBroker(log_path=work / "broker.log") as broker,
        MockRdServer() as rd,
        contextlib.ExitStack() as closing,  # the connector's HTTP clients, closed before the mock stops
    ):
        bootstrap = broker.bootstrap_servers
        print(f"  broker {bootstrap} (ready in {broker.started_in_s * 1000:.0f} ms), mock RD API {rd.url}")
        source = broker.unique_topic("shop-events", args.partitions)
        results, dlq = broker.unique_topic("rd-results"), broker.unique_topic("rd-dlq")
        messages = generate_messages(args.count, seed=args.seed, malformed=args.malformed)
        env = {
            "RDC_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "RDC_TOPICS": source,
            "RDC_RESULTS_TOPIC": results,
            "RDC_DLQ_TOPIC": dlq,
            "RDC_GROUP_ID": f"demo-{os.getpid()}",
            "RDC_RD_BASE_URL": rd.url,
            "RDC_RD_ACCESS_TOKEN": "demo-token",
            "RDC_BATCH_LINGER_MS": "250",
            "RDC_RD_REQUESTS_PER_MINUTE": "0",  # the mock is local; RD's real budget is 120/min
            **{f"RDC_KAFKA__{k.upper().replace('.', '_')}": str(v) for k, v in FAST_JOIN_CONSUMER.items()},
        }
        pipeline = build_pipeline(load_settings(env), closing=closing)
        exit_codes: list[int] = []
        runner = threading.Thread(target=_run, args=(pipeline, exit_codes), daemon=True)
        producer = threading.Thread(target=_produce, args=(bootstrap, source, messages, args.rate), daemon=True)
        print(f"  producing {args.count} events ({args.malformed} malformed) to {source} and running the connector\n")
        started = time.monotonic()
        producer.start()
        runner.start()
        settled = 0
        while settled < args.count and time.monotonic() - started < args.timeout and runner.is_alive():
            time.sleep(0.25)
            settled = pipeline.stats.delivered + pipeline.stats.dead_lettered
            print(_progress(pipeline, rd, args.count, started), end="", flush=True)
        seconds = time.monotonic() - started
        pipeline.stop()
        runner.join(60)
        summary, stats = _summary(pipeline, rd, seconds, args.count), pipeline.stats
        del pipeline, runner  # release the connector's Kafka clients before the broker stops
        gc.collect()
        print("\n\nSummary")
        print(summary)
        _show_outputs(bootstrap, results, dlq, stats.delivered, stats.dead_lettered)
    ok = settled == args.count and exit_codes == [0]
    print(f"\n{'All events settled' if ok else 'NOT all events settled'}; broker and mock stopped. Logs: {work}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(cli())

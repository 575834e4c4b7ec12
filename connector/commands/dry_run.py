"""`rd-connector dry-run [--count N]`: what `run` would send, without sending anything.

Reads up to N records from the configured topics by assignment (no group join, no commit: the group's committed
offsets are only read, to start where `run` would; a partition the group never committed starts at its
beginning), decodes and maps each exactly as `run` does, and prints one JSON line per record: the event (with
its encoded size), or the refusal (stage, reason, detail) the dead-letter topic would get, or the skip, or the
tombstone. Then a summary line: mapped / skipped / refused by reason, mean event bytes, events per full request.
It never calls RD. Exit 0; 2 for a configuration error (a broken mapping file included); 1 when Kafka or the
Schema Registry cannot be reached.
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import time
from collections.abc import Mapping
from typing import Any, TextIO

import orjson

from connector.avro import Decoder, SchemaCatalog, registry_from_settings
from connector.config import Settings, load_settings
from connector.errors import EXIT_CONFIG, EXIT_OK, ConfigError
from connector.errors import EXIT_FAILED as EXIT_UNREACHABLE
from connector.mapping.mappings import Mappings, checked_mappings
from connector.transform.outcomes import Outcome, Ready, Refused, RegistryDown, SkippedByMapping
from connector.transform.process import _one

__all__ = ["Summary", "cli"]


class Summary:
    """Counts of one dry run; `line()` is its JSON summary."""

    def __init__(self, max_bytes: int, max_events: int) -> None:
        self.mapped = self.skipped = self.tombstones = 0
        self.event_bytes = 0
        self.refused: collections.Counter[str] = collections.Counter()
        self.skipped_by: collections.Counter[str] = collections.Counter()
        self.by_type: collections.Counter[str] = collections.Counter()
        self._max_bytes, self._max_events = max_bytes, max_events

    def add(self, outcome: Outcome | None) -> dict[str, Any]:
        """Count one record's outcome (None: a tombstone) and return what to print about it."""
        if outcome is None:
            self.tombstones += 1
            return {"outcome": "tombstone"}
        if type(outcome) is Ready:
            self.mapped += 1
            self.event_bytes += len(outcome.data)
            self.by_type[outcome.event_type] += 1
            event = orjson.loads(outcome.data)
            return {"outcome": "event", "bytes": len(outcome.data), "trims": outcome.trims, "event": event}
        if type(outcome) is SkippedByMapping:
            self.skipped += 1
            self.skipped_by[outcome.mapping] += 1
            return {"outcome": "skipped", "mapping": outcome.mapping}
        assert isinstance(outcome, Refused)  # `_print` stops on RegistryDown first
        # The detail, values included: this output is for its operator.
        self.refused[outcome.reason] += 1
        return {"outcome": "refused", "stage": outcome.stage, "reason": outcome.reason, "detail": outcome.message}

    def line(self) -> dict[str, Any]:
        mean = self.event_bytes / self.mapped if self.mapped else 0.0
        # A body is "[" + events joined by "," + "]": n events take sum(bytes) + n + 1 bytes.
        per_request = min(self._max_events, int((self._max_bytes - 1) // (mean + 1))) if mean else 0
        return {
            "summary": {
                "records": self.mapped + self.skipped + sum(self.refused.values()) + self.tombstones,
                "mapped": self.mapped,
                "event_types": dict(self.by_type),
                "skipped": self.skipped,
                "skipped_by_mapping": dict(self.skipped_by),
                "refused": sum(self.refused.values()),
                "refused_by_reason": dict(self.refused),
                "tombstones": self.tombstones,
                "mean_event_bytes": round(mean, 1),
                "events_per_full_request": per_request,
            }
        }


def cli(argv: list[str] | None = None, env: Mapping[str, str] | None = None, out: TextIO | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rd-connector dry-run", description=__doc__)
    parser.add_argument("--count", type=int, default=100, help="records to read at most (default 100)")
    parser.add_argument("--timeout", type=float, default=10.0, help="stop after this many seconds without a record")
    parser.add_argument("--config", help="TOML configuration file (environment variables win)")
    args = parser.parse_args(argv)
    out = out or sys.stdout
    try:
        settings = load_settings(os.environ if env is None else env, args.config)
        if not settings.kafka_bootstrap_servers or not settings.topics:
            raise ConfigError("dry-run needs RDC_KAFKA_BOOTSTRAP_SERVERS and RDC_TOPICS")
        catalog = SchemaCatalog.load(settings.schema_dir)
        _, mappings = checked_mappings(settings.mappings, catalog, registry=settings.schema_registry_url is not None)
        decoder = Decoder(
            catalog, registry=registry_from_settings(settings), plain_topics=settings.topic_writer_schemas
        )
    except ConfigError as exc:
        print(f"dry-run: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    summary = Summary(settings.batch_max_bytes, settings.batch_max_events)
    try:
        _read(settings, decoder, mappings, args.count, args.timeout, summary, out)
    except _Unreachable as exc:
        print(f"dry-run: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    print(orjson.dumps(summary.line()).decode(), file=out)
    return EXIT_OK


class _Unreachable(Exception):
    pass


def _read(
    settings: Settings, decoder: Decoder, mappings: Mappings, count: int, idle_s: float, summary: Summary, out: TextIO
) -> None:
    from confluent_kafka import OFFSET_BEGINNING, KafkaError, KafkaException, TopicPartition

    from connector.ops.kafka_clients import new_consumer

    config = {**settings.consumer_config(), "enable.partition.eof": True}
    consumer = new_consumer(config)
    try:
        try:
            topics = consumer.list_topics(timeout=idle_s).topics  # all topics: a named one may be auto-created
        except KafkaException as exc:
            raise _Unreachable(f"cannot reach Kafka at {settings.kafka_bootstrap_servers}: {exc}") from exc
        partitions = [
            TopicPartition(t, p) for t in settings.topics if t in topics for p in sorted(topics[t].partitions)
        ]
        if not partitions:
            raise _Unreachable(f"none of the topics {', '.join(settings.topics)} exists")
        committed = consumer.committed(partitions, timeout=idle_s)
        consumer.assign([TopicPartition(p.topic, p.partition, p.offset if p.offset >= 0 else OFFSET_BEGINNING)
                         for p in committed])  # fmt: skip
        ended: set[tuple[str, int]] = set()
        seen, last = 0, time.monotonic()
        while seen < count and len(ended) < len(partitions) and time.monotonic() - last < idle_s:
            for message in consumer.consume(min(500, count - seen), 0.2):
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        ended.add((str(message.topic()), int(message.partition() or 0)))
                    continue
                ended.discard((str(message.topic()), int(message.partition() or 0)))
                seen, last = seen + 1, time.monotonic()
                _print(message, decoder, mappings, summary, out)
                if seen >= count:
                    break
    finally:
        consumer.close()  # never subscribed, never committed: the group is left as it was


def _print(message: Any, decoder: Decoder, mappings: Mappings, summary: Summary, out: TextIO) -> None:
    value = message.value()
    outcome = None if value is None else _one(decoder, mappings, message.topic(), value)  # exactly what run does
    if type(outcome) is RegistryDown:
        raise _Unreachable(f"the Schema Registry cannot be reached: {outcome.message}")
    where = {"topic": message.topic(), "partition": message.partition(), "offset": message.offset()}
    print(orjson.dumps({**where, **summary.add(outcome)}).decode(), file=out)

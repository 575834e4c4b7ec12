"""`rd-connector dlq replay`: send dead letters again, once their cause is fixed; resumable, never twice.

Reads the dead-letter topic (`RDC_DLQ_TOPIC`) by assignment from the replay group's committed offsets (the group
is only a cursor: it never joins, so start is instant and nothing rebalances), up to the end each partition
had when the run started (the high watermark of its first fetch: later letters wait for the next run). Each
letter is replayed, passed or held (`dlq_plan.decide`). Per batch of at most `--batch` letters:

1. produce the replays (idempotent producer, `acks=all`) to the source topic and partition, or `--to`;
2. flush: wait until Kafka acknowledged every one;
3. commit, per partition, the offset after the last letter replayed or passed (never past a held one).

So an offset is committed only after its replay was acknowledged, and a resumed run starts at the first
letter not yet done: nothing is skipped. A stop by signal (SIGINT, SIGTERM) is served between batches, so it
never duplicates anything; only a crash (SIGKILL, power) between 2 and 3 re-sends that batch once when the
run resumes: at most `--batch` records (`--batch 1`: at most one). Every replay carries `rdc.replay.of`
naming the letter, so such a duplicate can be told apart. `--dry-run` prints the same lines and summary and
neither produces nor commits. Exit 0 at the end (or `--limit`); 6 stopped by a signal (rerun to resume);
1 Kafka cannot be reached or refused a replay (what was acknowledged before it is committed); 2 bad options
or configuration.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TextIO

import orjson
from confluent_kafka import OFFSET_BEGINNING, KafkaError, KafkaException, TopicPartition

from connector.commands.dlq_plan import Decision, Filters, Letter, decide, default_group, parse_time, replay_headers
from connector.config import Settings, load_settings
from connector.errors import EXIT_CONFIG, EXIT_FAILED, EXIT_OK, EXIT_UNSETTLED, ConfigError
from connector.ops.kafka_clients import new_consumer, new_producer

__all__ = ["Replay", "Summary", "cli"]

_IDLE_FETCH_S = 0.05


class ReplayFailed(Exception):
    """Kafka could not be read, or refused a replay."""


class Summary:
    """Counts of one run; `line()` is its JSON summary."""

    def __init__(self, group: str, dry_run: bool) -> None:
        self.group, self.dry_run = group, dry_run
        self.replayed: collections.Counter[str] = collections.Counter()  # by reason
        self.skipped: collections.Counter[str] = collections.Counter()  # by why
        self.skipped_reasons: collections.Counter[str] = collections.Counter()
        self.held: dict[int, str] = {}  # partition -> why
        self.committed: dict[int, int] = {}
        self.stopped = "end"

    def line(self) -> dict[str, Any]:
        return {
            "summary": {
                "group": self.group,
                "dry_run": self.dry_run,
                "replayed": sum(self.replayed.values()),
                "replayed_by_reason": dict(self.replayed),
                "skipped": sum(self.skipped.values()),
                "skipped_by_filter": dict(self.skipped),
                "skipped_by_reason": dict(self.skipped_reasons),
                "held": {str(p): why for p, why in sorted(self.held.items())},
                "committed": {str(p): offset for p, offset in sorted(self.committed.items())},
                "stopped": self.stopped,
            }
        }


class Replay:
    """One run over `dlq_topic`. `producer` None: a dry run (nothing produced, nothing committed)."""

    def __init__(
        self,
        consumer: Any,
        producer: Any | None,
        dlq_topic: str,
        filters: Filters,
        summary: Summary,
        out: TextIO,
        *,
        batch: int = 100,
        limit: int | None = None,
        timeout_s: float = 30.0,
    ) -> None:
        self._consumer, self._producer, self._topic = consumer, producer, dlq_topic
        self._filters, self._summary, self._out = filters, summary, out
        self._batch, self._limit, self._timeout_s = max(1, batch), limit, timeout_s
        self._partitions_of: dict[str, set[int]] = {}
        self._position: dict[int, int] = {}  # partition -> the next offset to read

    def run(self, stop: Callable[[], bool] = lambda: False) -> Summary:
        """Replay up to the end each partition had at start, `--limit`, or `stop()` (checked between batches).
        Raises `ReplayFailed` when Kafka cannot be read or refuses a replay."""
        active = self._assign()
        ends: dict[int, int] = {}
        replays = 0
        last_read = time.monotonic()
        while active:
            if stop():
                self._summary.stopped = "signal"
                return self._summary
            messages = self._consumer.consume(self._batch, _IDLE_FETCH_S)
            self._learn_ends(active, ends)
            chosen: list[tuple[Letter, Decision]] = []
            held: list[tuple[Letter, Decision]] = []
            for message in messages:
                letter = self._letter(message, active, ends)
                if letter is None:
                    continue
                decision = decide(letter, self._filters)
                if decision.action == "replay" and self._limit is not None and replays >= self._limit:
                    self._summary.stopped, active = "limit", set()
                    break
                if decision.action == "hold":
                    self._hold(letter, decision, active)
                    held.append((letter, decision))
                    continue
                replays += decision.action == "replay"
                chosen.append((letter, decision))
            self._settle(chosen)
            for letter, decision in held:  # after the letters before them, in offset order
                self._print(letter, "held", why=decision.why)
            active -= {p for p in active if p in ends and self._position[p] >= ends[p]}
            if messages:
                last_read = time.monotonic()
            elif active and time.monotonic() - last_read > self._timeout_s:
                raise ReplayFailed(f"{self._topic} partitions {sorted(active)}: not read to their end within "
                                   f"{self._timeout_s:g} s")  # fmt: skip
        return self._summary

    def _assign(self) -> set[int]:
        try:
            metadata = self._consumer.list_topics(self._topic, timeout=self._timeout_s).topics.get(self._topic)
        except KafkaException as exc:
            raise ReplayFailed(f"cannot reach Kafka: {exc}") from exc
        if metadata is None or metadata.error is not None or not metadata.partitions:
            return set()  # no dead-letter topic: nothing to replay
        partitions = sorted(metadata.partitions)
        wanted = [TopicPartition(self._topic, p) for p in partitions]
        try:
            committed = self._consumer.committed(wanted, timeout=self._timeout_s)
        except KafkaException as exc:
            raise ReplayFailed(f"cannot read the replay group's offsets: {exc}") from exc
        for tp in committed:  # nothing committed: from the partition's first offset (a queried one is right)
            low = tp.offset if tp.offset >= 0 else self._low(tp.partition)
            self._position[tp.partition] = low
        self._consumer.assign(
            [TopicPartition(self._topic, tp.partition, tp.offset if tp.offset >= 0 else OFFSET_BEGINNING)
             for tp in committed]
        )  # fmt: skip
        return set(partitions)

    def _low(self, partition: int) -> int:
        try:
            low, _ = self._consumer.get_watermark_offsets(
                TopicPartition(self._topic, partition), timeout=self._timeout_s, cached=False
            )
        except KafkaException as exc:
            raise ReplayFailed(f"cannot read {self._topic}'s offsets: {exc}") from exc
        return int(low)

    def _learn_ends(self, active: set[int], ends: dict[int, int]) -> None:
        """Each partition's end: the high watermark of its first fetch (a queried end offset is wrong on some
        brokers, ../shared/tansu.md), kept for the whole run."""
        for partition in active - set(ends):
            _, high = self._consumer.get_watermark_offsets(TopicPartition(self._topic, partition), cached=True)
            if high is not None and high >= 0:
                ends[partition] = high

    def _letter(self, message: Any, active: set[int], ends: Mapping[int, int]) -> Letter | None:
        error = message.error()
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                return None
            raise ReplayFailed(f"cannot read {self._topic}: {error}")
        partition, offset = message.partition(), message.offset()
        if partition not in active or offset >= ends.get(partition, offset + 1):
            return None  # held, or written after the run started
        self._position[partition] = offset + 1
        kind, stamp = message.timestamp()
        return Letter(partition, offset, stamp if kind else None, message.key(), message.value(),
                      list(message.headers() or []))  # fmt: skip

    def _hold(self, letter: Letter, decision: Decision, active: set[int]) -> None:
        active.discard(letter.partition)
        self._consumer.pause([TopicPartition(self._topic, letter.partition)])
        self._summary.held[letter.partition] = decision.why

    def _settle(self, chosen: list[tuple[Letter, Decision]]) -> None:
        """Replay what `chosen` replays, wait for Kafka's acknowledgements, then commit past each letter done."""
        failed: dict[int, tuple[int, Any]] = {}  # partition -> first refused letter's offset, error

        def acked(letter: Letter) -> Callable[[Any, Any], None]:
            def on_delivery(err: Any, _msg: Any) -> None:
                if err is not None and letter.offset < failed.get(letter.partition, (letter.offset + 1, None))[0]:
                    failed[letter.partition] = (letter.offset, err)

            return on_delivery

        for letter, decision in chosen:
            if decision.action == "replay" and self._producer is not None:
                self._produce(letter, decision, acked(letter))
        if self._producer is not None:
            while self._producer.flush(1.0):
                pass  # bounded by message.timeout.ms: every record is acknowledged or failed
        done: dict[int, int] = {}
        for letter, decision in chosen:
            if letter.partition in failed and letter.offset >= failed[letter.partition][0]:
                continue
            done[letter.partition] = letter.offset + 1
            self._count(letter, decision)
        if self._producer is not None and done:
            self._commit(done)
        if failed:
            offset, err = min(failed.values(), key=lambda f: f[0])
            raise ReplayFailed(f"Kafka refused a replay ({self._topic} offset {offset}): {err}")

    def _produce(self, letter: Letter, decision: Decision, on_delivery: Callable[[Any, Any], None]) -> None:
        assert decision.topic is not None and self._producer is not None
        headers = replay_headers(letter.headers, self._topic, letter)
        partition = decision.partition
        extra = {"partition": partition} if partition is not None and self._has(decision.topic, partition) else {}
        while True:
            try:
                self._producer.produce(
                    decision.topic, letter.value, letter.key, headers=headers, on_delivery=on_delivery, **extra
                )
                return
            except BufferError:
                self._producer.poll(0.05)

    def _has(self, topic: str, partition: int) -> bool:
        """Whether `topic` has `partition` (else the replay goes by key): metadata asked once per topic."""
        if topic not in self._partitions_of:
            found = self._producer.list_topics(topic, timeout=self._timeout_s).topics.get(topic)  # type: ignore[union-attr]
            self._partitions_of[topic] = set(found.partitions) if found is not None and not found.error else set()
        return partition in self._partitions_of[topic]

    def _commit(self, done: Mapping[int, int]) -> None:
        offsets = [TopicPartition(self._topic, p, o) for p, o in sorted(done.items())]
        try:
            result = self._consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            raise ReplayFailed(f"replays acknowledged, but the commit failed (a rerun re-sends them): {exc}") from exc
        refused = [tp for tp in result or [] if tp.error is not None]
        if refused:
            raise ReplayFailed(f"replays acknowledged, but the commit was refused (a rerun re-sends them): {refused}")
        self._summary.committed.update(done)

    def _count(self, letter: Letter, decision: Decision) -> None:
        if decision.action == "replay":
            self._summary.replayed[letter.reason] += 1
            where = f"{decision.topic}/{decision.partition if decision.partition is not None else 'by-key'}"
            self._print(letter, "would_replay" if self._producer is None else "replayed", to=where)
        else:
            self._summary.skipped[decision.why] += 1
            self._summary.skipped_reasons[letter.reason] += 1
            self._print(letter, "skipped", why=decision.why)

    def _print(self, letter: Letter, action: str, **more: str) -> None:
        line = {"letter": f"{self._topic}/{letter.partition}/{letter.offset}", "reason": letter.reason}
        print(orjson.dumps({**line, "action": action, **more}).decode(), file=self._out)


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[Callable[[], bool]]:
    """A flag set by SIGINT or SIGTERM (the run stops between batches); the previous handlers come back after."""
    stopped: list[int] = []
    signals = (signal.SIGINT, signal.SIGTERM)
    previous = {s: signal.signal(s, lambda number, _frame: stopped.append(number)) for s in signals}
    try:
        yield lambda: bool(stopped)
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rd-connector dlq", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    commands = parser.add_subparsers(dest="command", required=True)
    replay = commands.add_parser("replay", help="send dead letters again to their source topic (or --to)")
    replay.add_argument("--reason", action="append", default=[], help="only this rdc.error.reason (repeatable)")
    replay.add_argument("--since", help="only letters dead-lettered at or after this time (RFC 3339 or epoch ms)")
    replay.add_argument("--until", help="stop each partition at the first letter at or after this time")
    replay.add_argument("--ready", action="store_true", help="stop each partition at a letter before rdc.retry.after")
    replay.add_argument("--to", help="replay every letter to this topic (by key) instead of its source topic")
    replay.add_argument("--group", help="the replay group (default rd-connector.dlq-replay[.<reasons>])")
    replay.add_argument("--dry-run", action="store_true", help="print what would be sent; send and commit nothing")
    replay.add_argument("--limit", type=int, help="replay at most this many letters, then stop (resumable)")
    replay.add_argument("--batch", type=int, default=100, help="letters per produce-flush-commit (default 100)")
    replay.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for Kafka (default 30)")
    replay.add_argument("--config", help="TOML configuration file (environment variables win)")
    return parser


def cli(argv: list[str] | None = None, env: Mapping[str, str] | None = None, out: TextIO | None = None) -> int:
    args = _parser().parse_args(argv)
    out = out or sys.stdout
    try:
        settings = load_settings(os.environ if env is None else env, args.config)
        if not settings.kafka_bootstrap_servers:
            raise ConfigError("dlq replay needs RDC_KAFKA_BOOTSTRAP_SERVERS")
        filters = Filters(
            reasons=frozenset(args.reason),
            since_ms=None if args.since is None else parse_time(args.since),
            until_ms=None if args.until is None else parse_time(args.until),
            ready=args.ready,
            now_ms=int(time.time() * 1000),
            to=args.to,
        )
    except (ConfigError, ValueError) as exc:
        print(f"dlq replay: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    group = args.group or default_group(args.reason)
    summary = Summary(group, args.dry_run)
    consumer, producer = _clients(settings, group, args.dry_run)
    try:
        with _stop_on_signals() as stop:
            Replay(consumer, producer, settings.dlq_topic, filters, summary, out,
                   batch=args.batch, limit=args.limit, timeout_s=args.timeout).run(stop)  # fmt: skip
    except ReplayFailed as exc:
        print(orjson.dumps(summary.line()).decode(), file=out)
        print(f"dlq replay: {exc}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        consumer.close()  # never subscribed: leaving changes nothing in the group
    print(orjson.dumps(summary.line()).decode(), file=out)
    return EXIT_UNSETTLED if summary.stopped == "signal" else EXIT_OK


def _clients(settings: Settings, group: str, dry_run: bool) -> tuple[Any, Any | None]:
    consumer = new_consumer(
        {
            **settings.kafka_common(),
            "group.id": group,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "enable.partition.eof": False,
            "fetch.wait.max.ms": 20,  # the end check runs between fetches (Tansu holds an empty fetch)
        }
    )
    return consumer, None if dry_run else new_producer(settings.producer_config())

"""Members joining and leaving one group while events flow, under both rebalance protocols (real broker,
mock RD, in-process connectors): nothing lost, nothing sent twice, every offset committed; under COOPERATIVE
a member joining takes partitions from the others without making them give back what they keep.

Measured on Tansu (docs/decisions/0021-cooperative-rebalancing.md); with KAFKA_BOOTSTRAP_SERVERS set, the
same tests run against that broker.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import orjson
import pytest

from connector.commands.sample import generate_messages
from connector.partition_keys import TopicPartitionKey
from connector.testing.kafka_tools import committed_offsets, produce_acked, read_topic
from connector.testing.mock_rd import MockRdServer
from tests.integration.pipeline_support import (
    RunningPipeline,
    Topics,
    connector_env,
    decode_results,
    expected_payloads,
    start_pipeline,
    wait_until,
)

pytestmark = pytest.mark.integration

PARTITIONS = 6


@dataclass
class Rebalances:
    """The rebalance log lines of every in-process member, by member and by phase of the test."""

    members: dict[int, str] = field(default_factory=dict)  # pipeline thread id -> member name
    phase: str = "start"
    seen: list[tuple[str, str, str, set[str]]] = field(default_factory=list)  # (phase, member, what, partitions)
    abandoned: list[str] = field(default_factory=list)  # revoke_abandoned / batch_abandoned lines

    def record(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "abandoned" in message:
            self.abandoned.append(message)
        what = message.split(" ", 1)[0]
        if what in ("assigned", "revoked", "lost") and record.args:
            member = self.members.get(record.thread or 0, "?")
            self.seen.append((self.phase, member, what, set(record.args[0])))  # type: ignore[index,call-overload]

    def of(self, phase: str, member: str, what: str) -> set[str]:
        return set().union(*(p for ph, m, w, p in self.seen if ph == phase and m == member and w == what))


class _Collect(logging.Handler):
    def __init__(self, rebalances: Rebalances) -> None:
        super().__init__(logging.INFO)
        self._rebalances = rebalances

    def emit(self, record: logging.LogRecord) -> None:
        self._rebalances.record(record)


@pytest.fixture
def rebalances() -> Iterator[Rebalances]:
    found = Rebalances()
    handler = _Collect(found)
    loggers = [logging.getLogger(name) for name in ("connector.consume.rebalance", "connector.deliver.lane")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    yield found
    for logger, level in zip(loggers, levels, strict=True):
        logger.removeHandler(handler)
        logger.setLevel(level)


class _Producer:
    """Produces `messages` in small chunks on a thread until they run out or `stop()`; `ends` and `sent`
    say what was acknowledged."""

    def __init__(self, bootstrap: str, topic: str, messages: list[tuple[bytes | None, bytes]]) -> None:
        self._args = (bootstrap, topic)
        self._messages = messages
        self._stop = threading.Event()
        self.sent: list[bytes] = []
        self.ends: dict[int, int] = {}
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        for start in range(0, len(self._messages), 40):
            if self._stop.is_set():
                return
            chunk = self._messages[start : start + 40]
            self.ends.update(produce_acked(*self._args, chunk))
            self.sent += [value for _, value in chunk]
            self._stop.wait(0.04)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)


def _owned(member: RunningPipeline) -> set[TopicPartitionKey]:
    while True:
        try:
            return set(member.pipeline._partitions.owned)
        except RuntimeError:  # changed size while copied (the member's own thread): read again
            continue


def _split(members: list[RunningPipeline], sizes: list[int]) -> Callable[[], bool]:
    """The group settled with these many partitions per member (every partition owned exactly once)."""

    def settled() -> bool:
        owned = [_owned(m) for m in members]
        union = set().union(*owned)
        return sorted(len(o) for o in owned) == sorted(sizes) and len(union) == sum(sizes) == PARTITIONS

    return settled


@pytest.mark.parametrize("strategy", ["cooperative-sticky", "range"])
def test_members_join_and_leave_while_events_flow(
    kafka_bootstrap: str,
    make_topic: Callable[..., str],
    group_id: str,
    rd: MockRdServer,
    rebalances: Rebalances,
    strategy: str,
) -> None:
    topics = Topics(make_topic("src", PARTITIONS), make_topic("results"), make_topic("dlq"), PARTITIONS, group_id)
    rd.configure(latency_ms=10)
    env = connector_env(
        kafka_bootstrap,
        rd.url,
        topics,
        RDC_KAFKA__PARTITION_ASSIGNMENT_STRATEGY=strategy,
        RDC_MAX_IN_FLIGHT="2",
        RDC_BATCH_MAX_EVENTS="50",
        RDC_DECODE_WORKERS="0",
    )
    messages = generate_messages(12_000, seed=23)
    producer = _Producer(kafka_bootstrap, topics.source, [(m.key, m.value) for m in messages])
    members: dict[str, RunningPipeline] = {}

    def start(name: str) -> RunningPipeline:
        running = members[name] = start_pipeline(env)
        rebalances.members[running.thread.ident or 0] = name
        return running

    began = time.monotonic()
    try:
        a = start("a")
        assert wait_until(_split([a], [6]), 30) and wait_until(lambda: len(rd.accepted) > 100, 30)
        marks = [("a alone", time.monotonic())]
        rebalances.phase = "b_joins"
        b = start("b")
        assert wait_until(_split([a, b], [3, 3]), 60), "a and b never split the partitions"
        owned_ab = {"a": _owned(a), "b": _owned(b)}
        marks.append(("b joined", time.monotonic()))
        rebalances.phase = "c_joins"
        c = start("c")
        assert wait_until(_split([a, b, c], [2, 2, 2]), 60), "a, b and c never split the partitions"
        owned_abc = {"a": _owned(a), "b": _owned(b), "c": _owned(c)}
        marks.append(("c joined", time.monotonic()))
        rebalances.phase = "b_leaves"
        assert b.stop() == 0  # drained: everything b took settled and was committed
        assert wait_until(_split([a, c], [3, 3]), 60), "a and c never took b's partitions"
        marks.append(("b left", time.monotonic()))
        rebalances.phase = "closing"
        producer.stop()
        ends = producer.ends
        assert wait_until(
            lambda: committed_offsets(kafka_bootstrap, topics.group, topics.source, PARTITIONS) == ends, 60
        )
        marks.append(("all committed", time.monotonic()))
        print(strategy, ", ".join(f"{what} at {at - began:.1f} s" for what, at in marks))
    finally:
        producer.stop()
        codes = {name: member.stop() for name, member in members.items() if member.thread.is_alive()}
    assert all(code == 0 for code in codes.values()), codes
    print(f"stopped at {time.monotonic() - began:.1f} s")

    sent = producer.sent
    assert len(sent) > 2000, "too few events flowed during the rebalances to test anything"
    accepted = {orjson.dumps(e.event["payload"]) for e in rd.accepted}
    assert accepted == expected_payloads(sent)  # every event reached RD
    assert len(rd.accepted) == len(sent)  # and none twice: each revoke settled its work in time
    results = decode_results(read_topic(kafka_bootstrap, topics.results, 1, len(sent)))
    assert len({(r["source_partition"], r["source_offset"]) for r in results}) == len(sent)
    assert rebalances.abandoned == []
    print(f"checked at {time.monotonic() - began:.1f} s")

    def name(tps: set[TopicPartitionKey]) -> set[str]:
        return {f"{t}/{p}" for t, p in tps}

    # What the members already in the group revoked when one joined, against what actually moved.
    for phase, before in (("b_joins", {"a": owned_ab["a"] | owned_ab["b"]}), ("c_joins", owned_ab)):
        after = owned_ab if phase == "b_joins" else owned_abc
        for member, had in before.items():
            revoked = rebalances.of(phase, member, "revoked")
            moved = name(had - after[member])
            print(f"{strategy} {phase}: {member} had {len(had)}, revoked {len(revoked)}, moved {len(moved)}")
            if strategy == "cooperative-sticky":
                assert revoked == moved  # only what changed owner: the partitions kept were never revoked
                assert not revoked & rebalances.of(phase, member, "assigned")
            else:
                assert revoked == name(had)  # eager: everything, then the kept ones assigned again
    if strategy == "cooperative-sticky":  # b leaving: the others only gain
        assert rebalances.of("b_leaves", "a", "revoked") == rebalances.of("b_leaves", "c", "revoked") == set()


def test_a_static_member_is_accepted_delivers_and_commits(
    kafka_bootstrap: str, topics: Topics, rd: MockRdServer
) -> None:
    """`group.instance.id` passes through `RDC_KAFKA__GROUP_INSTANCE_ID`, and the broker takes it."""
    messages = generate_messages(300, seed=29)
    ends = produce_acked(kafka_bootstrap, topics.source, [(m.key, m.value) for m in messages])
    env = connector_env(kafka_bootstrap, rd.url, topics, RDC_KAFKA__GROUP_INSTANCE_ID="rd-connector-0")
    running = start_pipeline(env)
    try:
        assert wait_until(
            lambda: committed_offsets(kafka_bootstrap, topics.group, topics.source, topics.partitions) == ends, 60
        )
    finally:
        assert running.stop() == 0
    assert {orjson.dumps(e.event["payload"]) for e in rd.accepted} == expected_payloads([m.value for m in messages])

"""The broker fixture and the embedded broker's lifecycle."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from connector.testing.broker import TEST_PRODUCER

pytestmark = pytest.mark.integration


def _produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, **TEST_PRODUCER})
    for value in values:
        producer.produce(topic, value)
    assert producer.flush(10) == 0


def test_group_consume_and_manual_commit(
    kafka_bootstrap: str, make_topic: Any, consumer_config: dict[str, Any]
) -> None:
    topic = make_topic("broker")
    _produce(kafka_bootstrap, topic, [b"a", b"b", b"c"])
    consumer = Consumer(consumer_config)
    consumer.subscribe([topic])
    seen: list[bytes | None] = []
    deadline = time.monotonic() + 20
    while len(seen) < 3 and time.monotonic() < deadline:
        msg = consumer.poll(0.2)
        if msg is not None and msg.error() is None:
            seen.append(msg.value())
    assert seen == [b"a", b"b", b"c"]
    consumer.commit(offsets=[TopicPartition(topic, 0, 2)], asynchronous=False)
    consumer.close()

    # A new member of the same group resumes at the committed offset.
    again = Consumer(consumer_config)
    assert again.committed([TopicPartition(topic, 0)], timeout=10)[0].offset == 2
    again.subscribe([topic])
    msg = None
    deadline = time.monotonic() + 20
    while msg is None and time.monotonic() < deadline:
        candidate = again.poll(0.2)
        if candidate is not None and candidate.error() is None:
            msg = candidate
    again.close()
    assert msg is not None and msg.value() == b"c" and msg.offset() == 2


_HOLDER = """
import sys, time
from connector.testing.broker import EmbeddedBroker
broker = EmbeddedBroker()
broker.start()
print(broker.watchdog_pid, flush=True)
time.sleep(600)
"""


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(p) for p in (task / "children").read_text().split()]
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_sigkill_of_the_owner_leaves_no_broker_behind() -> None:
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None
    watchdog = int(holder.stdout.readline())
    tansu = _children(watchdog)
    assert len(tansu) == 1 and "tansu" in Path(f"/proc/{tansu[0]}/cmdline").read_text()
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    deadline = time.monotonic() + 10
    while (_alive(tansu[0]) or _alive(watchdog)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(tansu[0]), "tansu outlived the process that started it"
    assert not _alive(watchdog)

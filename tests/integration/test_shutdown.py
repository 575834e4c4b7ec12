"""Stopping `rd-connector run` as supervisors do: signals to the whole process group (systemd's default
KillMode, `timeout`, process managers), SIGHUP, and a stop while RD fails (work left unsettled)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest

from connector.commands.sample import generate_messages
from connector.testing.kafka_tools import committed_offsets, produce_acked, read_topic
from connector.testing.mock_rd import MockRdServer
from tests.integration.pipeline_support import (
    Topics,
    connector_env,
    decode_results,
    spawn_connector,
    start_pipeline,
    wait_until,
)

pytestmark = pytest.mark.integration


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _wait(proc: subprocess.Popen[bytes], timeout: float) -> int:
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise


class _Trickle:
    """Produces `messages` in small acknowledged chunks on a thread until stopped, so that the connector is
    consuming (and its decode worker decoding) when a signal comes."""

    def __init__(self, bootstrap: str, topic: str, messages: Sequence[tuple[bytes | None, bytes | None]]) -> None:
        self.ends: dict[int, int] = {}
        self.produced = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(bootstrap, topic, messages), daemon=True)
        self._thread.start()

    def _run(self, bootstrap: str, topic: str, messages: Sequence[tuple[bytes | None, bytes | None]]) -> None:
        for start in range(0, len(messages), 50):
            if self._stop.wait(0.02):
                return
            for partition, end in produce_acked(bootstrap, topic, messages[start : start + 50]).items():
                self.ends[partition] = max(self.ends.get(partition, 0), end)
            self.produced = start + 50

    def stop(self) -> dict[int, int]:
        self._stop.set()
        self._thread.join(60)
        return self.ends


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=lambda s: signal.Signals(s).name)
def test_a_signal_to_the_process_group_drains_commits_and_exits_0(
    kafka_bootstrap: str, topics: Topics, rd: MockRdServer, tmp_path: Path, signum: signal.Signals
) -> None:
    messages = [(m.key, m.value) for m in generate_messages(8000, seed=51)]
    env = connector_env(kafka_bootstrap, rd.url, topics, RDC_DECODE_WORKERS="1", RDC_BATCH_MAX_BYTES="20000")
    log_path = tmp_path / "run.log"
    proc = spawn_connector(env, str(log_path), new_session=True)
    trickle = _Trickle(kafka_bootstrap, topics.source, messages)
    try:
        assert wait_until(lambda: len(rd.accepted) >= 500, 60)
        os.killpg(proc.pid, signum)  # every process of the group, the decode worker too, while records flow
        code = _wait(proc, 60)
    finally:
        ends = trickle.stop()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    log = log_path.read_text()
    assert code == 0, log
    assert f"stopping signal={signal.Signals(signum).name}" in log
    assert "drain_failed" not in log and "shutdown_unsettled" not in log
    assert wait_until(lambda: not _group_alive(proc.pid), 5), "the decode worker outlived the connector"
    assert trickle.produced < len(messages), "the signal came after the last record was produced"

    # Everything that settled is committed, and nothing else: each partition's results are exactly the
    # offsets below its committed position.
    committed = committed_offsets(kafka_bootstrap, topics.group, topics.source, 3)
    results = decode_results(read_topic(kafka_bootstrap, topics.results, 1, len(rd.accepted)))
    for partition in range(3):
        delivered = sorted(r["source_offset"] for r in results if r["source_partition"] == partition)
        assert delivered == list(range(max(committed[partition], 0))), partition

    # The rest is delivered by the next run, once: nothing was lost or posted twice.
    running = start_pipeline(env)
    try:
        assert wait_until(lambda: committed_offsets(kafka_bootstrap, topics.group, topics.source, 3) == ends, 60)
    finally:
        assert running.stop() == 0
    assert len(rd.accepted) == sum(ends.values())


def test_a_stop_while_rd_fails_exits_6_says_what_was_left_and_commits_only_what_settled(
    kafka_bootstrap: str, topics: Topics, rd: MockRdServer, tmp_path: Path
) -> None:
    messages = generate_messages(600, seed=52)
    delivered_first = [(m.key, m.value) for m in messages[:300]]
    ends = produce_acked(kafka_bootstrap, topics.source, delivered_first)
    env = connector_env(kafka_bootstrap, rd.url, topics, RDC_SHUTDOWN_TIMEOUT_S="1")
    log_path = tmp_path / "run.log"
    proc = spawn_connector(env, str(log_path))
    try:
        assert wait_until(lambda: committed_offsets(kafka_bootstrap, topics.group, topics.source, 3) == ends, 60)
        rd.configure(error_5xx_ratio=1.0)  # RD is down from now on
        produce_acked(kafka_bootstrap, topics.source, [(m.key, m.value) for m in messages[300:]])
        assert wait_until(lambda: sum(r.status >= 500 for r in rd.requests) >= 3, 30)
        proc.send_signal(signal.SIGTERM)
        code = _wait(proc, 30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    log = log_path.read_text()
    assert code == 6, log
    assert committed_offsets(kafka_bootstrap, topics.group, topics.source, 3) == ends  # nothing past what settled
    assert len(rd.accepted) == 300
    warning = re.search(r"WARNING.*shutdown_unsettled events=(\d+) partitions=(\d+)", log)
    assert warning is not None, log
    stopped = re.search(r"stopped exit_code=6 consumed=(\d+) delivered=(\d+) dead_lettered=(\d+) tombstones=(\d+)", log)
    assert stopped is not None, log
    consumed, delivered, dead_lettered, tombstones = (int(n) for n in stopped.groups())
    events, partitions = int(warning.group(1)), int(warning.group(2))
    assert events == consumed - delivered - dead_lettered - tombstones > 0
    assert 1 <= partitions <= 3
    assert "redelivered" in warning.group(0) or "redelivered" in log[warning.end() : warning.end() + 200]

"""Shared pieces of the pipeline integration tests: a connector running in-process (thread) or as a
real `rd-connector run` subprocess, configured against the session broker and a mock RD API."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from connector.avro import Decoder, default_catalog
from connector.commands.run import build_pipeline
from connector.config import load_settings
from connector.mapping import map_record
from connector.pipeline import Pipeline
from connector.testing.broker import FAST_JOIN_CONSUMER


@dataclass
class Topics:
    source: str
    results: str
    dlq: str
    partitions: int
    group: str


def connector_env(bootstrap: str, rd_url: str, topics: Topics, **overrides: str) -> dict[str, str]:
    """`RDC_*` variables for a connector against the test broker and mock."""
    env = {
        "RDC_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "RDC_TOPICS": topics.source,
        "RDC_RESULTS_TOPIC": topics.results,
        "RDC_DLQ_TOPIC": topics.dlq,
        "RDC_GROUP_ID": topics.group,
        "RDC_RD_BASE_URL": rd_url,
        "RDC_RD_ACCESS_TOKEN": "test-token-secret",
        "RDC_BATCH_LINGER_MS": "100",
        "RDC_RETRY_BACKOFF_INITIAL_MS": "20",
        "RDC_RETRY_BACKOFF_MAX_MS": "200",
        "RDC_SHUTDOWN_TIMEOUT_S": "10",
        "RDC_RD_REQUESTS_PER_MINUTE": "0",  # the mock is local: no request budget unless a test sets one
        "RDC_LEDGER_TOPIC": f"{topics.results}.ledger",  # created by the connector, one per test
        "RDC_TOKEN_STORE_TOPIC": f"{topics.results}.tokens",  # likewise: no test adopts another's tokens
        "RDC_METRICS_PORT": "0",  # several connectors share the machine; a test that scrapes picks a port
        **{f"RDC_KAFKA__{k.upper().replace('.', '_')}": str(v) for k, v in FAST_JOIN_CONSUMER.items()},
    }
    env.update(overrides)
    return env


@dataclass
class RunningPipeline:
    pipeline: Pipeline
    thread: threading.Thread
    exit_codes: list[int] = field(default_factory=list)

    def settled(self) -> int:
        return self.pipeline.stats.delivered + self.pipeline.stats.dead_lettered

    def stop(self, timeout: float = 30.0) -> int:
        self.pipeline.stop()
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "pipeline did not stop"
        return self.exit_codes[0]


def start_pipeline(env: dict[str, str]) -> RunningPipeline:
    pipeline = build_pipeline(load_settings(env))
    running = RunningPipeline(pipeline, threading.Thread(target=lambda: None))
    running.thread = threading.Thread(target=lambda: running.exit_codes.append(pipeline.run()), daemon=True)
    running.thread.start()
    return running


def wait_until(condition: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


def spawn_connector(env: dict[str, str], log_path: str, new_session: bool = False) -> subprocess.Popen[bytes]:
    """`rd-connector run` as a real process (for kill -9 and multi-member tests). `new_session`: in its own
    session and process group (its pid is the group id), so a test can signal the whole group as a
    supervisor does."""
    log = open(log_path, "ab")  # noqa: SIM115
    return subprocess.Popen(
        [sys.executable, "-m", "connector.cli", "run"],
        env={**os.environ, **env},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=new_session,
    )


def expected_payloads(values: list[bytes]) -> set[bytes]:
    """The distinct RD payloads (as JSON) the connector should deliver for these valid values."""
    decoder = Decoder(default_catalog())
    found = set()
    for value in values:
        decoded = decoder.decode(value, "source")
        found.add(orjson.dumps(map_record(decoded.full_name, decoded.record).payload))
    return found


def decode_results(messages: list[Any]) -> list[dict[str, Any]]:
    decoder = Decoder(default_catalog())
    return [decoder.decode(m.value(), "results").record for m in messages]

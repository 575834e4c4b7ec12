"""`rd-connector run` (`connector.commands.run.cli`) with its Kafka edges and the pipeline faked: what the
runner itself wires and cleans up."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any, ClassVar

import httpx
import pytest

import connector.commands.rd_accounts as rd_accounts
from connector.avro import SchemaRegistryClient
from connector.avro import registry_from_settings as real_registry_from_settings
from connector.commands import run as runner
from connector.config import Settings
from connector.errors import EXIT_CRASH, EXIT_OK, ConnectorError
from connector.pipeline import PipelineStats
from connector.rd.bounded_http import bounded_client as real_bounded_client
from connector.settle.letter_limit import LetterLimit
from connector.testing.schema_registry import FakeSchemaRegistry


class FakePipeline:
    """Stands in for `Pipeline`: keeps its arguments; `run` records which clients were open meanwhile."""

    built: ClassVar[list[FakePipeline]] = []
    clients: ClassVar[dict[str, list[Any]]] = {}  # the fixture's: the HTTP clients the runner built

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs
        self.stats = PipelineStats()
        self.open_during_run: list[bool] = []
        FakePipeline.built.append(self)

    def run(self) -> int:
        registries = [registry for registry in self.clients["registry"] if registry is not None]
        http = [*self.clients["rd"], *(registry._client for registry in registries)]
        self.open_during_run = [not client.is_closed for client in http]
        return EXIT_OK

    def stop(self) -> None:
        pass


@pytest.fixture
def faked(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, list[Any]]]:
    """`runner.cli` with fake Kafka clients and pipeline, and no change to this process's signal handlers,
    GC, switch interval or logging; yields the HTTP clients it built (`rd`, `registry`)."""
    built: dict[str, list[Any]] = {"rd": [], "registry": []}
    FakePipeline.built, FakePipeline.clients = [], built

    def bounded_client(*args: Any) -> httpx.Client:
        client = real_bounded_client(*args)
        built["rd"].append(client)
        return client

    def registry_from_settings(settings: Settings) -> SchemaRegistryClient | None:
        registry = real_registry_from_settings(settings)
        built["registry"].append(registry)
        return registry

    monkeypatch.setattr(rd_accounts, "bounded_client", bounded_client)
    monkeypatch.setattr(runner, "registry_from_settings", registry_from_settings)
    monkeypatch.setattr(runner, "Pipeline", FakePipeline)
    monkeypatch.setattr(runner, "new_admin", lambda config: object())
    monkeypatch.setattr(runner, "new_producer", lambda config: object())
    monkeypatch.setattr(runner, "new_consumer", lambda config: object())
    monkeypatch.setattr(runner, "learn_letter_limit", lambda *a, **k: LetterLimit(1_000_000, None, "unknown"))
    monkeypatch.setattr(runner, "tune_gc", lambda: None)
    monkeypatch.setattr(signal, "signal", lambda signum, handler: None)
    monkeypatch.setattr(sys, "setswitchinterval", lambda interval: None)
    root = logging.getLogger()
    handlers, level, hooks = list(root.handlers), root.level, (sys.excepthook, threading.excepthook)
    yield built
    root.handlers[:] = handlers
    root.setLevel(level)
    sys.excepthook, threading.excepthook = hooks


@pytest.fixture
def registry() -> Iterator[FakeSchemaRegistry]:
    with FakeSchemaRegistry() as fake:
        yield fake


def _env(monkeypatch: pytest.MonkeyPatch, **extra: str) -> None:
    env = {
        "RDC_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",  # never reached: every Kafka client is faked
        "RDC_TOPICS": "orders",
        "RDC_RD_ACCESS_TOKEN": "at-run-command-test-token",  # long: the redactor masks it in later tests' logs
        "RDC_METRICS_PORT": "0",
        "RDC_DECODE_WORKERS": "0",
        "RDC_EFFECTIVELY_ONCE": "false",
        **extra,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)


def test_run_closes_the_rd_and_registry_clients_when_it_ends(
    faked: dict[str, list[Any]], registry: FakeSchemaRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    _env(monkeypatch, RDC_SCHEMA_REGISTRY_URL=registry.url)
    assert runner.cli([]) == EXIT_OK
    [pipeline] = FakePipeline.built
    [rd_http], [registry_client] = faked["rd"], faked["registry"]
    assert pipeline.open_during_run == [True, True]  # open while the pipeline runs
    assert rd_http.is_closed and registry_client._client.is_closed  # closed once run ended


def test_run_closes_the_rd_client_when_the_build_fails_after_it(
    faked: dict[str, list[Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    _env(monkeypatch)

    def refuse(**kwargs: Any) -> None:
        raise ConnectorError("the pipeline cannot be built")

    monkeypatch.setattr(runner, "Pipeline", refuse)
    assert runner.cli([]) == EXIT_CRASH
    [rd_http] = faked["rd"]
    assert rd_http.is_closed


def test_a_revoke_waits_rdc_shutdown_timeout_s_as_readme_says(
    faked: dict[str, list[Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    _env(monkeypatch, RDC_SHUTDOWN_TIMEOUT_S="12.5")
    assert runner.cli([]) == EXIT_OK
    [pipeline] = FakePipeline.built
    assert pipeline.kwargs["shutdown_timeout_s"] == pipeline.kwargs["revoke_timeout_s"] == 12.5

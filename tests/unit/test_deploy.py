"""Container and Kubernetes files: they parse, and every command, flag and RDC_* variable in them is real.

No container engine runs here, so the wiring is checked structurally: each `rd-connector` command line is
parsed by that subcommand's own argparse parser, each RDC_* name is a setting, and host names, ports and
topics agree between services. `docker compose config` (or `docker-compose config`) runs when available.
tests/integration/test_check.py runs the compose wiring itself against loopback stand-ins.
"""

from __future__ import annotations

import argparse
import importlib
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from connector.cli import COMMANDS
from connector.config import KAFKA_ENV_PREFIX, SPECS, load_settings
from connector.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
KUBERNETES = ROOT / "deploy" / "kubernetes.yaml"
KUBERNETES_SECRET = ROOT / "deploy" / "kubernetes-secret.env.example"
DOCKERFILE = ROOT / "Dockerfile"
OUR_IMAGE = "rd-connector"

KNOWN_SETTINGS = frozenset(spec.env for spec in SPECS) | {"RDC_CONFIG_FILE"}


class _Parsed(Exception):
    def __init__(self, namespace: argparse.Namespace) -> None:
        super().__init__()
        self.namespace = namespace


def parse_command(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> argparse.Namespace:
    """Parse `rd-connector <argv>` with the subcommand's real parser, without running it."""
    assert argv and argv[0] in COMMANDS, f"{argv[0]!r} is not an rd-connector command"
    original = argparse.ArgumentParser.parse_args

    def parse_then_stop(self: argparse.ArgumentParser, args: Any = None, namespace: Any = None) -> Any:
        raise _Parsed(original(self, args, namespace))

    module = importlib.import_module(COMMANDS[argv[0]][0])
    with monkeypatch.context() as patch:
        patch.setattr(argparse.ArgumentParser, "parse_args", parse_then_stop)
        with pytest.raises(_Parsed) as parsed:
            module.cli(argv[1:])
    return parsed.value.namespace


def assert_known_settings(env: dict[str, Any]) -> None:
    for name in env:
        if name.startswith("RDC_"):
            assert name in KNOWN_SETTINGS or (name.startswith(KAFKA_ENV_PREFIX) and name != KAFKA_ENV_PREFIX), name


# -- docker-compose.yml ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return dict(compose["services"])


def ours(services: dict[str, dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    return ((name, s) for name, s in services.items() if s.get("image", "").startswith(OUR_IMAGE) or "build" in s)


def env_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def test_compose_services(services: dict[str, dict[str, Any]]) -> None:
    assert {"kafka", "topics", "schema-registry", "mock-rd", "sample-producer", "connector"} <= set(services)
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert services["schema-registry"]["image"].startswith("confluentinc/cp-schema-registry:")
    assert {name for name, _ in ours(services)} == {"mock-rd", "sample-producer", "connector"}


def test_kafka_runs_in_kraft_mode(services: dict[str, dict[str, Any]]) -> None:
    env = env_of(services["kafka"])
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert not any("ZOOKEEPER" in name for name in env)
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{env['KAFKA_NODE_ID']}@kafka:9093"


def test_commands_are_real_subcommands_and_flags(
    services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    for _name, service in ours(services):
        parse_command(list(service["command"]), monkeypatch)
        assert_known_settings(env_of(service))


def test_parse_command_rejects_what_the_parsers_reject(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SystemExit):
        parse_command(["produce-sample", "--topic", "t", "--no-such-flag"], monkeypatch)
    with pytest.raises(AssertionError, match="not an rd-connector command"):
        parse_command(["serve"], monkeypatch)
    assert parse_command(["run", "--config", "x.toml"], monkeypatch).config == "x.toml"


def test_connector_settings_are_real(services: dict[str, dict[str, Any]]) -> None:
    env = env_of(services["connector"])
    assert_known_settings(env)
    commented = re.findall(r"#\s*(RDC_\w+):", COMPOSE.read_text())
    assert commented, "the commented real-RD variant is missing"
    assert_known_settings(dict.fromkeys(commented, ""))


def test_wiring_agrees(services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> None:
    kafka_env = env_of(services["kafka"])
    in_network = [url.split("://", 1)[1] for url in kafka_env["KAFKA_ADVERTISED_LISTENERS"].split(",")]
    connector = env_of(services["connector"])
    assert connector["RDC_KAFKA_BOOTSTRAP_SERVERS"] in in_network

    mock = parse_command(list(services["mock-rd"]["command"]), monkeypatch)
    assert mock.host == "0.0.0.0"
    rd = urlsplit(connector["RDC_RD_BASE_URL"])
    assert (rd.hostname, rd.port) == ("mock-rd", mock.port)

    registry_port = urlsplit(env_of(services["schema-registry"])["SCHEMA_REGISTRY_LISTENERS"]).port
    registry = urlsplit(connector["RDC_SCHEMA_REGISTRY_URL"])
    assert (registry.hostname, registry.port) == ("schema-registry", registry_port)

    producer = parse_command(list(services["sample-producer"]["command"]), monkeypatch)
    assert producer.bootstrap_servers == connector["RDC_KAFKA_BOOTSTRAP_SERVERS"]
    assert producer.schema_registry_url == connector["RDC_SCHEMA_REGISTRY_URL"]
    assert producer.topic in connector["RDC_TOPICS"].split(",")

    created = re.findall(r"([\w.\-]+):\d+", " ".join(services["topics"]["command"]).split("for topic in", 1)[1])
    wanted = [*connector["RDC_TOPICS"].split(","), connector["RDC_RESULTS_TOPIC"], connector["RDC_DLQ_TOPIC"]]
    assert set(wanted) <= set(created)

    port = connector["RDC_METRICS_PORT"]
    assert f"127.0.0.1:{port}:{port}" in services["connector"]["ports"]


def test_connector_environment_loads_and_allows_the_mocks_plain_http(services: dict[str, dict[str, Any]]) -> None:
    """The mock RD on the compose network is plain http to a host that is not loopback: the connector starts
    only because the file says so (RDC_ALLOW_INSECURE_HTTP), and would refuse without it."""
    env = env_of(services["connector"])
    settings = load_settings(env)
    assert settings.rd_base_url == "http://mock-rd:8765" and settings.allow_insecure_http
    without = {k: v for k, v in env.items() if k != "RDC_ALLOW_INSECURE_HTTP"}
    with pytest.raises(ConfigError, match="RDC_RD_BASE_URL=http://mock-rd:8765 is plain http"):
        load_settings(without)


def test_connector_waits_for_its_dependencies(services: dict[str, dict[str, Any]]) -> None:
    depends = services["connector"]["depends_on"]
    assert depends["topics"]["condition"] == "service_completed_successfully"
    assert depends["mock-rd"]["condition"] == "service_healthy"
    assert depends["schema-registry"]["condition"] == "service_healthy"


def test_ports_published_on_loopback_only(services: dict[str, dict[str, Any]]) -> None:
    for service in services.values():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), port


def _compose_cli() -> list[str] | None:
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


def test_compose_config_validates() -> None:
    command = _compose_cli()
    if command is None:
        pytest.skip("neither `docker compose` nor `docker-compose` is installed")
    result = subprocess.run([*command, "-f", str(COMPOSE), "config", "-q"], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr


# -- Dockerfile --------------------------------------------------------------------------------------


def instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def test_dockerfile() -> None:
    steps = instructions()
    bases = [arg.split()[0] for op, arg in steps if op == "FROM"]
    assert bases and all(base == "python:3.11-slim" for base in bases)
    final = steps[max(i for i, (op, _) in enumerate(steps) if op == "FROM") :]
    users = [arg for op, arg in final if op == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert ("ENTRYPOINT", '["rd-connector"]') in final
    assert ("CMD", '["run"]') in final
    health = next(arg for op, arg in final if op == "HEALTHCHECK")
    assert "/healthz" in health and "RDC_METRICS_PORT" in health and "curl" not in health
    installs = [arg for op, arg in steps if op == "RUN" and "pip install" in arg]
    assert installs and all("--no-cache-dir" in arg and "[" not in arg for arg in installs)
    # What users install is what the image runs: the wheel is built, then installed (not `pip install .`).
    assert all("pip wheel" in arg and ".whl" in arg and "pip install ." not in arg for arg in installs)
    assert not [arg for op, arg in final if op == "RUN" and "pip" in arg], "the final stage installs nothing"
    assert any(op == "COPY" and arg.startswith("--from=build") for op, arg in final)
    for op, arg in steps:
        if op == "COPY" and "--from" not in arg:
            for source in arg.split()[:-1]:
                assert (ROOT / source).exists(), source


def test_dockerignore_keeps_the_build_context_small() -> None:
    ignored = set(Path(ROOT / ".dockerignore").read_text().split())
    assert {".git", ".venv", "tests", "**/__pycache__", ".mypy_cache", ".pytest_cache"} <= ignored
    needed = {"pyproject.toml", "setup.py", "README.md", "connector", "schemas"}
    assert not needed & ignored


# -- deploy/kubernetes.yaml --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def manifests() -> dict[str, dict[str, Any]]:
    documents = [doc for doc in yaml.safe_load_all(KUBERNETES.read_text()) if doc]
    return {doc["kind"]: doc for doc in documents}


@pytest.fixture(scope="module")
def secret_keys() -> dict[str, str]:
    """The Secret's keys, as `kubectl create secret generic --from-env-file` reads the example file."""
    lines = KUBERNETES_SECRET.read_text().splitlines()
    pairs = [line.split("=", 1) for line in lines if line.strip() and not line.startswith("#")]
    return {key: value for key, value in pairs}


def test_kubernetes_documents(manifests: dict[str, dict[str, Any]], secret_keys: dict[str, str]) -> None:
    assert {"Deployment", "ConfigMap", "PodDisruptionBudget"} <= set(manifests)
    assert "Secret" not in manifests  # an apply would overwrite the real one with placeholders
    text = KUBERNETES.read_text()
    assert "kubectl create secret generic rd-connector --from-env-file=" in text
    assert_known_settings(manifests["ConfigMap"]["data"])
    assert_known_settings(secret_keys)
    assert {"RDC_RD_CLIENT_SECRET", "RDC_RD_REFRESH_TOKEN", "RDC_TOKEN_STORE_KEY"} <= set(secret_keys)
    assert not any(k in manifests["ConfigMap"]["data"] for k in secret_keys), "a credential in the ConfigMap"


def test_kubernetes_disruption_budget_lets_a_drain_evict_unready_pods(manifests: dict[str, dict[str, Any]]) -> None:
    """While RD is down every pod is NotReady; a drain must still be able to evict them."""
    spec = manifests["PodDisruptionBudget"]["spec"]
    assert spec["unhealthyPodEvictionPolicy"] == "AlwaysAllow" and spec["maxUnavailable"] == 1
    assert spec["selector"] == manifests["Deployment"]["spec"]["selector"]


def test_kubernetes_settings_load(manifests: dict[str, dict[str, Any]], secret_keys: dict[str, str]) -> None:
    env = {**manifests["ConfigMap"]["data"], **secret_keys}
    settings = load_settings(env)
    settings.require_pipeline()
    assert settings.rd_base_url.startswith("https://") and not settings.allow_insecure_http


def test_kubernetes_deployment(manifests: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> None:
    deployment = manifests["Deployment"]
    config = manifests["ConfigMap"]["data"]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    parse_command(list(container["args"]), monkeypatch)
    assert {"secretRef": {"name": "rd-connector"}} in container["envFrom"]
    port = next(p for p in container["ports"] if p["name"] == "metrics")
    assert str(port["containerPort"]) == config["RDC_METRICS_PORT"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    resources = container["resources"]
    assert set(resources) == {"requests", "limits"} and resources["limits"]["cpu"] == "1"
    mebibytes = {kind: int(resources[kind]["memory"].removesuffix("Mi")) for kind in ("requests", "limits")}
    # BENCHMARKS.md: draining 1,000,000 events peaked at 98 MiB RSS with the default buffer and no decode
    # worker (153 MiB with one), so the sizing holds only while the pod decodes in-process.
    assert config["RDC_DECODE_WORKERS"] == "0"
    assert 98 <= mebibytes["requests"] < mebibytes["limits"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["terminationGracePeriodSeconds"] > float(config["RDC_SHUTDOWN_TIMEOUT_S"])
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxSurge"] == 0
    text = KUBERNETES.read_text()
    assert "replicas <= " in text and "rdc_consumer_lag" in text  # the scaling note


def test_manifest_round_trips_as_json(manifests: dict[str, dict[str, Any]]) -> None:
    """What kubectl sends is JSON: every value must be representable (no YAML-only types)."""
    for document in manifests.values():
        assert json.loads(json.dumps(document)) == document

"""`rd-connector check` against the session broker, the mock RD API (strict auth) and the fake registry.

Each failure mode must be named precisely: unreachable broker, missing topic, bad token (refresh flow and
static), and no secret may ever be printed.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from connector.commands.check import cli
from connector.commands.sample import generate_messages
from connector.testing.kafka_tools import produce_acked
from connector.testing.mock_rd import MockAccount, MockRdServer
from connector.testing.schema_registry import FakeSchemaRegistry
from tests.integration.pipeline_support import Topics, connector_env, start_pipeline, wait_until

pytestmark = pytest.mark.integration

CLIENT_ID = "check-client"
CLIENT_SECRET = "cs-Very-Secret-4711"
REFRESH_TOKEN = "rt-Refresh-Secret-0815"
ACCOUNT_SECRETS = ("cs-North-Secret-1", "rt-North-Refresh-2", "cs-South-Secret-3", "rt-South-Refresh-4")
SECRETS = (CLIENT_SECRET, REFRESH_TOKEN, *ACCOUNT_SECRETS)  # never in check's output


@pytest.fixture
def rd() -> Iterator[MockRdServer]:
    with MockRdServer(
        strict_auth=True, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, refresh_tokens=[REFRESH_TOKEN]
    ) as server:
        yield server


@pytest.fixture
def registry() -> Iterator[FakeSchemaRegistry]:
    with FakeSchemaRegistry() as fake:
        yield fake


@pytest.fixture
def topics(make_topic: Callable[..., str]) -> dict[str, str]:
    return {
        "RDC_TOPICS": make_topic("src", 2),
        "RDC_RESULTS_TOPIC": make_topic("results"),
        "RDC_DLQ_TOPIC": make_topic("dlq"),
    }


@pytest.fixture
def env(kafka_bootstrap: str, rd: MockRdServer, topics: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """A complete, valid configuration with the refresh flow."""
    return {
        "RDC_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "RDC_RD_BASE_URL": rd.url,
        "RDC_RD_CLIENT_ID": CLIENT_ID,
        "RDC_RD_CLIENT_SECRET": CLIENT_SECRET,
        "RDC_RD_REFRESH_TOKEN": REFRESH_TOKEN,
        "RDC_RD_TOKEN_FILE": str(tmp_path / "state" / "rd-token.json"),
        "RDC_TOKEN_STORE_TOPIC": f"{topics['RDC_RESULTS_TOPIC']}.tokens",  # one per test: no test adopts another's
        **topics,
    }


def run_check(env: dict[str, str], capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, str]]:
    """Exit code and {check name: its line}; asserts no secret reached the output."""
    code = cli(["--timeout", "3", *args], env=env)
    out = capsys.readouterr().out
    public = ("RDC_RD_TOKEN_FILE", "RDC_TOKEN_STORE", "RDC_TOKEN_STORE_TOPIC")
    configured = [v for k, v in env.items() if ("TOKEN" in k or "SECRET" in k) and k not in public and v]
    for secret in (*SECRETS, *configured):
        assert secret not in out
    lines = {
        line.split()[1].rstrip(":"): line for line in out.splitlines() if line.split()[0] in ("PASS", "FAIL", "SKIP")
    }
    return code, lines


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_all_pass_with_refresh_flow_and_registry(
    env: dict[str, str], registry: FakeSchemaRegistry, rd: MockRdServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code, lines = run_check({**env, "RDC_SCHEMA_REGISTRY_URL": registry.url}, capsys)
    assert code == 0, lines
    assert [line.split()[0] for line in lines.values()] == ["PASS"] * 6
    assert "src-" in lines["topics"] and "2 partitions" in lines["topics"]
    assert "no event sent" in lines["rd-api"]
    assert rd.accepted == []  # the probe sent no event
    assert [(r.path, r.status) for r in rd.requests] == [("/auth/token", 200), ("/platform/events/batch", 400)]


def test_static_token_accepted(env: dict[str, str], rd: MockRdServer, capsys: pytest.CaptureFixture[str]) -> None:
    body = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "refresh_token": REFRESH_TOKEN}
    token = httpx.post(f"{rd.url}/auth/token", json=body).json()["access_token"]
    static = {k: v for k, v in env.items() if not k.startswith("RDC_RD_") or k == "RDC_RD_BASE_URL"}
    code, lines = run_check({**static, "RDC_RD_ACCESS_TOKEN": token}, capsys)
    assert code == 0, lines
    assert lines["rd-token"].startswith("SKIP rd-token: static access token")
    assert lines["schema-registry"].startswith("SKIP")
    assert lines["rd-api"].startswith("PASS")


def test_unreachable_broker(env: dict[str, str], rd: MockRdServer, capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    began = time.monotonic()
    code, lines = run_check({**env, "RDC_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{port}"}, capsys, "--timeout", "1")
    assert time.monotonic() - began < 10
    assert code == 1
    assert lines["brokers"].startswith(f"FAIL brokers: cannot reach 127.0.0.1:{port} within 1 s")
    assert "Connection refused" in lines["brokers"]
    assert lines["topics"] == "SKIP topics: brokers unreachable"
    # the token store is on Kafka: no refresh without it (RD may rotate the refresh token run reads there)
    topic = env["RDC_TOKEN_STORE_TOPIC"]
    assert lines["rd-token"].startswith(f"FAIL rd-token: not refreshed: the token store RDC_TOKEN_STORE_TOPIC={topic}")
    assert "Kafka is unreachable (see brokers)" in lines["rd-token"] and "Connection refused" in lines["rd-token"]
    assert lines["rd-api"] == "SKIP rd-api: no access token to call RD with" and rd.requests == []

    unstored = {**env, "RDC_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{port}", "RDC_TOKEN_STORE": "false"}
    code, lines = run_check(unstored, capsys, "--timeout", "1")
    assert code == 1 and lines["rd-api"].startswith("PASS")  # without the store the RD checks still run


def test_missing_topic(env: dict[str, str], kafka_bootstrap: str, capsys: pytest.CaptureFixture[str]) -> None:
    from confluent_kafka.admin import AdminClient

    absent = f"absent-{time.monotonic_ns()}"
    code, lines = run_check({**env, "RDC_TOPICS": f"{env['RDC_TOPICS']},{absent}"}, capsys)
    assert code == 1
    assert lines["topics"].startswith(f"FAIL topics: missing: {absent} ")
    assert absent not in AdminClient({"bootstrap.servers": kafka_bootstrap}).list_topics(timeout=5).topics


def test_missing_results_and_dlq_topics(env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    code, lines = run_check({**env, "RDC_RESULTS_TOPIC": "no-results-x1", "RDC_DLQ_TOPIC": "no-dlq-x1"}, capsys)
    assert code == 1
    assert "missing: no-results-x1, no-dlq-x1" in lines["topics"]


def test_bad_refresh_token(env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    code, lines = run_check({**env, "RDC_RD_REFRESH_TOKEN": "rt-wrong-Secret-999"}, capsys)
    assert code == 1
    assert lines["rd-token"].startswith("FAIL rd-token: RD refused the refresh credentials (HTTP 401")
    assert "INVALID_REFRESH_TOKEN" in lines["rd-token"]
    assert lines["rd-api"] == "SKIP rd-api: no access token to call RD with"


def test_bad_client_secret(env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    code, lines = run_check({**env, "RDC_RD_CLIENT_SECRET": "cs-wrong-Secret-999"}, capsys)
    assert code == 1
    assert "ACCESS_DENIED" in lines["rd-token"]


def test_bad_static_token(env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    static = {k: v for k, v in env.items() if not k.startswith("RDC_RD_") or k == "RDC_RD_BASE_URL"}
    code, lines = run_check({**static, "RDC_RD_ACCESS_TOKEN": "at-Not-Issued-Secret-1"}, capsys)
    assert code == 1
    assert lines["rd-api"].startswith("FAIL rd-api: RD refused the access token (HTTP 401")


def test_rd_unreachable(env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    code, lines = run_check({**env, "RDC_RD_BASE_URL": f"http://127.0.0.1:{free_port()}"}, capsys)
    assert code == 1
    assert lines["rd-token"].startswith("FAIL rd-token: no access token from http://127.0.0.1:")
    assert "unreachable: ConnectError" in lines["rd-token"]


def test_registry_unreachable_and_refusing(
    env: dict[str, str], registry: FakeSchemaRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    code, lines = run_check({**env, "RDC_SCHEMA_REGISTRY_URL": url}, capsys)
    assert code == 1
    assert lines["schema-registry"].startswith(f"FAIL schema-registry: cannot reach {url}")
    registry.fail_with = 401
    code, lines = run_check({**env, "RDC_SCHEMA_REGISTRY_URL": registry.url}, capsys)
    assert code == 1
    assert "refused our credentials (HTTP 401)" in lines["schema-registry"]


def test_incomplete_and_invalid_configuration(env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    code, lines = run_check({k: v for k, v in env.items() if k != "RDC_TOPICS"}, capsys)
    assert code == 1
    assert lines["config"].startswith("FAIL config: RDC_TOPICS is not set")
    code, lines = run_check({**env, "RDC_BATCH_MAX_BYTES": "lots"}, capsys)
    assert code == 2
    assert lines == {"config": lines["config"]} and "RDC_BATCH_MAX_BYTES" in lines["config"]


def test_compose_wiring_on_loopback(
    kafka_bootstrap: str,
    make_topic: Callable[..., str],
    registry: FakeSchemaRegistry,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """docker-compose.yml's producer and connector, with each service host swapped for a loopback stand-in:
    the producer's command runs as written (fewer events, no rate), then `check` passes with the
    connector's environment as written."""
    from pathlib import Path

    import yaml

    from connector.commands.sample import cli as produce_sample

    services = yaml.safe_load((Path(__file__).resolve().parents[2] / "docker-compose.yml").read_text())["services"]
    connector_env = {k: str(v) for k, v in services["connector"]["environment"].items()}
    topic_names = [connector_env["RDC_TOPICS"], connector_env["RDC_RESULTS_TOPIC"], connector_env["RDC_DLQ_TOPIC"]]
    renamed = {name: make_topic(name) for name in topic_names}  # isolated from other tests
    with MockRdServer() as rd:  # compose's mock: default (lenient) auth, any bearer token
        hosts = {
            "kafka:9092": kafka_bootstrap,
            "http://mock-rd:8765": rd.url,
            "http://schema-registry:8081": registry.url,
        }

        local = {**hosts, **renamed}  # compose value -> loopback value (whole values only)

        command = [local.get(str(arg), str(arg)) for arg in services["sample-producer"]["command"]]
        assert command[0] == "produce-sample"
        command[command.index("--count") + 1], command[command.index("--rate") + 1] = "30", "0"
        assert produce_sample(command[1:]) == 0
        assert "sent=30 failed=0" in capsys.readouterr().out
        assert registry.subjects  # Confluent framing through the registry, as in compose

        env = {k: local.get(v, v) for k, v in connector_env.items() if not v.startswith("${")}
        env["RDC_RD_ACCESS_TOKEN"] = "demo-token"
        code, lines = run_check(env, capsys)
    assert code == 0, lines
    assert all(line.startswith(("PASS", "SKIP rd-token")) for line in lines.values()), lines


# -- several RD accounts: each reported -----------------------------------------------------------------


def test_two_accounts_each_reported_one_refused(
    kafka_bootstrap: str, topics: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    accounts = {
        "north": MockAccount("id-north", "cs-North-Secret-1", refresh_tokens=("rt-North-Refresh-2",)),
        "south": MockAccount("id-south", "cs-South-Secret-3", refresh_tokens=("rt-South-Refresh-4",)),
    }
    config = tmp_path / "connector.toml"
    config.write_text(
        """
[accounts.north]
rd_client_id = "id-north"
rd_client_secret_env = "NORTH_SECRET"
rd_refresh_token_file = "%s"

[accounts.south]
rd_client_id = "id-south"
rd_client_secret = "cs-South-Secret-3"
rd_refresh_token = "rt-South-Refresh-4"
"""
        % (tmp_path / "north-refresh")
    )
    (tmp_path / "north-refresh").write_text("rt-North-Refresh-2\n")
    with MockRdServer(accounts=accounts, strict_auth=True, rotate_refresh_token=True) as rd:
        rd.configure_account("south", refuse_refresh=True)
        env = {
            "RDC_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
            "RDC_RD_BASE_URL": rd.url,
            "RDC_TOKEN_STORE_TOPIC": f"{topics['RDC_RESULTS_TOPIC']}.tokens",
            "NORTH_SECRET": "cs-North-Secret-1",
            **topics,
        }
        code, lines = run_check(env, capsys, "--config", str(config))
        tokens = [(r.account, r.status) for r in rd.requests if r.path == "/auth/token"]
        probes = [(r.account, r.status) for r in rd.requests if r.path == "/platform/events/batch"]
    assert code == 1, lines
    topic = env["RDC_TOKEN_STORE_TOPIC"]
    assert lines["rd-token[north]"] == (
        f"PASS rd-token[north]: obtained an access token from {rd.url}/auth/token; published to the token store "
        f"(RDC_TOKEN_STORE_TOPIC={topic}) for run and the replicas (RD rotated the refresh token: the new one is "
        "there)"
    )
    assert lines["rd-api[north]"].startswith("PASS rd-api[north]: token accepted: HTTP 400")
    assert lines["rd-token[south]"] == (
        f"FAIL rd-token[south]: RD refused the refresh credentials (HTTP 401 from {rd.url}/auth/token): RD "
        "refused the refresh token of account south as INVALID_REFRESH_TOKEN (invalid or revoked). Authorise the "
        "app again and set rd_refresh_token of [accounts.south] to the new token"
    )
    assert lines["rd-api[south]"] == "SKIP rd-api[south]: no access token to call RD with"
    assert "rd-token" not in lines and "rd-api" not in lines  # no account default here
    assert tokens == [("north", 200), ("south", 401)] and probes == [("north", 400)]
    assert [line.split()[0] for name, line in lines.items() if not name.startswith("rd-")] == ["PASS"] * 3 + ["SKIP"]


# -- a rotating RD: check must never lock run out ------------------------------------------------------


def _rotating_rd() -> MockRdServer:
    return MockRdServer(
        strict_auth=True,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        refresh_tokens=[REFRESH_TOKEN],
        rotate_refresh_token=True,
    )


def _run_env(kafka_bootstrap: str, rd: MockRdServer, topics: Topics, **overrides: str) -> dict[str, str]:
    """`run`'s configuration with the refresh flow (no static token): the one `check` is run with too."""
    return connector_env(
        kafka_bootstrap,
        rd.url,
        topics,
        RDC_RD_ACCESS_TOKEN="",
        RDC_RD_CLIENT_ID=CLIENT_ID,
        RDC_RD_CLIENT_SECRET=CLIENT_SECRET,
        RDC_RD_REFRESH_TOKEN=REFRESH_TOKEN,
        **overrides,
    )


def _run_delivers(kafka_bootstrap: str, topics: Topics, rd: MockRdServer, env: dict[str, str], seed: int) -> None:
    """`run` (in this process) delivers a few events and stops cleanly: it was not locked out."""
    before = len(rd.accepted)
    produce_acked(kafka_bootstrap, topics.source, [(m.key, m.value) for m in generate_messages(20, seed=seed)])
    running = start_pipeline(env)
    try:
        assert wait_until(lambda: running.settled() == 20, 30), f"run delivered {running.settled()} of 20"
    finally:
        assert running.stop() == 0
    assert len(rd.accepted) == before + 20


def _stored(token_file: Path) -> str:
    value = json.loads(token_file.read_text())["refresh_token"]
    assert isinstance(value, str)
    return value


def test_check_then_run_with_a_rotating_rd_and_the_token_store(
    kafka_bootstrap: str, make_topic: Callable[..., str], group_id: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """check, run, check, run share the token store (RDC_TOKEN_STORE_TOPIC, one per test): no token file."""
    topics = Topics(make_topic("src", 1), make_topic("results"), make_topic("dlq"), 1, group_id)
    with _rotating_rd() as rd:
        env = _run_env(kafka_bootstrap, rd, topics)
        topic = env["RDC_TOKEN_STORE_TOPIC"]
        code, lines = run_check(env, capsys)
        assert code == 0, lines
        assert lines["rd-token"] == (
            f"PASS rd-token: obtained an access token from {rd.url}/auth/token; published to the token store "
            f"(RDC_TOKEN_STORE_TOPIC={topic}) for run and the replicas (RD rotated the refresh token: the new one "
            "is there)"
        )
        _run_delivers(kafka_bootstrap, topics, rd, env, seed=64)  # not locked out: it read the store

        code, lines = run_check(env, capsys)
        assert code == 0, lines
        assert lines["rd-token"] == (
            f"PASS rd-token: valid access token from the token store (RDC_TOKEN_STORE_TOPIC={topic}); not refreshed"
        )
        _run_delivers(kafka_bootstrap, topics, rd, env, seed=65)

        rd.expire_access_tokens()  # RD refuses the stored access token: run refreshes with the stored refresh token
        _run_delivers(kafka_bootstrap, topics, rd, env, seed=66)
        refreshes = [r.status for r in rd.requests if r.path == "/auth/token"]
        issued = rd.issued_tokens()
    # The first check refreshed (RD rotated the configured refresh token) and published RD's answer; the
    # first run, the second check and the second run each adopted that still valid access token from the store
    # instead of refreshing (a token file alone made that 4 refreshes, see the test below). After RD expired
    # it, the third run refreshed with the rotated refresh token from the store: RD accepted it.
    assert refreshes == [200, 200]
    assert not [t for t in issued if t in capsys.readouterr().out]


def test_check_then_run_with_a_rotating_rd_and_a_token_file_without_the_store(
    kafka_bootstrap: str,
    make_topic: Callable[..., str],
    group_id: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    topics = Topics(make_topic("src", 1), make_topic("results"), make_topic("dlq"), 1, group_id)
    token_file = tmp_path / "state" / "rd-token.json"
    with _rotating_rd() as rd:
        env = _run_env(kafka_bootstrap, rd, topics, RDC_RD_TOKEN_FILE=str(token_file), RDC_TOKEN_STORE="false")
        code, lines = run_check(env, capsys)
        assert code == 0, lines
        assert "RD rotated the refresh token" in lines["rd-token"] and str(token_file) in lines["rd-token"]
        after_check = _stored(token_file)  # the configured token is spent: the file holds the one RD accepts
        assert after_check != REFRESH_TOKEN and oct(token_file.stat().st_mode & 0o777) == "0o600"

        _run_delivers(kafka_bootstrap, topics, rd, env, seed=61)  # run starts from the file: not locked out
        after_run = _stored(token_file)
        assert after_run != after_check  # run rotated it again and kept the newest

        code, lines = run_check(env, capsys)  # check after run starts from the file too
        assert code == 0, lines
        assert _stored(token_file) != after_run
        _run_delivers(kafka_bootstrap, topics, rd, env, seed=62)
        refreshes = [r.status for r in rd.requests if r.path == "/auth/token"]
        issued = rd.issued_tokens()
    assert refreshes == [200] * 4  # check, run, check, run: no refused refresh
    assert not [t for t in issued if t in capsys.readouterr().out]


def test_without_a_token_file_check_does_not_spend_the_refresh_token(
    kafka_bootstrap: str, make_topic: Callable[..., str], group_id: str, capsys: pytest.CaptureFixture[str]
) -> None:
    topics = Topics(make_topic("src", 1), make_topic("results"), make_topic("dlq"), 1, group_id)
    with _rotating_rd() as rd:
        env = _run_env(kafka_bootstrap, rd, topics, RDC_TOKEN_STORE="false")
        code, lines = run_check(env, capsys)
        assert code == 1, lines
        assert lines["rd-token"].startswith("FAIL rd-token: not refreshed: RDC_RD_TOKEN_FILE is not set")
        assert "INVALID_REFRESH_TOKEN" in lines["rd-token"]  # says what run would have met
        assert lines["rd-api"] == "SKIP rd-api: no access token to call RD with"
        assert rd.requests == []  # the configured refresh token was not spent
        _run_delivers(kafka_bootstrap, topics, rd, env, seed=63)


def test_an_unwritable_token_file_fails_check_before_any_refresh(
    env: dict[str, str], rd: MockRdServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "not-a-directory").write_text("")
    token_file = tmp_path / "not-a-directory" / "rd-token.json"
    for store in ("true", "false"):  # a token file, when set, must be writable with the store too
        code, lines = run_check({**env, "RDC_RD_TOKEN_FILE": str(token_file), "RDC_TOKEN_STORE": store}, capsys)
        assert code == 1
        assert lines["rd-token"].startswith(f"FAIL rd-token: not refreshed: RDC_RD_TOKEN_FILE={token_file} cannot be")
    assert rd.requests == []

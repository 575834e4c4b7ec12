"""`rd-connector check`'s RD checks over an `httpx.MockTransport`: what they send (only `[]` to the batch
endpoint, through `RdClient`; the refresh through `RefreshingToken`) and how each answer is judged, per
account, with the token store (an in-memory `KafkaTokenStore` stand-in) and without it (RDC_TOKEN_STORE=false:
the token file). The same checks against a real broker, registry and mock RD are in
tests/integration/test_check.py."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest

from connector.commands import check
from connector.commands.check import CheckResult, run_checks
from connector.config import Secret, Settings, load_settings
from connector.errors import ConfigError, ConnectorError
from connector.rd.token_seal import Sealer, record_key
from connector.rd.token_store import StoredTokens, open_tokens, seal_tokens

BASE = "https://rd.test"
STATIC = {"RDC_RD_BASE_URL": BASE, "RDC_RD_ACCESS_TOKEN": "at-static-check-token"}


def _refresh_env(tmp_path: Path) -> dict[str, str]:
    return {
        "RDC_RD_BASE_URL": BASE,
        "RDC_RD_CLIENT_ID": "cid",
        "RDC_RD_CLIENT_SECRET": "cs-check-secret",
        "RDC_RD_REFRESH_TOKEN": "rt-check-refresh",
        "RDC_RD_TOKEN_FILE": str(tmp_path / "rd-token.json"),
        "RDC_TOKEN_STORE": "false",
    }


def _rd(
    env: dict[str, str], answer: Callable[[httpx.Request], httpx.Response], config: Path | None = None
) -> tuple[dict[str, CheckResult], list[httpx.Request]]:
    """The RD results of `run_checks` against `answer` (by name), and the requests it got; Kafka is not
    configured, so the checks before RD's are skipped."""
    results, requests = _run(env, answer, config)
    by_name = {r.name: r for r in results}
    assert [by_name[n].status for n in ("brokers", "topics", "schema-registry")] == ["SKIP"] * 3
    return {n: r for n, r in by_name.items() if n.startswith("rd-")}, requests


def _run(
    env: dict[str, str], answer: Callable[[httpx.Request], httpx.Response], config: Path | None = None
) -> tuple[list[CheckResult], list[httpx.Request]]:
    """Every result of `run_checks` with RD answered by `answer`, and the requests RD got."""
    requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return answer(request)

    with httpx.Client(transport=httpx.MockTransport(handler)) as http:
        return run_checks(load_settings(env, config), timeout_s=2, http=http), requests


def _batch(status: int, body: bytes = b'{"errors": []}') -> Callable[[httpx.Request], httpx.Response]:
    return lambda request: httpx.Response(status, content=body)


def test_static_token_posts_only_the_empty_batch() -> None:
    results, requests = _rd(STATIC, _batch(400))
    assert results["rd-token"].status == "SKIP" and results["rd-token"].detail.startswith("static access token")
    assert results["rd-api"] == CheckResult(
        "PASS",
        "rd-api",
        f"token accepted: HTTP 400 to an empty batch (no event sent) from {BASE}/platform/events/batch",
    )
    [request] = requests
    assert (request.method, str(request.url), request.content) == ("POST", f"{BASE}/platform/events/batch", b"[]")
    assert request.headers["Authorization"] == "Bearer at-static-check-token"
    assert request.headers["Content-Type"] == "application/json"


@pytest.mark.parametrize("status", [200, 400, 422])
def test_an_answer_past_authentication_passes(status: int) -> None:
    assert _rd(STATIC, _batch(status))[0]["rd-api"].status == "PASS"


def test_401_403_and_unexpected_answers_fail_with_an_excerpt() -> None:
    refused = _rd(STATIC, _batch(401, b'{"errors":  {"error_type": "UNAUTHORIZED"}}'))[0]["rd-api"]
    assert refused.status == "FAIL"
    assert refused.detail == (
        f'RD refused the access token (HTTP 401 from {BASE}/platform/events/batch): {{"errors": {{"error_type": '
        '"UNAUTHORIZED"}}'
    )
    forbidden = _rd(STATIC, _batch(403, b"x" * 300))[0]["rd-api"]
    assert forbidden.detail == (
        f"HTTP 403 from {BASE}/platform/events/batch (forbidden: wrong account or missing permission): "
        + "x" * 200
        + "..."
    )
    assert "(unexpected answer)" in _rd(STATIC, _batch(302))[0]["rd-api"].detail


def test_rd_unreachable_fails_rd_api() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    result = _rd(STATIC, refuse)[0]["rd-api"]
    assert result.status == "FAIL" and result.detail.startswith(f"cannot reach {BASE}/platform/events/batch: ")


def test_refresh_flow_refreshes_once_then_probes_with_the_new_token(tmp_path: Path) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/auth/token":
            return httpx.Response(200, json={"access_token": "at-fresh", "expires_in": 86400, "refresh_token": "rt-2"})
        return httpx.Response(400, json={"errors": []})

    results, requests = _rd(_refresh_env(tmp_path), answer)
    assert results["rd-token"].status == "PASS", results
    assert results["rd-token"].detail.startswith(f"obtained an access token from {BASE}/auth/token; RD rotated")
    assert results["rd-api"].status == "PASS"
    assert [r.url.path for r in requests] == ["/auth/token", "/platform/events/batch"]
    assert json.loads(requests[0].content)["refresh_token"] == "rt-check-refresh"
    assert requests[1].content == b"[]" and requests[1].headers["Authorization"] == "Bearer at-fresh"
    assert json.loads((tmp_path / "rd-token.json").read_text()) == {"refresh_token": "rt-2"}


def test_refused_refresh_skips_rd_api(tmp_path: Path) -> None:
    body = {"errors": [{"error_type": "INVALID_REFRESH_TOKEN"}]}
    results, requests = _rd(_refresh_env(tmp_path), lambda request: httpx.Response(401, json=body))
    assert results["rd-token"].detail.startswith(
        f"RD refused the refresh credentials (HTTP 401 from {BASE}/auth/token)"
    )
    assert results["rd-api"] == CheckResult("SKIP", "rd-api", "no access token to call RD with")
    assert len(requests) == 1


def test_without_a_token_file_nothing_is_sent(tmp_path: Path) -> None:
    env = {k: v for k, v in _refresh_env(tmp_path).items() if k != "RDC_RD_TOKEN_FILE"}
    results, requests = _rd(env, _batch(400))
    assert results["rd-token"].detail.startswith("not refreshed: RDC_RD_TOKEN_FILE is not set")
    assert results["rd-api"].status == "SKIP" and requests == []


def test_an_rd_client_run_could_not_build_fails_rd_token(monkeypatch: pytest.MonkeyPatch) -> None:
    def unsupported(*args: object) -> httpx.Client:
        raise ConfigError("the proxy socks5://... named by *_PROXY is not supported")

    monkeypatch.setattr(check, "bounded_client", unsupported)
    results = {r.name: r for r in run_checks(load_settings(STATIC), timeout_s=1)}
    assert results["rd-token"].status == "FAIL" and "socks5" in results["rd-token"].detail
    assert results["rd-api"].status == "SKIP"


# -- with the token store (RDC_TOKEN_STORE=true, the default) ---------------------------------------------

TOPIC = "rdc.tokens.unit"


class MemoryTokenStore:
    """What `check` uses of a `KafkaTokenStore`, in memory: sealed values by record key."""

    def __init__(self, topic: str = TOPIC) -> None:
        self.topic = topic
        self.values: dict[bytes, bytes] = {}
        self.unreadable: str | None = None
        self.closed = False

    def read_to_end(self, timeout_s: float = 10.0) -> None:
        if self.unreadable is not None:
            raise ConnectorError(f"token store: cannot read RDC_TOKEN_STORE_TOPIC={self.topic}: {self.unreadable}")

    def read(self, key: bytes, sealer: Sealer, timeout_s: float = 10.0) -> StoredTokens | None:
        self.read_to_end()
        value = self.values.get(key)
        return None if value is None else open_tokens(sealer, key, value)

    def publish(self, key: bytes, sealed: bytes, timeout_s: float = 10.0) -> None:
        self.values[key] = sealed

    def close(self) -> None:
        self.closed = True

    def put(self, account: str, client_id: str, secret: str, tokens: StoredTokens) -> None:
        key = record_key(account, client_id)
        self.values[key] = seal_tokens(Sealer(Secret(secret), account), key, tokens)

    def get(self, account: str, client_id: str, secret: str) -> StoredTokens | None:
        return self.read(record_key(account, client_id), Sealer(Secret(secret), account))


METADATA = SimpleNamespace(brokers={1: None}, cluster_id="c1", topics={})  # Kafka is up (no topics)


def _store_env(**more: str) -> dict[str, str]:
    """The refresh flow of `default` with the token store on and no token file."""
    env = {
        "RDC_RD_BASE_URL": BASE,
        "RDC_RD_CLIENT_ID": "cid",
        "RDC_RD_CLIENT_SECRET": "cs-check-secret",
        "RDC_RD_REFRESH_TOKEN": "rt-check-refresh",
        "RDC_TOKEN_STORE_TOPIC": TOPIC,
        "RDC_KAFKA_BOOTSTRAP_SERVERS": "kafka.invalid:9092",  # never reached: `_metadata` is stubbed
    }
    return {**env, **more}


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> MemoryTokenStore:
    """The store `check` opens (through `token_store_of`, as `run` does), with Kafka's metadata stubbed."""
    memory = MemoryTokenStore()
    opened: list[object] = []

    def token_store_of(settings: Settings, *, timeout_s: float = 15.0) -> MemoryTokenStore:
        assert settings.token_store and settings.token_store_topic == TOPIC
        opened.append(settings)
        return memory

    monkeypatch.setattr(check, "token_store_of", token_store_of)
    monkeypatch.setattr(check, "_metadata", lambda settings, timeout_s: (METADATA, ""))
    return memory


def _rd_with_kafka(
    env: dict[str, str], answer: Callable[[httpx.Request], httpx.Response], config: Path | None = None
) -> tuple[dict[str, CheckResult], list[httpx.Request]]:
    """The RD results of `run_checks` against `answer`, Kafka faked (see `store`)."""
    results, requests = _run(env, answer, config)
    return {r.name: r for r in results if r.name.startswith("rd-")}, requests


def _rotating(request: httpx.Request) -> httpx.Response:
    if request.url.path == "/auth/token":
        used = json.loads(request.content)["refresh_token"]
        return httpx.Response(200, json={"access_token": f"at-{used}", "expires_in": 86400, "refresh_token": "rt-new"})
    return httpx.Response(400, json={"errors": []})


def test_a_valid_stored_access_token_is_used_without_a_refresh(store: MemoryTokenStore) -> None:
    now = time.time()
    store.put("default", "cid", "cs-check-secret", StoredTokens("rt-stored", "at-stored", now + 3600, now, "w1"))
    results, requests = _rd_with_kafka(_store_env(), _rotating)
    assert results["rd-token"] == CheckResult(
        "PASS", "rd-token", f"valid access token from the token store (RDC_TOKEN_STORE_TOPIC={TOPIC}); not refreshed"
    )
    assert results["rd-api"].status == "PASS"
    [probe] = requests  # no refresh: RD saw only the empty batch, with the stored token
    assert probe.url.path == "/platform/events/batch" and probe.headers["Authorization"] == "Bearer at-stored"
    assert store.closed


def test_a_refresh_starts_from_the_stored_refresh_token_and_is_published(store: MemoryTokenStore) -> None:
    now = time.time()
    store.put("default", "cid", "cs-check-secret", StoredTokens("rt-stored", "at-old", now - 1, now - 86401, "w1"))
    results, requests = _rd_with_kafka(_store_env(), _rotating)
    assert results["rd-token"].status == "PASS", results
    assert results["rd-token"].detail == (
        f"obtained an access token from {BASE}/auth/token with the newest refresh token of the token store "
        f"(RDC_TOKEN_STORE_TOPIC={TOPIC}); published to the token store (RDC_TOKEN_STORE_TOPIC={TOPIC}) for run "
        "and the replicas (RD rotated the refresh token: the new one is there)"
    )
    assert json.loads(requests[0].content)["refresh_token"] == "rt-stored"
    assert requests[1].headers["Authorization"] == "Bearer at-rt-stored"
    stored = store.get("default", "cid", "cs-check-secret")
    assert stored is not None and (stored.refresh_token, stored.access_token) == ("rt-new", "at-rt-stored")


def test_with_the_store_no_token_file_is_needed(store: MemoryTokenStore) -> None:
    results, requests = _rd_with_kafka(_store_env(), _rotating)
    assert results["rd-token"].status == "PASS"
    assert json.loads(requests[0].content)["refresh_token"] == "rt-check-refresh"
    assert store.get("default", "cid", "cs-check-secret") is not None


def test_a_store_that_cannot_be_read_fails_before_any_refresh(store: MemoryTokenStore) -> None:
    store.unreadable = "Broker: Topic authorization failed"
    results, requests = _rd_with_kafka(_store_env(), _rotating)
    assert results["rd-token"].status == "FAIL"
    assert results["rd-token"].detail.startswith(
        f"not refreshed: the token store RDC_TOKEN_STORE_TOPIC={TOPIC} cannot be used: token store: cannot read "
        f"RDC_TOKEN_STORE_TOPIC={TOPIC}: Broker: Topic authorization failed."
    )
    assert results["rd-api"].status == "SKIP" and requests == [] and store.closed


def test_a_store_topic_that_cannot_be_created_fails_rd_token(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(settings: Settings, *, timeout_s: float = 15.0) -> None:
        raise ConnectorError(f"token store: cannot create RDC_TOKEN_STORE_TOPIC={TOPIC}: _TIMED_OUT")

    monkeypatch.setattr(check, "token_store_of", refuse)
    monkeypatch.setattr(check, "_metadata", lambda settings, timeout_s: (METADATA, ""))
    results, requests = _rd_with_kafka(_store_env(), _rotating)
    assert "cannot create RDC_TOKEN_STORE_TOPIC" in results["rd-token"].detail and requests == []


def test_unreachable_kafka_fails_rd_token_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(check, "token_store_of", lambda *a, **k: pytest.fail("the store is not tried"))
    monkeypatch.setattr(check, "_metadata", lambda settings, timeout_s: (None, "Connection refused"))
    results, requests = _rd_with_kafka(_store_env(), _rotating)
    assert results["rd-token"].detail.startswith(
        f"not refreshed: the token store RDC_TOKEN_STORE_TOPIC={TOPIC} cannot be used: Kafka is unreachable (see "
        "brokers): Connection refused."
    )
    assert requests == []
    env = {k: v for k, v in _store_env().items() if k != "RDC_KAFKA_BOOTSTRAP_SERVERS"}
    results, requests = _rd(env, _rotating)
    assert "cannot be used: RDC_KAFKA_BOOTSTRAP_SERVERS is not set" in results["rd-token"].detail and requests == []


# -- several accounts ----------------------------------------------------------------------------------

NORTH, SOUTH = "https://north.rd.test", "https://south.rd.test"


def _accounts_file(tmp_path: Path) -> Path:
    config = tmp_path / "connector.toml"
    config.write_text(
        f"""
[accounts.north]
rd_client_id = "cid-north"
rd_client_secret = "cs-north-secret"
rd_refresh_token = "rt-north-refresh"
base_url = "{NORTH}"

[accounts.south]
rd_access_token = "at-south-static-secret"
base_url = "{SOUTH}"
"""
    )
    return config


def test_each_account_is_checked_at_its_own_url_with_its_own_credentials(
    store: MemoryTokenStore, tmp_path: Path
) -> None:
    results, requests = _rd_with_kafka(_store_env(), _rotating, _accounts_file(tmp_path))
    assert list(results) == [f"{c}[{a}]" for a in ("default", "north", "south") for c in ("rd-token", "rd-api")]
    assert [r.status for r in results.values()] == ["PASS", "PASS", "PASS", "PASS", "SKIP", "PASS"]
    assert results["rd-token[south]"].detail == "static access token ([accounts.south]); rd-api proves it"
    assert SOUTH in results["rd-api[south]"].detail and NORTH in results["rd-token[north]"].detail
    sent = [(str(r.url), r.headers.get("Authorization")) for r in requests]
    assert sent == [
        (f"{BASE}/auth/token", None),
        (f"{BASE}/platform/events/batch", "Bearer at-rt-check-refresh"),
        (f"{NORTH}/auth/token", None),
        (f"{NORTH}/platform/events/batch", "Bearer at-rt-north-refresh"),
        (f"{SOUTH}/platform/events/batch", "Bearer at-south-static-secret"),
    ]
    assert json.loads(requests[2].content)["client_id"] == "cid-north"
    assert store.get("north", "cid-north", "cs-north-secret") is not None


def test_an_account_whose_refresh_rd_refuses_fails_naming_it(
    store: MemoryTokenStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.host == "north.rd.test" and request.url.path == "/auth/token":
            return httpx.Response(401, json={"errors": [{"error_type": "INVALID_REFRESH_TOKEN"}]})
        return _rotating(request)

    monkeypatch.setattr("connector.rd.auth.STORE_POLLS_S", ())  # no polls of the store for a successor
    results, _ = _rd_with_kafka(_store_env(), answer, _accounts_file(tmp_path))
    assert results["rd-token[north]"] == CheckResult(
        "FAIL",
        "rd-token[north]",
        f"RD refused the refresh credentials (HTTP 401 from {NORTH}/auth/token): RD refused the refresh token of "
        "account north as INVALID_REFRESH_TOKEN (invalid or revoked). Authorise the app again and set "
        "rd_refresh_token of [accounts.north] to the new token",
    )
    assert results["rd-api[north]"].status == "SKIP"
    assert results["rd-token[default]"].status == "PASS" and results["rd-api[south]"].status == "PASS"


def test_without_the_store_a_named_account_is_not_refreshed(tmp_path: Path) -> None:
    results, requests = _rd(_refresh_env(tmp_path), _rotating, _accounts_file(tmp_path))
    assert results["rd-token[default]"].status == "PASS"  # RDC_RD_TOKEN_FILE: today's rules
    assert results["rd-token[north]"].detail.startswith(
        "not refreshed: RDC_TOKEN_STORE=false, and only the account default has a token file"
    )
    assert not [r for r in requests if r.url.host == "north.rd.test"]


def test_every_accounts_secrets_are_redacted(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def echo(request: httpx.Request) -> httpx.Response:  # a proxy that echoes the request: the worst case
        return httpx.Response(403, text=f"forbidden {request.headers['Authorization']} cs-north-secret")

    monkeypatch.setattr(check, "bounded_client", lambda *args: httpx.Client(transport=httpx.MockTransport(echo)))
    env = {**STATIC, "RDC_TOKEN_STORE": "false"}
    assert check.cli(["--config", str(_accounts_file(tmp_path))], env=env) == 1
    out = capsys.readouterr().out
    assert "FAIL rd-api[south]: HTTP 403" in out and "FAIL rd-api[default]: HTTP 403" in out
    for secret in ("at-south-static-secret", "cs-north-secret", "at-static-check-token"):
        assert secret not in out

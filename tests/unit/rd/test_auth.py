"""RefreshingToken: RD's OAuth refresh flow against httpx.MockTransport handlers (fake clock) and against a
real strict MockRdServer on 127.0.0.1."""

from __future__ import annotations

import json
import logging
import os
import stat
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from connector.config import Secret
from connector.errors import AuthFatal, AuthUnavailable
from connector.rd.auth import RefreshingToken
from connector.testing.mock_rd import MockRdServer

BASE = "http://rd.test"
CLIENT_ID = "client-id-1"
CLIENT_SECRET = "cs-SECRET-7f3a9b2c"
REFRESH_TOKEN = "rt-SECRET-initial-5d1e"
ACCESS_PREFIX = "at-SECRET-"
ROTATED_PREFIX = "rt-SECRET-rotated-"

EVENT = {
    "event_type": "CONVERSION",
    "event_family": "CDP",
    "payload": {"conversion_identifier": "x", "email": "a@b.co"},
}


class FakeClock:
    def __init__(self, start: float = 500.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


Reply = Callable[[httpx.Request, int], httpx.Response]


class TokenEndpoint:
    """An httpx.MockTransport handler for POST /auth/token: records bodies, answers with `reply` (default:
    a fresh access token `at-SECRET-<n>`, `expires_in`, and a rotated refresh token when `rotate`)."""

    def __init__(self, expires_in: float | None = 86_400, rotate: bool = False, delay_s: float = 0.0) -> None:
        self.expires_in = expires_in
        self.rotate = rotate
        self.delay_s = delay_s
        self.bodies: list[dict[str, Any]] = []
        self.urls: list[str] = []
        self.methods: list[str] = []
        self.reply: Reply | None = None
        self._lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            self.bodies.append(json.loads(request.content))
            self.urls.append(str(request.url))
            self.methods.append(request.method)
            n = len(self.bodies)
        if self.delay_s:
            time.sleep(self.delay_s)
        if self.reply is not None:
            return self.reply(request, n)
        answer: dict[str, Any] = {"access_token": f"{ACCESS_PREFIX}{n}"}
        if self.expires_in is not None:
            answer["expires_in"] = self.expires_in
        if self.rotate:
            answer["refresh_token"] = f"{ROTATED_PREFIX}{n}"
        return httpx.Response(200, json=answer)

    @property
    def calls(self) -> int:
        return len(self.bodies)


def make_token(
    endpoint: TokenEndpoint,
    clock: FakeClock | None = None,
    token_file: Path | None = None,
    refresh_token: str = REFRESH_TOKEN,
    base_url: str = BASE,
) -> RefreshingToken:
    client = httpx.Client(transport=httpx.MockTransport(endpoint))
    return RefreshingToken(
        client,
        base_url,
        CLIENT_ID,
        Secret(CLIENT_SECRET),
        Secret(refresh_token),
        token_file=token_file,
        clock=clock or FakeClock(),
    )


def assert_no_secret(text: str) -> None:
    for marker in ("cs-SECRET", "rt-SECRET", "at-SECRET", "mock-at-", "mock-rt-"):
        assert marker not in text, f"secret-like value {marker!r} leaked into: {text!r}"


@pytest.fixture(autouse=True)
def _capture_all_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Every test captures every log record at DEBUG and checks that no secret reached them."""
    caplog.set_level(logging.DEBUG)
    yield
    assert_no_secret(caplog.text)
    for record in caplog.records:
        assert_no_secret(record.getMessage())


# --- the refresh request and token reuse ----------------------------------------------------------------


@pytest.mark.parametrize("base_url", [BASE, BASE + "/"])
def test_first_token_posts_credentials_and_returns_access_token(base_url: str) -> None:
    endpoint = TokenEndpoint()
    provider = make_token(endpoint, base_url=base_url)
    assert provider.refreshes == 0
    token = provider.token()
    assert isinstance(token, Secret)
    assert token.reveal() == f"{ACCESS_PREFIX}1"
    assert endpoint.methods == ["POST"]
    assert endpoint.urls == [f"{BASE}/auth/token"]
    assert endpoint.bodies == [{"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "refresh_token": REFRESH_TOKEN}]
    assert provider.refreshes == 1


def test_token_is_reused_until_refresh_time() -> None:
    endpoint = TokenEndpoint()
    clock = FakeClock()
    provider = make_token(endpoint, clock)
    first = provider.token()
    for _ in range(5):
        clock.advance(60.0)
        assert provider.token() == first
    assert endpoint.calls == 1
    assert provider.refreshes == 1


def test_short_token_refreshes_at_80_percent() -> None:
    endpoint = TokenEndpoint(expires_in=10)
    clock = FakeClock()
    provider = make_token(endpoint, clock)
    first = provider.token()
    clock.advance(7.99)
    assert provider.token() == first
    assert provider.refreshes == 1
    clock.advance(0.01)  # 8 s: 80% of 10 s
    second = provider.token()
    assert second != first
    assert second.reveal() == f"{ACCESS_PREFIX}2"
    assert provider.refreshes == 2
    clock.advance(7.9)
    assert provider.token() == second
    clock.advance(0.1)
    assert provider.token().reveal() == f"{ACCESS_PREFIX}3"
    assert provider.refreshes == 3


@pytest.mark.parametrize("expires_in", [86_400, None], ids=["expires_in-86400", "expires_in-missing"])
def test_day_token_refreshes_five_minutes_early(expires_in: float | None) -> None:
    endpoint = TokenEndpoint(expires_in=expires_in)
    clock = FakeClock()
    provider = make_token(endpoint, clock)
    first = provider.token()
    clock.advance(86_400 - 300 - 0.5)
    assert provider.token() == first
    assert provider.refreshes == 1
    clock.advance(0.5)
    assert provider.token() != first
    assert provider.refreshes == 2


# --- refresh after a 401 ------------------------------------------------------------------------------------


def test_refresh_only_when_rejected_is_current() -> None:
    endpoint = TokenEndpoint()
    provider = make_token(endpoint)
    first = provider.token()
    assert provider.refresh(first) is True
    assert provider.refreshes == 2
    second = provider.token()
    assert second != first
    # A second lane still holding the first token was rejected too: no new refresh.
    assert provider.refresh(first) is True
    assert provider.refreshes == 2
    assert provider.token() == second
    # An unrelated token is not the current one either.
    assert provider.refresh(Secret("at-unknown")) is True
    assert provider.refreshes == 2
    assert endpoint.calls == 2


def test_refresh_before_any_token_fetches_one() -> None:
    endpoint = TokenEndpoint()
    provider = make_token(endpoint)
    assert provider.refresh(Secret("whatever")) is True
    assert provider.refreshes == 1
    assert provider.token().reveal() == f"{ACCESS_PREFIX}1"
    assert endpoint.calls == 1


def test_threads_holding_the_same_rejected_token_refresh_once() -> None:
    endpoint = TokenEndpoint(delay_s=0.02)  # a slow endpoint widens the race window
    provider = make_token(endpoint)
    rejected = provider.token()
    lanes = 8
    barrier = threading.Barrier(lanes)
    seen: list[Secret] = []
    errors: list[BaseException] = []

    def lane() -> None:
        try:
            barrier.wait()
            provider.refresh(rejected)
            seen.append(provider.token())
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=lane) for _ in range(lanes)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert not errors
    assert provider.refreshes == 2
    assert endpoint.calls == 2
    assert len(seen) == lanes
    assert set(seen) == {Secret(f"{ACCESS_PREFIX}2")}


def test_threads_first_token_fetched_once() -> None:
    endpoint = TokenEndpoint(delay_s=0.02)
    provider = make_token(endpoint)
    barrier = threading.Barrier(8)
    seen: list[Secret] = []

    def lane() -> None:
        barrier.wait()
        seen.append(provider.token())

    threads = [threading.Thread(target=lane) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert endpoint.calls == 1
    assert set(seen) == {Secret(f"{ACCESS_PREFIX}1")}


# --- rotation and the token file ------------------------------------------------------------------------


def _dir_entries(directory: Path) -> list[str]:
    return sorted(os.listdir(directory))


def test_rotated_refresh_token_is_used_next_and_stored(tmp_path: Path) -> None:
    token_file = tmp_path / "state" / "rd-token.json"  # the directory does not exist yet
    endpoint = TokenEndpoint(rotate=True)
    provider = make_token(endpoint, token_file=token_file)
    first = provider.token()
    assert json.loads(token_file.read_text()) == {"refresh_token": f"{ROTATED_PREFIX}1"}
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert _dir_entries(token_file.parent) == ["rd-token.json"]

    provider.refresh(first)
    assert endpoint.bodies[1]["refresh_token"] == f"{ROTATED_PREFIX}1"
    assert json.loads(token_file.read_text()) == {"refresh_token": f"{ROTATED_PREFIX}2"}
    provider.refresh(provider.token())
    assert endpoint.bodies[2]["refresh_token"] == f"{ROTATED_PREFIX}2"
    assert json.loads(token_file.read_text()) == {"refresh_token": f"{ROTATED_PREFIX}3"}
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert _dir_entries(token_file.parent) == ["rd-token.json"]


def test_rotation_without_token_file_is_kept_in_memory(tmp_path: Path) -> None:
    endpoint = TokenEndpoint(rotate=True)
    provider = make_token(endpoint)
    provider.refresh(provider.token())
    assert [b["refresh_token"] for b in endpoint.bodies] == [REFRESH_TOKEN, f"{ROTATED_PREFIX}1"]


def test_unchanged_refresh_token_in_answer_is_not_written(tmp_path: Path) -> None:
    token_file = tmp_path / "rd-token.json"
    endpoint = TokenEndpoint()
    endpoint.reply = lambda request, n: httpx.Response(
        200, json={"access_token": f"{ACCESS_PREFIX}{n}", "expires_in": 100, "refresh_token": REFRESH_TOKEN}
    )
    provider = make_token(endpoint, token_file=token_file)
    provider.token()
    assert not token_file.exists()
    assert _dir_entries(tmp_path) == []


def test_existing_token_file_wins_over_configured_refresh_token(tmp_path: Path) -> None:
    token_file = tmp_path / "rd-token.json"
    token_file.write_text(json.dumps({"refresh_token": "rt-SECRET-from-file"}))
    endpoint = TokenEndpoint()
    provider = make_token(endpoint, token_file=token_file)
    provider.token()
    assert endpoint.bodies[0]["refresh_token"] == "rt-SECRET-from-file"


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"not json {", id="invalid-json"),
        pytest.param(b"", id="empty"),
        pytest.param(b'["rt-SECRET-in-a-list"]', id="json-list"),
        pytest.param(b'"rt-SECRET-bare-string"', id="json-string"),
        pytest.param(b'{"other": "x"}', id="no-key"),
        pytest.param(b'{"refresh_token": ""}', id="empty-token"),
        pytest.param(b'{"refresh_token": 42}', id="not-a-string"),
        pytest.param(b"\xff\xfe\x00garbage", id="not-utf8"),
    ],
)
def test_unreadable_token_file_falls_back_to_configured(tmp_path: Path, content: bytes) -> None:
    token_file = tmp_path / "rd-token.json"
    token_file.write_bytes(content)
    endpoint = TokenEndpoint()
    provider = make_token(endpoint, token_file=token_file)
    provider.token()
    assert endpoint.bodies[0]["refresh_token"] == REFRESH_TOKEN


def test_token_file_that_is_a_directory_falls_back(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    token_file = tmp_path / "rd-token.json"
    token_file.mkdir()
    endpoint = TokenEndpoint()
    provider = make_token(endpoint, token_file=token_file)
    provider.token()
    assert endpoint.bodies[0]["refresh_token"] == REFRESH_TOKEN
    assert any("token_file_unreadable" in r.getMessage() for r in caplog.records)


def test_missing_token_file_uses_configured(tmp_path: Path) -> None:
    endpoint = TokenEndpoint()
    provider = make_token(endpoint, token_file=tmp_path / "absent.json")
    provider.token()
    assert endpoint.bodies[0]["refresh_token"] == REFRESH_TOKEN


# --- errors ---------------------------------------------------------------------------------------------


def _echoing(status: int, body: Any) -> Reply:
    """A reply with `status` and JSON `body` (the body also echoes the secrets, as a careless server might)."""

    def reply(request: httpx.Request, n: int) -> httpx.Response:
        if isinstance(body, dict):
            echoed = {**body, "echo": json.loads(request.content)}
            return httpx.Response(status, json=echoed)
        return httpx.Response(status, json=body)

    return reply


def _errors(error_type: str) -> dict[str, Any]:
    return {"errors": [{"error_type": error_type, "error_message": "refused"}]}


def _raise(exc_type: type[httpx.TransportError]) -> Reply:
    def reply(request: httpx.Request, n: int) -> httpx.Response:
        raise exc_type(f"cannot reach {CLIENT_SECRET} {REFRESH_TOKEN}", request=request)

    return reply


def _raw(status: int, content: bytes) -> Reply:
    return lambda request, n: httpx.Response(status, content=content)


def _check_refused(exc: BaseException) -> None:
    assert_no_secret(str(exc))
    assert_no_secret(repr(exc))
    assert_no_secret(" ".join(str(a) for a in exc.args))


def test_invalid_refresh_token_is_fatal_and_says_to_authorise_again() -> None:
    endpoint = TokenEndpoint()
    endpoint.reply = _echoing(401, _errors("INVALID_REFRESH_TOKEN"))
    provider = make_token(endpoint)
    with pytest.raises(AuthFatal) as info:
        provider.token()
    message = str(info.value)
    assert "authorise" in message.lower()
    assert "RDC_RD_REFRESH_TOKEN" in message
    assert info.value.exit_code == 3
    _check_refused(info.value)


def test_invalid_refresh_token_as_error_object_is_recognised() -> None:
    endpoint = TokenEndpoint()
    endpoint.reply = _echoing(401, {"errors": {"error_type": "INVALID_REFRESH_TOKEN", "error_message": "x"}})
    with pytest.raises(AuthFatal, match="RDC_RD_REFRESH_TOKEN"):
        make_token(endpoint).token()


def test_access_denied_is_fatal_and_names_client_settings() -> None:
    endpoint = TokenEndpoint()
    endpoint.reply = _echoing(401, _errors("ACCESS_DENIED"))
    with pytest.raises(AuthFatal) as info:
        make_token(endpoint).token()
    message = str(info.value)
    assert "RDC_RD_CLIENT_ID" in message
    assert "RDC_RD_CLIENT_SECRET" in message
    _check_refused(info.value)


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param(_echoing(400, {"errors": [{"error_type": "BAD_REQUEST"}]}), id="400"),
        pytest.param(_echoing(401, {"errors": [{"error_type": "SOMETHING_ELSE"}]}), id="401-other"),
        pytest.param(_raw(401, b""), id="401-empty"),
        pytest.param(_raw(401, b"<html>nope</html>"), id="401-html"),
        pytest.param(_echoing(403, {"error": "forbidden"}), id="403"),
        pytest.param(_echoing(404, {}), id="404"),
        pytest.param(_raw(422, b'["a", "list"]'), id="422-list"),
        pytest.param(_raw(302, b""), id="302"),
    ],
)
def test_other_refusals_are_fatal(reply: Reply) -> None:
    endpoint = TokenEndpoint()
    endpoint.reply = reply
    with pytest.raises(AuthFatal) as info:
        make_token(endpoint).token()
    assert "RDC_RD_" in str(info.value)
    _check_refused(info.value)


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param(_echoing(500, {"errors": [{"error_type": "INTERNAL"}]}), id="500"),
        pytest.param(_raw(502, b"bad gateway"), id="502"),
        pytest.param(_echoing(503, {}), id="503"),
        pytest.param(_echoing(429, _errors("TOO_MANY_REQUESTS")), id="429"),
        pytest.param(_raise(httpx.ConnectError), id="connect-error"),
        pytest.param(_raise(httpx.ReadTimeout), id="read-timeout"),
        pytest.param(_raise(httpx.RemoteProtocolError), id="protocol-error"),
        pytest.param(_echoing(200, {"expires_in": 100}), id="200-without-access-token"),
        pytest.param(_raw(200, b"not json"), id="200-not-json"),
        pytest.param(_raw(200, b'["a list"]'), id="200-json-list"),
        pytest.param(_echoing(200, {"access_token": "at-SECRET-x", "expires_in": "soon"}), id="200-bad-expires"),
    ],
)
def test_unavailable_answers(reply: Reply) -> None:
    endpoint = TokenEndpoint()
    endpoint.reply = reply
    provider = make_token(endpoint)
    with pytest.raises(AuthUnavailable) as info:
        provider.token()
    assert not isinstance(info.value, AuthFatal)
    _check_refused(info.value)
    assert provider.refreshes == 0


@pytest.mark.parametrize("value", [None, ""], ids=["null", "empty"])
def test_200_with_null_or_empty_access_token_is_unavailable(value: str | None) -> None:
    endpoint = TokenEndpoint()
    endpoint.reply = lambda request, n: httpx.Response(200, json={"access_token": value, "expires_in": 100})
    with pytest.raises(AuthUnavailable):
        make_token(endpoint).token()


def test_unavailable_then_recovers_on_next_call() -> None:
    endpoint = TokenEndpoint()
    endpoint.reply = _raise(httpx.ConnectError)
    provider = make_token(endpoint)
    with pytest.raises(AuthUnavailable):
        provider.token()
    endpoint.reply = None
    assert provider.token().reveal().startswith(ACCESS_PREFIX)
    assert provider.refreshes == 1


def test_failed_refresh_after_401_raises_and_keeps_state() -> None:
    endpoint = TokenEndpoint(rotate=True)
    provider = make_token(endpoint)
    first = provider.token()
    endpoint.reply = _echoing(503, {})
    with pytest.raises(AuthUnavailable):
        provider.refresh(first)
    assert provider.refreshes == 1
    endpoint.reply = None
    provider.refresh(first)
    assert provider.refreshes == 2
    assert endpoint.bodies[-1]["refresh_token"] == f"{ROTATED_PREFIX}1"


def test_secret_never_in_repr_of_provider_or_tokens() -> None:
    endpoint = TokenEndpoint(rotate=True)
    provider = make_token(endpoint)
    token = provider.token()
    assert_no_secret(repr(token))
    assert_no_secret(str(token))
    assert_no_secret(repr(provider))


# --- against the real mock RD server (strict auth, rotation) --------------------------------------------


SERVER_REFRESH = "rt-SECRET-server-0"


@pytest.fixture
def rd() -> Iterator[MockRdServer]:
    with MockRdServer(
        strict_auth=True,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        refresh_tokens=[SERVER_REFRESH],
        token_ttl_s=2.0,
        rotate_refresh_token=True,
    ) as server:
        assert server.host == "127.0.0.1"
        yield server


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5.0, trust_env=False) as client:
        yield client


def _server_token(
    rd: MockRdServer,
    http: httpx.Client,
    token_file: Path | None = None,
    clock: FakeClock | None = None,
    refresh_token: str = SERVER_REFRESH,
    client_secret: str = CLIENT_SECRET,
) -> RefreshingToken:
    return RefreshingToken(
        http,
        rd.url,
        CLIENT_ID,
        Secret(client_secret),
        Secret(refresh_token),
        token_file=token_file,
        clock=clock or FakeClock(),
    )


def _post_event(rd: MockRdServer, http: httpx.Client, token: Secret) -> httpx.Response:
    return http.post(
        f"{rd.url}/platform/events/batch",
        json=[EVENT],
        headers={"Authorization": f"Bearer {token.reveal()}"},
    )


def test_server_token_works_on_events_batch(rd: MockRdServer, http: httpx.Client) -> None:
    provider = _server_token(rd, http)
    token = provider.token()
    assert token.reveal().startswith("mock-at-")
    response = _post_event(rd, http, token)
    assert response.status_code == 200, response.text
    assert len(rd.accepted) == 1
    assert rd.accepted[0].event["event_type"] == "CONVERSION"
    assert _post_event(rd, http, Secret("mock-at-not-issued")).status_code == 401


def test_server_rotation_across_refreshes(rd: MockRdServer, http: httpx.Client, tmp_path: Path) -> None:
    token_file = tmp_path / "rd-token.json"
    provider = _server_token(rd, http, token_file=token_file)
    stored: list[str] = []
    for _ in range(5):
        token = provider.token()
        assert _post_event(rd, http, token).status_code == 200
        stored.append(json.loads(token_file.read_text())["refresh_token"])
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        provider.refresh(token)
        assert provider.token() != token
    assert provider.refreshes == 6
    assert len(set(stored)) == 5
    assert SERVER_REFRESH not in stored
    assert _dir_entries(tmp_path) == ["rd-token.json"]
    assert rd.stats()["token_refreshes"] == 6

    # A restart with the configured (now revoked) token alone is refused for good...
    with pytest.raises(AuthFatal, match="RDC_RD_REFRESH_TOKEN"):
        _server_token(rd, http).token()
    # ...but the token file carries the newest one, and it wins.
    restarted = _server_token(rd, http, token_file=token_file)
    assert _post_event(rd, http, restarted.token()).status_code == 200


def test_server_short_ttl_refreshes_at_80_percent(rd: MockRdServer, http: httpx.Client) -> None:
    clock = FakeClock()
    provider = _server_token(rd, http, clock=clock)
    first = provider.token()  # expires_in=2 -> refresh at 1.6 s
    clock.advance(1.5)
    assert provider.token() == first
    clock.advance(0.1)
    second = provider.token()
    assert second != first
    assert provider.refreshes == 2
    assert _post_event(rd, http, second).status_code == 200


def test_server_expired_token_gets_401_and_refresh_fixes_it(rd: MockRdServer, http: httpx.Client) -> None:
    provider = _server_token(rd, http)
    old = provider.token()
    assert _post_event(rd, http, old).status_code == 200
    rd.expire_access_tokens()
    rejected = _post_event(rd, http, old)
    assert rejected.status_code == 401
    assert provider.refresh(old) is True
    new = provider.token()
    assert new != old
    assert provider.refreshes == 2
    assert _post_event(rd, http, new).status_code == 200
    # Another lane reporting the same old token does not refresh again.
    provider.refresh(old)
    assert provider.refreshes == 2


def test_server_concurrent_lanes_refresh_once(rd: MockRdServer, http: httpx.Client) -> None:
    provider = _server_token(rd, http)
    old = provider.token()
    rd.expire_access_tokens()
    barrier = threading.Barrier(8)
    statuses: list[int] = []

    def lane() -> None:
        barrier.wait()
        provider.refresh(old)
        statuses.append(_post_event(rd, http, provider.token()).status_code)

    threads = [threading.Thread(target=lane) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert statuses == [200] * 8
    assert provider.refreshes == 2
    assert rd.stats()["token_refreshes"] == 2


def test_server_wrong_client_secret_is_access_denied(rd: MockRdServer, http: httpx.Client) -> None:
    provider = _server_token(rd, http, client_secret="cs-SECRET-wrong")
    with pytest.raises(AuthFatal) as info:
        provider.token()
    assert "RDC_RD_CLIENT_SECRET" in str(info.value)
    _check_refused(info.value)


def test_server_unknown_refresh_token_is_invalid(rd: MockRdServer, http: httpx.Client) -> None:
    provider = _server_token(rd, http, refresh_token="rt-SECRET-unknown")
    with pytest.raises(AuthFatal) as info:
        provider.token()
    assert "RDC_RD_REFRESH_TOKEN" in str(info.value)
    _check_refused(info.value)


def test_server_down_is_unavailable(http: httpx.Client) -> None:
    with MockRdServer() as server:
        url = server.url
    provider = RefreshingToken(http, url, CLIENT_ID, Secret(CLIENT_SECRET), Secret(SERVER_REFRESH))
    with pytest.raises(AuthUnavailable) as info:
        provider.token()
    _check_refused(info.value)

"""RefreshingToken with a token store (an in-memory fake): adoption instead of a refresh, the jittered
refresh time, publish-before-use, recovery from INVALID_REFRESH_TOKEN, and what happens when the store
cannot be read or written. RD is an httpx.MockTransport handler; clocks, jitter and sleep are fakes."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from connector.config import Secret
from connector.config.accounts import Account
from connector.errors import AuthFatal, AuthUnavailable, ConnectorError
from connector.ops.logs import _REDACTOR
from connector.rd.auth import (
    PUBLISH_ATTEMPTS,
    REPUBLISH_EVERY_S,
    STORE_POLLS_S,
    RefreshingToken,
    account_tokens,
    refresh_margin,
    refresh_spread,
)
from connector.rd.client import StaticToken
from connector.rd.token_store import StoredTokens
from tests.unit.rd.test_auth import (
    ACCESS_PREFIX,
    BASE,
    CLIENT_ID,
    CLIENT_SECRET,
    REFRESH_TOKEN,
    ROTATED_PREFIX,
    FakeClock,
    TokenEndpoint,
    _capture_all_logs,  # noqa: F401  (autouse: no secret in any log line)
    _errors,
)

WALL0 = 1_800_000_000.0


class FakeStore:
    """A `TokenStoreLike` in memory: `records` is the log (newest last); `fail_saves`/`fail_loads` make the
    next calls raise; `events` is shared with the test to see the order of things."""

    def __init__(self, events: list[str] | None = None) -> None:
        self.records: list[StoredTokens] = []
        self.events = events if events is not None else []
        self.fail_saves = 0
        self.fail_loads = 0
        self.loads = 0

    def load(self) -> StoredTokens | None:
        self.loads += 1
        if self.fail_loads:
            self.fail_loads -= 1
            raise ConnectorError("token store: cannot read RDC_TOKEN_STORE_TOPIC=t: broker down")
        return self.records[-1] if self.records else None

    def save(self, tokens: StoredTokens) -> None:
        if self.fail_saves:
            self.fail_saves -= 1
            self.events.append("save-failed")
            raise ConnectorError("token store: writing to RDC_TOKEN_STORE_TOPIC=t failed: _MSG_TIMED_OUT")
        self.events.append(f"save:{tokens.access_token}")
        self.records.append(tokens)


class Wall:
    """A wall clock that moves with a FakeClock (offset: another replica's clock may differ)."""

    def __init__(self, clock: FakeClock, offset: float = 0.0) -> None:
        self._clock, self._base = clock, WALL0 - clock.now + offset

    def __call__(self) -> float:
        return self._base + self._clock.now


class Sleeps:
    """A fake sleep: records pauses, advances the clock, and runs `then(n)` after the n-th pause."""

    def __init__(self, clock: FakeClock, then: Callable[[int], None] | None = None) -> None:
        self.pauses: list[float] = []
        self._clock, self._then = clock, then

    def __call__(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self._clock.advance(seconds)
        if self._then is not None:
            self._then(len(self.pauses))


def replica(
    endpoint: TokenEndpoint,
    store: FakeStore | None,
    clock: FakeClock,
    *,
    jitter: float = 0.0,
    refresh_token: str = REFRESH_TOKEN,
    sleep: Callable[[float], None] | None = None,
    writer: str = "w-test",
    on_refresh: Callable[[bool], object] | None = None,
    on_adopt: Callable[[], object] | None = None,
) -> RefreshingToken:
    client = httpx.Client(transport=httpx.MockTransport(endpoint))
    return RefreshingToken(
        client,
        BASE,
        CLIENT_ID,
        Secret(CLIENT_SECRET),
        Secret(refresh_token),
        clock=clock,
        store=store,
        account="shop-a",
        wall=Wall(clock),
        jitter=lambda: jitter,
        sleep=sleep or Sleeps(clock),
        writer=writer,
        on_refresh=on_refresh,
        on_adopt=on_adopt,
    )


def stored(
    access: str | None, expires_in: float, refresh: str = "rt-SECRET-stored-1", age: float = 0.0
) -> StoredTokens:
    """A record another replica wrote `age` seconds before WALL0 with an access token for `expires_in` s."""
    written = WALL0 - age
    return StoredTokens(refresh, access, written + expires_in if access else 0.0, written, "w-other")


def refusing(token: str) -> Callable[[httpx.Request, int], httpx.Response]:
    """RD refuses `token` (INVALID_REFRESH_TOKEN), and answers any other with a rotation."""

    def reply(request: httpx.Request, n: int) -> httpx.Response:
        if json.loads(request.content)["refresh_token"] == token:
            return httpx.Response(401, json=_errors("INVALID_REFRESH_TOKEN"))
        answer = {"access_token": f"{ACCESS_PREFIX}{n}", "expires_in": 1000, "refresh_token": f"{ROTATED_PREFIX}{n}"}
        return httpx.Response(200, json=answer)

    return reply


# --- adoption --------------------------------------------------------------------------------------------


def test_valid_stored_access_token_is_adopted_without_a_refresh() -> None:
    clock, store, endpoint = FakeClock(), FakeStore(), TokenEndpoint(expires_in=1000, rotate=True)
    store.records.append(stored("at-SECRET-stored", 1000, age=100))
    oks: list[bool] = []
    provider = replica(endpoint, store, clock, on_refresh=oks.append)
    assert provider.token() == Secret("at-SECRET-stored")
    assert endpoint.calls == 0
    assert (provider.adopted, provider.refreshes) == (1, 0)
    assert oks == [True]
    # Due as if we had fetched it: 900 s left, minus the 200 s margin.
    assert provider.refresh_at == pytest.approx(clock.now + 700)
    # Its refresh token is ours now: the next refresh uses it.
    clock.advance(700)
    provider.token()
    assert endpoint.bodies[0]["refresh_token"] == "rt-SECRET-stored-1"


def test_an_adoption_is_told_to_on_adopt_not_counted_as_a_refresh() -> None:
    clock, store, endpoint = FakeClock(), FakeStore(), TokenEndpoint(expires_in=1000, rotate=True)
    store.records.append(stored("at-SECRET-stored", 1000, age=100))
    oks: list[bool] = []
    adoptions: list[str] = []
    provider = replica(endpoint, store, clock, on_refresh=oks.append, on_adopt=lambda: adoptions.append("a"))
    provider.token()
    assert (oks, adoptions) == ([], ["a"])
    clock.advance(700)  # due: nothing newer in the store, so a real refresh
    provider.token()
    assert (oks, adoptions, endpoint.calls) == ([True], ["a"], 1)


def test_stored_refresh_token_alone_is_taken_for_the_refresh() -> None:
    clock, store, endpoint = FakeClock(), FakeStore(), TokenEndpoint(expires_in=1000, rotate=True)
    store.records.append(stored(None, 0, refresh="rt-SECRET-newer"))
    provider = replica(endpoint, store, clock)
    assert provider.token() == Secret(f"{ACCESS_PREFIX}1")
    assert endpoint.bodies[0]["refresh_token"] == "rt-SECRET-newer"
    assert (provider.adopted, provider.refreshes, provider.rotations) == (1, 1, 1)


def test_stored_access_token_close_to_expiry_is_not_adopted() -> None:
    clock, store, endpoint = FakeClock(), FakeStore(), TokenEndpoint(expires_in=1000, rotate=True)
    store.records.append(stored("at-SECRET-old", 1000, refresh=REFRESH_TOKEN, age=850))  # 150 s left < 200 margin
    provider = replica(endpoint, store, clock)
    assert provider.token() == Secret(f"{ACCESS_PREFIX}1")
    assert (provider.adopted, provider.refreshes) == (0, 1)


def test_rejected_access_token_is_not_adopted_after_a_401() -> None:
    clock, store, endpoint = FakeClock(), FakeStore(), TokenEndpoint(expires_in=1000, rotate=True)
    provider = replica(endpoint, store, clock)
    first = provider.token()
    assert store.records[-1].access_token == first.reveal()
    provider.refresh(first)  # RD said 401 for it: the store's copy of it must not come back
    assert provider.token() == Secret(f"{ACCESS_PREFIX}2")
    assert (provider.adopted, provider.refreshes) == (0, 2)


def test_tokens_read_from_the_store_are_redacted_in_logs() -> None:
    clock, store, endpoint = FakeClock(), FakeStore(), TokenEndpoint(expires_in=1000)
    store.records.append(stored("at-SECRET-adopted-77", 1000, refresh="rt-SECRET-adopted-77"))
    replica(endpoint, store, clock).token()
    assert _REDACTOR.redact("a at-SECRET-adopted-77 b rt-SECRET-adopted-77") == "a *** b ***"


def test_replicas_sharing_a_store_refresh_once_per_lifetime() -> None:
    """Three replicas on one store: the first to come due refreshes, the others adopt at their own time."""
    clock, store, endpoint = FakeClock(), FakeStore(), TokenEndpoint(expires_in=1000, rotate=True)
    replicas = [replica(endpoint, store, clock, jitter=j, writer=f"w{i}") for i, j in enumerate((0.9, 0.5, 0.1))]
    for _ in range(2000):  # 2000 s: 2 lifetimes
        for provider in replicas:
            provider.token()
        clock.advance(1.0)
    assert endpoint.calls == 3, [p.refreshes for p in replicas]  # the first token, then one per 746 s
    assert [p.refreshes for p in replicas] == [3, 0, 0]
    assert [p.adopted for p in replicas] == [0, 3, 3]


# --- jitter ---------------------------------------------------------------------------------------------


def test_margin_and_spread() -> None:
    assert refresh_margin(86_400) == 300 and refresh_spread(86_400) == 60
    assert refresh_margin(10) == 2 and refresh_spread(10) == 1


def test_jittered_refresh_time_differs_between_replicas() -> None:
    times = []
    for jitter in (0.0, 0.5, 0.99):
        clock = FakeClock()
        provider = replica(TokenEndpoint(expires_in=1000), FakeStore(), clock, jitter=jitter)
        provider.token()
        times.append(provider.refresh_at - clock.now)
    assert times == pytest.approx([800.0, 770.0, 740.6])  # 1000 - 200 margin - jitter * 60 (10%, capped)


def test_without_a_store_there_is_no_jitter() -> None:
    clock = FakeClock()
    provider = replica(TokenEndpoint(expires_in=1000), None, clock, jitter=0.9)
    provider.token()
    assert provider.refresh_at - clock.now == pytest.approx(800.0)


# --- publish before use ----------------------------------------------------------------------------------


def test_refresh_publishes_before_returning_the_token() -> None:
    events: list[str] = []
    clock, store = FakeClock(), FakeStore(events)
    endpoint = TokenEndpoint(expires_in=1000, rotate=True)

    def reply(request: httpx.Request, n: int) -> httpx.Response:
        events.append("rd")
        answer = {"access_token": f"at-SECRET-{n}", "expires_in": 1000, "refresh_token": f"rt-SECRET-r{n}"}
        return httpx.Response(200, json=answer)

    endpoint.reply = reply
    provider = replica(endpoint, store, clock)
    token = provider.token()
    events.append(f"got:{token.reveal()}")
    assert events == ["rd", "save:at-SECRET-1", "got:at-SECRET-1"]
    record = store.records[-1]
    assert record == StoredTokens("rt-SECRET-r1", "at-SECRET-1", WALL0 + 1000, WALL0, "w-test")
    assert provider.unsaved is None and provider.unpublished is None


def test_unchanged_refresh_token_is_published_with_the_new_access_token() -> None:
    clock, store = FakeClock(), FakeStore()
    replica(TokenEndpoint(expires_in=1000, rotate=False), store, clock).token()
    assert store.records[-1].refresh_token == REFRESH_TOKEN
    assert store.records[-1].access_token == f"{ACCESS_PREFIX}1"


def test_store_write_failures_keep_the_token_in_memory_and_retry_later(caplog: pytest.LogCaptureFixture) -> None:
    events: list[str] = []
    clock, store = FakeClock(), FakeStore(events)
    store.fail_saves = PUBLISH_ATTEMPTS + 1  # the attempts of the refresh, and the first retry after
    sleeps = Sleeps(clock)
    provider = replica(TokenEndpoint(expires_in=1000, rotate=True), store, clock, sleep=sleeps)
    assert provider.token() == Secret(f"{ACCESS_PREFIX}1")  # used anyway: RD revoked the old refresh token
    assert events == ["save-failed"] * PUBLISH_ATTEMPTS
    assert len(sleeps.pauses) == PUBLISH_ATTEMPTS - 1
    assert provider.unpublished is not None and provider.unpublished.refresh_token == f"{ROTATED_PREFIX}1"
    assert provider.unsaved == "RDC_RD_TOKEN_FILE is not set"
    assert "token_store_write_failed account=shop-a" in caplog.text
    provider.token()  # too early to retry
    assert len(events) == PUBLISH_ATTEMPTS
    clock.advance(REPUBLISH_EVERY_S)
    provider.token()  # retried: fails once more
    clock.advance(REPUBLISH_EVERY_S)
    provider.token()  # and is written
    assert events[-2:] == ["save-failed", f"save:{ACCESS_PREFIX}1"]
    assert provider.unpublished is None
    assert provider.refreshes == 1


def test_unpublished_tokens_win_over_the_older_store() -> None:
    """While our rotation is not in the store, the store's refresh token is the one RD just revoked."""
    clock, store = FakeClock(), FakeStore()
    store.records.append(stored(None, 0, refresh=REFRESH_TOKEN))
    endpoint = TokenEndpoint(expires_in=1000, rotate=True)
    provider = replica(endpoint, store, clock)
    store.fail_saves = 100
    provider.token()
    clock.advance(800)
    provider.token()
    assert [b["refresh_token"] for b in endpoint.bodies] == [REFRESH_TOKEN, f"{ROTATED_PREFIX}1"]
    assert provider.adopted == 0


# --- INVALID_REFRESH_TOKEN -------------------------------------------------------------------------------


def test_invalid_refresh_token_then_a_newer_access_token_in_the_store_is_recovered() -> None:
    clock, store, endpoint = FakeClock(), FakeStore(), TokenEndpoint()
    endpoint.reply = refusing(REFRESH_TOKEN)

    def publish(n: int) -> None:  # the winner publishes during our second pause
        if n == 2:
            store.records.append(stored("at-SECRET-winner", 1000, refresh="rt-SECRET-winner", age=-clock.now + 500))

    sleeps = Sleeps(clock, publish)
    provider = replica(endpoint, store, clock, sleep=sleeps)
    assert provider.token() == Secret("at-SECRET-winner")
    assert provider.recovered_from_store == 1
    assert endpoint.calls == 1
    assert sleeps.pauses == list(STORE_POLLS_S[:2])
    clock.advance(800)
    provider.token()
    assert endpoint.bodies[-1]["refresh_token"] == "rt-SECRET-winner"


def test_invalid_refresh_token_then_a_newer_refresh_token_is_retried() -> None:
    clock, store, endpoint = FakeClock(), FakeStore(), TokenEndpoint()
    store.records.append(stored(None, 0, refresh=REFRESH_TOKEN))  # the store knows only our (revoked) token
    endpoint.reply = refusing(REFRESH_TOKEN)

    def publish(n: int) -> None:  # the winner's record (a refresh token only) lands during our first pause
        if n == 1:
            store.records.append(stored(None, 0, refresh="rt-SECRET-theirs"))

    provider = replica(endpoint, store, clock, sleep=Sleeps(clock, publish))
    token = provider.token()
    assert token == Secret(f"{ACCESS_PREFIX}2")
    assert [b["refresh_token"] for b in endpoint.bodies] == [REFRESH_TOKEN, "rt-SECRET-theirs"]
    assert provider.recovered_from_store == 1
    assert store.records[-1].access_token == token.reveal()  # and published
    assert store.records[-1].refresh_token == f"{ROTATED_PREFIX}2"


def test_invalid_refresh_token_with_nothing_newer_is_fatal_after_polling() -> None:
    clock, store, endpoint = FakeClock(), FakeStore(), TokenEndpoint()
    endpoint.reply = refusing(REFRESH_TOKEN)
    sleeps = Sleeps(clock)
    oks: list[bool] = []
    provider = replica(endpoint, store, clock, sleep=sleeps, on_refresh=oks.append)
    with pytest.raises(AuthFatal, match=r"INVALID_REFRESH_TOKEN.*rd_refresh_token of \[accounts.shop-a\]") as info:
        provider.token()
    assert type(info.value) is AuthFatal and info.value.status == 401
    assert sum(sleeps.pauses) == pytest.approx(2.5)
    assert store.loads == 1 + 1 + len(STORE_POLLS_S)  # before the refresh, then each poll
    assert endpoint.calls == 1
    assert provider.recovered_from_store == 0
    assert oks == [False]


def test_invalid_refresh_token_without_a_store_is_fatal_at_once() -> None:
    clock, endpoint = FakeClock(), TokenEndpoint()
    endpoint.reply = refusing(REFRESH_TOKEN)
    sleeps = Sleeps(clock)
    with pytest.raises(AuthFatal, match=r"rd_refresh_token of \[accounts.shop-a\]"):
        replica(endpoint, None, clock, sleep=sleeps).token()
    assert sleeps.pauses == []


def test_a_stale_store_falls_back_to_the_configured_refresh_token() -> None:
    """The app was authorised again and RDC_RD_REFRESH_TOKEN set to the new token; the store still holds
    the revoked one: after the polls, the configured token is tried."""
    clock, store, endpoint = FakeClock(), FakeStore(), TokenEndpoint()
    store.records.append(stored(None, 0, refresh="rt-SECRET-revoked"))
    endpoint.reply = refusing("rt-SECRET-revoked")
    provider = replica(endpoint, store, clock)
    assert provider.token() == Secret(f"{ACCESS_PREFIX}2")
    assert [b["refresh_token"] for b in endpoint.bodies] == ["rt-SECRET-revoked", REFRESH_TOKEN]
    assert store.records[-1].refresh_token == f"{ROTATED_PREFIX}2"


def test_unreadable_store_then_refused_is_unavailable_not_fatal() -> None:
    clock, store, endpoint = FakeClock(), FakeStore(), TokenEndpoint()
    endpoint.reply = refusing(REFRESH_TOKEN)
    store.fail_loads = 100
    with pytest.raises(AuthUnavailable, match="token store"):
        replica(endpoint, store, clock).token()


def test_unreadable_store_before_a_refresh_refreshes_with_ours(caplog: pytest.LogCaptureFixture) -> None:
    clock, store = FakeClock(), FakeStore()
    store.fail_loads = 1
    provider = replica(TokenEndpoint(expires_in=1000), store, clock)
    assert provider.token() == Secret(f"{ACCESS_PREFIX}1")
    assert "token_store_unreadable account=shop-a" in caplog.text


# --- logs and builders ------------------------------------------------------------------------------------


def test_log_lines_name_the_account(caplog: pytest.LogCaptureFixture) -> None:
    clock, store = FakeClock(), FakeStore()
    store.records.append(stored("at-SECRET-x", 1000))
    provider = replica(TokenEndpoint(expires_in=1000, rotate=True), store, clock)
    provider.token()
    clock.advance(800)
    provider.token()
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("token_adopted account=shop-a from=store") for m in messages), messages
    assert any(m.startswith("token_refreshed account=shop-a expires_in_s=1000 rotated=True") for m in messages)


def _account(**overrides: Any) -> Account:
    fields: dict[str, Any] = {"name": "shop-b", "base_url": BASE, "requests_per_minute": 60}
    return Account(**{**fields, **overrides})


def test_account_tokens_builds_the_right_provider() -> None:
    client = httpx.Client(transport=httpx.MockTransport(TokenEndpoint()))
    static = account_tokens(_account(access_token=Secret("at-SECRET-static")), client)
    assert isinstance(static, StaticToken) and static.token() == Secret("at-SECRET-static")
    flow = account_tokens(
        _account(client_id=CLIENT_ID, client_secret=Secret(CLIENT_SECRET), refresh_token=Secret(REFRESH_TOKEN)),
        client,
        timeout_s=3.0,
    )
    assert isinstance(flow, RefreshingToken)
    assert flow.account == "shop-b" and flow.url == f"{BASE}/auth/token" and flow.token_file is None
    assert flow.token() == Secret(f"{ACCESS_PREFIX}1")
    with pytest.raises(ValueError):
        account_tokens(_account(), client)

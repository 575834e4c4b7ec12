"""One batch's attempt (`Sender.deliver`) on a fake clock: backoff, RD's hinted waits, the request budget, the
retry deadline, one refresh after a 401, abandon. Nothing sleeps for real: the sleeper moves the clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.config import Secret
from connector.deliver.attempt import Sender, _Abandoned
from connector.errors import AuthFatal, AuthUnavailable, LaneFatal, RetryDeadlineExceeded
from connector.ops.metrics import Metrics
from connector.ops.probe_server import Health
from connector.rd.client import RdClient, StaticToken, TokenProvider
from connector.rd.rate import MIN_PER_S, RateGate
from connector.settle.reporter import Reporter
from tests.unit.deliver.test_lanes import FakeReporter, make_items, ok, rd_error, uuid_of
from tests.unit.ops.test_metrics import value

Script = Callable[[int, httpx.Request], httpx.Response]
START = 1000.0
WALL = 1_796_280_000.0  # the wall clock at START: 2026-12-03T06:40:00Z


class FakeClock:
    """Monotonic seconds that move only when the attempt sleeps."""

    def __init__(self) -> None:
        self.now = START
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0, "a wait of nothing is not slept"
        self.sleeps.append(seconds)
        self.now += seconds


class Tokens:
    """A refreshable token: `refresh` moves to the next one; `fail_refresh`/`fail_token` raise AuthUnavailable
    that many times first."""

    def __init__(self, *, refreshable: bool = True, fail_refresh: int = 0, fail_token: int = 0) -> None:
        self.current = 0
        self.refreshable = refreshable
        self.fail_refresh = fail_refresh
        self.fail_token = fail_token
        self.refreshed: list[str] = []

    def token(self) -> Secret:
        if self.fail_token:
            self.fail_token -= 1
            raise AuthUnavailable("token endpoint down")
        return Secret(f"tok-{self.current}")

    def refresh(self, rejected: Secret) -> bool:
        if self.fail_refresh:
            self.fail_refresh -= 1
            raise AuthUnavailable("token endpoint down")
        self.refreshed.append(rejected.reveal())
        if not self.refreshable:
            return False
        self.current += 1
        return True


@dataclass
class Rig:
    sender: Sender
    clock: FakeClock
    reporter: FakeReporter
    metrics: Metrics
    sent: list[tuple[float, str]] = field(default_factory=list)  # (clock, token) of each request RD got


def make_rig(
    script: Script,
    *,
    tokens: TokenProvider | None = None,
    max_elapsed_s: float = 0.0,
    backoff: tuple[float, float] = (1.0, 8.0),
    jitter: float = 0.5,
    max_hinted_wait_s: float = 60.0,
    per_minute: float = 0,
    burst: int | None = None,
    health: Health | None = None,
    wall: Callable[[], float] | None = None,
    clock: FakeClock | None = None,
) -> Rig:
    clock = clock or FakeClock()
    sent: list[tuple[float, str]] = []

    def rd(request: httpx.Request) -> httpx.Response:
        sent.append((clock.now, request.headers["Authorization"].removeprefix("Bearer ")))
        return script(len(sent) - 1, request)

    client = RdClient(
        "http://rd.test", tokens or StaticToken(Secret("tok-0")), httpx.Client(transport=httpx.MockTransport(rd))
    )
    reporter = FakeReporter()
    metrics = Metrics()
    sender = Sender(
        7,
        client,
        cast(Reporter, reporter),
        backoff_initial_s=backoff[0],
        backoff_max_s=backoff[1],
        max_bytes=100_000,
        gate=RateGate(per_minute, burst, clock=clock),
        max_elapsed_s=max_elapsed_s,
        metrics=metrics,
        health=health or Health(),
        max_hinted_wait_s=max_hinted_wait_s,
        sleep=clock.sleep,
        clock=clock,
        wall=wall or (lambda: WALL + clock.now - START),
        jitter=lambda: jitter,
    )
    return Rig(sender, clock, reporter, metrics, sent)


def never(_: object = None) -> bool:
    return False


def failing(times: int, answer: Callable[[], httpx.Response]) -> Script:
    def script(n: int, request: httpx.Request) -> httpx.Response:
        return answer() if n < times else ok(request)

    return script


def status(code: int, **headers: str) -> Callable[[], httpx.Response]:
    return lambda: httpx.Response(code, headers=headers)


# --- retries and backoff ---------------------------------------------------------------------------------------


def test_transient_failures_back_off_exponentially_with_jitter_then_deliver() -> None:
    rig = make_rig(failing(4, status(503)))
    items = make_items(3)
    rig.sender.deliver(items, never)

    assert rig.clock.sleeps == [0.5, 1.0, 2.0, 4.0]  # jitter 0.5 x 1, 2, 4, 8 s
    assert [at for at, _ in rig.sent] == [START, START + 0.5, START + 1.5, START + 3.5, START + 7.5]
    assert rig.reporter.results == [(items, [uuid_of(i) for i in range(3)], "batch-1")]
    assert rig.sender.requests == 5
    assert value(rig.metrics, "rdc_retries_total", cause="status_503", account="default") == 4
    assert value(rig.metrics, "rdc_batches_total", outcome="delivered") == 1


def test_backoff_is_capped_at_its_maximum() -> None:
    rig = make_rig(failing(7, status(503)), backoff=(1.0, 4.0), jitter=0.25)
    rig.sender.deliver(make_items(1), never)
    assert rig.clock.sleeps == [0.25, 0.5, 1.0, 1.0, 1.0, 1.0, 1.0]


def test_a_timeout_is_counted_as_a_possible_duplicate_and_retried() -> None:
    def script(n: int, request: httpx.Request) -> httpx.Response:
        if n == 0:
            raise httpx.ReadTimeout("timed out")
        return ok(request)

    rig = make_rig(script)
    rig.sender.deliver(make_items(4), never)
    assert rig.clock.sleeps == [0.5]
    assert value(rig.metrics, "rdc_possible_duplicates_total") == 4
    assert len(rig.reporter.results) == 1


def test_an_answer_retrying_cannot_fix_is_fatal_at_once() -> None:
    rig = make_rig(lambda n, request: rd_error(403, "FORBIDDEN", "forbidden by policy"))
    with pytest.raises(LaneFatal, match=r"status_403.*forbidden by policy"):
        rig.sender.deliver(make_items(2), never)
    assert rig.clock.sleeps == []
    assert rig.sender.requests == 1


# --- RD's hinted waits and the request budget ----------------------------------------------------------------


def test_a_429_waits_what_rd_asks_through_the_shared_gate() -> None:
    rig = make_rig(failing(1, status(429, **{"Retry-After": "30"})))
    rig.sender.deliver(make_items(1), never)
    assert rig.clock.sleeps == [30.0]  # RD's word, not the backoff
    assert [at for at, _ in rig.sent] == [START, START + 30.0]


def test_an_account_429_cuts_the_shared_rate_and_a_200_climbs_back() -> None:
    rig = make_rig(failing(2, status(429, **{"Retry-After": "3"})), per_minute=600)
    gate = rig.sender._gate
    rig.sender.deliver(make_items(1), never)
    # The first 429 halves 10/s (no success seen yet); the second is a request granted after that cut: again.
    # The 200 then climbs a little.
    assert 2.5 < gate.rate_per_s < 2.6
    sample = rig.metrics.registry.get_sample_value
    assert sample("rdc_rd_throttled_total", {"kind": "account", "account": "default"}) == 2.0
    assert sample("rdc_rd_throttled_total", {"kind": "contact", "account": "default"}) == 0.0
    assert sample("rdc_rate_pause_seconds_total") == 6.0


def test_a_5xx_leaves_the_rate_alone() -> None:
    rig = make_rig(failing(3, status(503)), per_minute=600)
    rig.sender.deliver(make_items(1), never)
    assert rig.sender._gate.rate_per_s == 10.0
    assert (
        rig.metrics.registry.get_sample_value("rdc_rd_throttled_total", {"kind": "account", "account": "default"})
        == 0.0
    )


def test_a_hinted_wait_is_capped_then_rd_is_asked_again() -> None:
    rig = make_rig(failing(2, status(429, **{"Retry-After": "86400"})), max_hinted_wait_s=60.0)
    rig.sender.deliver(make_items(1), never)
    assert rig.clock.sleeps == [60.0, 60.0]


def test_the_request_budget_spaces_requests() -> None:
    rig = make_rig(lambda n, request: ok(request), per_minute=60, burst=1)
    rig.sender.deliver(make_items(1), never)
    rig.sender.deliver(make_items(1, start=1), never)
    rig.sender.deliver(make_items(1, start=2), never)
    assert rig.clock.sleeps == pytest.approx([1.0, 1.0])
    assert [at for at, _ in rig.sent] == pytest.approx([START, START + 1.0, START + 2.0])


DAILY_QUOTA = httpx.Response(
    429,
    headers={"retry-after-quotas": "43200", "ratelimit-limit-quotas": "120"},
    content=b'{"message":"API rate limit exceeded"}',
)


def test_a_daily_quota_is_waited_out_asking_every_minute_never_dead_lettering_and_not_ready_meanwhile() -> None:
    """An account's 429 asking for 12 h: every lane pauses, RD is asked again every 60 s (MAX_HINTED_WAIT_S),
    nothing is dead-lettered, /readyz says until when, and the first 200 makes it ready again."""
    clock = FakeClock()
    health = Health(clock=clock, wall=lambda: WALL + clock.now - START)
    health.set_assigned(True)
    readiness: list[tuple[bool, dict[str, object]]] = []

    def script(n: int, request: httpx.Request) -> httpx.Response:
        health.beat()  # the pipeline's loop goes on meanwhile
        readiness.append(health.readiness())
        return DAILY_QUOTA if n < 5 else ok(request)

    rig = make_rig(script, health=health, clock=clock)
    items = make_items(3)
    rig.sender.deliver(items, never)

    assert rig.clock.sleeps == [60.0] * 5  # a bounded probe interval, not RD's 12 h
    assert rig.reporter.letters == []
    assert rig.reporter.results == [(items, [uuid_of(i) for i in range(3)], "batch-1")]
    assert readiness[0] == (True, {"status": "ready"})
    for n, (ready, body) in enumerate(readiness[1:]):  # the n-th 429 came at START + 60 n s: + 43,200 s
        assert not ready and f"rd_quota_exhausted_until=2026-12-03T18:4{n}:00Z" in cast(list[str], body["reasons"])
    health.beat()
    assert health.readiness() == (True, {"status": "ready"})  # RD took a batch: the quota is back
    assert value(rig.metrics, "rdc_rd_quota_reset_timestamp_seconds") == WALL + 240 + 43_200  # the last 429's
    assert value(rig.metrics, "rdc_rd_throttled_total", kind="contact", account="default") == 0


def test_a_quota_reset_time_that_passed_is_no_reason_to_be_unready() -> None:
    wall = [WALL]
    health = Health(wall=lambda: wall[0])
    health.set_assigned(True)
    health.set_quota_exhausted_until(WALL + 10)
    assert health.readiness() == (
        False,
        {"status": "not_ready", "reasons": ["rd_quota_exhausted_until=2026-12-03T06:40:10Z"]},
    )
    wall[0] += 10
    assert health.readiness() == (True, {"status": "ready"})


def test_a_short_account_429_is_no_quota_exhaustion() -> None:
    rig = make_rig(failing(1, status(429, **{"Retry-After": "60"})))
    rig.sender.deliver(make_items(1), never)
    assert value(rig.metrics, "rdc_rd_quota_reset_timestamp_seconds") == 0


# --- the retry deadline ---------------------------------------------------------------------------------------


def test_the_deadline_cuts_the_last_wait_and_no_request_goes_out_after_it() -> None:
    rig = make_rig(lambda n, request: httpx.Response(503), max_elapsed_s=10.0)
    with pytest.raises(RetryDeadlineExceeded, match=r"RDC_RETRY_MAX_ELAPSED_S=10 s.*status_503"):
        rig.sender.deliver(make_items(2), never)
    assert rig.clock.sleeps == [0.5, 1.0, 2.0, 4.0, 2.5]  # 4 s would end at 11.5 s: cut to the deadline
    assert rig.clock.now == START + 10.0
    assert [at for at, _ in rig.sent] == [START, START + 0.5, START + 1.5, START + 3.5, START + 7.5]
    assert rig.reporter.results == []


def test_the_deadline_counts_from_the_first_failure_not_from_the_wait_for_budget_before_it() -> None:
    def script(n: int, request: httpx.Request) -> httpx.Response:
        return httpx.Response(503) if n == 1 else ok(request)

    rig = make_rig(script, max_elapsed_s=15.0, per_minute=6, burst=1)  # one request per 10 s
    rig.sender.deliver(make_items(1), never)  # takes the budget's only token
    rig.sender.deliver(make_items(1, start=1), never)  # 10 s for budget (not counted), 503, 10 s more: 20 s
    assert rig.clock.sleeps == pytest.approx([10.0, 0.5, 9.5])
    assert [at for at, _ in rig.sent] == pytest.approx([START, START + 10.0, START + 20.0])
    assert len(rig.reporter.results) == 2


def test_a_wait_rd_asks_for_past_the_deadline_ends_at_the_deadline() -> None:
    rig = make_rig(lambda n, request: httpx.Response(429, headers={"Retry-After": "60"}), max_elapsed_s=20.0)
    with pytest.raises(RetryDeadlineExceeded, match="status_429"):
        rig.sender.deliver(make_items(1), never)
    assert rig.clock.sleeps == [20.0]
    assert rig.sender.requests == 1


def test_without_a_deadline_failures_are_retried_for_as_long_as_it_takes() -> None:
    rig = make_rig(failing(50, status(503)), max_elapsed_s=0.0)
    rig.sender.deliver(make_items(1), never)
    assert rig.sender.requests == 51
    assert rig.clock.now == START + 0.5 + 1.0 + 2.0 + 47 * 4.0  # the backoff stays at its cap
    assert len(rig.reporter.results) == 1


@st.composite
def failures(draw: st.DrawFn) -> list[Callable[[], httpx.Response]]:
    kinds = st.sampled_from(["503", "502", "timeout", "connect", "429"])
    out: list[Callable[[], httpx.Response]] = []
    for kind in draw(st.lists(kinds, min_size=1, max_size=6)):
        if kind == "429":
            out.append(status(429, **{"Retry-After": str(draw(st.integers(1, 90)))}))
        elif kind == "timeout":
            out.append(_raise(httpx.ReadTimeout("timed out")))
        elif kind == "connect":
            out.append(_raise(httpx.ConnectError("refused")))
        else:
            out.append(status(int(kind)))
    return out


def _raise(exc: Exception) -> Callable[[], httpx.Response]:
    def answer() -> httpx.Response:
        raise exc

    return answer


@settings(max_examples=60, deadline=None)
@given(
    answers=failures(),
    max_elapsed_s=st.floats(1.0, 120.0),
    initial_s=st.floats(0.05, 5.0),
    cap_factor=st.floats(1.0, 20.0),
    jitter=st.floats(0.25, 0.999),
    max_hinted_wait_s=st.floats(1.0, 60.0),
)
def test_a_failing_rd_is_given_up_on_exactly_at_the_deadline(
    answers: list[Callable[[], httpx.Response]],
    max_elapsed_s: float,
    initial_s: float,
    cap_factor: float,
    jitter: float,
    max_hinted_wait_s: float,
) -> None:
    """Whatever mix of outages RD shows, the attempt gives up at first failure + RDC_RETRY_MAX_ELAPSED_S, sends
    nothing after it, and never waits longer than its backoff cap or the hinted-wait cap."""
    backoff_max_s = max(initial_s * cap_factor, max_elapsed_s / 40)  # keeps the request count small
    rig = make_rig(
        lambda n, request: answers[n % len(answers)](),
        max_elapsed_s=max_elapsed_s,
        backoff=(initial_s, backoff_max_s),
        jitter=jitter,
        max_hinted_wait_s=max_hinted_wait_s,
    )
    with pytest.raises(RetryDeadlineExceeded):
        rig.sender.deliver(make_items(1), never)
    first_failure = rig.sent[0][0]
    assert rig.clock.now == pytest.approx(first_failure + max_elapsed_s)
    assert all(at <= first_failure + max_elapsed_s + 1e-9 for at, _ in rig.sent)
    # A budget wait may be longer: 429s cut the shared rate, down to MIN_PER_S (one request a minute).
    assert all(s <= max(backoff_max_s, max_hinted_wait_s, 1 / MIN_PER_S) + 1e-9 for s in rig.clock.sleeps)
    assert rig.reporter.results == [] and rig.reporter.letters == []


# --- one refresh after a 401 ------------------------------------------------------------------------------------


def unauthorised_unless(token: str) -> Script:
    def script(n: int, request: httpx.Request) -> httpx.Response:
        if request.headers["Authorization"] != f"Bearer {token}":
            return httpx.Response(401, content=b'{"errors": {"error_type": "UNAUTHORIZED"}}')
        return ok(request)

    return script


def test_a_401_refreshes_the_token_once_and_resends_without_waiting() -> None:
    tokens = Tokens()
    rig = make_rig(unauthorised_unless("tok-1"), tokens=tokens)
    rig.sender.deliver(make_items(2), never)
    assert tokens.refreshed == ["tok-0"]
    assert [token for _, token in rig.sent] == ["tok-0", "tok-1"]
    assert rig.clock.sleeps == []  # a refresh is not a delivery retry
    assert len(rig.reporter.results) == 1


def test_a_401_right_after_a_refresh_is_fatal() -> None:
    tokens = Tokens()
    rig = make_rig(unauthorised_unless("never"), tokens=tokens)
    with pytest.raises(AuthFatal, match="401 again right after a token refresh"):
        rig.sender.deliver(make_items(2), never)
    assert tokens.refreshed == ["tok-0"]
    assert rig.sender.requests == 2


def test_another_answer_between_two_401s_allows_a_second_refresh() -> None:
    answers = [401, 503, 401, 200]
    tokens = Tokens()

    def script(n: int, request: httpx.Request) -> httpx.Response:
        return ok(request) if answers[n] == 200 else httpx.Response(answers[n])

    rig = make_rig(script, tokens=tokens)
    rig.sender.deliver(make_items(1), never)
    assert tokens.refreshed == ["tok-0", "tok-1"]
    assert [token for _, token in rig.sent] == ["tok-0", "tok-1", "tok-1", "tok-2"]
    assert rig.clock.sleeps == [0.5]  # only the 503 is waited on


def test_a_401_with_a_token_that_cannot_be_refreshed_is_fatal() -> None:
    rig = make_rig(unauthorised_unless("never"), tokens=Tokens(refreshable=False))
    with pytest.raises(AuthFatal, match="static token cannot be refreshed"):
        rig.sender.deliver(make_items(1), never)
    assert rig.sender.requests == 1


def test_a_token_endpoint_that_is_down_during_a_refresh_is_not_fatal() -> None:
    tokens = Tokens(fail_refresh=1)
    rig = make_rig(unauthorised_unless("tok-1"), tokens=tokens)
    rig.sender.deliver(make_items(1), never)
    assert [token for _, token in rig.sent] == ["tok-0", "tok-0", "tok-1"]  # the second 401 may refresh again
    assert tokens.refreshed == ["tok-0"]


def test_no_token_available_is_retried_with_backoff_without_a_request() -> None:
    tokens = Tokens(fail_token=2)
    rig = make_rig(lambda n, request: ok(request), tokens=tokens)
    rig.sender.deliver(make_items(1), never)
    assert rig.clock.sleeps == [0.5, 1.0]
    assert rig.sender.requests == 1
    assert value(rig.metrics, "rdc_retries_total", cause="auth_unavailable", account="default") == 2


# --- abandon ---------------------------------------------------------------------------------------------------


def test_an_abandoned_batch_is_not_sent() -> None:
    rig = make_rig(lambda n, request: ok(request))
    with pytest.raises(_Abandoned):
        rig.sender.deliver(make_items(1), lambda: True)
    assert rig.sent == []


def test_abandon_during_a_wait_stops_the_retries() -> None:
    rig = make_rig(lambda n, request: httpx.Response(503))

    def abandoned_after(seconds: float) -> Callable[[], bool]:
        return lambda: rig.clock.now - START >= seconds

    with pytest.raises(_Abandoned):
        rig.sender.deliver(make_items(1), abandoned_after(3.0))
    assert rig.clock.sleeps == [0.5, 1.0, 2.0]  # abandoned during the third wait: checked when it ends
    assert rig.sender.requests == 3

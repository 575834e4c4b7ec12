"""A hostile or broken RD on loopback (connector.testing.hostile_rd) against a real lane, RdClient and
bounded httpx client (issue 14 items 5 to 9): no answer makes the connector hold gigabytes, hang, wait for
days, commit on a 200 it cannot read, or dead-letter records for a proxy's error page."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import cast

import pytest

from connector.commands.sample import generate_messages
from connector.config import Secret
from connector.deliver.lanes import Lane
from connector.errors import AmbiguousAnswer, AuthUnavailable, RetryDeadlineExceeded
from connector.ops.probe_server import Health
from connector.rd.auth import RefreshingToken
from connector.rd.bounded_http import bounded_client
from connector.rd.client import RdClient, StaticToken
from connector.settle.reporter import Reporter
from connector.testing.hostile_rd import Drip, HostileRd, Huge, Reply, Script, Seen, rd_errors, rd_ok
from connector.testing.kafka_tools import committed_offsets, produce_acked
from tests.integration.pipeline_support import Topics, connector_env, spawn_connector
from tests.unit.deliver.test_lanes import POISON, FakeReporter, batch_of, make_items, wait_until

pytestmark = pytest.mark.integration

PROXY_400 = b"<html><head><title>400 Bad Request</title></head><body><center>nginx</center></body></html>"
PROXY_413 = b"<html><head><title>413 Request Entity Too Large</title></head><body>nginx</body></html>"


class Rig:
    def __init__(self, rd: HostileRd, lane: Lane, reporter: FakeReporter, health: Health) -> None:
        self.rd, self.lane, self.reporter, self.health = rd, lane, reporter, health


@pytest.fixture
def rig() -> Iterator[Callable[..., Rig]]:
    made: list[Rig] = []

    def make(script: Script, *, timeout_s: float = 5.0, max_failing_s: float = 60.0, **options: object) -> Rig:
        rd = HostileRd(script).start()
        client = RdClient(rd.url, StaticToken(Secret("tok")), bounded_client(timeout_s, 2, rd.url), timeout_s=timeout_s,
                          max_events=10)  # fmt: skip
        health = Health(max_failing_s=max_failing_s)
        health.set_assigned(True)
        reporter = FakeReporter()
        lane = Lane(0, client, cast(Reporter, reporter), backoff_initial_s=0.01, backoff_max_s=0.05,
                    max_bytes=100_000, health=health, **options)  # type: ignore[arg-type]  # fmt: skip
        made.append(Rig(rd, lane, reporter, health))
        return made[-1]

    yield make
    for made_rig in made:
        made_rig.lane.abandon()
        made_rig.rd.stop()
        made_rig.lane.close(5.0)


def nothing_settled(rig: Rig) -> bool:
    return rig.reporter.results == [] and rig.reporter.letters == []


# --- 5: a 200 of 1 GB ----------------------------------------------------------------------------------------


def test_a_1_gb_answer_is_cut_at_the_cap_and_is_ambiguous(rig: Callable[..., Rig]) -> None:
    r = rig(lambda seen: Huge(size=1 << 30, prefix=b'{"event_batch_uuid":"b","events":[', suffix=b"]}"))
    r.lane.submit(batch_of(make_items(3)))
    wait_until(lambda: r.lane.fatal is not None, timeout=30)
    assert isinstance(r.lane.fatal, AmbiguousAnswer) and r.lane.fatal.exit_code == 4
    wait_until(lambda: r.rd.seen[0].ended_at is not None, timeout=10)
    assert r.rd.seen[0].written < 64 << 20  # the client hung up long before 1 GB (socket buffers aside)
    assert "longer than" in str(r.lane.fatal)
    assert nothing_settled(r)


def test_a_1_gb_token_answer_is_cut_and_retryable() -> None:
    with HostileRd(lambda seen: Huge(size=1 << 30, prefix=b'{"access_token":"', suffix=b'"}')) as rd:
        tokens = RefreshingToken(bounded_client(5.0, 1, rd.url), rd.url, "id", Secret("secret"), Secret("refresh"),
                                 timeout_s=5.0)  # fmt: skip
        with pytest.raises(AuthUnavailable, match="more than"):
            tokens.token()
        wait_until(lambda: rd.seen[0].ended_at is not None, timeout=10)
        assert rd.seen[0].written < 64 << 20


# --- 6: headers, then a byte every so often -----------------------------------------------------------------


@pytest.mark.parametrize("head", [False, True], ids=["body-drip", "header-drip"])
def test_a_dripping_answer_times_out_at_the_request_deadline(rig: Callable[..., Rig], head: bool) -> None:
    """RDC_HTTP_TIMEOUT_S=1 bounds the whole request though each byte comes within 0.2 s; a timeout is
    retried and, once RD has failed for max_failing_s, /readyz says so."""
    r = rig(lambda seen: Drip(interval_s=0.2, head=head), timeout_s=1.0, max_failing_s=0.5)
    r.lane.submit(batch_of(make_items(2)))
    wait_until(lambda: len(r.rd.seen) >= 2, timeout=15)  # the first request ended: the lane retries
    first = r.rd.seen[0]
    wait_until(lambda: first.ended_at is not None, timeout=5)
    assert first.ended_at is not None and first.ended_at - first.at < 4.0  # the deadline, not 200,000 s
    assert first.written > 2  # bytes kept coming: no single read ever waited its timeout out
    wait_until(lambda: not r.health.readiness()[0], timeout=10)
    assert any(reason.startswith("rd_failing_for_s") for reason in r.health.readiness()[1]["reasons"])
    assert nothing_settled(r)


# --- 7: Retry-After: 999999 ----------------------------------------------------------------------------------


def test_a_retry_after_of_eleven_days_is_waited_at_most_the_cap(rig: Callable[..., Rig]) -> None:
    def script(seen: Seen) -> Reply:
        if len(r.rd.seen) == 1:
            return Reply(429, b'{"message":"API rate limit exceeded"}', headers=(("Retry-After", "999999"),))
        return rd_ok(seen)

    r = rig(script, max_hinted_wait_s=0.3)
    items = make_items(2)
    r.lane.submit(batch_of(items))
    wait_until(lambda: r.reporter.published() == items, timeout=15)
    first, second = r.rd.seen[:2]
    assert second.at - first.at >= 0.3  # the (capped) wait was honoured
    assert r.lane.fatal is None


def test_waits_count_toward_the_retry_deadline(rig: Callable[..., Rig]) -> None:
    """RDC_RETRY_MAX_ELAPSED_S=1 and RD always asking 999999 s: the batch ends at the deadline (exit 5),
    not after the 60 s wait the cap would still allow."""
    r = rig(lambda seen: Reply(429, b"{}", headers=(("Retry-After", "999999"),)), max_elapsed_s=1.0)
    r.lane.submit(batch_of(make_items(2)))
    wait_until(lambda: r.lane.fatal is not None, timeout=15)
    assert isinstance(r.lane.fatal, RetryDeadlineExceeded) and r.lane.fatal.exit_code == 5
    assert len(r.rd.seen) == 1
    assert nothing_settled(r)


# --- 8: a 200 whose UUIDs are null, integers or all the same ----------------------------------------------


@pytest.mark.parametrize(
    "uuids",
    [
        pytest.param([None, None], id="null"),
        pytest.param([1, 2], id="integers"),
        pytest.param(["6f1c2a1e-8d3b-4c55-9a57-1f0e6a4b2c3d"] * 2, id="all-the-same"),
    ],
)
def test_a_200_with_bad_uuids_is_ambiguous_and_nothing_is_settled(rig: Callable[..., Rig], uuids: list[object]) -> None:
    r = rig(lambda seen: rd_ok(seen, uuids=uuids))
    r.lane.submit(batch_of(make_items(2)))
    wait_until(lambda: r.lane.fatal is not None)
    assert isinstance(r.lane.fatal, AmbiguousAnswer) and r.lane.fatal.exit_code == 4
    assert nothing_settled(r)


# --- 9: a proxy's blanket 400/413 ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "page"),
    [
        pytest.param(400, PROXY_400, id="400"),
        pytest.param(413, PROXY_413, id="413"),
        pytest.param(413, b"", id="413-empty"),
    ],
)
def test_a_proxy_error_page_is_an_outage_not_a_verdict(rig: Callable[..., Rig], status: int, page: bytes) -> None:
    """Every request answered with the proxy's page for a while: nothing is dead-lettered or split, /readyz
    fails at once; when RD answers again every event is delivered."""
    proxy_until = threading.Event()

    def script(seen: Seen) -> Reply:
        if not proxy_until.is_set():
            return Reply(status, page, content_type="text/html")
        return rd_ok(seen)

    r = rig(script)
    items = make_items(8)
    r.lane.submit(batch_of(items))
    wait_until(lambda: len(r.rd.seen) >= 5, timeout=15)
    ready, body = r.health.readiness()
    assert not ready and "rd_answer_not_recognised" in body["reasons"]
    assert r.reporter.letters == [] and r.lane.fatal is None
    assert {s.events for s in r.rd.seen} == {8}  # never bisected
    proxy_until.set()
    wait_until(lambda: r.reporter.published() == items, timeout=15)
    assert r.reporter.letters == []
    assert r.health.readiness()[0]


def test_rd_own_400_is_still_bisected_to_the_rejected_event(rig: Callable[..., Rig]) -> None:
    def script(seen: Seen) -> Reply:
        if POISON in seen.body:
            return Reply(400, rd_errors("INVALID_OPTION", "Must be one of the valid options."))
        return rd_ok(seen)

    r = rig(script)
    items = make_items(4, poison=(2,))
    r.lane.submit(batch_of(items))
    wait_until(lambda: len(r.reporter.published()) + len(r.reporter.letters) == 4, timeout=15)
    assert [letter.offset for letter in r.reporter.letters] == [2]
    assert r.reporter.letters[0].reason == "rejected_by_rd"
    assert r.health.readiness()[0]


def test_hostile_rd_drip_outlasts_plain_httpx_read_timeouts() -> None:
    """The premise of item 6, kept true: httpx's own read timeout does not end a drip (so the deadline must)."""
    import httpx

    with HostileRd(lambda seen: Drip(interval_s=0.1, length=20)) as rd, httpx.Client(timeout=0.5) as plain:
        began = time.monotonic()
        assert plain.post(rd.url + "/x", content=b"[]").status_code == 200
        assert time.monotonic() - began > 1.5  # 20 bytes at 0.1 s each, past the 0.5 s read timeout


# --- the whole connector on the broker: exit 4, nothing committed -------------------------------------------


@pytest.mark.parametrize(
    "script",
    [
        pytest.param(lambda seen: rd_ok(seen, uuids=["6f1c2a1e-8d3b-4c55-9a57-1f0e6a4b2c3d"] * seen.events), id="same"),
        pytest.param(lambda seen: rd_ok(seen, uuids=[None] * seen.events), id="null"),
        pytest.param(lambda seen: Huge(size=1 << 30, prefix=b'{"event_batch_uuid":"b","events":['), id="1-gb"),
    ],
)
def test_the_connector_exits_4_and_commits_nothing(
    kafka_bootstrap: str, topics: Topics, tmp_path: Path, script: Script
) -> None:
    messages = generate_messages(40, seed=5)
    produce_acked(kafka_bootstrap, topics.source, [(m.key, m.value) for m in messages])
    with HostileRd(script) as rd:
        env = connector_env(kafka_bootstrap, rd.url, topics)
        proc = spawn_connector(env, str(tmp_path / "run.log"))
        try:
            code = proc.wait(60)
        finally:
            if proc.poll() is None:  # it did not stop: end it, so no connector outlives the test
                proc.kill()
                proc.wait(10)
    log = (tmp_path / "run.log").read_text()
    assert code == 4, log
    assert "nothing of this batch is committed" in log
    assert all(o < 0 for o in committed_offsets(kafka_bootstrap, topics.group, topics.source, 3).values())

"""The token store on the session's real broker: publish/read between two store instances (two replicas),
records that do not open, and three replicas sharing one rotating refresh token against the mock RD API
(strict auth, 3 s tokens) without anyone being locked out. No token ever reaches the topic in plain text."""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource  # type: ignore[attr-defined]

from connector.config import Secret
from connector.rd.auth import RefreshingToken
from connector.rd.token_seal import record_key
from connector.rd.token_store import AccountTokenStore, KafkaTokenStore, StoredTokens
from connector.testing.broker import TEST_PRODUCER, delete_topics
from connector.testing.mock_rd import MockRdServer

pytestmark = pytest.mark.integration

CLIENT_ID = "client-id-store"
CLIENT_SECRET = "cs-SECRET-store-9c1d"
INITIAL_REFRESH = "rt-SECRET-initial-store"
EVENT = {
    "event_type": "CONVERSION",
    "event_family": "CDP",
    "payload": {"conversion_identifier": "x", "email": "a@b.co"},
}


@pytest.fixture
def store_topic(kafka_bootstrap: str) -> Iterator[str]:
    """A token store topic name never used before (the store creates it); deleted at teardown."""
    name = f"rdc-tokens-{uuid.uuid4().hex[:12]}"
    yield name
    delete_topics(kafka_bootstrap, [name])


@pytest.fixture
def stores(kafka_bootstrap: str, store_topic: str) -> Iterator[list[KafkaTokenStore]]:
    """Three KafkaTokenStore instances on one topic (three replicas), the topic ensured by each."""
    made = [KafkaTokenStore({"bootstrap.servers": kafka_bootstrap}, store_topic) for _ in range(3)]
    for store in made:
        store.ensure_topic(10.0)  # the second and third find it there: TOPIC_ALREADY_EXISTS is fine
    yield made
    for store in made:
        store.close()


def _raw_records(bootstrap: str, topic: str) -> list[tuple[bytes | None, bytes | None]]:
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"g-{uuid.uuid4().hex[:8]}", "enable.partition.eof": True}
    )
    consumer.assign([TopicPartition(topic, 0, 0)])
    records: list[tuple[bytes | None, bytes | None]] = []
    deadline = time.monotonic() + 10
    try:
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                assert error.code() == KafkaError._PARTITION_EOF, error
                break
            records.append((message.key(), message.value()))
    finally:
        consumer.close()
    return records


def test_topic_is_created_compacted_with_one_partition(kafka_bootstrap: str, stores: list[KafkaTokenStore]) -> None:
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    topic = stores[0].topic
    assert list(admin.list_topics(topic, timeout=5).topics[topic].partitions) == [0]
    configs = admin.describe_configs([ConfigResource("topic", topic)])
    (future,) = configs.values()
    assert future.result(10)["cleanup.policy"].value == "compact"


def test_a_second_replica_reads_what_the_first_published(stores: list[KafkaTokenStore]) -> None:
    first = AccountTokenStore(stores[0], "default", CLIENT_ID, Secret(CLIENT_SECRET))
    second = AccountTokenStore(stores[1], "default", CLIENT_ID, Secret(CLIENT_SECRET))
    other_account = AccountTokenStore(stores[0], "shop-b", "client-id-b", Secret("cs-SECRET-b"))
    assert first.load() is None and second.load() is None
    one = StoredTokens("rt-SECRET-1", "at-SECRET-1", 2e9, 1e9, "w1")
    two = StoredTokens("rt-SECRET-2", None, 0.0, 1e9 + 1, "w1")
    first.save(one)
    assert second.load() == one
    other_account.save(StoredTokens("rt-SECRET-b", "at-SECRET-b", 2e9, 1e9, "w1"))
    first.save(two)
    assert second.load() == two  # newest in the log wins, read incrementally by an open consumer
    assert first.load() == two
    assert other_account.load() is not None and other_account.load() != two
    # A third replica starting now reads the whole log.
    assert AccountTokenStore(stores[2], "default", CLIENT_ID, Secret(CLIENT_SECRET)).load() == two


def test_records_that_do_not_open_are_ignored_with_a_warning(
    kafka_bootstrap: str, stores: list[KafkaTokenStore], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "connector.rd.token_store")
    writer = AccountTokenStore(stores[0], "default", CLIENT_ID, Secret("passphrase-of-replica-a"))
    reader = AccountTokenStore(stores[1], "default", CLIENT_ID, Secret("passphrase-of-replica-b"))
    writer.save(StoredTokens("rt-SECRET-x", "at-SECRET-x", 2e9, 1e9, "w1"))
    assert reader.load() is None
    assert reader.load() is None  # warned once per record
    warnings = [r.getMessage() for r in caplog.records if "token_store_record_ignored" in r.getMessage()]
    assert len(warnings) == 1
    assert f"key={record_key('default', CLIENT_ID).decode()}" in warnings[0]
    assert "RDC_TOKEN_STORE_KEY may differ between replicas" in warnings[0]
    # Garbage under the key (a foreign writer) is ignored by everyone, the writer included.
    producer = Producer({"bootstrap.servers": kafka_bootstrap, **TEST_PRODUCER})
    producer.produce(stores[0].topic, key=record_key("default", CLIENT_ID), value=b"\x01garbage", partition=0)
    assert producer.flush(10) == 0
    assert writer.load() is None
    assert "SECRET" not in caplog.text


def _replica(
    stop: threading.Event,
    provider: RefreshingToken,
    rd: MockRdServer,
    failures: list[str],
    stats: dict[str, int],
    forced: bool,
) -> None:
    rng = random.Random()
    with httpx.Client(timeout=5.0, trust_env=False) as http:
        next_forced = time.monotonic() + rng.uniform(0.5, 2.5)
        while not stop.is_set():
            try:
                token = provider.token()
                status = http.post(
                    f"{rd.url}/platform/events/batch",
                    json=[EVENT],
                    headers={"Authorization": f"Bearer {token.reveal()}"},
                ).status_code
                stats["posts"] += 1
                if status == 401:  # as the lane does: refresh once, carry on
                    stats["unauthorized"] += 1
                    provider.refresh(token)
                elif status != 200:
                    failures.append(f"status {status}")
                if forced and time.monotonic() >= next_forced:  # now and then, a 401 as if RD had revoked the token
                    provider.refresh(token)
                    stats["forced"] += 1
                    next_forced = time.monotonic() + rng.uniform(1.0, 3.0)
            except Exception as exc:
                failures.append(f"{type(exc).__name__}: {exc}")
                return
            time.sleep(0.02)


@pytest.mark.parametrize("forced", [False, True], ids=["expiry-only", "with-forced-refreshes"])
def test_three_replicas_share_a_rotating_refresh_token(
    stores: list[KafkaTokenStore], kafka_bootstrap: str, forced: bool
) -> None:
    """Each replica posts events with its token in a loop for 10 s (refreshing after a 401, and with
    `forced` also now and then as if RD had revoked its access token): nobody is refused for good."""
    ttl_s, duration_s = 3.0, 10.0
    with MockRdServer(
        strict_auth=True,
        rotate_refresh_token=True,
        token_ttl_s=ttl_s,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        refresh_tokens=[INITIAL_REFRESH],
    ) as rd:
        clients = [httpx.Client(timeout=5.0, trust_env=False) for _ in stores]
        providers = [
            RefreshingToken(
                client,
                rd.url,
                CLIENT_ID,
                Secret(CLIENT_SECRET),
                Secret(INITIAL_REFRESH),
                store=AccountTokenStore(store, "default", CLIENT_ID, Secret(CLIENT_SECRET)),
                writer=f"replica-{i}",
            )
            for i, (client, store) in enumerate(zip(clients, stores, strict=True))
        ]
        stop = threading.Event()
        failures: list[list[str]] = [[] for _ in providers]
        stats: list[dict[str, int]] = [{"posts": 0, "unauthorized": 0, "forced": 0} for _ in providers]
        threads = [
            threading.Thread(target=_replica, args=(stop, p, rd, failures[i], stats[i], forced), name=f"replica-{i}")
            for i, p in enumerate(providers)
        ]
        for thread in threads:
            thread.start()
        time.sleep(duration_s)
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
        for client in clients:
            client.close()
        issued = rd.issued_tokens()
        rd_refreshes = rd.stats()["token_refreshes"]

    lifetimes = duration_s / ttl_s
    report = "; ".join(
        f"replica-{i}: refreshes={p.refreshes} ({p.refreshes / lifetimes:.2f}/lifetime) rotations={p.rotations} "
        f"adopted={p.adopted} recovered_from_store={p.recovered_from_store} {stats[i]}"
        for i, p in enumerate(providers)
    )
    report += f"; RD issued {rd_refreshes} tokens in {duration_s:g} s of {ttl_s:g} s tokens"
    print(report)
    assert failures == [[], [], []], report
    assert all(not thread.is_alive() for thread in threads), report
    assert all(s["posts"] > 50 for s in stats), report
    assert sum(p.refreshes for p in providers) == rd_refreshes, report
    assert all(p.unpublished is None for p in providers), report
    if not forced:  # no stampede: about one refresh per token lifetime among all three (plus the first token)
        assert rd_refreshes <= lifetimes + 2, report

    records = _raw_records(kafka_bootstrap, stores[0].topic)
    assert len(records) == rd_refreshes, report  # one record per refresh: every rotation was published
    assert len(issued) > 2 * rd_refreshes - 1
    for key, value in records:
        assert key == record_key("default", CLIENT_ID)
        assert value is not None
        for token in issued:
            assert token.encode() not in value, "a token is on the topic in plain text"
        assert b"SECRET" not in value and b"mock-" not in value

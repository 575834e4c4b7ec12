"""Several RD accounts in one process, on the broker: records routed by a field to their account, each account
with its own credentials, base URL and budget; an account whose credentials RD refuses blocks while the other
keeps delivering, and nothing is committed past its events until RD takes them."""

from __future__ import annotations

import collections
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from connector.avro import Encoder, SchemaCatalog
from connector.testing.kafka_tools import committed_offsets, produce_acked, read_topic
from connector.testing.mock_rd import MockAccount, MockRdServer
from tests.integration.pipeline_support import Topics, connector_env, decode_results, start_pipeline, wait_until

pytestmark = pytest.mark.integration

SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "BrandOrder",
    "namespace": "com.test.brands",
    "fields": [
        {"name": "order_id", "type": "long"},
        {"name": "brand", "type": {"type": "enum", "name": "Brand", "symbols": ["NORTH", "SOUTH", "EAST"]}},
        {"name": "email", "type": "string"},
    ],
}

MAPPING = """\
version: 1
mappings:
  - name: brand-orders
    record: com.test.brands.BrandOrder
    topics: [{topic}]
    event_type: CONVERSION
    account:
      path: brand
      cases: {{NORTH: north, SOUTH: south}}
      otherwise: dead_letter
    payload:
      email: email
      conversion_identifier: {{path: order_id, to: string}}
"""


def _values(schema_dir: Path, records: list[dict[str, Any]]) -> list[tuple[bytes, bytes]]:
    """Single-object encoding (the connector finds the schema in RDC_SCHEMA_DIR)."""
    encoder = Encoder(SchemaCatalog.load(schema_dir))
    return [(str(r["order_id"]).encode(), encoder.single_object("com.test.brands.BrandOrder", r)) for r in records]


@pytest.fixture
def second_rd() -> Iterator[MockRdServer]:
    with MockRdServer(seed=11) as server:
        yield server


def _setup(tmp_path: Path, topic: str, north_url: str, south_url: str, **south: str) -> Path:
    (tmp_path / "schemas").mkdir()
    (tmp_path / "schemas" / "BrandOrder.avsc").write_text(json.dumps(SCHEMA))
    (tmp_path / "brand-orders.yaml").write_text(MAPPING.format(topic=topic))
    south_keys = "\n".join(f'{key} = "{value}"' for key, value in south.items())
    config = tmp_path / "connector.toml"
    config.write_text(
        f'[accounts.north]\nbase_url = "{north_url}"\nrd_access_token_env = "NORTH_TOKEN"\nrequests_per_minute = 0\n\n'
        f'[accounts.south]\nbase_url = "{south_url}"\nrequests_per_minute = 0\n{south_keys}\n'
    )
    return config


def _env(kafka: str, rd: MockRdServer, topics: Topics, tmp_path: Path, config: Path, **extra: str) -> dict[str, str]:
    env = connector_env(
        kafka,
        rd.url,
        topics,
        RDC_CONFIG_FILE=str(config),
        RDC_SCHEMA_DIR=str(tmp_path / "schemas"),
        RDC_MAPPINGS=str(tmp_path / "brand-orders.yaml"),
        RDC_DECODE_WORKERS="0",
        **{"NORTH_TOKEN": "north-static-token", **extra},
    )
    del env["RDC_RD_ACCESS_TOKEN"]  # no `default` account: the two of the file only
    return env


def _records(count: int) -> list[dict[str, Any]]:
    brands = ["NORTH", "SOUTH", "NORTH", "EAST"]
    return [{"order_id": n, "brand": brands[n % 4], "email": f"c{n}@example.com"} for n in range(count)]


def test_two_accounts_routed_by_a_field_each_with_its_own_token_url_and_order(
    kafka_bootstrap: str,
    make_topic: Callable[..., str],
    group_id: str,
    rd: MockRdServer,
    second_rd: MockRdServer,
    tmp_path: Path,
) -> None:
    topics = Topics(make_topic("brands", 2), make_topic("results"), make_topic("dlq"), 2, group_id)
    rd.configure(strict_auth=False)
    second_rd.configure(strict_auth=True, rotate_refresh_token=True)
    config = _setup(
        tmp_path,
        topics.source,
        rd.url,
        second_rd.url,
        rd_client_id="south-app",
        rd_client_secret_file=str(tmp_path / "south-secret"),
        rd_refresh_token="south-refresh",
    )
    (tmp_path / "south-secret").write_text("south-secret-value\n")
    records = _records(400)
    ends = produce_acked(kafka_bootstrap, topics.source, _values(tmp_path / "schemas", records))
    running = start_pipeline(_env(kafka_bootstrap, rd, topics, tmp_path, config))
    try:
        assert wait_until(lambda: committed_offsets(kafka_bootstrap, topics.group, topics.source, 2) == ends, 60)
    finally:
        assert running.stop() == 0
    north = [int(e.event["payload"]["conversion_identifier"]) for e in rd.accepted]
    south = [int(e.event["payload"]["conversion_identifier"]) for e in second_rd.accepted]
    assert sorted(north) == [r["order_id"] for r in records if r["brand"] == "NORTH"]
    assert sorted(south) == [r["order_id"] for r in records if r["brand"] == "SOUTH"]
    assert second_rd.issued_tokens()  # south refreshed with its own app credentials
    assert running.pipeline.stats.dead_lettered == 100  # EAST: otherwise dead_letter (unknown_account)
    metrics = running.pipeline._metrics.render().decode()
    assert 'rdc_events_delivered_total{account="north"} 200.0' in metrics
    assert 'rdc_events_delivered_total{account="south"} 100.0' in metrics
    assert 'rdc_events_dead_lettered_total{reason="unknown_account",stage="map"} 100.0' in metrics
    assert 'rdc_token_refreshes_total{account="south",result="ok"}' in metrics


def test_an_account_whose_refresh_rd_refuses_blocks_while_the_other_delivers_and_catches_up_once_fixed(
    kafka_bootstrap: str, make_topic: Callable[..., str], group_id: str, tmp_path: Path
) -> None:
    accounts = {
        "north": MockAccount(client_id="north-app", client_secret="north-cs", static_tokens=("north-tok",)),
        "south": MockAccount(client_id="south-app", client_secret="south-cs", refuse_refresh=True),
    }
    topics = Topics(make_topic("brands", 1), make_topic("results"), make_topic("dlq"), 1, group_id)
    with MockRdServer(accounts=accounts, strict_auth=True, seed=4) as rd:
        config = _setup(tmp_path, topics.source, rd.url, rd.url, rd_client_id="south-app",
                        rd_client_secret="south-cs", rd_refresh_token="south-rt")  # fmt: skip
        records = [r for r in _records(300) if r["brand"] != "EAST"]
        ends = produce_acked(kafka_bootstrap, topics.source, _values(tmp_path / "schemas", records))
        env = _env(kafka_bootstrap, rd, topics, tmp_path, config, NORTH_TOKEN="north-tok", RDC_ACCOUNT_RETRY_S="0.5")
        running = start_pipeline(env)
        try:
            north = sum(r["brand"] == "NORTH" for r in records)
            assert wait_until(lambda: len(rd.accepted_for("north")) == north, 30), "north stopped with south"

            def refusals() -> int:
                return int(rd.stats()["accounts"]["south"]["requests_by_status"].get("401", 0))

            assert wait_until(lambda: refusals() >= 2, 20)  # south asked again: blocked, not stopped
            assert running.thread.is_alive() and running.pipeline._lanes.fatal() is None
            ready, body = running.pipeline._health.readiness()
            assert not ready and "account_blocked=south" in body["reasons"], body
            assert 'rdc_account_blocked{account="south"} 1.0' in running.pipeline._metrics.render().decode()
            first_south = next(i for i, r in enumerate(records) if r["brand"] == "SOUTH")
            committed = committed_offsets(kafka_bootstrap, topics.group, topics.source, 1)[0]
            assert committed <= first_south  # nothing committed past south's first waiting event
            rd.configure_account("south", refuse_refresh=False)  # the operator authorised the app again
            assert wait_until(lambda: committed_offsets(kafka_bootstrap, topics.group, topics.source, 1) == ends, 30)
            assert running.pipeline._health.readiness()[0]
        finally:
            assert running.stop() == 0
        south = [int(e.event["payload"]["conversion_identifier"]) for e in rd.accepted_for("south")]
        north_ids = [int(e.event["payload"]["conversion_identifier"]) for e in rd.accepted_for("north")]
    assert south == [r["order_id"] for r in records if r["brand"] == "SOUTH"]  # in order, each once
    assert collections.Counter(north_ids) == {r["order_id"]: 1 for r in records if r["brand"] == "NORTH"}
    assert 'rdc_account_blocked{account="south"} 0.0' in running.pipeline._metrics.render().decode()


def test_two_accounts_on_one_rd_each_at_its_own_token_and_budget(
    kafka_bootstrap: str, make_topic: Callable[..., str], group_id: str, tmp_path: Path
) -> None:
    """One RD that limits each account separately (north 2 requests/s, south 8/s, fixed 1 s windows); the
    connector spends north's budget (100/min) and south's (420/min) apart (spaced requests: at most rate + 1
    in any second, so under each limit): neither earns a 429, and south is not held to north's pace. Results
    name their account."""
    accounts = {
        "north": MockAccount(client_id="north-app", client_secret="north-cs", static_tokens=("north-tok",),
                             rate_limit_per_s=2),
        "south": MockAccount(client_id="south-app", client_secret="south-cs", refresh_tokens=("south-rt",),
                             rate_limit_per_s=8),
    }  # fmt: skip
    topics = Topics(make_topic("brands", 2), make_topic("results"), make_topic("dlq"), 2, group_id)
    with MockRdServer(accounts=accounts, strict_auth=True, rotate_refresh_token=True, seed=3) as rd:
        config = _setup(tmp_path, topics.source, rd.url, rd.url, rd_client_id="south-app",
                        rd_client_secret="south-cs", rd_refresh_token="south-rt")  # fmt: skip
        config.write_text(
            config.read_text()
            .replace("requests_per_minute = 0\n", "requests_per_minute = 100\n", 1)
            .replace("requests_per_minute = 0\n", "requests_per_minute = 420\n", 1)
        )
        records = [r for r in _records(400) if r["brand"] != "EAST"]
        ends = produce_acked(kafka_bootstrap, topics.source, _values(tmp_path / "schemas", records))
        env = _env(kafka_bootstrap, rd, topics, tmp_path, config, NORTH_TOKEN="north-tok", RDC_BATCH_MAX_EVENTS="10")
        running = start_pipeline(env)
        try:
            assert wait_until(lambda: committed_offsets(kafka_bootstrap, topics.group, topics.source, 2) == ends, 90)
        finally:
            assert running.stop() == 0
        by_account = rd.stats()["accounts"]
        north_at = [r.at for r in rd.requests if r.account == "north" and r.path.endswith("/batch")]
        south_at = [r.at for r in rd.requests if r.account == "south" and r.path.endswith("/batch")]
        north = [int(e.event["payload"]["conversion_identifier"]) for e in rd.accepted_for("north")]
        south = [int(e.event["payload"]["conversion_identifier"]) for e in rd.accepted_for("south")]
    assert sorted(north) == [r["order_id"] for r in records if r["brand"] == "NORTH"]
    assert sorted(south) == [r["order_id"] for r in records if r["brand"] == "SOUTH"]
    assert by_account["north"]["rate_limited"] == 0 and by_account["south"]["rate_limited"] == 0, by_account
    north_rate = (len(north_at) - 1) / (north_at[-1] - north_at[0])
    south_rate = (len(south_at) - 1) / (south_at[-1] - south_at[0])
    assert north_rate <= 1.8 and south_rate > 2.5 * north_rate, (north_rate, south_rate)  # each its own pace
    results = decode_results(read_topic(kafka_bootstrap, topics.results, 1, len(records), timeout_s=20))
    assert collections.Counter(r["rd_account"] for r in results) == {"north": len(north), "south": len(south)}

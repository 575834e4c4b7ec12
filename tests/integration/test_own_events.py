"""Your own events, end to end on the broker: records of schemas the project never bundled, mapped by a mapping
file, through RDC_SCHEMA_DIR and through the Schema Registry; and a Debezium table's change events."""

from __future__ import annotations

import collections
import copy
import io
import json
import logging
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import fastavro
import pytest

from connector.avro import Encoder, SchemaCatalog, confluent_header
from connector.testing.kafka_tools import committed_offsets, produce_acked, read_topic
from connector.testing.mock_rd import MockRdServer
from connector.testing.schema_registry import FakeSchemaRegistry
from tests.integration.pipeline_support import Topics, connector_env, start_pipeline, wait_until

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).parents[2] / "examples"
ORDERS = EXAMPLES / "order-service"
CHECKOUTS = EXAMPLES / "debezium-checkouts"
ORDER_SCHEMA: dict[str, Any] = json.loads((ORDERS / "Order.avsc").read_text())


def _order(number: int, status: str = "PAID", email: str = "Ana@X.com") -> dict[str, Any]:
    return {
        "order_number": number,
        "status": status,
        "buyer": {"email": email, "full_name": "Ana", "nickname": None, "phone": None},
        "total_cents": 12990,
        "items": [{"sku": "TEE-M", "title": "Tee", "unit_cents": 12990, "qty": 1}],
        "cancel_reason": None,
        "placed_at": 1_769_860_800_000,
    }


def _mapping_dir(tmp_path: Path, topic: str) -> Path:
    """The example's mapping file, for the test's own topic."""
    text = (ORDERS / "acme-orders.yaml").read_text().replace("topics: [acme.orders]", f"topics: [{topic}]")
    (tmp_path / "acme-orders.yaml").write_text(text)
    return tmp_path


def _body(definition: dict[str, Any], record: dict[str, Any]) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(definition, named_schemas={}), record)
    return out.getvalue()


def _headers(message: Any) -> dict[str, bytes]:
    return {name: value for name, value in message.headers() or [] if isinstance(value, bytes)}


def _reasons(bootstrap: str, dlq: str, count: int) -> collections.Counter[bytes]:
    letters = read_topic(bootstrap, dlq, 1, count, timeout_s=10)
    return collections.Counter(_headers(m)["rdc.error.reason"] for m in letters)


@pytest.mark.parametrize("workers", ["0", "1"], ids=["in-process", "decode-worker"])
def test_a_schema_never_bundled_through_the_schema_dir(
    kafka_bootstrap: str, make_topic: Callable[..., str], group_id: str, rd: MockRdServer, tmp_path: Path, workers: str
) -> None:
    topics = Topics(make_topic("acme", 2), make_topic("results"), make_topic("dlq"), 2, group_id)
    encoder = Encoder(SchemaCatalog.load(ORDERS))
    records = [_order(n) for n in range(20)] + [_order(100 + n, "DRAFT") for n in range(5)]
    records += [_order(200 + n, "PLACED", email="nobody") for n in range(3)] + [_order(300, "CANCELLED")]
    values = [(str(r["order_number"]).encode(), encoder.single_object("com.acme.shop.Order", r)) for r in records]
    ends = produce_acked(kafka_bootstrap, topics.source, values)
    env = connector_env(
        kafka_bootstrap,
        rd.url,
        topics,
        RDC_SCHEMA_DIR=str(ORDERS),
        RDC_MAPPINGS=str(_mapping_dir(tmp_path, topics.source)),
        RDC_DECODE_WORKERS=workers,
    )
    running = start_pipeline(env)
    try:
        assert wait_until(lambda: committed_offsets(kafka_bootstrap, topics.group, topics.source, 2) == ends, 60)
    finally:
        assert running.stop() == 0
    accepted = [e.event for e in rd.accepted]
    kinds = collections.Counter(e["event_type"] for e in accepted)
    assert kinds == {"ECOMMERCE_ORDER_PAID": 20, "ECOMMERCE_ORDER_CANCELLED": 1}
    paid = next(e for e in accepted if e["payload"]["identifier"] == "3")["payload"]
    assert paid["email"] == "ana@x.com" and paid["price"] == 129.9 and paid["total_items"] == 1
    assert paid["line_items"] == [{"product_id": "TEE-M", "product_title": "Tee", "price": 129.9, "quantity": 1}]
    assert running.pipeline.stats.skipped == 5  # the drafts: committed, never sent, never dead-lettered
    assert _reasons(kafka_bootstrap, topics.dlq, 3) == {b"invalid_email": 3}
    if workers == "0":
        metrics = running.pipeline._metrics.render().decode()
        assert 'rdc_events_skipped_total{mapping="acme-orders"} 5.0' in metrics


@pytest.mark.parametrize("workers", ["0", "1"], ids=["in-process", "decode-worker"])
def test_a_schema_never_bundled_through_the_registry_checked_at_first_sight(
    kafka_bootstrap: str,
    make_topic: Callable[..., str],
    group_id: str,
    rd: MockRdServer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    workers: str,
) -> None:
    topics = Topics(make_topic("acme", 1), make_topic("results"), make_topic("dlq"), 1, group_id)
    renamed = copy.deepcopy(ORDER_SCHEMA)  # a version the mapping does not fit: buyer became customer
    renamed["fields"][2]["name"] = "customer"
    with FakeSchemaRegistry() as registry:
        fits = registry.register(f"{topics.source}-value", json.dumps(ORDER_SCHEMA))
        breaks = registry.register(f"{topics.source}-value", json.dumps(renamed))
        values = []
        for n in range(15):
            record = _order(n)
            if n % 3 == 2:
                record["customer"] = record.pop("buyer")
                values.append((None, confluent_header(breaks) + _body(renamed, record)))
            else:
                values.append((None, confluent_header(fits) + _body(ORDER_SCHEMA, record)))
        ends = produce_acked(kafka_bootstrap, topics.source, values)
        env = connector_env(
            kafka_bootstrap,
            rd.url,
            topics,
            RDC_SCHEMA_REGISTRY_URL=registry.url,
            RDC_MAPPINGS=str(_mapping_dir(tmp_path, topics.source)),
            RDC_DECODE_WORKERS=workers,
        )
        with caplog.at_level(logging.WARNING, logger="connector.mapping"):
            running = start_pipeline(env)  # no schema of com.acme.shop.Order is known: it starts all the same
            try:
                assert wait_until(
                    lambda: committed_offsets(kafka_bootstrap, topics.group, topics.source, 1) == ends, 60
                )
            finally:
                assert running.stop() == 0
    assert len(rd.accepted) == 10  # the records of the version that fits kept flowing
    letters = read_topic(kafka_bootstrap, topics.dlq, 1, 5, timeout_s=10)
    headers = [_headers(m) for m in letters]
    assert {h["rdc.error.reason"] for h in headers} == {b"schema_mismatch"} and len(headers) == 5
    assert all(b"path 'buyer.email' is not a field of com.acme.shop.Order" in h["rdc.error.detail"] for h in headers)
    if workers == "0":
        mismatches = [r.getMessage() for r in caplog.records if "mapping_schema_mismatch" in r.getMessage()]
    else:  # the worker logs on its own stderr, in the configured format
        mismatches = [line for line in capfd.readouterr().err.splitlines() if "mapping_schema_mismatch" in line]
        assert all("level=WARNING logger=connector.mapping" in line for line in mismatches)
    assert len(mismatches) == 1 and f"schema id {breaks}" in mismatches[0]  # one line per schema id


def _row(checkout: int, status: str) -> dict[str, Any]:
    return {
        "id": checkout,
        "email": "Ana@X.com",
        "customer_name": "Ana",
        "status": status,
        "cart_url": f"https://shop.x/c/{checkout}",
        "currency": "brl",
        "total": Decimal("259.80"),
        "item_count": 2,
        "updated_at": 1_769_860_800_000_000,
    }


def _change(op: str, before: dict[str, Any] | None, after: dict[str, Any] | None) -> dict[str, Any]:
    source = {"version": "2.7.0.Final", "connector": "postgresql", "name": "dbserver1", "ts_ms": 1_769_860_800_000,
              "db": "shop", "schema": "public", "table": "checkouts", "lsn": None}  # fmt: skip
    return {"before": before, "after": after, "source": source, "op": op, "ts_ms": 1_769_860_800_001}


def test_a_debezium_table_inserts_updates_deletes_and_tombstones(
    kafka_bootstrap: str, make_topic: Callable[..., str], group_id: str, rd: MockRdServer
) -> None:
    topics = Topics(make_topic("dbserver1.public.checkouts", 1), make_topic("results"), make_topic("dlq"), 1, group_id)
    encoder = Encoder(SchemaCatalog.load(CHECKOUTS))
    name = "dbserver1.public.checkouts.Envelope"
    changes = [
        (b"1", _change("r", None, _row(1, "open"))),  # the initial snapshot
        (b"2", _change("c", None, _row(2, "open"))),
        (b"3", _change("c", None, _row(3, "paid"))),  # a status no case takes: skipped
        (b"1", _change("u", _row(1, "open"), _row(1, "abandoned"))),
        (b"2", _change("d", _row(2, "open"), None)),
    ]
    values: list[tuple[bytes | None, bytes | None]] = [(k, encoder.single_object(name, c)) for k, c in changes]
    values.append((b"2", None))  # the delete's tombstone
    ends = produce_acked(kafka_bootstrap, topics.source, values)
    env = connector_env(kafka_bootstrap, rd.url, topics, RDC_SCHEMA_DIR=str(CHECKOUTS), RDC_MAPPINGS=str(CHECKOUTS))
    running = start_pipeline(env)
    try:
        assert wait_until(lambda: committed_offsets(kafka_bootstrap, topics.group, topics.source, 1) == ends, 60)
    finally:
        assert running.stop() == 0
    sent = [(e.event["event_type"], e.event["payload"]["identifier"]) for e in rd.accepted]
    assert sent == [
        ("ECOMMERCE_CHECKOUT_STARTED", "1"),
        ("ECOMMERCE_CHECKOUT_STARTED", "2"),
        ("ECOMMERCE_CART_ABANDONED", "1"),
    ]
    assert rd.accepted[0].event["payload"] == {
        "email": "ana@x.com",
        "name": "Ana",
        "identifier": "1",
        "checkout_url": "https://shop.x/c/1",
        "currency": "BRL",
        "price": 259.8,
        "total_items": 2,
    }
    stats = running.pipeline.stats
    assert (stats.skipped, stats.tombstones, stats.dead_lettered) == (2, 1, 0)  # the paid one and the delete
    assert read_topic(kafka_bootstrap, topics.dlq, 1, 0, timeout_s=1) == []

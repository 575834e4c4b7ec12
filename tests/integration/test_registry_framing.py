"""Confluent-framed input through a Schema-Registry-compatible server: the connector decodes it, delivers
it, and writes its results in Confluent framing too; a registry outage holds the partition instead of
dead-lettering good records."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from connector.avro import Decoder, SchemaCatalog, SchemaRegistryClient
from connector.commands.sample import generate_messages, register_schemas
from connector.testing.kafka_tools import committed_offsets, produce_acked, read_topic
from connector.testing.mock_rd import MockRdServer
from connector.testing.schema_registry import FakeSchemaRegistry
from tests.integration.pipeline_support import Topics, connector_env, start_pipeline, wait_until

pytestmark = pytest.mark.integration


def test_confluent_framing_in_and_out_with_basic_auth(
    kafka_bootstrap: str, make_topic: Callable[..., str], group_id: str
) -> None:
    topics = Topics(make_topic("src", 2), make_topic("results"), make_topic("dlq"), 2, group_id)
    with FakeSchemaRegistry(username="sr-user", password="sr-pass") as registry, MockRdServer() as rd:
        client = SchemaRegistryClient(registry.url, username="sr-user", password="sr-pass")
        ids = register_schemas(client, topics.source)
        messages = generate_messages(500, seed=9, schema_ids=ids)
        assert all(m.value[0] == 0 for m in messages)  # Confluent magic byte
        ends = produce_acked(kafka_bootstrap, topics.source, [(m.key, m.value) for m in messages])
        env = connector_env(
            kafka_bootstrap,
            rd.url,
            topics,
            RDC_SCHEMA_REGISTRY_URL=registry.url,
            RDC_SCHEMA_REGISTRY_USERNAME="sr-user",
            RDC_SCHEMA_REGISTRY_PASSWORD="sr-pass",
        )
        running = start_pipeline(env)
        try:
            assert wait_until(lambda: committed_offsets(kafka_bootstrap, topics.group, topics.source, 2) == ends, 30)
        finally:
            assert running.stop() == 0
        assert len(rd.accepted) == 500
        assert all(count == 1 for count in registry.requests.values())  # each writer schema fetched once
        values = [m.value() or b"" for m in read_topic(kafka_bootstrap, topics.results, 1, 500)]
        assert len(values) == 500 and all(v[0] == 0 for v in values)  # Confluent framing out
        decoder = Decoder(SchemaCatalog.load(), registry=client)
        records = [decoder.decode(v, topics.results).record for v in values]
        assert {r["event_uuid"] for r in records} == {e.event_uuid for e in rd.accepted}
        assert f"{topics.results}-value" in registry.subjects


@pytest.mark.parametrize("workers", ["0", "2"], ids=["in-process", "two-decode-workers"])
def test_registry_outage_holds_the_partition_and_loses_nothing(
    kafka_bootstrap: str, make_topic: Callable[..., str], group_id: str, workers: str
) -> None:
    topics = Topics(make_topic("src", 1), make_topic("results"), make_topic("dlq"), 1, group_id)
    with FakeSchemaRegistry() as registry, MockRdServer() as rd:
        ids = register_schemas(SchemaRegistryClient(registry.url), topics.source)
        messages = generate_messages(200, seed=4, schema_ids=ids)
        ends = produce_acked(kafka_bootstrap, topics.source, [(m.key, m.value) for m in messages])
        env = connector_env(
            kafka_bootstrap, rd.url, topics, RDC_SCHEMA_REGISTRY_URL=registry.url, RDC_DECODE_WORKERS=workers
        )
        registry.fail_with = 503  # down before the connector saw any schema id (results schema registered first)
        with pytest.raises(Exception, match="503"):
            start_pipeline(env)  # registering the results schema needs the registry: it cannot start
        registry.fail_with = None
        running = start_pipeline(env)
        registry.fail_with = 503  # down again: no writer schema can be fetched
        try:
            time.sleep(3)
            assert rd.accepted == []
            assert read_topic(kafka_bootstrap, topics.dlq, 1, 1, timeout_s=1) == []  # nothing dead-lettered
            registry.fail_with = None
            assert wait_until(lambda: committed_offsets(kafka_bootstrap, topics.group, topics.source, 1) == ends, 30)
        finally:
            assert running.stop() == 0
        assert len(rd.accepted) == 200

"""Decoder framings and refusals, and the Schema Registry client against a real loopback HTTP fake."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from connector.avro import NAMESPACE, Decoder, Encoder, SchemaRegistryClient, default_catalog, registry_from_settings
from connector.commands.sample import generate_messages, generate_records, register_schemas
from connector.config import load_settings
from connector.errors import ConfigError, DecodeError, RecordError, SchemaRegistryUnavailable
from connector.testing.schema_registry import FakeSchemaRegistry

N = NAMESPACE + "."
FULL_NAME, RECORD = next((n, r) for n, r in generate_records(50, seed=3) if n == N + "OrderPaid")


@pytest.fixture
def registry() -> Iterator[FakeSchemaRegistry]:
    with FakeSchemaRegistry(username="svc", password="s3cret") as fake:
        yield fake


def _reason(decoder: Decoder, value: bytes, topic: str = "t") -> str:
    with pytest.raises(DecodeError) as info:
        decoder.decode(value, topic)
    assert info.value.stage == "decode" and str(info.value)
    return info.value.reason


def test_single_object_is_the_default_framing() -> None:
    value = Encoder().single_object(FULL_NAME, RECORD)
    decoded = Decoder(default_catalog()).decode(value, "orders")
    assert decoded.full_name == FULL_NAME and decoded.record["order_id"] == RECORD["order_id"]
    assert isinstance(decoded.record["total"], bytes)  # raw decimal: no Decimal conversion


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        pytest.param(b"", "truncated_body", id="empty"),
        pytest.param(b"\x7fhello", "bad_magic_byte", id="bad-magic"),
        pytest.param(b'{"json": 1}', "bad_magic_byte", id="json-value"),
        pytest.param(b"\xc3\x01\x00", "truncated_body", id="short-single-object-header"),
        pytest.param(b"\x00\x00\x01", "truncated_body", id="short-confluent-header"),
        pytest.param(b"\xc3\x01" + b"\x11" * 8 + b"\x00", "unknown_fingerprint", id="unknown-fingerprint"),
        pytest.param(b"\x00\x00\x00\x00\x01\x02", "unknown_schema_id", id="confluent-without-registry"),
    ],
)
def test_framing_refusals(value: bytes, reason: str) -> None:
    assert _reason(Decoder(default_catalog()), value) == reason


def test_truncated_and_trailing_bodies() -> None:
    decoder = Decoder(default_catalog())
    value = Encoder().single_object(FULL_NAME, RECORD)
    for cut in range(10, len(value)):
        assert _reason(decoder, value[:cut]) == "truncated_body"
    assert _reason(decoder, value + b"\x00") == "corrupt_body"


def test_plain_topic_decodes_the_whole_value_as_body() -> None:
    body = Encoder().plain(FULL_NAME, RECORD)
    decoder = Decoder(default_catalog(), plain_topics={"legacy-orders": FULL_NAME})
    assert decoder.decode(body, "legacy-orders").full_name == FULL_NAME
    assert _reason(decoder, body, "other-topic") in {"bad_magic_byte", "truncated_body", "unknown_fingerprint"}


def test_plain_topic_with_unknown_schema_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="legacy"):
        Decoder(default_catalog(), plain_topics={"legacy": "com.nowhere.Thing"})


def test_confluent_framing_through_the_registry_fetches_each_id_once(registry: FakeSchemaRegistry) -> None:
    with SchemaRegistryClient(registry.url, username="svc", password="s3cret") as client:
        ids = register_schemas(client, "orders")
        assert len(set(ids.values())) == len(ids) == 9
        assert f"orders-{FULL_NAME}" in registry.subjects
        decoder = Decoder(default_catalog(), registry=client)
        for message in generate_messages(60, seed=2, schema_ids=ids):
            assert message.value[0] == 0
            assert decoder.decode(message.value, "orders").full_name == message.full_name
    assert registry.requests and set(registry.requests.values()) == {1}


def test_registry_unknown_id_is_a_decode_error(registry: FakeSchemaRegistry) -> None:
    with SchemaRegistryClient(registry.url, username="svc", password="s3cret") as client:
        decoder = Decoder(default_catalog(), registry=client)
        assert _reason(decoder, b"\x00\x00\x00\x00\x63" + b"\x00") == "unknown_schema_id"


def test_registry_basic_auth_is_sent_and_checked(registry: FakeSchemaRegistry) -> None:
    schema_id = registry.register("s", json.dumps(default_catalog()[FULL_NAME].definition))
    with SchemaRegistryClient(registry.url, username="svc", password="s3cret") as good:
        assert good.get_schema(schema_id)["name"].endswith("OrderPaid")
    bad = SchemaRegistryClient(registry.url, username="svc", password="wrong")
    with bad, pytest.raises(SchemaRegistryUnavailable, match="credentials"):
        bad.get_schema(schema_id)
    with SchemaRegistryClient(registry.url) as anonymous, pytest.raises(SchemaRegistryUnavailable):
        anonymous.get_schema(schema_id)


def test_registry_from_settings_uses_the_url_and_credentials(registry: FakeSchemaRegistry) -> None:
    assert registry_from_settings(load_settings({})) is None
    schema_id = registry.register("s", json.dumps(default_catalog()[FULL_NAME].definition))
    env = {"RDC_SCHEMA_REGISTRY_URL": registry.url, "RDC_SCHEMA_REGISTRY_USERNAME": "svc"}
    good = registry_from_settings(load_settings({**env, "RDC_SCHEMA_REGISTRY_PASSWORD": "s3cret"}))
    refused = registry_from_settings(load_settings({**env, "RDC_SCHEMA_REGISTRY_PASSWORD": "wrong"}))
    assert good is not None and refused is not None
    with good, refused:
        assert good.get_schema(schema_id)["name"].endswith("OrderPaid")
        with pytest.raises(SchemaRegistryUnavailable, match="credentials"):
            refused.get_schema(schema_id)


def test_registry_outage_is_not_a_record_error(registry: FakeSchemaRegistry) -> None:
    registry.fail_with = 503
    with SchemaRegistryClient(registry.url, username="svc", password="s3cret") as client:
        decoder = Decoder(default_catalog(), registry=client)
        with pytest.raises(SchemaRegistryUnavailable) as info:
            decoder.decode(b"\x00\x00\x00\x00\x01\x00", "t")
        assert not isinstance(info.value, RecordError)
        registry.fail_with = None  # the registry is back: the same id is fetched again (errors are not cached)
        registry.register("s", json.dumps(default_catalog()[FULL_NAME].definition))
        value = b"\x00\x00\x00\x00\x01" + Encoder().plain(FULL_NAME, RECORD)
        assert decoder.decode(value, "t").full_name == FULL_NAME


def test_registry_unreachable_is_unavailable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with (
        SchemaRegistryClient(f"http://127.0.0.1:{port}", timeout=2) as client,
        pytest.raises(SchemaRegistryUnavailable),
    ):
        client.get_schema(1)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"schema": '"string"'}, id="not-a-record"),
        pytest.param({"schema": "{}", "schemaType": "PROTOBUF"}, id="protobuf"),
        pytest.param({"schema": "{}", "references": [{"name": "x"}]}, id="references"),
        pytest.param({"schema": "{nope"}, id="bad-json"),
        pytest.param(
            {"schema": json.dumps({"type": "record", "name": "X", "fields": [{"name": "a", "type": "nope"}]})},
            id="does-not-parse",
        ),
    ],
)
def test_unusable_registry_schemas_are_unsupported(body: dict[str, Any]) -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json=body))
    client = SchemaRegistryClient("http://registry.test", client=httpx.Client(transport=transport))
    decoder = Decoder(default_catalog(), registry=client)
    assert _reason(decoder, b"\x00\x00\x00\x00\x02\x00") == "unsupported_schema"


def test_register_failure_is_unavailable() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(409, json={"error_code": 409}))
    client = SchemaRegistryClient("http://registry.test", client=httpx.Client(transport=transport))
    with pytest.raises(SchemaRegistryUnavailable, match="409"):
        client.register("orders-value", {"type": "record", "name": "X", "fields": []})


def test_sample_generator_mix_and_malformed_kinds() -> None:
    from connector.mapping import map_record

    messages = generate_messages(600, seed=11, malformed=25)
    assert messages == generate_messages(600, seed=11, malformed=25)  # seeded: reproducible
    decoder = Decoder(default_catalog())
    kinds, reasons, items = set(), {}, []
    for message in messages:
        try:
            decoded = decoder.decode(message.value, "t")
            event = map_record(*decoded)
        except RecordError as error:
            reasons[message.malformed] = error.reason
            continue
        assert message.malformed is None and message.key
        kinds.add(decoded.full_name)
        items += [len(decoded.record["line_items"])] if "line_items" in decoded.record else []
        assert event.trims == 0
    assert len(kinds) == 9 and 2.5 <= sum(items) / len(items) <= 3.5
    assert reasons == {
        "garbage": "bad_magic_byte",
        "unknown_fingerprint": "unknown_fingerprint",
        "truncated": "truncated_body",
        "removed_event_type": "removed_event_type",
        "invalid_email": "invalid_email",
    }


def test_produce_sample_cli_needs_a_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    from connector.commands.sample import cli

    monkeypatch.delenv("RDC_KAFKA_BOOTSTRAP_SERVERS", raising=False)
    assert cli(["--topic", "t", "--count", "1"]) == 2

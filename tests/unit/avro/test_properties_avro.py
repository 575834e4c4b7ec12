"""Properties: every record valid under our schemas maps to a payload RD (the mock's rules) accepts or is
refused with a `MappingError`; RD-valid records always map; arbitrary bytes only ever raise `DecodeError`."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector.avro import NAMESPACE, Decoder, Encoder, default_catalog
from connector.commands.sample import RECORD_KINDS
from connector.errors import DecodeError, MappingError
from connector.mapping import encode_event, map_record
from connector.rd import contract

N = NAMESPACE + "."
CATALOG = default_catalog()
ENCODER = Encoder(CATALOG)
DECODER = Decoder(CATALOG)
PROFILE = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TEXT = st.text(st.characters(codec="utf-8"), max_size=30)
WORD = st.text("abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=20)
MONEY = st.decimals(min_value=Decimal("-99999999.99"), max_value=Decimal("99999999.99"), places=2)


def strategy(
    node: Any, named: dict[str, st.SearchStrategy[Any]], valid: bool, field: str = ""
) -> st.SearchStrategy[Any]:
    """Values of Avro type `node`; with `valid`, only values RD accepts (by field name)."""
    if isinstance(node, str):
        if node in named:
            return named[node]
        return _primitive(node, valid, field)
    if isinstance(node, list):
        return st.one_of(*(strategy(branch, named, valid, field) for branch in node))
    kind = node["type"]
    if kind == "record":
        name = node["name"] if "." in node["name"] else f"{node.get('namespace', NAMESPACE)}.{node['name']}"
        fields = {f["name"]: strategy(f["type"], named, valid, f["name"]) for f in node["fields"]}
        named[name] = st.fixed_dictionaries(fields)
        return named[name]
    if kind == "enum":
        named[f"{node.get('namespace', NAMESPACE)}.{node['name']}"] = st.sampled_from(node["symbols"])
        return named[f"{node.get('namespace', NAMESPACE)}.{node['name']}"]
    if kind == "array":
        low = 1 if valid and field == "line_items" else 0
        return st.lists(strategy(node["items"], named, valid, field), min_size=low, max_size=25)
    if node.get("logicalType") == "decimal":
        return MONEY.filter(lambda d: d >= 0) if valid else MONEY
    if node.get("logicalType") == "uuid":
        return st.uuids().map(str)
    return _primitive(kind, valid, field)


def _primitive(kind: str, valid: bool, field: str) -> st.SearchStrategy[Any]:
    if kind == "null":
        return st.none()
    if kind == "int":
        return st.integers(1, 1000) if valid and field == "quantity" else st.integers(-(2**31), 2**31 - 1)
    if kind == "long":
        return st.integers(0, 2**62)
    if kind != "string":
        raise AssertionError(kind)
    if not valid:
        return TEXT
    if field == "email":
        return st.builds("{}@{}.com".format, WORD, WORD)
    if field.endswith("_url"):
        return WORD.map("https://shop.example.com/{}".format)
    if field == "currency":
        return st.sampled_from(["BRL", "USD", "EUR"])
    if field == "title":
        return st.text(st.characters(codec="utf-8"), min_size=1, max_size=300).filter(str.strip)
    return TEXT.filter(str.strip) if field.endswith("_id") else TEXT


def rd_event_records() -> st.SearchStrategy[dict[str, Any]]:
    """RdEvent records with RD-valid payloads for the non-e-commerce types."""
    types = sorted(t for t in contract.EVENT_TYPES if not t.startswith("ECOMMERCE_"))

    def payload(event_type: str) -> st.SearchStrategy[dict[str, Any]]:
        fields = {f: WORD for f in contract.EVENT_TYPES[event_type]}
        fields["email"] = st.builds("{}@{}.com".format, WORD, WORD)
        return st.fixed_dictionaries(fields, optional={"name": TEXT, "tags": st.lists(WORD, max_size=3)})

    return st.sampled_from(types).flatmap(
        lambda t: payload(t).map(
            lambda p: {"event_id": "x", "occurred_at": 0, "event_type": t, "payload_json": orjson.dumps(p).decode()}
        )
    )


def records(valid: bool) -> st.SearchStrategy[tuple[str, dict[str, Any]]]:
    kinds = [name for name in sorted(RECORD_KINDS) if not valid or name != N + "RdEvent"]
    options = [st.tuples(st.just(k), strategy(CATALOG[k].definition, {}, valid)) for k in kinds]
    return st.one_of(*options, st.tuples(st.just(N + "RdEvent"), rd_event_records()))


def assert_acceptable(event_type: str, body: dict[str, Any], sent: bytes) -> None:
    assert set(body) == {"event_type", "event_family", "payload"}
    assert body["event_family"] == "CDP" and body["event_type"] == event_type in contract.EVENT_TYPES
    assert contract.payload_errors(event_type, body["payload"]) == {}
    assert orjson.loads(sent) == body
    assert None not in body["payload"].values()


@PROFILE
@given(records(valid=False))
def test_any_schema_valid_record_maps_to_an_acceptable_payload_or_a_mapping_error(
    case: tuple[str, dict[str, Any]],
) -> None:
    full_name, record = case
    decoded = DECODER.decode(ENCODER.single_object(full_name, record), "t")
    try:
        event = map_record(*decoded)
    except MappingError as error:
        assert error.reason and str(error)
        return
    assert_acceptable(event.event_type, event.body, encode_event(event))


@PROFILE
@given(records(valid=True))
def test_rd_valid_records_always_map(case: tuple[str, dict[str, Any]]) -> None:
    full_name, record = case
    event = map_record(*DECODER.decode(ENCODER.single_object(full_name, record), "t"))
    assert_acceptable(event.event_type, event.body, encode_event(event))


class _OneSchema:
    def get_schema(self, schema_id: int) -> dict[str, Any]:
        if schema_id != 1:
            raise DecodeError("unknown_schema_id", str(schema_id))
        return CATALOG[N + "OrderPaid"].definition


HEADERS = [CATALOG[name].header for name in sorted(RECORD_KINDS)]
FUZZ_DECODER = Decoder(CATALOG, registry=_OneSchema(), plain_topics={"plain": N + "OrderPaid"})
FRAMED = st.one_of(
    st.binary(max_size=200),
    st.tuples(st.sampled_from(HEADERS), st.binary(max_size=200)).map(b"".join),
    st.binary(max_size=200).map(lambda b: b"\x00\x00\x00\x00\x01" + b),
)


@settings(max_examples=200, deadline=None)
@given(FRAMED, st.sampled_from(["t", "plain"]))
def test_arbitrary_bytes_raise_only_decode_error(value: bytes, topic: str) -> None:
    try:
        FUZZ_DECODER.decode(value, topic)
    except DecodeError as error:
        assert error.reason


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(sorted(RECORD_KINDS)).flatmap(lambda k: st.tuples(st.just(k), st.integers(0, 10**6))))
def test_cut_or_flipped_valid_values_raise_only_decode_error(case: tuple[str, int]) -> None:
    from connector.commands.sample import generate_messages

    _, seed = case
    value = generate_messages(1, seed=seed)[0].value
    position = seed % len(value)
    for broken in (value[:position], value[:position] + bytes([value[position] ^ 0xFF]) + value[position + 1 :]):
        with contextlib.suppress(DecodeError):
            FUZZ_DECODER.decode(broken, "t")


@pytest.fixture(scope="module")
def mock_rd() -> Iterator[Any]:
    module = pytest.importorskip("connector.testing.mock_rd")
    with module.MockRdServer() as server:
        yield server


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(records(valid=True), min_size=1, max_size=30))
def test_mock_rd_accepts_a_generated_batch_over_http(mock_rd: Any, batch: list[tuple[str, dict[str, Any]]]) -> None:
    events = [map_record(*DECODER.decode(ENCODER.single_object(n, r), "t")) for n, r in batch]
    body = b"[" + b",".join(encode_event(e) for e in events) + b"]"
    before = len(mock_rd.accepted)
    response = httpx.post(
        f"{mock_rd.url}/platform/events/batch",
        content=body,
        headers={"Authorization": "Bearer x", "Content-Type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    assert len(response.json()["events"]) == len(events)
    assert len(mock_rd.accepted) - before == len(events)

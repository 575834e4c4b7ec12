"""The bundled Avro schemas: they ship in the package, parse once, and every record round-trips in
every framing; schema evolution resolves against our reader schemas."""

from __future__ import annotations

import copy
import datetime as dt
import importlib.resources
import io
import json
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import fastavro
import pytest

from connector.avro import (
    DELIVERY_RESULT,
    NAMESPACE,
    Decoder,
    Encoder,
    SchemaCatalog,
    default_catalog,
    encode_delivery_result,
)
from connector.avro.catalog import SchemaEntry, earlier_version_of, schema_entry
from connector.commands.sample import RECORD_KINDS, generate_records
from connector.errors import ConfigError, DecodeError
from connector.mapping import map_record

N = NAMESPACE + "."
INPUT_RECORDS = sorted(RECORD_KINDS)


class DictRegistry:
    """A SchemaSource fake: schema id -> schema JSON."""

    def __init__(self, schemas: dict[int, dict[str, Any]]) -> None:
        self.schemas = schemas

    def get_schema(self, schema_id: int) -> dict[str, Any]:
        if schema_id not in self.schemas:
            raise DecodeError("unknown_schema_id", f"schema id {schema_id} unknown")
        return self.schemas[schema_id]


def _normalise(value: Any) -> Any:
    """Logical values read back (datetime, UUID) in the form they were written (ms, str)."""
    if isinstance(value, dict):
        return {k: _normalise(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalise(v) for v in value]
    if isinstance(value, dt.datetime):
        return int(value.timestamp() * 1000)
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def _one_of_each() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for full_name, record in generate_records(300, seed=7):
        found.setdefault(full_name, record)
    found[DELIVERY_RESULT] = {
        "event_uuid": "e-1",
        "event_batch_uuid": "b-1",
        "event_type": "ECOMMERCE_ORDER_PAID",
        "source_topic": "orders",
        "source_partition": 3,
        "source_offset": 42,
        "source_event_id": None,
        "delivered_at": 1_767_225_600_123,
        "writer_group": "rd-connector",
        "writer_destination": "0f1e2d3c4b5a6978",
        "writer_base": 40,
        "rd_account": "shop-br",
    }
    return found


EXAMPLES = _one_of_each()


def test_schemas_ship_inside_the_package() -> None:
    files = {p.name for p in importlib.resources.files("connector.schemas").iterdir() if p.name.endswith(".avsc")}
    assert {"Customer.avsc", "LegalBase.avsc", "LineItem.avsc", "Shipping.avsc", "DeliveryResult.avsc"} <= files
    assert {name.rpartition(".")[2] + ".avsc" for name in INPUT_RECORDS} <= files
    # earlier writer versions ship too (results already on users' topics were written with them)
    assert {f for f in files if earlier_version_of(f) is not None} == {"DeliveryResult.v2.avsc"}


def test_earlier_versions_are_writer_schemas_only() -> None:
    """`<Record>.v<N>.avsc` is known by its fingerprint, never by name: not an input schema, not a record
    to map, not what writers use."""
    catalog = default_catalog()
    v2 = catalog.by_header(_v2_entry().header)
    assert v2 is not None and v2.full_name == DELIVERY_RESULT and v2.origin == "DeliveryResult.v2.avsc"
    assert catalog[DELIVERY_RESULT] is not v2 and catalog[DELIVERY_RESULT].origin == "DeliveryResult.avsc"
    assert catalog.names().count(DELIVERY_RESULT) == 1
    assert len(catalog.names()) == len(INPUT_RECORDS) + 5  # + Customer, LegalBase, LineItem, Shipping, DeliveryResult
    assert [f["name"] for f in catalog[DELIVERY_RESULT].definition["fields"]][-1] == "rd_account"
    assert "rd_account" not in {f["name"] for f in v2.definition["fields"]}
    assert earlier_version_of("DeliveryResult.avsc") is None and earlier_version_of("Order.v12.avsc") == "Order"


def _v2_text() -> str:
    return (importlib.resources.files("connector.schemas") / "DeliveryResult.v2.avsc").read_text("utf-8")


def _v2_entry() -> SchemaEntry:
    return schema_entry(DELIVERY_RESULT, json.loads(_v2_text()), "test")


_V2_RECORD: dict[str, Any] = {k: v for k, v in EXAMPLES[DELIVERY_RESULT].items() if k != "rd_account"}


@pytest.mark.parametrize("logical_types", [False, True])
def test_a_result_of_the_previous_version_decodes_with_rd_account_none(logical_types: bool) -> None:
    """Written by a connector before accounts: fastavro with the v2 schema, single-object framing."""
    body = io.BytesIO()
    fastavro.schemaless_writer(body, fastavro.parse_schema(json.loads(_v2_text()), named_schemas={}), _V2_RECORD)
    value = _v2_entry().header + body.getvalue()
    assert value[:10] != default_catalog()[DELIVERY_RESULT].header  # another fingerprint than today's
    decoded = Decoder(default_catalog(), logical_types=logical_types).decode(value, "results")
    assert decoded.full_name == DELIVERY_RESULT
    assert _normalise(decoded.record) == {**_V2_RECORD, "rd_account": None}


def test_a_bundled_earlier_version_must_be_another_version_of_a_bundled_record() -> None:
    current = default_catalog()[DELIVERY_RESULT].definition
    v2 = json.loads(_v2_text())
    bundled = [(DELIVERY_RESULT, current)]
    with pytest.raises(ConfigError, match=r"DeliveryResult\.v1\.avsc is the same schema as the current"):
        SchemaCatalog(bundled, earlier=[(DELIVERY_RESULT, {**current, "__rdc_origin": "DeliveryResult.v1.avsc"})])
    with pytest.raises(ConfigError, match=r"Order\.v1\.avsc is named as an earlier version of Order but holds"):
        SchemaCatalog(bundled, earlier=[(DELIVERY_RESULT, {**v2, "__rdc_origin": "Order.v1.avsc"})])
    other = {**v2, "name": "Unknown"}
    with pytest.raises(ConfigError, match=r"no bundled record"):
        SchemaCatalog(bundled, earlier=[(N + "Unknown", {**other, "__rdc_origin": "Unknown.v1.avsc"})])
    ok = SchemaCatalog(bundled, earlier=[(DELIVERY_RESULT, {**v2, "__rdc_origin": "DeliveryResult.v2.avsc"})])
    assert ok.names() == [DELIVERY_RESULT] and ok.by_header(_v2_entry().header) is not None


def test_catalog_knows_every_record_by_name_and_header() -> None:
    catalog = default_catalog()
    assert default_catalog() is catalog  # parsed once per process
    for name in [*INPUT_RECORDS, DELIVERY_RESULT]:
        entry = catalog[name]
        assert entry.header[:2] == b"\xc3\x01" and len(entry.header) == 10
        assert catalog.by_header(entry.header) is entry
        assert "logicalType" not in json.dumps(entry.raw_schema)


def test_standalone_definition_inlines_shared_types_once() -> None:
    text = json.dumps(default_catalog()[N + "OrderPaid"].definition)
    assert text.count('"name": "Customer"') == 1 and text.count('"name": "LineItem"') == 1
    assert f'"{N}LineItem"' not in text  # inlined at first (only) use


@pytest.mark.parametrize("full_name", [*INPUT_RECORDS, DELIVERY_RESULT])
@pytest.mark.parametrize("framing", ["single_object", "confluent", "plain"])
def test_round_trip_every_schema_every_framing(full_name: str, framing: str) -> None:
    catalog = default_catalog()
    encoder = Encoder(catalog)
    record = EXAMPLES[full_name]
    registry = DictRegistry({7: catalog[full_name].definition})
    decoder = Decoder(catalog, registry=registry, plain_topics={"plain": full_name}, logical_types=True)
    value, topic = {
        "single_object": (encoder.single_object(full_name, record), "t"),
        "confluent": (encoder.confluent(7, full_name, record), "t"),
        "plain": (encoder.plain(full_name, record), "plain"),
    }[framing]
    decoded = decoder.decode(value, topic)
    assert decoded.full_name == full_name
    assert _normalise(decoded.record) == record


def test_raw_and_logical_decoding_map_to_the_same_event() -> None:
    catalog = default_catalog()
    for full_name in INPUT_RECORDS:
        value = Encoder(catalog).single_object(full_name, EXAMPLES[full_name])
        raw = Decoder(catalog).decode(value, "t")
        logical = Decoder(catalog, logical_types=True).decode(value, "t")
        assert map_record(*raw) == map_record(*logical)


def test_delivery_result_encoder_both_framings() -> None:
    fields = {k: v for k, v in EXAMPLES[DELIVERY_RESULT].items() if k != "delivered_at"}
    single = encode_delivery_result(**fields, delivered_at_ms=1_767_225_600_123)
    confluent = encode_delivery_result(**fields, delivered_at_ms=1_767_225_600_123, schema_id=9)
    decoder = Decoder(default_catalog(), registry=DictRegistry({9: default_catalog()[DELIVERY_RESULT].definition}))
    for value in (single, confluent):
        decoded = decoder.decode(value, "results")
        assert decoded.full_name == DELIVERY_RESULT
        assert decoded.record["delivered_at"] == 1_767_225_600_123 and decoded.record["source_offset"] == 42
    assert single[:2] == b"\xc3\x01" and confluent[:5] == b"\x00\x00\x00\x00\x09"


def _order_paid_variant(change: str) -> dict[str, Any]:
    definition = copy.deepcopy(default_catalog()[N + "OrderPaid"].definition)
    fields = definition["fields"]
    if change == "adds_field":
        fields.append({"name": "coupon", "type": "string", "default": ""})
    elif change == "lacks_optional":
        definition["fields"] = [f for f in fields if f["name"] != "order_url"]
    elif change == "incompatible":
        next(f for f in fields if f["name"] == "currency")["type"] = "int"
    return definition


def _order_paid_writer_record(change: str) -> dict[str, Any]:
    record = dict(EXAMPLES[N + "OrderPaid"])
    if change == "adds_field":
        record["coupon"] = "BLACKFRIDAY"
    elif change == "lacks_optional":
        del record["order_url"]
    elif change == "incompatible":
        record["currency"] = 986
    return record


def _writer_catalog(tmp_path: Path, definition: dict[str, Any]) -> SchemaCatalog:
    (tmp_path / "OrderPaidV2.avsc").write_text(json.dumps(definition))
    return SchemaCatalog.load(tmp_path)


@pytest.mark.parametrize("change", ["adds_field", "lacks_optional"])
def test_schema_evolution_confluent(change: str) -> None:
    writer = _order_paid_variant(change)
    body = Encoder(SchemaCatalog([(N + "OrderPaid", writer)])).plain(N + "OrderPaid", _order_paid_writer_record(change))
    decoder = Decoder(default_catalog(), registry=DictRegistry({5: writer}))
    decoded = decoder.decode(b"\x00\x00\x00\x00\x05" + body, "t")
    assert "coupon" not in decoded.record
    expected_url = None if change == "lacks_optional" else EXAMPLES[N + "OrderPaid"]["order_url"]
    assert decoded.record["order_url"] == expected_url
    assert map_record(*decoded).event_type == "ECOMMERCE_ORDER_PAID"


@pytest.mark.parametrize("change", ["adds_field", "lacks_optional"])
def test_schema_evolution_single_object_with_extra_dir(tmp_path: Path, change: str) -> None:
    catalog = _writer_catalog(tmp_path, _order_paid_variant(change))
    # the bundled schema stays the reader; the extra file is a known writer version
    assert catalog[N + "OrderPaid"].canonical == default_catalog()[N + "OrderPaid"].canonical
    writer = SchemaCatalog([(N + "OrderPaid", _order_paid_variant(change))])[N + "OrderPaid"]
    value = writer.header + Encoder(SchemaCatalog([(N + "OrderPaid", writer.definition)])).plain(
        N + "OrderPaid", _order_paid_writer_record(change)
    )
    decoded = Decoder(catalog).decode(value, "t")
    assert decoded.full_name == N + "OrderPaid" and "coupon" not in decoded.record
    assert ("order_url" in decoded.record) and map_record(*decoded).payload["identifier"]


def test_incompatible_writer_is_a_decode_error() -> None:
    writer = _order_paid_variant("incompatible")
    body = Encoder(SchemaCatalog([(N + "OrderPaid", writer)])).plain(
        N + "OrderPaid", _order_paid_writer_record("incompatible")
    )
    decoder = Decoder(default_catalog(), registry=DictRegistry({5: writer}))
    with pytest.raises(DecodeError) as info:
        decoder.decode(b"\x00\x00\x00\x00\x05" + body, "t")
    assert info.value.reason == "incompatible_schema"


def test_extra_dir_adds_user_records_referencing_bundled_types(tmp_path: Path) -> None:
    user = {
        "type": "record",
        "name": "LoyaltyPoints",
        "namespace": "com.shop",
        "fields": [{"name": "customer", "type": N + "Customer"}, {"name": "points", "type": "int"}],
    }
    (tmp_path / "LoyaltyPoints.avsc").write_text(json.dumps(user))
    catalog = SchemaCatalog.load(tmp_path)
    record = {"customer": {"email": "a@b.co", "name": None, "mobile_phone": None, "personal_phone": None}, "points": 5}
    decoded = Decoder(catalog).decode(Encoder(catalog).single_object("com.shop.LoyaltyPoints", record), "t")
    assert decoded == ("com.shop.LoyaltyPoints", record)


def test_bad_extra_dir_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        SchemaCatalog.load(tmp_path / "missing")
    (tmp_path / "Bad.avsc").write_text("{not json")
    with pytest.raises(ConfigError, match=r"Bad\.avsc"):
        SchemaCatalog.load(tmp_path)


def test_money_is_decimal_12_2() -> None:
    definition = default_catalog()[N + "LineItem"].definition
    price = next(f for f in definition["fields"] if f["name"] == "unit_price")["type"]
    assert price == {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 2}
    assert isinstance(EXAMPLES[N + "OrderPaid"]["total"], Decimal)

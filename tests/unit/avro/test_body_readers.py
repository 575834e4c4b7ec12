"""The backend choice (RDC_AVRO_DECODER) and the plan-time fallback rule of `connector.avro.body_readers`."""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest

from connector.avro import NAMESPACE, Decoder, Encoder, default_catalog
from connector.avro.body_readers import (
    FastavroReader,
    defaults_read_alike,
    make_body_reader,
    promotes_string_to_bytes,
    resolve_backend,
)
from connector.avro.catalog import parse_standalone
from connector.config import load_settings
from connector.errors import ConfigError

HAS_CAVRO = importlib.util.find_spec("cavro") is not None


def _no_cavro(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "cavro" else real(name, *a))


def test_fastavro_is_the_default_and_auto_without_cavro_is_fastavro(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings({}).avro_decoder == "fastavro"
    assert Decoder(default_catalog()).backend == "fastavro"
    _no_cavro(monkeypatch)
    assert resolve_backend("auto") == "fastavro"
    assert load_settings({"RDC_AVRO_DECODER": " Auto "}).avro_decoder == "auto"


def test_cavro_when_it_is_not_installed_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    _no_cavro(monkeypatch)
    with pytest.raises(ConfigError, match=r"RDC_AVRO_DECODER=cavro but cavro is not installed"):
        load_settings({"RDC_AVRO_DECODER": "cavro"})
    with pytest.raises(ConfigError, match="cavro is not installed"):
        Decoder(default_catalog(), avro_decoder="cavro")


def test_an_unknown_decoder_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="RDC_AVRO_DECODER='avro-rs' is invalid: expected fastavro, cavro or auto"):
        load_settings({"RDC_AVRO_DECODER": "avro-rs"})
    with pytest.raises(ConfigError, match="expected one of fastavro, cavro, auto"):
        resolve_backend("avro-rs")


def _record(*fields: dict[str, Any]) -> dict[str, Any]:
    return {"type": "record", "name": "R", "namespace": "t", "fields": [{"name": "a", "type": "int"}, *fields]}


@pytest.mark.parametrize(
    ("field", "alike"),
    [
        pytest.param({"name": "b", "type": "string", "default": "x"}, True, id="string"),
        pytest.param({"name": "b", "type": ["null", "bytes"], "default": None}, True, id="null-first-union"),
        pytest.param({"name": "b", "type": "float", "default": 7}, True, id="int-json-for-float"),
        pytest.param({"name": "b", "type": {"type": "array", "items": "long"}, "default": [1]}, True, id="array"),
        pytest.param({"name": "b", "type": "bytes", "default": "\u00ff"}, False, id="bytes"),
        pytest.param(
            {"name": "b", "type": {"type": "fixed", "name": "F", "size": 1}, "default": "a"}, False, id="fixed"
        ),
        pytest.param({"name": "b", "type": ["bytes", "null"], "default": "a"}, False, id="bytes-first-union"),
        pytest.param(
            {"name": "b", "type": ["null", "string"], "default": "a"}, False, id="default-not-of-first-branch"
        ),
        pytest.param(
            {"name": "b", "type": {"type": "map", "values": "bytes"}, "default": {"k": "v"}}, False, id="map-of-bytes"
        ),
        pytest.param(
            {
                "name": "b",
                "type": {"type": "record", "name": "S", "fields": [{"name": "x", "type": "int", "default": 1}]},
                "default": {},
            },
            False,
            id="record-default-missing-a-field",
        ),
    ],
)
def test_defaults_read_alike(field: dict[str, Any], alike: bool) -> None:
    assert defaults_read_alike(_record(field)) is alike


@pytest.mark.skipif(not HAS_CAVRO, reason="cavro is not installed (pip install -e '.[dev]')")
def test_a_pair_whose_defaults_differ_is_read_by_fastavro_and_others_by_cavro() -> None:
    writer = _record()
    with_bytes = _record({"name": "b", "type": "bytes", "default": "\u00ff"})
    with_string = _record({"name": "b", "type": "string", "default": "x"})
    pair = (parse_standalone(writer), writer)
    fallback = make_body_reader("cavro", "t.R", pair, (parse_standalone(with_bytes), with_bytes))
    assert isinstance(fallback, FastavroReader)
    assert make_body_reader("cavro", "t.R", pair, (parse_standalone(with_string), with_string)).backend == "cavro"
    assert make_body_reader("cavro", "t.R", pair, None).backend == "cavro"
    assert make_body_reader("fastavro", "t.R", pair, None).backend == "fastavro"


@pytest.mark.skipif(not HAS_CAVRO, reason="cavro is not installed (pip install -e '.[dev]')")
def test_the_decoder_with_cavro_decodes_and_dead_letters_as_with_fastavro() -> None:
    catalog = default_catalog()
    value = Encoder(catalog).single_object(
        f"{NAMESPACE}.RdEvent",
        {"event_id": "e1", "occurred_at": 1, "event_type": "CONVERSION", "payload_json": '{"email": "a@b.c"}'},
    )
    fast, cav = Decoder(catalog), Decoder(catalog, avro_decoder="cavro")
    assert cav.backend == "cavro" and cav.decode(value, "t") == fast.decode(value, "t")
    for bad in (value[:-1], value + b"\x00"):
        with pytest.raises(Exception) as expected:
            fast.decode(bad, "t")
        with pytest.raises(type(expected.value)) as got:
            cav.decode(bad, "t")
        assert repr(got.value) == repr(expected.value)


@pytest.mark.parametrize(
    ("writer", "reader", "promotes"),
    [
        pytest.param("string", "bytes", True, id="string-to-bytes"),
        pytest.param("bytes", "string", False, id="bytes-to-string"),
        pytest.param(
            {"type": "array", "items": "string"}, ["null", {"type": "array", "items": "bytes"}], True, id="nested"
        ),
        pytest.param("string", "string", False, id="same"),
    ],
)
def test_promotes_string_to_bytes(writer: Any, reader: Any, promotes: bool) -> None:
    assert (
        promotes_string_to_bytes(_record({"name": "b", "type": writer}), _record({"name": "b", "type": reader}))
        is promotes
    )

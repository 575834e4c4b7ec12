"""Differential: cavro's body reader gives exactly what fastavro's gives, record for record and error for error.

Records of every bundled schema (and the earlier DeliveryResult version resolved to the current one), of the
examples' schemas, and of random schemas (nested records, arrays, maps, unions with null, enums, fixed,
decimals, timestamps), each also read through a random *evolved* reader schema (fields dropped, added with
defaults, promoted, reordered, wrapped in a union; enum symbols added or dropped with an enum default),
are written by fastavro and read by both backends: the records must be equal with the same types (bytes vs
str, int vs float, NaN's bits) and the same key order. Cut, flipped, extended and padded bodies must give
both the same `DecodeError` (reason and messages) or the same record. Skipped when cavro is not installed
(`pip install -e '.[dev]'` installs it).
"""

from __future__ import annotations

import copy
import io
import json
import struct
from pathlib import Path
from typing import Any

import fastavro
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector.avro import default_catalog
from connector.avro.body_readers import BodyReader, make_body_reader
from connector.avro.catalog import parse_standalone, strip_logical_types
from connector.errors import DecodeError

pytest.importorskip("cavro")

ROOT = Path(__file__).resolve().parents[3]
CATALOG = default_catalog()
PROFILE = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
PRIMITIVES = ("null", "boolean", "int", "long", "float", "double", "bytes", "string")


# --- values of a schema ---------------------------------------------------------------------------------


def values(node: Any, named: dict[str, Any], namespace: str | None = None) -> st.SearchStrategy[Any]:
    """Raw values (decimals as bytes, timestamps as int) fastavro writes under the schema JSON `node`."""
    if isinstance(node, str):
        if node in PRIMITIVES:
            return _primitive(node)
        full = node if "." in node or not namespace else f"{namespace}.{node}"
        return st.deferred(lambda: named[full] if full in named else named[node])
    if isinstance(node, list):
        return st.one_of(*(values(branch, named, namespace) for branch in node))
    kind = node["type"]
    if kind in ("record", "error", "enum", "fixed"):
        full = (
            node["name"]
            if "." in node["name"]
            else ".".join(filter(None, [node.get("namespace", namespace), node["name"]]))
        )
        inner = full.rpartition(".")[0] or None
        if kind == "enum":
            named[full] = st.sampled_from(node["symbols"])
        elif kind == "fixed":
            named[full] = st.binary(min_size=node["size"], max_size=node["size"])
        else:
            fields = {f["name"]: values(f["type"], named, inner) for f in node["fields"]}
            named[full] = st.fixed_dictionaries(fields)
        made: st.SearchStrategy[Any] = named[full]
        return made
    if kind == "array":
        return st.lists(values(node["items"], named, namespace), max_size=4)
    if kind == "map":
        return st.dictionaries(st.text(max_size=5), values(node["values"], named, namespace), max_size=4)
    return values(kind, named, namespace)  # a primitive written as {"type": "long", "logicalType": ...}


def _primitive(kind: str) -> st.SearchStrategy[Any]:
    float32 = st.floats(width=32, allow_nan=True)
    return {
        "null": st.none(),
        "boolean": st.booleans(),
        "int": st.integers(-(2**31), 2**31 - 1),
        "long": st.integers(-(2**63), 2**63 - 1),
        "float": float32,
        "double": st.floats(allow_nan=True),
        "bytes": st.binary(max_size=12),
        "string": st.text(max_size=12),
    }[kind]


def typed(value: Any) -> Any:
    """`value` with every type and float bit pattern spelled out (so 1 != 1.0, b'a' != 'a', NaN == NaN)."""
    if isinstance(value, dict):
        return ("dict", [(k, typed(v)) for k, v in value.items()])  # key order included
    if isinstance(value, list):
        return ("list", [typed(v) for v in value])
    if isinstance(value, float):
        return ("float", struct.pack(">d", value))
    return (type(value).__name__, value)


# --- random schemas and evolved readers -----------------------------------------------------------------

LEAVES = st.sampled_from(
    [
        "boolean", "int", "long", "float", "double", "bytes", "string",
        {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 2},
        {"type": "long", "logicalType": "timestamp-millis"},
        {"type": "long", "logicalType": "timestamp-micros"},
        {"type": "int", "logicalType": "date"},
        {"type": "string", "logicalType": "uuid"},
        {"type": "enum", "name": "E", "symbols": ["A", "B", "C"]},
        {"type": "enum", "name": "E", "symbols": ["ONLY"]},
        {"type": "fixed", "name": "F", "size": 4},
        {"type": "fixed", "name": "F", "size": 6, "logicalType": "decimal", "precision": 10, "scale": 3},
    ]
)  # fmt: skip


def _compound(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.builds(lambda t: {"type": "array", "items": t}, inner),
        st.builds(lambda t: {"type": "map", "values": t}, inner),
        st.builds(lambda t: ["null", t], inner.filter(lambda t: not isinstance(t, list))),
        st.builds(
            lambda ts: {"type": "record", "name": "R", "fields": [{"name": "x", "type": t} for t in ts]},
            st.lists(inner, min_size=1, max_size=4),
        ),
    )


TYPES = st.recursive(LEAVES, _compound, max_leaves=10)


def _unique_names(node: Any, counter: list[int]) -> Any:
    """`node` with its named types and fields renamed so every name is unique."""
    if isinstance(node, list):
        return [_unique_names(n, counter) for n in node]
    if not isinstance(node, dict):
        return node
    out = copy.copy(node)
    if node["type"] in ("record", "enum", "fixed"):
        counter[0] += 1
        out["name"] = f"{node['name']}{counter[0]}"
    if node["type"] == "record":
        out["fields"] = [
            {"name": f"f{i}", "type": _unique_names(f["type"], counter)} for i, f in enumerate(node["fields"])
        ]
    elif node["type"] == "array":
        out["items"] = _unique_names(node["items"], counter)
    elif node["type"] == "map":
        out["values"] = _unique_names(node["values"], counter)
    return out


RANDOM_SCHEMAS = st.lists(TYPES, min_size=1, max_size=5).map(
    lambda ts: _unique_names(
        {"type": "record", "name": "Top", "namespace": "test.rnd", "fields": [{"name": "x", "type": t} for t in ts]},
        [0],
    )
)


def default_of(node: Any) -> Any:
    """A JSON default valid for `node` (for a union: of its first branch)."""
    if isinstance(node, list):
        return default_of(node[0])
    kind = node if isinstance(node, str) else node["type"]
    fixed = {"null": None, "boolean": True, "int": 7, "long": -3, "float": 1.5, "double": 2.25,
             "bytes": "\u00ff\u0001", "string": "dflt"}  # fmt: skip
    if kind in fixed:
        return fixed[kind]
    if kind == "enum":
        return node.get("default", node["symbols"][-1])
    if kind == "fixed":
        return "z" * node["size"]
    if kind == "array":
        return []
    if kind == "map":
        return {}
    return {f["name"]: default_of(f["type"]) for f in node["fields"]}


PROMOTIONS = {"int": ["long", "float", "double"], "long": ["float", "double"], "float": ["double"],
              "string": ["bytes"], "bytes": ["string"]}  # fmt: skip
OPS = ("keep", "drop", "add", "promote", "union", "reorder", "enum_more", "enum_fewer_with_default")


def evolve(node: Any, draw: Any) -> Any:
    """A reader schema for writer `node`: each record's fields changed by randomly drawn operations."""
    if isinstance(node, list):
        return [evolve(n, draw) for n in node]
    if not isinstance(node, dict):
        return node
    out = copy.deepcopy(node)
    kind = node["type"]
    if kind == "array":
        out["items"] = evolve(node["items"], draw)
    elif kind == "map":
        out["values"] = evolve(node["values"], draw)
    elif kind == "enum":
        op = draw(st.sampled_from(OPS))
        if op == "enum_more":
            out["symbols"] = [*node["symbols"], "EXTRA"]
        elif op == "enum_fewer_with_default" and len(node["symbols"]) > 1:
            out["symbols"] = node["symbols"][:-1]
            out["default"] = node["symbols"][0]
    elif kind == "record":
        fields = []
        for i, field in enumerate(node["fields"]):
            op = draw(st.sampled_from(OPS))
            new = {**field, "type": evolve(field["type"], draw)}
            if op == "drop":
                continue
            bare = field["type"] if isinstance(field["type"], str) else None
            if op == "promote" and bare in PROMOTIONS:
                new["type"] = draw(st.sampled_from(PROMOTIONS[bare]))
            elif op == "union" and not isinstance(field["type"], list):
                new = {"name": field["name"], "type": ["null", new["type"]], "default": None}
            fields.append(new)
            if op == "add":
                added = draw(TYPES)
                added = _unique_names(added, [100 + 10 * i])
                fields.append({"name": f"added{i}", "type": added, "default": default_of(added)})
        if draw(st.booleans()):
            fields.reverse()
        out["fields"] = fields
    return out


# --- reading with both ----------------------------------------------------------------------------------


def readers(writer: Any, reader: Any | None) -> tuple[BodyReader, BodyReader]:
    name = writer["name"]
    w = (parse_standalone(strip_logical_types(writer)), writer)
    r = (parse_standalone(strip_logical_types(reader)), reader) if reader is not None else None
    return make_body_reader("fastavro", name, w, r), make_body_reader("cavro", name, w, r)


def outcome(reader: BodyReader, value: bytes) -> Any:
    try:
        return ("ok", typed(reader.read(value, 3)))
    except DecodeError as exc:
        return ("error", exc.reason, exc.message, exc.log_message)


def body_of(writer: Any, record: Any) -> bytes:
    out = io.BytesIO()
    out.write(b"hdr")  # the body starts at an offset, as after a framing header
    fastavro.schemaless_writer(out, parse_standalone(strip_logical_types(writer)), record)
    return out.getvalue()


def check(writer: Any, reader: Any | None, record: Any, corruption: tuple[str, int, bytes]) -> None:
    fast, cav = readers(writer, reader)
    value = body_of(writer, record)
    assert outcome(cav, value) == outcome(fast, value)
    assert outcome(cav, corrupt(value, *corruption)) == outcome(fast, corrupt(value, *corruption))


def corrupt(value: bytes, how: str, at: int, extra: bytes) -> bytes:
    at = 3 + at % max(1, len(value) - 3)
    if how == "cut":
        return value[:at]
    if how == "flip":
        return (
            value[:at] + bytes([value[at] ^ (extra[0] if extra else 0xFF)]) + value[at + 1 :]
            if at < len(value)
            else value
        )
    if how == "insert":
        return value[:at] + extra + value[at:]
    return value + (extra or b"\x00")


CORRUPTIONS = st.tuples(
    st.sampled_from(["cut", "flip", "insert", "append"]), st.integers(0, 10_000), st.binary(max_size=4)
)


# --- the schemas ----------------------------------------------------------------------------------------


def _examples() -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(ROOT.glob("examples/*/*.avsc"))]


BUNDLED = [(name, CATALOG[name].definition) for name in CATALOG.names()]
EARLIER = json.loads((ROOT / "schemas" / "DeliveryResult.v2.avsc").read_text())


def _earlier_pair() -> tuple[Any, Any]:
    """(DeliveryResult v2 standalone, the current DeliveryResult): the catalog's own pair."""
    current = CATALOG[EARLIER["namespace"] + "." + EARLIER["name"]]
    for entry in CATALOG._by_header.values():  # the earlier version is found by header only
        if entry.full_name == current.full_name and entry is not current:
            return entry.definition, current.definition
    raise AssertionError("the bundled earlier DeliveryResult version is not in the catalog")


SCHEMA_PAIRS = [(d, None) for _, d in BUNDLED] + [_earlier_pair()] + [(d, None) for d in _examples()]
SCHEMA_IDS = [*(n.rpartition(".")[2] for n, _ in BUNDLED), "DeliveryResult.v2->current",
              *(f"example:{d['name']}" for d in _examples())]  # fmt: skip


@pytest.mark.parametrize(("writer", "reader"), SCHEMA_PAIRS, ids=SCHEMA_IDS)
def test_cavro_compiles_every_bundled_and_example_schema(writer: Any, reader: Any) -> None:
    # Otherwise the differential test below would compare fastavro with itself (the fallback) for them.
    assert readers(writer, reader)[1].backend == "cavro"


@pytest.mark.parametrize(("writer", "reader"), SCHEMA_PAIRS, ids=SCHEMA_IDS)
@PROFILE
@given(data=st.data(), corruption=CORRUPTIONS)
def test_bundled_and_example_schemas_read_the_same(
    writer: Any, reader: Any, data: st.DataObject, corruption: tuple[str, int, bytes]
) -> None:
    record = data.draw(values(writer, {}))
    check(writer, reader, record, corruption)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(writer=RANDOM_SCHEMAS, data=st.data(), corruption=CORRUPTIONS)
def test_random_schemas_read_the_same(writer: Any, data: st.DataObject, corruption: tuple[str, int, bytes]) -> None:
    record = data.draw(values(writer, {}))
    check(writer, None, record, corruption)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(writer=RANDOM_SCHEMAS, data=st.data(), corruption=CORRUPTIONS)
def test_random_evolved_readers_read_the_same(
    writer: Any, data: st.DataObject, corruption: tuple[str, int, bytes]
) -> None:
    reader = evolve(writer, data.draw)
    try:
        parse_standalone(strip_logical_types(reader))
    except Exception:  # an evolution fastavro refuses as a schema (the decoder never gets that far)
        return
    record = data.draw(values(writer, {}))
    check(writer, reader, record, corruption)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"\x80\x80\x80\x80\x10", id="int-varint-of-33-bits"),  # fastavro: 2**31; cavro's int: 0
        pytest.param(b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\x7f", id="int-varint-of-64-bits"),
        pytest.param(b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", id="varint-of-11-bytes"),
    ],
)
def test_an_out_of_range_varint_reads_the_same(body: bytes) -> None:
    # Found by the random test: a corrupt body's `int` beyond 32 bits. cavro reads ints as longs for this.
    for kind in ("int", "long", ["null", "int"]):
        schema = {"type": "record", "name": "V", "fields": [{"name": "n", "type": kind}]}
        fast, cav = readers(schema, None)
        value = b"hdr" + (b"\x02" if isinstance(kind, list) else b"") + body
        assert outcome(cav, value) == outcome(fast, value)


def test_a_string_read_as_bytes_that_is_not_utf8_reads_the_same() -> None:
    # Found by the random test: fastavro decodes the written string first (and refuses bad UTF-8); cavro did not.
    writer = {"type": "record", "name": "S", "fields": [{"name": "s", "type": "string"}]}
    reader = {"type": "record", "name": "S", "fields": [{"name": "s", "type": "bytes"}]}
    fast, cav = readers(writer, reader)
    value = b"hdr\x04\xff\xfe"
    assert outcome(fast, value)[:2] == ("error", "corrupt_body")
    assert outcome(cav, value) == outcome(fast, value)

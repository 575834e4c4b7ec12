"""No record escapes the per-record handling (issue 14 item 2): hostile JSON payloads and hostile Avro values
of every bundled schema only ever become OK or a refusal, in this process and in the decode worker, and the
worker lives on. An exception no check foresaw is refused at its stage as `unexpected_error`."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from fastavro import schemaless_writer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector.avro import NAMESPACE, default_catalog
from connector.commands.sample import RECORD_KINDS, generate_messages
from connector.errors import SchemaRegistryUnavailable
from connector.rd import contract
from connector.transform import process as transform
from connector.transform.outcomes import Outcome, Ready, Refused, RegistryDown
from connector.transform.process import UNEXPECTED, DecoderSpec, InProcess, WorkerProcess
from tests.hostile import HOSTILE, rd_event

N = NAMESPACE + "."
CATALOG = default_catalog()
IN_PROCESS = InProcess(DecoderSpec().build())
PROFILE = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
STAGES = {"decode", "map", "encode"}

# Odd text: any code point (lone surrogates too, written as JSON escapes), control and combining characters.
ODD_TEXT = st.text(st.characters(), max_size=40) | st.sampled_from(["", " ", "\n", "\u202e", "a\u0000b", "ｅ@ｘ.ｃｏ"])
HUGE = st.integers() | st.sampled_from([2**63, -(2**63) - 1, 2**64, 10**400, -(10**400)])
SCALAR = st.none() | st.booleans() | HUGE | st.floats() | ODD_TEXT
JSON_VALUE = st.recursive(
    SCALAR, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(ODD_TEXT, inner, max_size=4), max_leaves=20
)
#: Fields the mapping and RD's rules look at, so that wrong types land where checks run.
FIELDS = sorted(
    {*contract.URL_FIELDS, *contract.LIMITS, "email", "currency", "cancel_reason", "legal_bases", "price", "value"}
    | {"quantity", "total_items", "identifier", "conversion_identifier", "funnel_name", "shipping_price"}
)
LEGAL_BASIS = st.fixed_dictionaries({}, optional={k: JSON_VALUE for k in ("category", "type", "status")})
LINE_ITEM = st.dictionaries(st.sampled_from(FIELDS), JSON_VALUE, max_size=6)


def _nested(value: Any, levels: int) -> Any:
    for _ in range(levels):
        value = [value]
    return value


EXTRAS = st.fixed_dictionaries(
    {},
    optional={
        "legal_bases": st.lists(LEGAL_BASIS | JSON_VALUE, max_size=3),
        "line_items": st.lists(LINE_ITEM | JSON_VALUE, max_size=3),
        "cf_deep": st.integers(0, 1100).map(lambda n: _nested("x", n)),
    },
)


def _payloads(event_type: str) -> st.SearchStrategy[Any]:
    """Mostly the required fields of `event_type` (so that the checks after them run), with hostile fields on
    top; sometimes any JSON at all."""
    required = {
        f: st.just("ana@example.com" if f == "email" else "x") for f in contract.EVENT_TYPES.get(event_type, ())
    }
    hostile = st.dictionaries(st.sampled_from(FIELDS), JSON_VALUE, max_size=3)
    payload = st.builds(lambda r, e, h: {**r, **e, **h}, st.fixed_dictionaries(required), EXTRAS, hostile)
    return payload | JSON_VALUE


EVENT_TYPES = st.sampled_from(sorted({*contract.EVENT_TYPES, *contract.REMOVED_EVENT_TYPES, "", "conversion"}))


def _json_text(value: Any, ascii_only: bool) -> str:
    # json, not orjson: it writes what orjson refuses to (huge integers, NaN, lone surrogates as \ud800).
    return json.dumps(value, ensure_ascii=ascii_only)


def _utf8(text: str) -> bool:
    return text.encode("utf-8", "surrogatepass") == text.encode("utf-8", "replace")  # an Avro string is UTF-8


def _typed_payload(event_type: str) -> st.SearchStrategy[tuple[str, str]]:
    texts = st.builds(_json_text, _payloads(event_type), st.booleans()).filter(_utf8)
    return st.tuples(st.just(event_type), texts)


#: (event_type, payload_json) pairs.
TYPED_PAYLOADS = EVENT_TYPES.flatmap(_typed_payload)


def _avro_values(node: Any, named: dict[str, st.SearchStrategy[Any]], field: str = "") -> st.SearchStrategy[Any]:
    """Any value the raw (logical types stripped) schema `node` can hold, extremes included; plausible values
    mixed in where a field's check would otherwise stop every record (so that the checks after it run)."""
    if isinstance(node, list):
        return st.one_of(*(_avro_values(branch, named, field) for branch in node))
    if isinstance(node, str):
        if node in named:
            return named[node]
        node = {"type": node}
    kind = node["type"]
    if isinstance(kind, (dict, list)):
        return _avro_values(kind, named, field)
    if kind == "record":
        name = node["name"] if "." in node["name"] else f"{node.get('namespace', NAMESPACE)}.{node['name']}"
        named[name] = st.deferred(lambda: fields)
        fields = st.fixed_dictionaries({f["name"]: _avro_values(f["type"], named, f["name"]) for f in node["fields"]})
        return fields
    if kind == "enum":
        name = node["name"] if "." in node["name"] else f"{node.get('namespace', NAMESPACE)}.{node['name']}"
        named[name] = st.sampled_from(node["symbols"])
        return named[name]
    if kind == "array":
        return st.lists(_avro_values(node["items"], named, field), max_size=25)
    if kind == "map":
        return st.dictionaries(ODD_TEXT, _avro_values(node["values"], named), max_size=3)
    if kind == "bytes":  # a decimal's unscaled bytes: any length (401 of them overflowed a float)
        return st.binary(max_size=5) | st.binary(max_size=20) | st.integers(1, 1000).map(lambda n: b"\x7f" * n)
    if kind == "string":
        text = st.text(st.characters(codec="utf-8"), max_size=40)
        extreme = st.sampled_from(["a@" + "." * 16000, "x" * 200_000, "http://" + "a" * 5000 + " ", "a@b.co\n"])
        plausible = {"email": "ana@example.com", "currency": "BRL"}.get(field)
        if field.endswith("_url"):
            plausible = "https://shop.example.com/p/1"
        return (st.just(plausible) if plausible else text) | text | extreme
    if kind == "int":
        return st.integers(-(2**31), 2**31 - 1)
    if kind == "long":
        return st.integers(-(2**63), 2**63 - 1)
    if kind in ("float", "double"):
        return st.floats(width=32 if kind == "float" else 64)
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    raise AssertionError(kind)


def _avro_record(full_name: str) -> st.SearchStrategy[bytes]:
    entry = CATALOG[full_name]
    values = _avro_values(entry.definition, {})
    if full_name == N + "RdEvent":
        values = st.builds(lambda r, p: {**r, "event_type": p[0], "payload_json": p[1]}, values, TYPED_PAYLOADS)

    def encode(record: dict[str, Any]) -> bytes:
        out = io.BytesIO()
        schemaless_writer(out, entry.raw_schema, record)
        return entry.header + out.getvalue()

    return values.map(encode)


HOSTILE_VALUES = st.one_of(
    TYPED_PAYLOADS.map(lambda p: rd_event(p[1], p[0])), *(_avro_record(name) for name in sorted(RECORD_KINDS))
)


def assert_handled(outcome: Outcome) -> None:
    """Ready with JSON RD would parse, or a refusal a dead letter can carry (its texts encode as UTF-8)."""
    assert type(outcome) in (Ready, Refused), outcome
    if type(outcome) is Ready:
        assert orjson.loads(outcome.data)["event_type"] == outcome.event_type
        return
    assert type(outcome) is Refused
    stage, reason, message, log_message = outcome
    assert stage in STAGES and reason and reason != UNEXPECTED, outcome  # every hostile input has its check
    message.encode()
    log_message.encode()


@pytest.fixture(scope="module")
def worker() -> Iterator[WorkerProcess]:
    process = WorkerProcess(DecoderSpec())
    yield process
    process.close()


@pytest.mark.parametrize(("name", "value", "reason"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_each_record_that_killed_the_worker_is_refused_with_its_reason(name: str, value: bytes, reason: str) -> None:
    [outcome] = IN_PROCESS.many([("orders", value)])
    assert type(outcome) is Refused and outcome.reason == reason, outcome
    assert outcome.stage == "map" and outcome.message and outcome.log_message


def test_the_worker_refuses_them_and_lives(worker: WorkerProcess) -> None:
    good = [("orders", m.value) for m in generate_messages(20, seed=11)]
    work = [*good[:10], *(("orders", value) for _, value, _ in HOSTILE), *good[10:]]
    worker.submit(work)
    outcomes = worker.collect()
    assert outcomes == IN_PROCESS.many(work)
    assert [o.reason for o in outcomes if type(o) is Refused] == [reason for _, _, reason in HOSTILE]
    worker.submit(good)
    assert [type(o) for o in worker.collect()] == [Ready] * len(good)


@PROFILE
@given(st.lists(HOSTILE_VALUES, min_size=1, max_size=5))
def test_hostile_values_are_ok_or_refused_in_process_and_in_the_worker(
    worker: WorkerProcess, values: list[bytes]
) -> None:
    work = [("orders", value) for value in values]
    expected = IN_PROCESS.many(work)
    for outcome in expected:
        assert_handled(outcome)
    worker.submit(work)
    assert worker.collect() == expected


def test_the_worker_is_alive_after_the_hostile_values(worker: WorkerProcess) -> None:
    worker.submit([("orders", b"")])
    [outcome] = worker.collect()
    assert isinstance(outcome, Refused) and outcome.reason == "truncated_body"


class _Boom(Exception):
    """Stands for a bug: an exception no check foresaw."""


@pytest.mark.parametrize("stage", ["decode", "map", "encode"])
def test_an_unforeseen_exception_is_refused_at_its_stage(monkeypatch: pytest.MonkeyPatch, stage: str) -> None:
    def boom(*_: Any) -> Any:
        raise _Boom("secret ana@example.com")

    decoder, mappings = DecoderSpec().build_both()
    if stage == "decode":
        monkeypatch.setattr(decoder, "decode_typed", boom)
    elif stage == "map":
        monkeypatch.setattr(mappings, "map", boom)
    else:
        monkeypatch.setattr(transform, "encode_event", boom)
    value = rd_event('{"conversion_identifier": "c", "email": "ana@example.com"}')
    [outcome] = InProcess(decoder, mappings).many([("orders", value)])
    assert type(outcome) is Refused and outcome[:2] == (stage, UNEXPECTED)
    assert "_Boom" in outcome.message and "secret" in outcome.message
    assert "_Boom" in outcome.log_message and "secret" not in outcome.log_message
    assert "ana@" not in outcome.log_message
    if stage != "decode":
        assert outcome.log_message.startswith(N + "RdEvent: ")


def test_a_registry_outage_is_still_retried_not_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    decoder = DecoderSpec().build()

    def down(*_: Any) -> Any:
        raise SchemaRegistryUnavailable("registry down")

    monkeypatch.setattr(decoder, "decode_typed", down)
    assert InProcess(decoder).many([("orders", b"\x00\x00\x00\x00\x01")]) == [RegistryDown("registry down")]

"""The ledger's pure parts: where results of a partition go, which results offset a checkpoint records, whose
results count (group, destination, hostile values) and which records they settle (crash or reset)."""

from __future__ import annotations

import copy
import importlib.resources
import io
import json
from collections.abc import Collection

import fastavro
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.avro import DELIVERY_RESULT, Decoder, Encoder, SchemaCatalog, default_catalog, encode_delivery_result
from connector.ledger.reader import LedgerReader
from connector.ledger.scan import (
    Checkpoint,
    Suppression,
    Watermarks,
    our_result,
    parse_checkpoint,
    rd_destination,
    results_partition,
)

TP = ("orders", 0)


def test_results_partition_is_stable_and_in_range() -> None:
    assert results_partition("orders", 3, 6) == results_partition("orders", 3, 6)
    assert all(0 <= results_partition("t", p, 5) < 5 for p in range(100))
    assert len({results_partition("t", p, 5) for p in range(100)}) == 5  # spread over all partitions


def test_checkpoint_is_the_first_result_at_or_above_the_commit() -> None:
    marks = Watermarks()
    marks.acked(TP, [(0, 10), (1, 11)])
    marks.acked(TP, [(2, 15), (3, 16)])
    assert marks.checkpoint_offset(TP, 2) == 15  # results of offsets >= 2 start at 15
    assert marks.checkpoint_offset(TP, 4) == 17  # all below the commit: after the last one
    assert marks.checkpoint_offset(TP, 9) == 17  # nothing new: stays
    marks.acked(TP, [(9, 30)])
    assert marks.checkpoint_offset(TP, 9) == 30


def test_unknown_until_a_result_is_acknowledged() -> None:
    marks = Watermarks()
    assert marks.checkpoint_offset(TP, 5) is None  # keep whatever checkpoint there was
    marks.acked(TP, [(5, 3)])
    marks.forget([TP])
    assert marks.checkpoint_offset(TP, 6) is None


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(min_value=1, max_value=5), min_size=1, max_size=60),
    st.lists(st.integers(min_value=0, max_value=80), min_size=1, max_size=10),
)
def test_checkpoint_never_skips_a_result_above_the_commit(gaps: list[int], commits: list[int]) -> None:
    """Results of one partition arrive in source order at increasing results offsets; for any sequence of
    commits, the checkpoint is <= every result offset of a source offset >= the commit."""
    marks = Watermarks()
    results: list[tuple[int, int]] = []
    source = result = 0
    for gap in gaps:
        source += gap
        result += 1 + gap % 2  # other partitions' results interleave
        results.append((source, result))
    fed = 0
    for committed in sorted(commits):
        first = fed
        while fed < len(results) and results[fed][0] < committed + 3:  # some results ahead of the commit
            fed += 1
        marks.acked(TP, results[first:fed])  # acknowledged in bulk (a poll's worth)
        start = marks.checkpoint_offset(TP, committed)
        later = [r for s, r in results if s >= committed]
        if start is not None and later:
            assert start <= min(later)


# -- whose result it is ------------------------------------------------------------------------------

GROUP, DEST = "shop-a", rd_destination("https://api.rd.services", "token-a")
OURS = frozenset({DEST})


def _record(**changes: object) -> dict[str, object]:
    record: dict[str, object] = {
        "event_uuid": "u",
        "event_batch_uuid": "b",
        "event_type": "CONVERSION",
        "source_topic": "orders",
        "source_partition": 2,
        "source_offset": 17,
        "source_event_id": None,
        "delivered_at": 1,
        "writer_group": GROUP,
        "writer_destination": DEST,
        "writer_base": 10,
    }
    record.update(changes)
    return record


def test_only_a_result_of_our_group_and_destination_is_ours() -> None:
    assert our_result(DELIVERY_RESULT, _record(), GROUP, OURS) == (("orders", 2), 17, 10)
    assert our_result(DELIVERY_RESULT, _record(writer_base=-1), GROUP, OURS) == (("orders", 2), 17, -1)
    assert our_result(DELIVERY_RESULT, _record(writer_group="shop-b"), GROUP, OURS) is None
    other = rd_destination("https://api.rd.services", "token-b")
    assert our_result(DELIVERY_RESULT, _record(writer_destination=other), GROUP, OURS) is None
    older = _record(writer_group=None, writer_destination=None, writer_base=None)  # an older connector's
    assert our_result(DELIVERY_RESULT, older, GROUP, OURS) is None
    assert our_result(DELIVERY_RESULT, _record(writer_base=None), GROUP, OURS) is None  # base unknown
    assert our_result("io.rdconnector.events.OrderPaid", _record(), GROUP, OURS) is None


_anything = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5) | st.binary(max_size=5)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(list(_record())), _anything), st.booleans())
def test_hostile_records_are_never_ours_unless_well_formed(changes: dict[str, object], keep_writer: bool) -> None:
    if keep_writer:  # otherwise the group/destination check alone would reject most of them
        changes.update(writer_group=GROUP, writer_destination=DEST)
    found = our_result(DELIVERY_RESULT, _record(**changes), GROUP, OURS)
    if found is not None:
        (topic, partition), offset, base = found
        assert isinstance(topic, str) and all(type(v) is int for v in (partition, offset, base))
        assert partition >= 0 and offset >= 0 and base >= -1


def _reader(decoder: Decoder | None = None, destinations: Collection[str] = (DEST,)) -> LedgerReader:
    return LedgerReader(
        consumer_config={},
        decoder=decoder if decoder is not None else Decoder(default_catalog()),
        results_topic="results",
        ledger_topic="ledger",
        group_id=GROUP,
        destinations=destinations,
        results_partition=lambda topic, partition: results_partition(topic, partition, 3),
    )


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80), st.sampled_from([b"", b"\xc3\x01", b"\x00\x00\x00\x00\x07"]), st.booleans())
def test_undecodable_values_settle_nothing_and_never_raise(body: bytes, prefix: bytes, real_header: bool) -> None:
    if real_header:  # a DeliveryResult's own fingerprint, then garbage
        prefix = default_catalog()[DELIVERY_RESULT].header
    found = _reader()._our_result(prefix + body)
    assert found is None or found[0][1] >= 0


def test_results_of_an_older_connector_never_settle_a_record() -> None:
    """Before the writer fields: single-object values carry the old schema's fingerprint (unknown now);
    Confluent-framed ones resolve to writer fields of null. Neither is ours."""
    old = copy.deepcopy(default_catalog()[DELIVERY_RESULT].definition)
    old["fields"] = [f for f in old["fields"] if not f["name"].startswith("writer_") and f["name"] != "rd_account"]
    record = {k: v for k, v in _record().items() if not k.startswith("writer_")}
    old_catalog = SchemaCatalog([(DELIVERY_RESULT, old)])
    single = Encoder(old_catalog).single_object(DELIVERY_RESULT, record)
    confluent = Encoder(old_catalog).confluent(5, DELIVERY_RESULT, record)

    class Registry:
        def get_schema(self, schema_id: int) -> dict[str, object]:
            assert schema_id == 5
            return old

    reader = _reader(Decoder(default_catalog(), registry=Registry()))
    assert Decoder(default_catalog(), registry=Registry()).decode(confluent, "results").record["writer_group"] is None
    assert reader._our_result(single) is None
    assert reader._our_result(confluent) is None
    fields = {k: v for k, v in _record().items() if k != "delivered_at"}
    ours = encode_delivery_result(**fields, delivered_at_ms=1)  # type: ignore[arg-type]
    assert reader._our_result(ours) == (("orders", 2), 17, 10)


def _v2_result(**changes: object) -> bytes:
    """A result as a connector before accounts wrote it: the bundled previous schema, single-object framing."""
    text = (importlib.resources.files("connector.schemas") / "DeliveryResult.v2.avsc").read_text("utf-8")
    schema = fastavro.parse_schema(json.loads(text), named_schemas={})
    body = io.BytesIO()
    fastavro.schemaless_writer(body, schema, _record(**changes))
    header = SchemaCatalog([(DELIVERY_RESULT, json.loads(text))])[DELIVERY_RESULT].header
    return header + body.getvalue()


def test_results_of_the_version_before_accounts_still_settle_records() -> None:
    decoded = Decoder(default_catalog()).decode(_v2_result(), "results")
    assert decoded.record["rd_account"] is None and decoded.record["writer_destination"] == DEST
    assert our_result(decoded.full_name, decoded.record, GROUP, OURS) == (("orders", 2), 17, 10)
    assert _reader()._our_result(_v2_result()) == (("orders", 2), 17, 10)
    assert _reader()._our_result(_v2_result(writer_group="shop-b")) is None


def test_a_result_of_any_of_our_destinations_is_ours_and_of_no_other() -> None:
    br = rd_destination("https://api.rd.services", "token-br")
    ar = rd_destination("https://api.rd.services", "token-ar", "client-ar")
    third = rd_destination("https://api.rd.services", "token-xx")
    reader = _reader(destinations=[br, ar])
    for destination, account in ((br, "shop-br"), (ar, "shop-ar")):
        fields = {k: v for k, v in _record(writer_destination=destination).items() if k != "delivered_at"}
        value = encode_delivery_result(**fields, delivered_at_ms=1, rd_account=account)  # type: ignore[arg-type]
        assert reader._our_result(value) == (("orders", 2), 17, 10)
        assert reader._our_result(_v2_result(writer_destination=destination)) == (("orders", 2), 17, 10)
    fields = {k: v for k, v in _record(writer_destination=third).items() if k != "delivered_at"}
    theirs = encode_delivery_result(**fields, delivered_at_ms=1, rd_account="shop-br")  # type: ignore[arg-type]
    assert reader._our_result(theirs) is None
    assert reader._our_result(_v2_result(writer_destination=third)) is None
    # the account's name is not what makes a result ours: the destination is
    assert our_result(DELIVERY_RESULT, _record(writer_destination=br, rd_account="shop-ar"), GROUP, {br, ar})
    assert our_result(DELIVERY_RESULT, _record(writer_destination=third, rd_account="shop-br"), GROUP, {br, ar}) is None


def test_a_lone_destination_string_is_refused() -> None:
    """A string is a collection of its characters: taken as the destinations, it would trust none of ours."""
    with pytest.raises(TypeError, match="not the string"):
        _reader(destinations=DEST)


def test_rd_destination_names_the_account_never_the_credential() -> None:
    a = rd_destination("https://api.rd.services", "secret-token")
    assert a == rd_destination("https://api.rd.services/", "secret-token")  # a trailing slash is the same URL
    assert len(a) == 16 and "secret" not in a
    assert a != rd_destination("https://api.rd.services", "other-token")
    assert a != rd_destination("http://127.0.0.1:8080", "secret-token")
    assert a != rd_destination("https://api.rd.services", "secret-token", client_id="app")
    assert rd_destination("https://x", "refresh", "app-1") != rd_destination("https://x", "refresh", "app-2")


def test_checkpoints_with_wrong_values_are_no_checkpoints() -> None:
    good = b'{"committed": 5, "results_partition": 1, "results_offset": 30}'
    assert parse_checkpoint(good) == Checkpoint(5, 1, 30)
    for bad in [
        b"not json",
        b"[1, 2]",
        b'"text"',
        b"",
        b'{"committed": "5", "results_partition": 1, "results_offset": 30}',
        b'{"committed": 5, "results_partition": 1}',
        b'{"committed": true, "results_partition": 1, "results_offset": 30}',
        b'{"committed": -1, "results_partition": 1, "results_offset": 30}',
        b'{"committed": 5.5, "results_partition": 1, "results_offset": 30}',
    ]:
        assert parse_checkpoint(bad) is None, bad


# -- which results settle a record --------------------------------------------------------------------


def _suppressed(committed: int | None, checkpointed: int | None, results: list[tuple[int, int]]) -> Suppression:
    rule = Suppression(committed, checkpointed)
    for offset, base in results:
        rule.add(offset, base)
    return rule


def test_after_a_crash_results_written_after_the_last_commit_settle() -> None:
    results = [(o, 0 if o < 5 else 5) for o in range(9)]  # committed 0, then 5; killed before committing more
    rule = _suppressed(5, 5, results)
    assert rule.offsets == {5, 6, 7, 8} and not rule.reset
    assert _suppressed(5, 0, results).offsets == {5, 6, 7, 8}  # the checkpoint of the commit at 5 was lost
    assert _suppressed(-1001, None, [(o, -1) for o in range(4)]).offsets == {0, 1, 2, 3}  # never committed


def test_a_reset_backwards_settles_nothing() -> None:
    results = [(o, 0 if o < 5 else 5) for o in range(9)]
    rule = _suppressed(0, 9, results)  # the group had committed 9; an operator reset it to 0
    assert rule.offsets == set() and rule.reset
    assert _suppressed(6, None, results).offsets == {6, 7, 8}  # not a reset: nothing says 6 is lower
    rule = _suppressed(3, None, results)  # no checkpoint, but a result written when 5 was committed
    assert rule.offsets == set() and rule.reset


def test_an_unknown_committed_position_settles_nothing() -> None:
    rule = _suppressed(None, 5, [(6, 5), (7, 5)])
    assert rule.offsets == set() and not rule.reset


def test_no_committed_position_settles_every_result_of_ours() -> None:
    """A new group, or one whose offsets expired: nothing to compare, every delivery of ours counts."""
    rule = _suppressed(-1001, 9, [(o, 5) for o in range(9)])
    assert rule.offsets == set(range(9)) and not rule.reset


_steps = st.lists(
    st.tuples(st.sampled_from(["deliver", "commit"]), st.integers(min_value=1, max_value=20), st.booleans()),
    max_size=40,
)


def _history(steps: list[tuple[str, int, bool]]) -> tuple[list[tuple[int, int]], int, int | None]:
    """A group's run: deliveries (a result each, with the committed position of the time as its base) and
    commits (monotone, of delivered offsets only; a checkpoint after each, maybe lost). Returns the
    results, the last committed position (-1: none) and the last checkpoint's committed position."""
    results: list[tuple[int, int]] = []
    delivered, committed, checkpointed = 0, -1, None
    for kind, n, lose_checkpoint in steps:
        if kind == "deliver":
            results += [(o, committed) for o in range(delivered, delivered + n)]
            delivered += n
        elif delivered > max(committed, 0):
            committed = min(delivered, max(committed, 0) + n)
            if not lose_checkpoint:
                checkpointed = committed
    return results, committed, checkpointed


@settings(max_examples=300, deadline=None)
@given(_steps)
def test_after_a_crash_every_result_at_or_above_the_commit_settles(steps: list[tuple[str, int, bool]]) -> None:
    results, committed, checkpointed = _history(steps)
    rule = _suppressed(committed, checkpointed, results)
    assert not rule.reset
    assert rule.offsets == {o for o, _ in results if o >= committed}
    # The scan reads only from the checkpoint on (results of offsets >= it): the same verdict.
    scanned = [(o, b) for o, b in results if checkpointed is None or o >= checkpointed]
    assert _suppressed(committed, checkpointed, scanned).offsets == rule.offsets


@settings(max_examples=300, deadline=None)
@given(_steps, st.integers(min_value=0, max_value=10_000), st.integers(min_value=1, max_value=30))
def test_a_reset_backwards_replays_and_a_crash_in_the_replay_still_settles(
    steps: list[tuple[str, int, bool]], pick: int, replayed: int
) -> None:
    results, committed, checkpointed = _history(steps)
    if committed <= 0:
        return
    reset_to = pick % committed
    rule = _suppressed(reset_to, checkpointed, results)
    assert rule.offsets <= {o for o, b in results if b <= reset_to}  # never a result of a later commit
    if checkpointed is not None and checkpointed > reset_to:  # the usual case: the last checkpoint is there
        assert rule.reset and rule.offsets == set()
    if rule.reset:
        # The replay's results have the reset position as base; the checkpoint written at the reset makes
        # the next scan (after a crash in the replay) read only them: they settle their records.
        replay = [(o, reset_to) for o in range(reset_to, reset_to + replayed)]
        assert _suppressed(reset_to, reset_to, replay).offsets == set(range(reset_to, reset_to + replayed))


@settings(max_examples=300, deadline=None)
@given(
    st.none() | st.integers(min_value=-1001, max_value=50),
    st.none() | st.integers(min_value=0, max_value=50),
    st.lists(st.tuples(st.integers(min_value=0, max_value=60), st.integers(min_value=-1, max_value=60))),
)
def test_only_a_result_found_settles_a_record(
    committed: int | None, checkpointed: int | None, results: list[tuple[int, int]]
) -> None:
    rule = _suppressed(committed, checkpointed, results)
    assert rule.offsets <= {o for o, _ in results}
    if committed is not None and committed >= 0:
        assert all(o >= committed for o in rule.offsets)

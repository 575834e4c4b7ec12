"""`rd-connector dlq replay` on the broker: records dead-lettered by a broken mapping, the mapping fixed, the
letters replayed (interrupted by `--limit`, resumed), the connector run again: each record reaches RD exactly
once. And the filters (`--reason`, `--ready`, `--until`), `--dry-run` and `--to` against letters written
directly."""

from __future__ import annotations

import collections
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Producer

from connector.avro import Encoder, SchemaCatalog
from connector.commands.dlq import cli
from connector.testing.kafka_tools import committed_offsets, produce_acked, read_topic
from connector.testing.mock_rd import MockRdServer
from tests.integration.pipeline_support import Topics, connector_env, start_pipeline, wait_until

pytestmark = pytest.mark.integration

ORDERS = Path(__file__).parents[2] / "examples" / "order-service"
FIXED = (ORDERS / "acme-orders.yaml").read_text()
BROKEN = FIXED.replace("email: {path: buyer.email, lower: true}", "email: {path: buyer.full_name, lower: true}")


def _order(number: int) -> dict[str, Any]:
    return {
        "order_number": number,
        "status": "PAID",
        "buyer": {"email": f"buyer{number}@x.com", "full_name": "Ana", "nickname": None, "phone": None},
        "total_cents": 12990,
        "items": [{"sku": "TEE-M", "title": "Tee", "unit_cents": 12990, "qty": 1}],
        "cancel_reason": None,
        "placed_at": 1_769_860_800_000,
    }


def _replay(env: dict[str, str], *args: str) -> tuple[int, list[dict[str, Any]], dict[str, Any]]:
    out = io.StringIO()
    code = cli(["replay", *args], env=env, out=out)
    lines = [orjson.loads(line) for line in out.getvalue().splitlines()]
    return code, [line for line in lines if "letter" in line], lines[-1]["summary"]


def _headers(message: Any) -> list[tuple[str, Any]]:
    return list(message.headers() or [])


def _names(message: Any) -> list[str]:
    return [name for name, _ in _headers(message)]


def _connect(env: dict[str, str], topics: Topics, ends: dict[int, int], tmp_path: Path, mapping: str) -> None:
    (tmp_path / "acme-orders.yaml").write_text(mapping.replace("topics: [acme.orders]", f"topics: [{topics.source}]"))
    running = start_pipeline(env)
    try:
        assert wait_until(lambda: committed_offsets(env["RDC_KAFKA_BOOTSTRAP_SERVERS"], topics.group,
                                                    topics.source, topics.partitions) == ends, 60)  # fmt: skip
    finally:
        assert running.stop() == 0


def test_broken_mapping_fixed_then_replayed_each_record_reaches_rd_once(
    kafka_bootstrap: str, make_topic: Callable[..., str], group_id: str, rd: MockRdServer, tmp_path: Path
) -> None:
    topics = Topics(make_topic("acme", 2), make_topic("results"), make_topic("dlq", 2), 2, group_id)
    encoder = Encoder(SchemaCatalog.load(ORDERS))
    values = [(str(n).encode(), encoder.single_object("com.acme.shop.Order", _order(n))) for n in range(12)]
    ends = produce_acked(kafka_bootstrap, topics.source, values)
    env = connector_env(kafka_bootstrap, rd.url, topics, RDC_SCHEMA_DIR=str(ORDERS), RDC_MAPPINGS=str(tmp_path),
                        RDC_DECODE_WORKERS="0")  # fmt: skip
    _connect(env, topics, ends, tmp_path, BROKEN)
    assert rd.accepted == []  # every record dead-lettered: the name is not an email
    letters = read_topic(kafka_bootstrap, topics.dlq, 2, 12, timeout_s=10)
    connect = [dict(_headers(m)) for m in letters]
    assert {h["__connect.errors.exception.class.name"] for h in connect} == {b"connector.errors.MappingError"}
    assert {h["__connect.errors.stage"] for h in connect} == {b"TRANSFORMATION"}
    assert {h["__connect.errors.connector.name"] for h in connect} == {group_id.encode()}
    replay_group = f"{group_id}.replay"
    replay = ["--group", replay_group]

    code, lines, summary = _replay(env, *replay, "--dry-run")
    assert code == 0 and summary["replayed"] == 12 and summary["committed"] == {}
    assert {line["action"] for line in lines} == {"would_replay"}
    assert committed_offsets(kafka_bootstrap, replay_group, topics.dlq, 2) == {0: -1001, 1: -1001}
    assert committed_offsets(kafka_bootstrap, topics.group, topics.source, 2) == ends  # nothing was sent

    code, lines, summary = _replay(env, *replay, "--limit", "5", "--batch", "2")  # interrupted after 5
    assert code == 0 and summary["replayed"] == 5 and summary["stopped"] == "limit"
    code, lines, summary = _replay(env, *replay)  # resumed: the rest, none twice
    assert code == 0 and summary["replayed"] == 7 and summary["stopped"] == "end"
    dlq_ends = {p: max(int(m.offset() or 0) + 1 for m in letters if m.partition() == p) for p in (0, 1)}
    assert committed_offsets(kafka_bootstrap, replay_group, topics.dlq, 2) == dlq_ends
    code, lines, summary = _replay(env, *replay)
    assert code == 0 and summary["replayed"] == 0

    replayed = read_topic(kafka_bootstrap, topics.source, 2, 24, timeout_s=10)
    copies = [m for m in replayed if "rdc.replay.of" in _names(m)]
    assert len(copies) == 12
    assert all(not name.startswith(("rdc.error", "__connect.")) for m in copies for name in _names(m))
    by_key = {m.key(): m for m in replayed if m not in copies}
    for copy in copies:  # same key, value and partition as the original
        original = by_key[copy.key()]
        assert (copy.value(), copy.partition()) == (original.value(), original.partition())

    new_ends = {p: ends[p] + sum(1 for m in copies if m.partition() == p) for p in ends}
    _connect(env, topics, new_ends, tmp_path, FIXED)
    delivered = collections.Counter(e.event["payload"]["identifier"] for e in rd.accepted)
    assert delivered == {str(n): 1 for n in range(12)}


Header = tuple[str, str | bytes | None]


def _letter(reason: str, retry_after: str | None = None) -> list[Header]:
    headers: list[Header] = [("trace", b"t-1"), ("rdc.error.stage", b"send"), ("rdc.error.reason", reason.encode())]
    headers += [("rdc.source.topic", b"orders"), ("rdc.source.partition", b"0"), ("rdc.source.offset", b"7")]
    return headers + ([("rdc.retry.after", retry_after.encode())] if retry_after else [])


def _write_letters(bootstrap: str, dlq: str, letters: list[list[Header]]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
    for index, headers in enumerate(letters):
        producer.produce(dlq, f"value-{index}".encode(), f"key-{index}".encode(), headers=headers, partition=0)
    assert producer.flush(10) == 0


def test_reason_ready_and_to_filter_and_hold(
    kafka_bootstrap: str, make_topic: Callable[..., str], group_id: str
) -> None:
    dlq, target = make_topic("dlq"), make_topic("target")
    past, future = "2020-01-01T00:00:00Z", "2999-01-01T00:00:00Z"
    _write_letters(kafka_bootstrap, dlq, [
        _letter("rejected_by_rd"),                       # 0
        _letter("contact_rate_limited", past),           # 1 ready
        _letter("invalid_email"),                        # 2
        _letter("contact_rate_limited", future),         # 3 not ready: holds the partition
        _letter("contact_rate_limited", past),           # 4 waits behind 3
    ])  # fmt: skip
    env = {"RDC_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "RDC_DLQ_TOPIC": dlq}
    limited = ["--reason", "contact_rate_limited", "--to", target]

    code, lines, summary = _replay(env, *limited, "--ready", "--group", f"{group_id}.rl")
    assert code == 0
    assert [(line["letter"].rsplit("/", 1)[1], line["action"]) for line in lines] == [
        ("0", "skipped"), ("1", "replayed"), ("2", "skipped"), ("3", "held")
    ]  # fmt: skip
    assert summary["held"] == {"0": "not_ready"} and summary["skipped_by_reason"] == {
        "rejected_by_rd": 1, "invalid_email": 1
    }  # fmt: skip
    assert committed_offsets(kafka_bootstrap, f"{group_id}.rl", dlq, 1) == {0: 3}  # never past the held letter
    [copy] = read_topic(kafka_bootstrap, target, 1, 1, timeout_s=5)
    assert copy.key() == b"key-1" and copy.value() == b"value-1"
    assert copy.headers() == [("trace", b"t-1"), ("rdc.replay.of", f"{dlq}/0/1".encode())]

    code, lines, summary = _replay(env, *limited, "--group", f"{group_id}.rl")  # without --ready: the rest
    assert code == 0 and [line["letter"][-1] for line in lines if line["action"] == "replayed"] == ["3", "4"]

    # A run for other reasons (its own default group) still finds the letters the first runs passed over.
    code, lines, summary = _replay(env, "--reason", "invalid_email", "--to", target, "--dry-run")
    assert code == 0 and summary["group"] == "rd-connector.dlq-replay.invalid_email"
    assert [line["letter"][-1] for line in lines if line["action"] == "would_replay"] == ["2"]


def test_until_holds_and_an_empty_or_missing_topic_is_nothing_to_do(
    kafka_bootstrap: str, make_topic: Callable[..., str], group_id: str
) -> None:
    dlq = make_topic("dlq", 3)  # partitions 1 and 2 stay empty
    _write_letters(kafka_bootstrap, dlq, [_letter("rejected_by_rd"), _letter("rejected_by_rd")])
    env = {"RDC_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "RDC_DLQ_TOPIC": dlq}
    code, lines, summary = _replay(env, "--until", "2000-01-01T00:00:00Z", "--group", group_id)
    assert code == 0 and summary["held"] == {"0": "after_until"} and summary["replayed"] == 0
    assert [line["action"] for line in lines] == ["held"]
    assert committed_offsets(kafka_bootstrap, group_id, dlq, 3) == {0: -1001, 1: -1001, 2: -1001}
    missing = {**env, "RDC_DLQ_TOPIC": f"{dlq}-absent"}
    code, _lines, summary = _replay(missing, "--group", group_id, "--timeout", "5")
    assert code == 0 and summary["replayed"] == 0

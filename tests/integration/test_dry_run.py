"""`rd-connector dry-run` on the broker: prints what `run` would send or refuse, commits nothing, calls no RD."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from connector.avro import Encoder, SchemaCatalog
from connector.commands import dry_run
from connector.testing.kafka_tools import committed_offsets, produce_acked
from connector.testing.mock_rd import MockRdServer
from tests.integration.pipeline_support import Topics, connector_env
from tests.integration.test_own_events import ORDERS, _mapping_dir, _order

pytestmark = pytest.mark.integration


def test_dry_run_prints_events_and_refusals_and_commits_nothing(
    kafka_bootstrap: str, make_topic: Callable[..., str], group_id: str, rd: MockRdServer, tmp_path: Path
) -> None:
    topics = Topics(make_topic("acme", 1), make_topic("results"), make_topic("dlq"), 1, group_id)
    encoder = Encoder(SchemaCatalog.load(ORDERS))
    orders = [_order(1), _order(2, "DRAFT"), _order(3, email="nobody"), _order(4, "CANCELLED")]
    values: list[tuple[bytes | None, bytes | None]] = [
        (None, encoder.single_object("com.acme.shop.Order", o)) for o in orders
    ]
    values += [(b"k", None), (None, b"\x07garbage")]
    produce_acked(kafka_bootstrap, topics.source, values)
    env = connector_env(
        kafka_bootstrap,
        rd.url,
        topics,
        RDC_SCHEMA_DIR=str(ORDERS),
        RDC_MAPPINGS=str(_mapping_dir(tmp_path, topics.source)),
    )
    out = io.StringIO()
    assert dry_run.cli(["--count", "5", "--timeout", "5"], env=env, out=out) == 0
    lines = [orjson.loads(line) for line in out.getvalue().splitlines()]
    assert [line.get("outcome") for line in lines[:-1]] == ["event", "skipped", "refused", "event", "tombstone"]
    assert [line["offset"] for line in lines[:-1]] == [0, 1, 2, 3, 4]  # --count 5: the sixth is not read
    assert lines[0]["event"]["event_type"] == "ECOMMERCE_ORDER_PAID" and lines[0]["bytes"] > 100
    assert lines[2]["reason"] == "invalid_email" and lines[2]["stage"] == "map"
    summary = lines[-1]["summary"]
    assert summary["mapped"] == 2 and summary["skipped_by_mapping"] == {"acme-orders": 1}
    assert summary["refused_by_reason"] == {"invalid_email": 1} and summary["tombstones"] == 1
    mean = (lines[0]["bytes"] + lines[3]["bytes"]) / 2
    assert summary["mean_event_bytes"] == round(mean, 1) and summary["events_per_full_request"] == int(
        199_999 // (mean + 1)
    )
    out = io.StringIO()
    assert dry_run.cli(["--count", "100", "--timeout", "5"], env=env, out=out) == 0  # stops at the end
    last = orjson.loads(out.getvalue().splitlines()[-1])["summary"]
    assert last["records"] == 6 and last["refused_by_reason"] == {"invalid_email": 1, "bad_magic_byte": 1}
    assert all(offset < 0 for offset in committed_offsets(kafka_bootstrap, topics.group, topics.source, 1).values())
    assert rd.requests == []  # never calls RD

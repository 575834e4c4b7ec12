"""RDC_MAPPINGS at run time: checked before the first record (a broken file exits 2, naming file and line), and
used in the transform, in this process and in a decode worker alike (skips included)."""

from __future__ import annotations

import io
import logging
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import fastavro
import pytest

from connector.avro import Encoder, SchemaCatalog
from connector.commands import run as runner
from connector.config import load_settings
from connector.errors import EXIT_CONFIG, ConfigError
from connector.mapping import read_mapping_texts
from connector.mapping.mappings import checked_mappings
from connector.transform.outcomes import Ready, Refused, SkippedByMapping
from connector.transform.process import DecoderSpec, InProcess, WorkerProcess
from tests.unit.mapping.mapping_support import EXAMPLES, order

ORDER_DIR = EXAMPLES / "order-service"


def _env(tmp_path: Path, mappings: str) -> dict[str, str]:
    return {
        "RDC_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",  # never reached: the check stops the start first
        "RDC_TOPICS": "acme.orders",
        # runner.cli configures logging to redact this token: a one-letter one would mask every "t" in later
        # tests' log lines (a minimum length for redaction is issue 19's).
        "RDC_RD_ACCESS_TOKEN": "at-mapping-runtime-test-token",
        "RDC_SCHEMA_DIR": str(ORDER_DIR),
        "RDC_MAPPINGS": mappings,
        "RDC_METRICS_PORT": "0",
    }


@pytest.fixture
def _restore_logging() -> Iterator[None]:
    """runner.cli replaces the root logger's handlers and the exception hooks: put pytest's back."""
    root = logging.getLogger()
    handlers, level, hooks = list(root.handlers), root.level, (sys.excepthook, threading.excepthook)
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    sys.excepthook, threading.excepthook = hooks


@pytest.mark.usefixtures("_restore_logging")
def test_a_broken_mapping_file_stops_run_with_exit_2_and_every_problem(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    text = (ORDER_DIR / "acme-orders.yaml").read_text()
    broken = text.replace("email: {path: buyer.email, lower: true}", "email: {path: buyer.emial, lower: true}")
    broken = broken.replace("identifier: {path: order_number, to: string}", "identifier: order_number")
    (tmp_path / "acme.yaml").write_text(broken)
    for name, value in _env(tmp_path, str(tmp_path)).items():
        monkeypatch.setenv(name, value)
    assert runner.cli([]) == EXIT_CONFIG
    err = capsys.readouterr().err
    path = tmp_path / "acme.yaml"
    assert "rd-connector: configuration error: " in err
    assert (
        f"{path}:14: mapping 'acme-orders': payload.email: path 'buyer.emial' is not a field of com.acme.shop.Order;"
        " did you mean 'buyer.email'?" in err
    )
    assert f"{path}:17: mapping 'acme-orders': payload.identifier: path 'order_number' is an integer" in err


def test_rdc_mappings_that_does_not_exist_or_holds_no_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="RDC_MAPPINGS='/nope' does not exist"):
        read_mapping_texts("/nope")
    with pytest.raises(ConfigError, match=r"is a directory without \*\.yaml files"):
        read_mapping_texts(str(tmp_path))
    settings = load_settings(_env(tmp_path, str(ORDER_DIR)))
    texts, mappings = checked_mappings(settings.mappings, SchemaCatalog.load(settings.schema_dir))
    assert [label for label, _ in texts] == [str(ORDER_DIR / "acme-orders.yaml")]
    assert mappings.select("com.acme.shop.Order", "acme.orders") is not None


def test_a_record_no_known_schema_has_is_an_error_unless_a_registry_will_tell(tmp_path: Path) -> None:
    text = (ORDER_DIR / "acme-orders.yaml").read_text().replace("com.acme.shop.Order", "com.acme.shop.Ordr")
    (tmp_path / "a.yaml").write_text(text)
    catalog = SchemaCatalog.load(ORDER_DIR)
    with pytest.raises(
        ConfigError, match=r"record com\.acme\.shop\.Ordr is not a known schema .*did you mean .com\.acme"
    ):
        checked_mappings(str(tmp_path), catalog)
    _, mappings = checked_mappings(str(tmp_path), catalog, registry=True)
    [(_, problems, note)] = [r for r in mappings.check(catalog, registry=True) if r[0].name == "acme-orders"]
    assert problems == [] and "checked when the registry first gives one" in note


def _order_value(catalog: SchemaCatalog, **over: object) -> bytes:
    entry = catalog["com.acme.shop.Order"]
    body = io.BytesIO()
    fastavro.schemaless_writer(body, entry.schema, order(**over))
    return entry.header + body.getvalue()


def test_user_mappings_in_process_and_in_a_decode_worker() -> None:
    catalog = SchemaCatalog.load(ORDER_DIR)
    texts = read_mapping_texts(str(ORDER_DIR))
    work = [
        ("acme.orders", _order_value(catalog)),
        ("acme.orders", _order_value(catalog, status="DRAFT")),
        ("acme.orders", _order_value(catalog, buyer={"email": "nobody"})),
        ("other.topic", _order_value(catalog)),  # the mapping is for acme.orders only
        ("acme.orders", Encoder().single_object("io.rdconnector.events.OrderCancelled", _cancelled())),
    ]
    spec = DecoderSpec(str(ORDER_DIR), mapping_texts=texts)
    decoder, mappings = spec.build_both()
    expected = InProcess(decoder, mappings).many(work)
    assert [type(o) for o in expected] == [Ready, SkippedByMapping, Refused, Refused, Ready]
    paid, skipped, invalid, unknown, _ = expected
    assert isinstance(paid, Ready) and paid.event_type == "ECOMMERCE_ORDER_PAID"
    assert skipped == SkippedByMapping("acme-orders")
    assert isinstance(invalid, Refused) and invalid.reason == "invalid_email" and "'nobody'" in invalid.message
    assert invalid.log_message == "mapping acme-orders: ECOMMERCE_ORDER_PAID: email: email is not a valid email."
    assert isinstance(unknown, Refused) and unknown.reason == "unknown_record"
    worker = WorkerProcess(spec)
    try:
        worker.submit(work)
        assert worker.collect() == expected
    finally:
        worker.close()


def _cancelled() -> dict[str, object]:
    return {
        "event_id": "6f1c1d52-7c5b-4e0e-9a57-3c8a4e1d0b11",
        "occurred_at": 0,
        "customer": {"email": "a@x.com"},
        "order_id": "o-1",
        "cancel_reason": "FRAUD",
    }

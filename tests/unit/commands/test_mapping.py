"""`rd-connector mapping check` and `mapping test` (no Kafka, no RD): lines, diffs and exit codes; the
examples under examples/ pass both, run as the real command."""

from __future__ import annotations

import copy
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from connector.commands import mapping as commands
from connector.testing.schema_registry import FakeSchemaRegistry
from tests.unit.mapping.mapping_support import EXAMPLES, ORDER_DEFINITION

ORDERS = EXAMPLES / "order-service"
ROOT = Path(__file__).parents[3]


def run(action: str, **env: str) -> tuple[int, str]:
    out = io.StringIO()
    code = commands.cli([action], env=env, out=out)
    return code, out.getvalue()


def _copy(tmp_path: Path, old: str = "", new: str = "") -> Path:
    text = (ORDERS / "acme-orders.yaml").read_text()
    assert old in text
    (tmp_path / "acme-orders.yaml").write_text(text.replace(old, new))
    return tmp_path


@pytest.mark.parametrize("example", sorted(p.name for p in EXAMPLES.iterdir() if p.is_dir()))
def test_every_example_passes_mapping_check_and_mapping_test(example: str) -> None:
    env = {**os.environ, "RDC_SCHEMA_DIR": str(EXAMPLES / example), "RDC_MAPPINGS": str(EXAMPLES / example)}
    env["PYTHONPATH"] = str(ROOT)
    for action in ("check", "test"):
        done = subprocess.run(
            [sys.executable, "-m", "connector.cli", "mapping", action],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "all" in done.stdout or "passed, 0 failed, 0 could not run" in done.stdout


def test_check_prints_one_line_per_mapping() -> None:
    code, out = run("check", RDC_SCHEMA_DIR=str(ORDERS), RDC_MAPPINGS=str(ORDERS))
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("OK   acme-orders (") and "com.acme.shop.Order -> ECOMMERCE_ORDER_PLACED" in lines[0]
    assert len([line for line in lines if line.startswith("OK   ")]) == 10  # and the nine bundled ones
    assert lines[-1] == "mapping check: all 10 mapping(s) fit"


def test_check_of_a_broken_file_lists_its_problems_and_exits_2(tmp_path: Path) -> None:
    folder = _copy(tmp_path, "email: {path: buyer.email, lower: true}", "email: {path: buyer.emial, lower: true}")
    code, out = run("check", RDC_SCHEMA_DIR=str(ORDERS), RDC_MAPPINGS=str(folder))
    assert code == 2
    assert "FAIL acme-orders" in out and "path 'buyer.emial' is not a field of com.acme.shop.Order" in out
    assert out.splitlines()[-1] == "mapping check: 1 of 10 mapping(s) do not fit"
    code, out = run("check", RDC_MAPPINGS=str(tmp_path / "nope.yaml"))
    assert code == 2 and "does not exist" in out


def test_check_against_the_latest_registry_version(tmp_path: Path) -> None:
    renamed = copy.deepcopy(ORDER_DEFINITION)
    renamed["fields"][2]["name"] = "customer"
    with FakeSchemaRegistry() as registry:
        registry.register("acme.orders-value", json.dumps(ORDER_DEFINITION))
        code, out = run("check", RDC_MAPPINGS=str(ORDERS), RDC_SCHEMA_REGISTRY_URL=registry.url)
        assert code == 0, out
        assert "fits the registry's subject acme.orders-value, schema id 1" in out.splitlines()[0]
        assert "no known schema: checked when the registry first gives one" in out.splitlines()[0]
        registry.register("acme.orders-value", json.dumps(renamed))  # the latest version no longer fits
        code, out = run("check", RDC_MAPPINGS=str(ORDERS), RDC_SCHEMA_REGISTRY_URL=registry.url)
    assert code == 2
    assert "path 'buyer.email' is not a field of com.acme.shop.Order [subject acme.orders-value, schema id 2]" in out


def test_test_passes_fails_with_a_field_diff_or_cannot_run(tmp_path: Path) -> None:
    code, out = run("test", RDC_SCHEMA_DIR=str(ORDERS), RDC_MAPPINGS=str(ORDERS))
    assert code == 0 and out.splitlines()[-1] == "mapping test: 4 passed, 0 failed, 0 could not run"
    failing = _copy(tmp_path, "        price: 129.9\n", "        price: 12990\n")
    code, out = run("test", RDC_SCHEMA_DIR=str(ORDERS), RDC_MAPPINGS=str(failing))
    assert code == 1
    assert "FAIL a paid order (" in out and "    payload.price: expected 12990, got 129.9" in out
    broken = _copy(
        tmp_path,
        "    mapping: acme-orders\n    input:\n      order_number: 7",
        "    mapping: acme\n    input:\n      order_number: 7",
    )
    code, out = run("test", RDC_SCHEMA_DIR=str(ORDERS), RDC_MAPPINGS=str(broken))
    assert (
        code == 2 and "ERROR a paid order" in out and "no mapping is named 'acme'; did you mean 'acme-orders'?" in out
    )
    invalid = _copy(tmp_path, "      order_number: 7\n", "      order_numbr: 7\n")
    code, out = run("test", RDC_SCHEMA_DIR=str(ORDERS), RDC_MAPPINGS=str(invalid))
    assert code == 2 and "input is not a com.acme.shop.Order: com.acme.shop.Order has no field 'order_numbr'" in out


def test_test_of_a_file_that_does_not_check_exits_2(tmp_path: Path) -> None:
    folder = _copy(tmp_path, "ECOMMERCE_ORDER_PAID, CANCELLED", "ECOMMERCE_ORDER_PIAD, CANCELLED")
    code, out = run("test", RDC_SCHEMA_DIR=str(ORDERS), RDC_MAPPINGS=str(folder))
    assert code == 2 and "did you mean 'ECOMMERCE_ORDER_PAID'?" in out


def test_a_broken_file_stops_the_real_run_command_with_exit_2(tmp_path: Path) -> None:
    folder = _copy(tmp_path, "identifier: {path: order_number, to: string}", "identifier: order_number")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RDC_SCHEMA_DIR": str(ORDERS), "RDC_MAPPINGS": str(folder)}
    env.update(RDC_KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1", RDC_TOPICS="acme.orders", RDC_RD_ACCESS_TOKEN="t")
    env["RDC_METRICS_PORT"] = "0"
    done = subprocess.run(
        [sys.executable, "-m", "connector.cli", "run"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "mapping 'acme-orders': payload.identifier: path 'order_number' is an integer" in done.stderr
    assert "add 'to: string'" in done.stderr

"""A decode worker imports only what it uses: neither the HTTP client (httpx, only with a Schema Registry)
nor librdkafka (confluent_kafka). Together they cost every worker ~8 MiB of resident memory at start
(36.0 -> 27.7 MiB, `benchmarks/worker_rss.py`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parents[3])
# What a worker does before its first record: import its module, build its decoder and mappings.
_WORKER = """
import json, sys
import connector.transform.process as process
process.DecoderSpec(registry_url={url!r}).build_both()
print(json.dumps(sorted(name for name in ("httpx", "confluent_kafka") if name in sys.modules)))
"""


def _modules_after_worker_start(registry_url: str | None) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", _WORKER.format(url=registry_url)],
        env={**os.environ, "PYTHONPATH": _ROOT},
        cwd=_ROOT,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    loaded: list[str] = json.loads(done.stdout)
    return loaded


def test_a_worker_without_schema_registry_loads_neither_httpx_nor_librdkafka() -> None:
    assert _modules_after_worker_start(None) == []


def test_a_worker_with_a_schema_registry_loads_httpx_only() -> None:
    assert _modules_after_worker_start("http://127.0.0.1:1") == ["httpx"]  # never contacted before a record

"""`rd-connector run` with RDC_LOG_FORMAT=json: every line it writes (stdout and stderr, librdkafka's
included) is one JSON object, the figures are typed, and no client is given another kind's settings (no
CONFWARN), whatever the passthrough settings say."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from connector.commands.sample import generate_messages
from connector.testing.kafka_tools import committed_offsets, produce_acked
from connector.testing.mock_rd import MockRdServer
from tests.integration.pipeline_support import Topics, connector_env, spawn_connector, wait_until

pytestmark = pytest.mark.integration

CLIENT_SECRET = "client-secret-json-5e1d"
REFRESH_TOKEN = "refresh-token-json-77c0"


def test_a_json_run_writes_only_json_lines_with_typed_fields(
    kafka_bootstrap: str, make_topic: Callable[..., str], group_id: str, tmp_path: Path
) -> None:
    topics = Topics(make_topic("src", 2), make_topic("results"), make_topic("dlq"), 2, group_id)
    with MockRdServer(
        strict_auth=True, client_id="app", client_secret=CLIENT_SECRET, refresh_tokens=[REFRESH_TOKEN]
    ) as rd:
        messages = generate_messages(300, seed=5, malformed=6)
        ends = produce_acked(kafka_bootstrap, topics.source, [(m.key, m.value) for m in messages])
        env = connector_env(
            kafka_bootstrap,
            rd.url,
            topics,
            RDC_LOG_FORMAT="json",
            RDC_LOG_LEVEL="DEBUG",
            # The refresh flow: the token store's consumer, producer and admin client start too.
            RDC_RD_ACCESS_TOKEN="",
            RDC_RD_CLIENT_ID="app",
            RDC_RD_CLIENT_SECRET=CLIENT_SECRET,
            RDC_RD_REFRESH_TOKEN=REFRESH_TOKEN,
            # Passthrough settings of both kinds (connector_env adds consumer-only ones already).
            RDC_KAFKA__AUTO_OFFSET_RESET="earliest",
            RDC_KAFKA__MESSAGE_TIMEOUT_MS="60000",
            RDC_KAFKA__COMPRESSION_TYPE="none",
        )
        log_path = tmp_path / "run.log"
        proc = spawn_connector(env, str(log_path))  # stdout and stderr both go to the file
        try:
            assert wait_until(lambda: committed_offsets(kafka_bootstrap, topics.group, topics.source, 2) == ends, 60)
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0
        issued = rd.issued_tokens()

    text = log_path.read_text()
    entries: list[dict[str, Any]] = []
    for number, line in enumerate(text.splitlines(), 1):
        entry = json.loads(line)  # a raw librdkafka line (%4|...|CONFWARN|...) or traceback fails here
        assert isinstance(entry, dict) and {"ts", "level", "logger"} <= set(entry), f"line {number}: {line}"
        entries.append(entry)

    batches = [e for e in entries if e.get("event") == "batch"]
    assert sum(e["events"] for e in batches) == len(messages) - 6
    for batch in batches:
        assert type(batch["lane"]) is type(batch["events"]) is type(batch["bytes"]) is int
        assert batch["status"] == 200 and type(batch["status"]) is int
        assert type(batch["fill"]) is float and type(batch["latency_ms"]) in (int, float)

    letters = [e for e in entries if e.get("event") == "dead_letter"]
    assert len(letters) == 6
    for letter in letters:
        assert type(letter["partition"]) is int and type(letter["offset"]) is int
        assert letter["topic"] == topics.source and isinstance(letter["reason"], str)

    stopped = [e for e in entries if e.get("event") == "stopped"]
    assert len(stopped) == 1 and stopped[0]["exit_code"] == 0 and stopped[0]["dead_lettered"] == 6

    kafka = [e for e in entries if e["logger"] == "connector.kafka"]
    assert all(e["event"] == "librdkafka" and "facility" in e for e in kafka)
    assert [e for e in kafka if e["facility"] == "CONFWARN"] == []
    leaked = [s for s in [CLIENT_SECRET, REFRESH_TOKEN, *issued] if s in text]
    assert leaked == [], f"secrets in the log: {leaked[:3]}"

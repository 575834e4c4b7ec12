"""A broker restart while the connector runs (Tansu keeps everything in memory, so the restarted broker is
empty: this tests the client side only). The connector must reconnect, keep going, and commit nothing wrong."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from connector.commands.sample import generate_messages
from connector.testing.broker import EmbeddedBroker, create_topics
from connector.testing.kafka_tools import committed_offsets, produce_acked
from connector.testing.mock_rd import MockRdServer
from tests.conftest import EXTERNAL_BOOTSTRAP
from tests.integration.pipeline_support import Topics, connector_env, start_pipeline, wait_until

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(bool(EXTERNAL_BOOTSTRAP), reason="restarts its own embedded broker"),
]


def test_connector_survives_a_broker_restart(tmp_path: Path) -> None:
    topics = Topics("src-restart", "results-restart", "dlq-restart", 1, "g-restart")
    broker = EmbeddedBroker(log_path=tmp_path / "broker.log")
    broker.start()
    port = broker.port
    try:
        with MockRdServer() as rd:
            broker.create_topics([topics.source, topics.results, topics.dlq])
            before = generate_messages(400, seed=1)
            produce_acked(broker.bootstrap_servers, topics.source, [(m.key, m.value) for m in before])
            env = connector_env(broker.bootstrap_servers, rd.url, topics, RDC_KAFKA__MESSAGE_TIMEOUT_MS="5000")
            running = start_pipeline(env)
            assert wait_until(lambda: running.settled() == len(before), 30)

            broker.stop()
            time.sleep(3)  # the connector runs on with the broker gone
            assert running.thread.is_alive()
            assert running.pipeline._lanes.fatal() is None

            broker = EmbeddedBroker(log_path=tmp_path / "broker-2.log", port=port)
            broker.start()  # empty: the old topics, data and offsets are gone
            create_topics(broker.bootstrap_servers, [topics.source, topics.results, topics.dlq])
            after = generate_messages(300, seed=2)
            ends = produce_acked(broker.bootstrap_servers, topics.source, [(m.key, m.value) for m in after])
            delivered_before = len(rd.accepted)
            assert wait_until(lambda: len(rd.accepted) >= delivered_before + len(after), 60), (
                f"{len(rd.accepted) - delivered_before} of {len(after)} new events delivered after the restart"
            )
            ok = wait_until(
                lambda: committed_offsets(broker.bootstrap_servers, topics.group, topics.source, 1) == ends, 30
            )
            assert ok, "the new events were delivered but their offsets were not committed"
            assert running.stop() == 0
    finally:
        broker.stop()

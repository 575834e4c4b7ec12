"""One RD budget for the whole consumer group: three members against one account's limit (real broker, mock RD)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from connector.commands.sample import generate_messages
from connector.testing.kafka_tools import produce_acked
from connector.testing.mock_rd import MockRdServer
from tests.integration.pipeline_support import Topics, connector_env, start_pipeline, wait_until

pytestmark = pytest.mark.integration

LIMIT_PER_S = 20  # the account's limit at the mock; RDC_RD_REQUESTS_PER_MINUTE says the same for the group


def test_three_members_spend_one_budget_between_them(
    kafka_bootstrap: str, make_topic: Callable[..., str], group_id: str
) -> None:
    topics = Topics(make_topic("src", 6), make_topic("results", 2), make_topic("dlq"), 6, group_id)
    messages = generate_messages(3000, seed=17)
    produce_acked(kafka_bootstrap, topics.source, [(m.key, m.value) for m in messages])
    with MockRdServer(rate_limit_per_s=LIMIT_PER_S) as rd:
        env = connector_env(
            kafka_bootstrap,
            rd.url,
            topics,
            RDC_RD_REQUESTS_PER_MINUTE=str(LIMIT_PER_S * 60),
            RDC_BATCH_MAX_EVENTS="10",  # ~300 requests: enough to measure a rate
            RDC_DECODE_WORKERS="0",
        )
        members = [start_pipeline(env) for _ in range(3)]
        try:
            assert wait_until(lambda: len(rd.accepted) >= len(messages), 90), f"{len(rd.accepted)} accepted"
            shares = [m.pipeline._rebalance._budget_share for m in members]
        finally:
            for member in members:
                member.stop()
        batches = [r for r in rd.requests if r.path == "/platform/events/batch"]
    assert all(share is not None and share.share is not None for share in shares)
    span = batches[-1].at - batches[0].at
    rate = len(batches) / span
    throttled = sum(r.status == 429 for r in batches)
    accepted_rate = sum(r.status == 200 for r in batches) / span
    print(f"group rate {rate:.2f} req/s, accepted {accepted_rate:.2f} req/s, 429s {throttled}/{len(batches)}")
    assert rate <= LIMIT_PER_S * 1.1
    assert accepted_rate >= LIMIT_PER_S * 0.7
    assert throttled < 0.03 * len(batches)

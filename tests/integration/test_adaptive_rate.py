"""The adaptive rate against a mock RD whose limit (5 requests per fixed 1 s window) is below the client budget
(600/min = 10/s): after the first 429 the connector settles under the limit instead of bursting after every
pause (issue 17 item 1)."""

from __future__ import annotations

import pytest

from connector.commands.sample import generate_messages
from connector.testing.kafka_tools import produce_acked
from connector.testing.mock_rd import MockRdServer
from tests.integration.pipeline_support import Topics, connector_env, start_pipeline, wait_until

pytestmark = pytest.mark.integration

LIMIT_PER_S = 5
EVENTS = 100


def test_a_limit_below_the_budget_is_learnt_few_429s_and_no_bursts(kafka_bootstrap: str, topics: Topics) -> None:
    messages = [m for m in generate_messages(EVENTS, seed=3) if m.malformed is None]
    produce_acked(kafka_bootstrap, topics.source, [(m.key, m.value) for m in messages])
    with MockRdServer(seed=1, rate_limit_per_s=LIMIT_PER_S) as rd:
        env = connector_env(kafka_bootstrap, rd.url, topics, RDC_RD_REQUESTS_PER_MINUTE="600", RDC_BATCH_MAX_EVENTS="1")
        running = start_pipeline(env)
        try:
            assert wait_until(lambda: running.settled() == len(messages), 60), running.pipeline.stats
        finally:
            assert running.stop() == 0
        posts = [r for r in rd.requests if r.path.startswith("/platform")]

    statuses = [r.status for r in posts]
    throttled = statuses.count(429)
    assert statuses.count(200) == len(messages) and set(statuses) <= {200, 429}
    first = next(i for i, r in enumerate(posts) if r.status == 429)
    after = posts[first:]
    span = after[-1].at - after[0].at
    rate_after = (len(after) - 1) / span
    busiest = max(sum(1 for r in after if t.at <= r.at < t.at + 1.0) for t in after)
    print(f"requests={len(posts)} 429s={throttled} share={throttled / len(posts):.3f} "
          f"rate_after_first_429={rate_after:.2f}/s busiest_1s_window={busiest}")  # fmt: skip
    assert throttled / len(posts) < 0.05
    assert rate_after <= LIMIT_PER_S * 1.1

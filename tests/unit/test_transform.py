"""Decode+map+encode outcomes are the same in this process and in the worker process."""

from __future__ import annotations

from connector.sample import generate_messages
from connector.transform import OK, REFUSED, DecoderSpec, InProcess, WorkerProcess


def test_worker_process_gives_the_in_process_outcomes() -> None:
    messages = generate_messages(300, seed=5, malformed=10)
    work = [("orders", m.value) for m in messages]
    expected = InProcess(DecoderSpec().build()).many(work)
    worker = WorkerProcess(DecoderSpec())
    try:
        assert worker.many(work) == expected
        assert worker.many([]) == []
    finally:
        worker.close()
    kinds = [outcome[0] for outcome in expected]
    assert kinds.count(REFUSED) == 10 and kinds.count(OK) == 290
    refused = {outcome[2] for outcome in expected if outcome[0] == REFUSED}
    assert refused == {"bad_magic_byte", "unknown_fingerprint", "truncated_body", "removed_event_type", "invalid_email"}

"""Decode+map+encode outcomes are the same in this process and in the worker process."""

from __future__ import annotations

import pytest

from connector.errors import ConnectorError
from connector.sample import generate_messages
from connector.transform import OK, REFUSED, DecoderSpec, InProcess, WorkerProcess


def test_worker_process_gives_the_in_process_outcomes() -> None:
    messages = generate_messages(300, seed=5, malformed=10)
    work = [("orders", m.value) for m in messages]
    expected = InProcess(DecoderSpec().build()).many(work)
    worker = WorkerProcess(DecoderSpec())
    try:
        worker.submit(work)
        assert worker.collect() == expected
        worker.submit([])
        assert worker.collect() == []
    finally:
        worker.close()
    kinds = [outcome[0] for outcome in expected]
    assert kinds.count(REFUSED) == 10 and kinds.count(OK) == 290
    refused = {outcome[2] for outcome in expected if outcome[0] == REFUSED}
    assert refused == {"bad_magic_byte", "unknown_fingerprint", "truncated_body", "removed_event_type", "invalid_email"}


def test_overlapping_batches_come_back_in_order_without_blocking_on_the_pipe() -> None:
    # Each batch pickles to ~1 MB each way, far over a pipe's buffer: with batch N+1 sent before N's outcomes
    # are read, both processes would block on a full pipe if the worker did not read while it decodes.
    first = [("orders", m.value) for m in generate_messages(2500, seed=1)]
    second = [("orders", m.value) for m in generate_messages(2500, seed=2)]
    in_process = InProcess(DecoderSpec().build())
    in_process.submit(first)
    in_process.submit(second)
    expected = [in_process.collect(), in_process.collect()]
    worker = WorkerProcess(DecoderSpec())
    try:
        worker.submit(first)
        worker.submit(second)
        assert [worker.collect(), worker.collect()] == expected
    finally:
        worker.close()
    assert expected[0] != expected[1] and len(expected[0]) == len(expected[1]) == 2500


def test_a_dead_worker_is_an_error_on_every_collect() -> None:
    worker = WorkerProcess(DecoderSpec())
    try:
        worker.submit([("orders", m.value) for m in generate_messages(10, seed=3)])
        assert len(worker.collect()) == 10
        worker._process.kill()
        worker._process.join(5)
        worker.submit([("orders", b"x")])  # may still be accepted by the sender thread
        for _ in range(2):
            with pytest.raises(ConnectorError, match="decode worker process died"):
                worker.collect()
    finally:
        worker.close()

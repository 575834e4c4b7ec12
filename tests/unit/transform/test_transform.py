"""Decode+map+encode outcomes are the same in this process and in the worker process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from connector.commands.sample import generate_messages
from connector.errors import ConnectorError
from connector.transform.outcomes import Ready, Refused
from connector.transform.process import DecoderSpec, InProcess, WorkerPool, WorkerProcess


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
    kinds = [type(outcome) for outcome in expected]
    assert kinds.count(Refused) == 10 and kinds.count(Ready) == 290
    refused = {outcome.reason for outcome in expected if type(outcome) is Refused}
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


def _pid(worker: WorkerProcess) -> int:
    pid = worker._process.pid
    assert pid is not None
    return pid


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP], ids=lambda s: signal.Signals(s).name)
def test_the_worker_outlives_stop_signals_until_its_parent_stops_it(signum: int) -> None:
    # A supervisor's signal reaches the whole process group: the worker must still answer for what it holds.
    work = [("orders", m.value) for m in generate_messages(10, seed=4)]
    worker = WorkerProcess(DecoderSpec())
    try:
        worker.submit(work)
        assert len(worker.collect()) == 10  # it is running _worker, its signals set up
        os.kill(_pid(worker), signum)
        worker.submit(work)
        assert len(worker.collect()) == 10
    finally:
        worker.close()
    assert worker._process.exitcode == 0  # stopped by its parent, not by the signal


def test_close_kills_and_reaps_a_worker_that_does_not_stop() -> None:
    worker = WorkerProcess(DecoderSpec())
    worker.submit([])
    assert worker.collect() == []
    os.kill(_pid(worker), signal.SIGSTOP)  # it can neither read the stop request nor exit
    worker.close(timeout=0.2)
    assert worker._process.exitcode == -signal.SIGKILL
    worker.close()  # idempotent


def test_an_exit_without_close_does_not_wait_forever_for_the_worker() -> None:
    # multiprocessing's exit handler terminate()s (SIGTERM, ignored by the worker) and then joins without a
    # timeout: close() runs first, at exit, so a process that never called it still ends.
    script = (
        "from connector.transform.process import DecoderSpec, WorkerProcess\n"
        "worker = WorkerProcess(DecoderSpec())\n"
        "worker.submit([])\n"
        "assert worker.collect() == []\n"
        "print(worker._process.pid)\n"
    )
    root = str(Path(__file__).resolve().parents[3])
    done = subprocess.run(
        [sys.executable, "-c", script], env={**os.environ, "PYTHONPATH": root}, capture_output=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    with pytest.raises(ProcessLookupError):
        os.kill(int(done.stdout), 0)  # the worker is gone too


def test_a_pool_returns_every_batch_in_the_order_submitted() -> None:
    # Batches of different sizes go to the workers in turn; the smaller ones finish first in a worker, so
    # only collecting in submission order keeps records in order.
    batches = [
        [("orders", m.value) for m in generate_messages(n, seed=n, malformed=n // 50)] for n in (400, 3, 250, 1, 0, 60)
    ]
    in_process = InProcess(DecoderSpec().build())
    expected = [in_process.many(batch) for batch in batches]
    pool = WorkerPool(DecoderSpec(), 3)
    try:
        assert pool.depth == 3
        for batch in batches[:4]:
            pool.submit(batch)
        got = [pool.collect(), pool.collect()]
        for batch in batches[4:]:
            pool.submit(batch)
        got += [pool.collect() for _ in range(4)]
        assert got == expected
        pids = {worker._process.pid for worker in pool._workers}
        assert len(pids) == 3
    finally:
        pool.close()
    assert all(worker._process.exitcode == 0 for worker in pool._workers)  # asked to stop: none was killed

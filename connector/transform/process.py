"""Decode + map + encode of a whole consumed batch, in this process or in a worker process.

The pipeline hands `submit()` the (topic, value) pairs of one consume call and gets from `collect()` one
outcome per pair, in order (`outcomes.py`: `Ready`, `Refused`, `RegistryDown`, `SkippedByMapping`). Any
exception while decoding, mapping or encoding one record is `Refused` (reason `unexpected_error`, its class
and repr in the message), never raised: one record must not stop the worker or the pipeline.

`InProcess` calls the decoder directly. `WorkerProcess` runs the same function in a spawned process, and
overlaps: the pipeline submits batch N+1 and only then collects batch N, so while it batches, tracks and
reports N, the worker decodes N+1 on another core. (A first version waited for each batch: the two processes
then took turns and it bought only +9%.) `WorkerPool` (`RDC_DECODE_WORKERS=n`) gives whole batches to n such
workers in turn and collects them in the same order: the pipeline keeps n batches in flight.
"""

from __future__ import annotations

import atexit
import itertools
import multiprocessing
import queue
import signal
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Protocol

from connector.avro import Decoder, SchemaCatalog, registry_client
from connector.errors import ConnectorError, RecordError, SchemaRegistryUnavailable
from connector.mapping import Mappings, Skipped, bundled_mappings, encode_event
from connector.ops.gc_tuning import tune_gc
from connector.ops.logs import configure_logging
from connector.transform.outcomes import Outcome, Ready, Refused, RegistryDown, SkippedByMapping

__all__ = [
    "UNEXPECTED",
    "DecoderSpec",
    "InProcess",
    "Transform",
    "WorkerPool",
    "WorkerProcess",
]

#: The reason of a record refused by `_one`'s last-resort guard (stage `decode`, `map` or `encode`).
UNEXPECTED = "unexpected_error"
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@dataclass(frozen=True)
class DecoderSpec:
    """Everything needed to build a `Decoder` and the `Mappings` (picklable: a worker process builds its own).
    `mapping_texts` are the user's mapping files as (path, text), read once by the parent, which checked them."""

    schema_dir: str | None = None
    registry_url: str | None = None
    registry_username: str | None = None
    registry_password: str | None = None
    plain_topics: Mapping[str, str] = field(default_factory=dict)
    mapping_texts: tuple[tuple[str, str], ...] = ()
    log: tuple[str, str] | None = None  # (level, format): a worker logs as its parent does (None: not set up)
    avro_decoder: str = "fastavro"  # RDC_AVRO_DECODER

    def build(self) -> Decoder:
        return self.build_both()[0]

    def build_both(self) -> tuple[Decoder, Mappings]:
        registry = registry_client(self.registry_url, self.registry_username, self.registry_password)
        catalog = SchemaCatalog.load(self.schema_dir)
        decoder = Decoder(catalog, registry=registry, plain_topics=self.plain_topics, avro_decoder=self.avro_decoder)
        return decoder, Mappings(self.mapping_texts, catalog=catalog)


class Transform(Protocol):
    #: How many submitted batches may stay in flight while the caller handles older ones: 0 when `submit`
    #: does the work itself; one per worker process when the work runs while the caller does something else.
    depth: int

    def submit(self, work: Sequence[tuple[str, bytes]]) -> None:
        """Queue one batch of (topic, value) pairs."""
        ...

    def collect(self) -> list[Outcome]:
        """The outcomes of the oldest submitted batch, one per pair, in order (blocks until done)."""
        ...

    def close(self) -> None: ...


def _one(decoder: Decoder, mappings: Mappings, topic: str, value: bytes) -> Outcome:
    stage, name = "decode", None
    try:
        name, record, schema = decoder.decode_typed(value, topic)
        stage = "map"
        event = mappings.map(name, record, schema, topic)
        if isinstance(event, Skipped):
            return SkippedByMapping(event.mapping)
        stage = "encode"
        return Ready(event.event_type, record.get("event_id"), encode_event(event), event.trims, event.account)
    except SchemaRegistryUnavailable as exc:
        return RegistryDown(str(exc))
    except RecordError as exc:
        return Refused(exc.stage, exc.reason, exc.message, exc.log_message)
    except Exception as exc:  # the last resort: one record must never kill the worker or the pipeline
        return _unexpected(stage, name, exc)


def _unexpected(stage: str, name: str | None, exc: Exception) -> Outcome:
    """The refusal of a record whose decoding, mapping or encoding raised what no check foresaw (a bug to
    report: the detail names the exception). The log message has no record values: only the class."""
    # A registry schema's name is the producer's text: a lone surrogate in it could not be a UTF-8 header.
    where = f"{name.encode('utf-8', 'backslashreplace').decode()}: " if name else ""
    doing = {"decode": "decoding", "map": "mapping", "encode": "encoding"}[stage]
    try:
        text = repr(exc)  # repr escapes what str() would not (lone surrogates cannot be a UTF-8 header)
    except Exception:  # an exception whose repr fails still refuses its record
        text = type(exc).__name__
    return Refused(
        stage,
        UNEXPECTED,
        f"{where}unexpected error while {doing} the record: {text[:300]}",
        f"{where}unexpected error while {doing} the record: {type(exc).__name__}",
    )


class InProcess:
    """Transforms in the calling thread, at `submit` (with the bundled mappings unless given others)."""

    depth = 0

    def __init__(self, decoder: Decoder, mappings: Mappings | None = None) -> None:
        self._decoder = decoder
        self._mappings = mappings or bundled_mappings()
        self._done: deque[list[Outcome]] = deque()

    def submit(self, work: Sequence[tuple[str, bytes]]) -> None:
        self._done.append(self.many(work))

    def collect(self) -> list[Outcome]:
        return self._done.popleft()

    def many(self, work: Sequence[tuple[str, bytes]]) -> list[Outcome]:
        """The outcomes of one batch, now."""
        decoder, mappings = self._decoder, self._mappings
        return [_one(decoder, mappings, topic, value) for topic, value in work]

    def close(self) -> None:
        pass


def _worker(conn: Connection, spec: DecoderSpec) -> None:
    # Stop signals reach the whole process group (Ctrl-C, systemd's default KillMode, `timeout`, supervisors
    # that signal the group): the parent stops this worker (None on the pipe) after it has handled what the
    # worker holds, so the worker must not die of them first. The parent always reaps it: `close()` kills
    # it (SIGKILL) if it does not stop in time, and also runs at interpreter exit, before multiprocessing's
    # exit handler would terminate() (SIGTERM, ignored here) and join a worker left running by an error.
    for signum in _STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    if spec.log is not None:  # a mapping that does not fit a schema first seen here says so once, in our format
        configure_logging(*spec.log, secrets=[spec.registry_password] if spec.registry_password else [])
    decoder, mappings = spec.build_both()
    tune_gc()
    # A reader thread takes batches off the pipe while this thread decodes: otherwise the parent, sending
    # batch N+1, and this process, sending the outcomes of N, could both block on a full pipe.
    inbox: queue.SimpleQueue[list[tuple[str, bytes]] | None] = queue.SimpleQueue()

    def read() -> None:
        while True:
            try:
                work = conn.recv()
            except EOFError:
                work = None
            inbox.put(work)
            if work is None:
                return

    threading.Thread(target=read, name="rdc-decode-reader", daemon=True).start()
    while True:
        work = inbox.get()
        if work is None:
            return
        conn.send([_one(decoder, mappings, topic, value) for topic, value in work])


class WorkerProcess:
    """Transforms in one spawned worker process (spawned, not forked: librdkafka's threads must not be
    forked). A dead worker is a `ConnectorError`: the connector stops rather than guess."""

    def __init__(self, spec: DecoderSpec) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(target=_worker, args=(child, spec), name="rdc-decode", daemon=True)
        self._process.start()
        child.close()
        # Both directions have their own thread, so neither process waits on the other's pipeline step:
        # sending a ~400 KB batch waited for the worker's reader (7.5 ms of the pipeline thread per batch,
        # measured), and the worker's ~750 KB of outcomes waited until the pipeline came to collect them.
        self._outbox: queue.SimpleQueue[list[tuple[str, bytes]] | None] = queue.SimpleQueue()
        self._inbox: queue.SimpleQueue[list[Outcome] | None] = queue.SimpleQueue()
        self._sender = threading.Thread(target=self._send_all, name="rdc-decode-sender", daemon=True)
        self._receiver = threading.Thread(target=self._receive_all, name="rdc-decode-receiver", daemon=True)
        self._sender.start()
        self._receiver.start()
        atexit.register(self.close)  # after start(): runs before multiprocessing's own exit handler (LIFO)

    depth = 1

    def _send_all(self) -> None:
        while True:
            work = self._outbox.get()
            try:
                self._conn.send(work)
            except OSError:  # the worker is gone: collect() says so
                return
            if work is None:
                return

    def _receive_all(self) -> None:
        while True:
            try:
                self._inbox.put(self._conn.recv())
            except (EOFError, OSError):  # the worker is gone (or closed): collect() says so
                self._inbox.put(None)
                return

    def submit(self, work: Sequence[tuple[str, bytes]]) -> None:
        if not self._sender.is_alive():
            raise self._died()
        self._outbox.put(list(work))

    def collect(self) -> list[Outcome]:
        outcomes = self._inbox.get()
        if outcomes is None:
            self._inbox.put(None)  # every later collect fails the same way
            raise self._died()
        return outcomes

    def _died(self) -> ConnectorError:
        return ConnectorError(f"the decode worker process died (exit code {self._process.exitcode})")

    def close(self, timeout: float = 5.0) -> None:
        """Stop the worker and reap it, always: ask (None on the pipe), wait up to `timeout`, then kill it
        (it ignores the stop signals, not SIGKILL). Idempotent."""
        self.ask_to_stop()
        self.reap(timeout)

    def ask_to_stop(self) -> None:
        atexit.unregister(self.close)
        self._outbox.put(None)

    def reap(self, timeout: float) -> None:
        """After `ask_to_stop`: wait up to `timeout` for the worker to stop, then kill it."""
        self._sender.join(timeout)
        self._process.join(timeout)
        if self._process.exitcode is None:
            self._process.kill()
            self._process.join()


class WorkerPool:
    """Transforms in `n` worker processes (`RDC_DECODE_WORKERS=n`): whole batches go to the workers in turn
    and come back in the order submitted, so records keep their order without any merging."""

    def __init__(self, spec: DecoderSpec, n: int) -> None:
        self._workers: list[WorkerProcess] = []
        try:
            for _ in range(n):
                self._workers.append(WorkerProcess(spec))
        except BaseException:  # the ones started are stopped now, not left to the exit handler
            self.close()
            raise
        self._turns = itertools.cycle(self._workers)
        self._pending: deque[WorkerProcess] = deque()  # the worker of each batch in flight, oldest first
        self.depth = n

    def submit(self, work: Sequence[tuple[str, bytes]]) -> None:
        worker = next(self._turns)
        worker.submit(work)
        self._pending.append(worker)

    def collect(self) -> list[Outcome]:
        return self._pending.popleft().collect()

    def close(self, timeout: float = 5.0) -> None:
        """Stop every worker (all asked first, so they stop together) and reap them. Idempotent."""
        for worker in self._workers:
            worker.ask_to_stop()
        for worker in self._workers:
            worker.reap(timeout)

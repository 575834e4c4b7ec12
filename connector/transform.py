"""Decode + map + encode of a whole consumed batch, in this process or in a worker process.

The pipeline hands `many()` the (topic, value) pairs of one consume call and gets one outcome per pair, in
order. Outcomes are plain tuples (cheap to pickle):

- `(OK, event_type, event_id, json_bytes, trims)`
- `(REFUSED, stage, reason, message)`: a `DecodeError` or `MappingError`, dead-lettered by the pipeline
- `(REGISTRY_DOWN, message)`: the Schema Registry could not be reached; the record is retried later

`InProcess` calls the decoder directly. `WorkerProcess` (`RDC_DECODE_WORKERS=1`) runs the same function in a
spawned process: the pipeline thread then waits on a pipe (the GIL released) while the worker decodes on
the other core, so the lanes and the delivery reports are no longer queued behind decoding.
"""

from __future__ import annotations

import contextlib
import multiprocessing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any, Protocol

from connector.avro import Decoder, SchemaCatalog, SchemaRegistryClient
from connector.errors import ConnectorError, RecordError, SchemaRegistryUnavailable
from connector.mapping import encode_event, map_record

__all__ = ["OK", "REFUSED", "REGISTRY_DOWN", "DecoderSpec", "InProcess", "Transform", "WorkerProcess"]

OK, REFUSED, REGISTRY_DOWN = 0, 1, 2
Outcome = tuple[Any, ...]


@dataclass(frozen=True)
class DecoderSpec:
    """Everything needed to build a `Decoder` (picklable: a worker process builds its own)."""

    schema_dir: str | None = None
    registry_url: str | None = None
    registry_username: str | None = None
    registry_password: str | None = None
    plain_topics: Mapping[str, str] = field(default_factory=dict)

    def build(self) -> Decoder:
        registry = None
        if self.registry_url:
            registry = SchemaRegistryClient(
                self.registry_url, username=self.registry_username, password=self.registry_password
            )
        return Decoder(SchemaCatalog.load(self.schema_dir), registry=registry, plain_topics=self.plain_topics)


class Transform(Protocol):
    def many(self, work: Sequence[tuple[str, bytes]]) -> list[Outcome]:
        """One outcome per (topic, value), in order. Blocks until all are done."""
        ...

    def close(self) -> None: ...


def _one(decoder: Decoder, topic: str, value: bytes) -> Outcome:
    try:
        decoded = decoder.decode(value, topic)
        event = map_record(decoded.full_name, decoded.record)
        return (OK, event.event_type, decoded.record.get("event_id"), encode_event(event), event.trims)
    except SchemaRegistryUnavailable as exc:
        return (REGISTRY_DOWN, str(exc))
    except RecordError as exc:
        return (REFUSED, exc.stage, exc.reason, exc.message)


class InProcess:
    """Transforms in the calling thread."""

    def __init__(self, decoder: Decoder) -> None:
        self._decoder = decoder

    def many(self, work: Sequence[tuple[str, bytes]]) -> list[Outcome]:
        decoder = self._decoder
        return [_one(decoder, topic, value) for topic, value in work]

    def close(self) -> None:
        pass


def _worker(conn: Connection, spec: DecoderSpec) -> None:
    decoder = spec.build()
    while True:
        work = conn.recv()
        if work is None:
            return
        conn.send([_one(decoder, topic, value) for topic, value in work])


class WorkerProcess:
    """Transforms in one spawned worker process (spawned, not forked: librdkafka's threads must not be
    forked). A dead worker is a `ConnectorError`: the connector stops rather than guess."""

    def __init__(self, spec: DecoderSpec) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(target=_worker, args=(child, spec), name="rdc-decode", daemon=True)
        self._process.start()
        child.close()

    def many(self, work: Sequence[tuple[str, bytes]]) -> list[Outcome]:
        if not work:
            return []
        try:
            self._conn.send(list(work))
            outcomes: list[Outcome] = self._conn.recv()
        except (EOFError, OSError) as exc:
            raise ConnectorError(f"the decode worker process died (exit code {self._process.exitcode})") from exc
        return outcomes

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._conn.send(None)
        self._process.join(5)
        if self._process.is_alive():
            self._process.kill()

"""Benchmark fixture (NOT part of rd-connector): the Kafka -> RD job written the way Quix Streams, the most
popular Python stream-processing framework, would have it written.

One `Application`, a `StreamingDataFrame` that decodes + maps + encodes with the connector's own functions
(`connector.avro.Decoder`, `connector.mapping.map_record` / `encode_event`), so the comparison is of the
framework, not of the business logic, and a `BatchingSink` that packs each checkpoint's records into
bodies of at most 200,000 bytes (the same byte-exact rule as the connector) and POSTs them to the mock RD
API with httpx. Quix commits the offsets after the sink's flush succeeds (its checkpoint), so this is
at-least-once too. It does not produce result records (the connector does, one per event).

Runs in its own virtualenv (benchmarks/.venv-quix): quixstreams pins confluent-kafka < 2.13, which would
downgrade the project's confluent-kafka. The connector package is found through PYTHONPATH.

    python benchmarks/peers/quix_peer.py --bootstrap 127.0.0.1:9092 --topic T --group G --rd-url URL

Prints `FIRST <time.monotonic()>` on stdout when the first record reaches the dataframe; runs until
SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import sys
import time

import httpx
from quixstreams import Application
from quixstreams.sinks import BatchingSink, SinkBatch

from connector.avro import Decoder, default_catalog
from connector.errors import RecordError
from connector.mapping import encode_event, map_record

MAX_BYTES = 200_000


class RdBatchSink(BatchingSink):
    """POSTs each partition's batch to /platform/events/batch in bodies of at most MAX_BYTES bytes."""

    def __init__(self, url: str, token: str) -> None:
        super().__init__()
        self._url = f"{url}/platform/events/batch"
        self._headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        self._client: httpx.Client | None = None

    def setup(self) -> None:
        self._client = httpx.Client(timeout=30.0)

    def write(self, batch: SinkBatch) -> None:
        events: list[bytes] = []
        size = 2
        for item in batch:
            event = item.value
            if events and size + 1 + len(event) > MAX_BYTES:
                self._post(events)
                events, size = [], 2
            size += len(event) + (1 if events else 0)
            events.append(event)
        if events:
            self._post(events)

    def _post(self, events: list[bytes]) -> None:
        assert self._client is not None
        body = b"[" + b",".join(events) + b"]"
        response = self._client.post(self._url, content=body, headers=self._headers)
        response.raise_for_status()  # a failed flush aborts the checkpoint: nothing is committed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Quix Streams peer of rd-connector (benchmark fixture)")
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--rd-url", required=True)
    parser.add_argument("--commit-interval", type=float, default=5.0, help="Quix's default: 5 s")
    args = parser.parse_args(argv)

    app = Application(
        broker_address=args.bootstrap,
        consumer_group=args.group,
        auto_offset_reset="earliest",
        commit_interval=args.commit_interval,
        # Tansu holds a JoinGroup for half the session timeout: these make joins take ~1 s (tansu.md).
        consumer_extra_config={"session.timeout.ms": 2000, "heartbeat.interval.ms": 200},
        use_changelog_topics=False,
        loglevel="WARNING",
    )
    topic = app.topic(args.topic, value_deserializer="bytes", key_deserializer="bytes")
    decoder = Decoder(default_catalog())
    seen = [False]

    def transform(value: bytes) -> bytes | None:
        if not seen[0]:
            seen[0] = True
            print(f"FIRST {time.monotonic():.6f}", flush=True)
        try:
            return encode_event(map_record(*decoder.decode(value, args.topic)))
        except RecordError:
            return None  # the connector dead-letters these; the workload has none

    sdf = app.dataframe(topic)
    sdf = sdf.apply(transform).filter(lambda v: v is not None)
    sdf.sink(RdBatchSink(args.rd_url, "bench-token"))
    app.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())

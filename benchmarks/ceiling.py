"""The ceiling: consume + decode + map + encode only, no HTTP, no results, no commits.

A bare loop: one confluent_kafka Consumer with `assign()` (no group join) + `consume(1000)` + the
connector's `Decoder.decode`, `map_record`, `encode_event` (the decode worker's work per record, the same
compiled mapping with its RD payload checks). Prints one JSON line: records, seconds from
the first record received to the last one encoded, events/s, peak RSS.

    .venv/bin/python benchmarks/ceiling.py --bootstrap HOST:PORT --topic T --partitions 8 --count N
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time

from confluent_kafka import Consumer, TopicPartition

from connector.avro import Decoder, default_catalog
from connector.errors import RecordError
from connector.mapping import encode_event, map_record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--partitions", type=int, required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--avro-decoder", default=os.environ.get("RDC_AVRO_DECODER", "fastavro"),
                        help="fastavro (default), cavro or auto (RDC_AVRO_DECODER, as the connector)")  # fmt: skip
    args = parser.parse_args(argv)
    consumer = Consumer(
        {"bootstrap.servers": args.bootstrap, "group.id": "rdc-bench-ceiling", "enable.auto.commit": False}
    )
    consumer.assign([TopicPartition(args.topic, p, 0) for p in range(args.partitions)])
    decode, topic = Decoder(default_catalog(), avro_decoder=args.avro_decoder).decode, args.topic
    seen = encoded = failed = 0
    out_bytes = 0
    first = 0.0
    deadline = time.monotonic() + args.timeout
    while seen < args.count and time.monotonic() < deadline:
        messages = consumer.consume(1000, 0.1)
        if messages and not first:
            first = time.monotonic()
        for message in messages:
            if message.error() is not None:
                continue
            seen += 1
            try:
                data = encode_event(map_record(*decode(message.value(), topic)))  # type: ignore[arg-type]
            except RecordError:
                failed += 1
                continue
            encoded += 1
            out_bytes += len(data)
    seconds = time.monotonic() - first
    consumer.close()
    print(
        json.dumps(
            {
                "records": seen,
                "encoded": encoded,
                "failed": failed,
                "seconds": round(seconds, 3),
                "events_per_s": round(seen / seconds, 1) if seconds > 0 else None,
                "mean_event_bytes": round(out_bytes / encoded, 1) if encoded else None,
                "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            }
        )
    )
    return 0 if seen >= args.count else 1


if __name__ == "__main__":
    sys.exit(main())

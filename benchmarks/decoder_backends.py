"""fastavro against cavro (RDC_AVRO_DECODER): decode alone per record type, and the whole transform per record.

Run: `.venv/bin/python benchmarks/decoder_backends.py [--records N] [--repeat R]` (cavro installed: the
`fast` extra). Prints one JSON line per case. Single core, no I/O. Each case times `records` calls in a
loop, `repeat` times, the two backends in turns within each repeat (so a machine that slows down for a while
slows both); it reports the minimum and the median microseconds per record and the spread of the repeats
((max - min) / median).

Cases: `decode` is `Decoder.decode` of one single-object value of each bundled input record type (a
realistic record from `rd-connector produce-sample`'s generator) and of the 3-line-item OrderPaid of
`decode_map_encode.py`; `transform` is decode + map + encode of that OrderPaid, as the pipeline's decode
worker does it (`Decoder.decode_typed`, `Mappings.map`, `encode_event`); `resolved` decodes a
DeliveryResult written with the earlier bundled version (v2), resolved to the current schema.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import time
from collections.abc import Callable

import fastavro

from connector.avro import NAMESPACE, Decoder, Encoder, SchemaCatalog, default_catalog
from connector.commands.sample import generate_records
from connector.mapping import bundled_mappings, encode_event

try:
    from decode_map_encode import FULL_NAME, order_paid  # run as a script: benchmarks/ is on sys.path
except ImportError:  # imported as benchmarks.decoder_backends
    from benchmarks.decode_map_encode import FULL_NAME, order_paid

BACKENDS = ("fastavro", "cavro")


def cases(encoder: Encoder, catalog: SchemaCatalog) -> dict[str, tuple[str, bytes]]:
    """name -> (kind of loop, value): one value per bundled input record type, and the OrderPaid."""
    values: dict[str, tuple[str, bytes]] = {}
    for full_name, record in generate_records(400, seed=7):
        short = full_name.rpartition(".")[2]
        if short not in values:
            values[short] = ("decode", encoder.single_object(full_name, record))
    paid = encoder.single_object(FULL_NAME, order_paid())
    values["OrderPaid(3 line items)"] = ("decode", paid)
    values["OrderPaid(3 line items) decode+map+encode"] = ("transform", paid)
    values["DeliveryResult v2 -> current (resolved)"] = ("decode", earlier_delivery_result(catalog))
    return values


def earlier_delivery_result(catalog: SchemaCatalog) -> bytes:
    """A single-object DeliveryResult written with the bundled earlier version (v2, no `rd_account`)."""
    current = catalog[f"{NAMESPACE}.DeliveryResult"]
    earlier = next(e for e in catalog._by_header.values() if e.full_name == current.full_name and e is not current)
    record = {
        "event_uuid": "5b0c1f5e-1f7a-4f36-b0f4-0d3c2a9d8e01",
        "event_batch_uuid": "7d1e2f3a-4b5c-4d6e-8f90-a1b2c3d4e5f6",
        "event_type": "ORDER_PAID",
        "source_topic": "orders",
        "source_partition": 3,
        "source_offset": 123456,
        "source_event_id": "6f1c1d52-7c5b-4e0e-9a57-3c8a4e1d0b11",
        "delivered_at": 1_767_225_600_000,
        "writer_group": "rd-connector",
        "writer_destination": "https://api.rd.services",
        "writer_base": 123400,
    }
    out = io.BytesIO()
    fastavro.schemaless_writer(out, earlier.raw_schema, record)
    return earlier.header + out.getvalue()


def loop(kind: str, decoder: Decoder, value: bytes, records: int) -> Callable[[], None]:
    decode, typed, mapped = decoder.decode, decoder.decode_typed, bundled_mappings().map
    if kind == "decode":

        def run() -> None:
            for _ in range(records):
                decode(value, "t")
    else:

        def run() -> None:
            for _ in range(records):
                full_name, record, schema = typed(value, "t")
                encode_event(mapped(full_name, record, schema, "t"))  # type: ignore[arg-type]  # never Skipped

    return run


def measure(loops: dict[str, Callable[[], None]], records: int, repeat: int) -> dict[str, list[float]]:
    """Microseconds per record of each loop, one figure per repeat, the loops in turns."""
    times: dict[str, list[float]] = {name: [] for name in loops}
    for _ in range(repeat):
        for name, run in loops.items():
            started = time.perf_counter()
            run()
            times[name].append(1e6 * (time.perf_counter() - started) / records)
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--records", type=int, default=5_000)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args(argv)
    catalog = default_catalog()
    encoder = Encoder(catalog)
    decoders = {backend: Decoder(catalog, avro_decoder=backend) for backend in BACKENDS}
    for name, (kind, value) in cases(encoder, catalog).items():
        loops = {backend: loop(kind, decoders[backend], value, args.records) for backend in BACKENDS}
        times = measure(loops, args.records, args.repeat)
        line: dict[str, object] = {
            "benchmark": "decoder_backends",
            "case": name,
            "kind": kind,
            "value_bytes": len(value),
        }
        for backend, figures in times.items():
            median = statistics.median(figures)
            line[f"{backend}_min_us"] = round(min(figures), 2)
            line[f"{backend}_median_us"] = round(median, 2)
            line[f"{backend}_spread_pct"] = round(100 * (max(figures) - min(figures)) / median, 1)
        line["cavro_saves_pct"] = round(100 * (1 - line["cavro_median_us"] / line["fastavro_median_us"]), 1)  # type: ignore[operator]
        print(json.dumps(line), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

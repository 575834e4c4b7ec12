"""decode + map + encode records/s for a 3-line-item OrderPaid, per framing, decoding mode and mapper.

Run: `.venv/bin/python benchmarks/decode_map_encode.py [--records N] [--repeat R]`. Prints one JSON line
per case (machine-readable). Single core, no I/O: the CPU cost per record of the connector's hot path.
"raw" decodes without fastavro's logical-type conversions (the default: decimals go from their scaled
integer straight to a float); "logical" lets fastavro build Decimal/datetime/UUID.

Mappers: "compiled" is what the connector runs (the bundled mapping file, compiled for the record's schema,
through `Mappings.map`, after `Decoder.decode_typed`); "handwritten" is the Python mapper it replaced
(`handwritten_mappers.py`, after `Decoder.decode`). Both run in turns within each repeat, best of the
repeats kept, so a machine that slows down for a while slows both; `cost_vs_handwritten_pct` is the
compiled mapper's extra time per record.
"""

from __future__ import annotations

import argparse
import json
import time
from decimal import Decimal
from typing import Any

from connector.avro import NAMESPACE, Decoder, Encoder, default_catalog
from connector.mapping import bundled_mappings, encode_event, map_record

try:
    from handwritten_mappers import map_handwritten  # run as a script: benchmarks/ is on sys.path
except ImportError:  # imported as benchmarks.decode_map_encode
    from benchmarks.handwritten_mappers import map_handwritten

FULL_NAME = f"{NAMESPACE}.OrderPaid"


def order_paid() -> dict[str, Any]:
    items = [
        {
            "product_id": f"P10{i}",
            "title": title,
            "sku": f"P10{i}-M",
            "variant_id": None,
            "variant_title": None,
            "product_url": f"https://loja.example.com/p/p10{i}",
            "image_url": f"https://cdn.example.com/img/p10{i}.jpg",
            "unit_price": Decimal(price),
            "quantity": quantity,
            "categories": ["vestuário", "esporte"],
        }
        for i, (title, price, quantity) in enumerate(
            [("Camiseta básica", "49.90", 2), ("Tênis de corrida", "399.00", 1), ("Meia (3 pares)", "39.90", 3)]
        )
    ]
    return {
        "event_id": "6f1c1d52-7c5b-4e0e-9a57-3c8a4e1d0b11",
        "occurred_at": 1_767_225_600_000,
        "customer": {
            "email": "ana.silva@example.com",
            "name": "Ana Silva",
            "mobile_phone": "+5541999990000",
            "personal_phone": None,
        },
        "legal_bases": [{"category": "COMMUNICATIONS", "type": "CONSENT", "status": "GRANTED"}],
        "order_id": "ord-1001",
        "currency": "BRL",
        "total": Decimal("633.50"),
        "line_items": items,
        "shipping": {"price": Decimal("15.00"), "city": "Curitiba", "state": "PR", "country": "BR"},
        "order_url": "https://loja.example.com/pedidos/ord-1001",
        "payment_methods": ["pix"],
    }


class _OneSchema:
    def get_schema(self, schema_id: int) -> dict[str, Any]:
        return default_catalog()[FULL_NAME].definition


def run(value: bytes, decoder: Decoder, records: int, repeat: int) -> dict[str, float]:
    """Best seconds per record over `repeat` turns of `records` records: each mapper, and decoding alone."""
    decode, typed, mappings = decoder.decode, decoder.decode_typed, bundled_mappings()
    mapped = mappings.map

    def compiled() -> None:
        for _ in range(records):
            full_name, record, schema = typed(value, "orders")
            encode_event(mapped(full_name, record, schema, "orders"))  # type: ignore[arg-type]  # never Skipped here

    def handwritten() -> None:
        for _ in range(records):
            encode_event(map_handwritten(*decode(value, "orders")))

    def decode_only() -> None:
        for _ in range(records):
            decode(value, "orders")

    # Map + check + encode alone, of one decoded record (a shallow copy each time, as decoding makes a new one):
    # much shorter loops than the whole path, so their best is less blurred by a busy machine.
    full_name, record, schema = typed(value, "orders")

    def compiled_map() -> None:
        for _ in range(records):
            encode_event(mapped(full_name, dict(record), schema, "orders"))  # type: ignore[arg-type]

    def handwritten_map() -> None:
        for _ in range(records):
            encode_event(map_handwritten(full_name, dict(record)))

    loops = {
        "compiled": compiled,
        "handwritten": handwritten,
        "decode": decode_only,
        "compiled_map": compiled_map,
        "handwritten_map": handwritten_map,
    }
    best = dict.fromkeys(loops, float("inf"))
    for _ in range(repeat):
        for name, loop in loops.items():
            started = time.perf_counter()
            loop()
            best[name] = min(best[name], (time.perf_counter() - started) / records)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    catalog, record = default_catalog(), order_paid()
    encoder = Encoder(catalog)
    framings = {
        "single_object": encoder.single_object(FULL_NAME, record),
        "confluent": encoder.confluent(1, FULL_NAME, record),
    }
    sent = encode_event(map_record(FULL_NAME, record))
    for framing, value in framings.items():
        for mode in ("raw", "logical"):
            decoder = Decoder(catalog, registry=_OneSchema(), logical_types=mode == "logical")
            best = run(value, decoder, args.records, args.repeat)
            for mapper in ("compiled", "handwritten"):
                line = {
                    "benchmark": "decode_map_encode",
                    "record": "OrderPaid(3 line items)",
                    "framing": framing,
                    "decoding": mode,
                    "mapper": mapper,
                    "value_bytes": len(value),
                    "json_bytes": len(sent),
                    "records_per_s": round(1 / best[mapper]),
                    "us_per_record": round(1e6 * best[mapper], 2),
                    "decode_share_pct": round(100 * best["decode"] / best[mapper], 1),
                }
                line["map_encode_us"] = round(1e6 * best[f"{mapper}_map"], 2)
                if mapper == "compiled":
                    line["cost_vs_handwritten_pct"] = round(100 * (best["compiled"] / best["handwritten"] - 1), 1)
                    ratio = best["compiled_map"] / best["handwritten_map"]
                    line["map_encode_cost_vs_handwritten_pct"] = round(100 * (ratio - 1), 1)
                print(json.dumps(line))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
